"""A node's audit log on disk: an append-only table of entries (canonical JSON, the leaves
of the log's Merkle tree) and the checkpoints the node signed, in SQLite in its home.
Blocking: used from threads.

Appending never rewrites: a row's sequence number is its leaf index, and nothing here
updates or deletes an entry. The tree is recomputed from the stored leaf hashes; the
signed checkpoints make any later rewrite of what they cover evident.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from bzzz.audit.entry import canonical
from bzzz.audit.merkle import leaf_hash
from bzzz.dbfile import connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    leaf BLOB NOT NULL,
    hash BLOB NOT NULL,
    type TEXT NOT NULL,
    task TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_task ON entries (task);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    text TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Stored:
    index: int  # the leaf's index: 0 for the first entry
    leaf: bytes  # the entry as canonical JSON
    type: str
    task: str
    at: str


class AuditStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path)

    def append(self, entries: list[Mapping[str, object]]) -> int:
        """Append entries (each with "type", "at" and, if about a task, "task"); the log's
        size after."""
        rows = []
        for entry in entries:
            leaf = canonical(entry)
            rows.append(
                (
                    leaf,
                    leaf_hash(leaf),
                    str(entry["type"]),
                    str(entry.get("task", "")),
                    str(entry["at"]),
                )
            )
        with self._db() as db:
            (size,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
            db.executemany(
                "INSERT INTO entries (seq, leaf, hash, type, task, at) VALUES (?, ?, ?, ?, ?, ?)",
                [(size + i, *row) for i, row in enumerate(rows)],
            )
            return int(size) + len(rows)

    def size(self) -> int:
        with self._db() as db:
            (size,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
        return int(size)

    def leaf_hashes(self, size: int | None = None) -> list[bytes]:
        """The first `size` leaf hashes (all of them by default), as stored."""
        with self._db() as db:
            rows = db.execute(
                "SELECT hash FROM entries WHERE seq < ? ORDER BY seq",
                (size if size is not None else 2**62,),
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def entries(
        self, *, task: str = "", type: str = "", since: str = "", limit: int = 1000
    ) -> list[Stored]:
        """Entries, oldest first, by task, type and time (ISO 8601, at or after)."""
        clauses, values = [], []
        for column, value in (("task", task), ("type", type)):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        if since:
            clauses.append("at >= ?")
            values.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db() as db:
            rows = db.execute(
                f"SELECT seq, leaf, type, task, at FROM entries {where} ORDER BY seq LIMIT ?",  # noqa: S608 - the columns are ours
                (*values, limit),
            ).fetchall()
        return [Stored(int(s), bytes(leaf), t, task_, at) for s, leaf, t, task_, at in rows]

    def leaves(self, start: int, end: int) -> list[bytes]:
        """The entries [start, end) as stored (canonical JSON)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT leaf FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end)
            ).fetchall()
        return [bytes(row[0]) for row in rows]

    def keep_checkpoint(self, size: int, text: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO checkpoints (size, text) VALUES (?, ?)", (size, text))

    def checkpoints(self) -> list[tuple[int, str]]:
        with self._db() as db:
            rows = db.execute("SELECT size, text FROM checkpoints ORDER BY size").fetchall()
        return [(int(size), str(text)) for size, text in rows]
