"""A node's audit log on disk: an append-only table of entries (canonical JSON, the leaves
of the log's Merkle tree) and the checkpoints the node signed, in SQLite in its home.
Blocking: used from threads.

Appending never rewrites: a row's sequence number is its leaf index, and nothing here
updates or deletes an entry. The tree is recomputed from the stored leaf hashes; the
signed checkpoints make any later rewrite of what they cover evident.
"""

from __future__ import annotations

import json
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
CREATE TABLE IF NOT EXISTS conflicts (
    size INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (size, text)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
MAX_LEAF = 16 * 1024  # bytes of one entry taken from a peer
ALARM_PREFIX = "alarm:"  # meta keys of a replica's alarms (what its node did wrong)


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
        return self._insert([(canonical(entry), entry) for entry in entries], None)

    def append_leaves(self, start: int, leaves: list[bytes]) -> int:
        """Append a peer's entries, as it served them (a replica), at `start`, which must
        be this store's size; the size after."""
        rows: list[tuple[bytes, Mapping[str, object]]] = []
        for leaf in leaves:
            try:
                entry = json.loads(leaf)
            except ValueError:
                entry = None
            rows.append((leaf, entry if isinstance(entry, dict) else {}))
        return self._insert(rows, start)

    def _insert(self, rows: list[tuple[bytes, Mapping[str, object]]], start: int | None) -> int:
        values = [
            (
                leaf,
                leaf_hash(leaf),
                str(entry.get("type", ""))[:100],
                str(entry.get("task", ""))[:300],
                str(entry.get("at", ""))[:40],
            )
            for leaf, entry in rows
        ]
        with self._db() as db:
            (size,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
            if start is not None and start != size:
                raise ValueError(f"entries from {start} appended to a log of {size}")
            db.executemany(
                "INSERT INTO entries (seq, leaf, hash, type, task, at) VALUES (?, ?, ?, ?, ?, ?)",
                [(size + i, *row) for i, row in enumerate(values)],
            )
            return int(size) + len(values)

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

    def hashes_between(self, start: int, end: int) -> list[bytes]:
        with self._db() as db:
            rows = db.execute(
                "SELECT hash FROM entries WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end)
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

    def latest_checkpoint(self) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT text FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def checkpoint_at(self, size: int) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT text FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else str(row[0])

    def keep_conflict(self, size: int, text: str) -> None:
        """A second checkpoint for `size`, with another root: proof of equivocation."""
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO conflicts (size, text) VALUES (?, ?)", (size, text))

    def conflicts(self) -> list[tuple[int, str]]:
        with self._db() as db:
            rows = db.execute("SELECT size, text FROM conflicts ORDER BY size").fetchall()
        return [(int(size), str(text)) for size, text in rows]

    def get_meta(self, key: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return "" if row is None else str(row[0])

    def meta_items(self, prefix: str) -> list[tuple[str, str]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        return [(str(key), str(value)) for key, value in rows]

    def set_meta(self, key: str, value: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
