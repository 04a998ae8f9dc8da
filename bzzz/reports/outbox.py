"""Reports waiting to reach people and services (the issue, an N8N webhook, Hive), kept in
SQLite in the node's home so that none is lost when a service is down or the node
restarts. Blocking: used from threads.

Each report has a key: adding a key that is there already does nothing, so a report made
twice (an escalation after a restart) goes out once. A report is pending until its
target takes it (delivered), retried with a growing wait after a failure that may pass
(a connection error, a 5xx), and kept as misconfigured after one that will not pass by
itself (a 404 "not registered"): tried again only after the longest wait, and shown to
the operator. Delivered reports are pruned after KEEP_DELIVERED seconds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bzzz.dbfile import connection

FIRST_WAIT = 5.0
KEEP_DELIVERED = 7 * 86_400.0
ERROR_CHARS = 300

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    key TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS due ON reports (state, next_at);
"""


class State(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    MISCONFIGURED = "misconfigured"


@dataclass(frozen=True)
class Report:
    key: str
    target: str  # "forge", "webhook", "hive": who delivers it
    body: dict[str, Any]
    attempts: int = 0


@dataclass(frozen=True)
class Problem:
    """A target whose reports do not get through, and the last reason."""

    target: str
    state: State
    waiting: int
    error: str


class Outbox:
    def __init__(self, path: Path, max_wait: float = 600.0) -> None:
        self.path = path
        self.max_wait = max_wait
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> AbstractContextManager[sqlite3.Connection]:
        return connection(self.path)

    def add(self, key: str, target: str, body: dict[str, Any], now: float | None = None) -> bool:
        """Keep a report to deliver; False if one with this key was kept already."""
        now = time.time() if now is None else now
        with self._db() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO reports (key, target, body, created) VALUES (?, ?, ?, ?)",
                (key, target, json.dumps(body), now),
            )
            return added.rowcount == 1

    def due(self, now: float | None = None, limit: int = 50) -> list[Report]:
        """Reports to try now, oldest first. A target's reports go in the order they were
        made: one waiting for its next try holds back the later ones of its target (a
        task's "completed" must not reach Hive before its "in_progress"). A report kept
        as misconfigured holds back nothing."""
        now = time.time() if now is None else now
        with self._db() as db:
            rows = db.execute(
                "SELECT key, target, body, attempts, next_at, state FROM reports"
                " WHERE state != 'delivered' ORDER BY created, rowid LIMIT ?",
                (limit * 10,),
            ).fetchall()
        due: list[Report] = []
        held: set[str] = set()
        for key, target, body, attempts, next_at, state in rows:
            if next_at > now:
                if state == State.PENDING:
                    held.add(target)
            elif target not in held:
                due.append(Report(key, target, json.loads(body), attempts))
        return due[:limit]

    def delivered(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._db() as db:
            db.execute(
                "UPDATE reports SET state = 'delivered', delivered_at = ?, last_error = ''"
                " WHERE key = ?",
                (now, key),
            )
            db.execute(
                "DELETE FROM reports WHERE state = 'delivered' AND delivered_at < ?",
                (now - KEEP_DELIVERED,),
            )

    def failed(self, key: str, error: str, *, lasting: bool, now: float | None = None) -> float:
        """A try that failed: `lasting` (a misconfiguration) waits the longest; otherwise
        the wait doubles from FIRST_WAIT. The time of the next try."""
        now = time.time() if now is None else now
        with self._db() as db:
            row = db.execute("SELECT attempts FROM reports WHERE key = ?", (key,)).fetchone()
            attempts = (row[0] if row else 0) + 1
            wait = (
                self.max_wait if lasting else min(self.max_wait, FIRST_WAIT * 2 ** (attempts - 1))
            )
            state = State.MISCONFIGURED if lasting else State.PENDING
            db.execute(
                "UPDATE reports SET attempts = ?, next_at = ?, state = ?, last_error = ?"
                " WHERE key = ?",
                (attempts, now + wait, state.value, error[:ERROR_CHARS], key),
            )
        return now + wait

    def counts(self) -> dict[str, dict[str, int]]:
        """Reports by target and state."""
        with self._db() as db:
            rows = db.execute(
                "SELECT target, state, COUNT(*) FROM reports GROUP BY target, state"
            ).fetchall()
        counted: dict[str, dict[str, int]] = {}
        for target, state, count in rows:
            counted.setdefault(target, {})[state] = count
        return counted

    def problems(self) -> list[Problem]:
        """Targets with reports that failed their last try, the worst state first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT target, state, COUNT(*), MAX(last_error) FROM reports"
                " WHERE state != 'delivered' AND last_error != ''"
                " GROUP BY target, state ORDER BY state DESC, target"
            ).fetchall()
        return [Problem(target, State(state), count, error) for target, state, count, error in rows]

    def waiting(self) -> int:
        with self._db() as db:
            row = db.execute("SELECT COUNT(*) FROM reports WHERE state != 'delivered'").fetchone()
        return int(row[0])
