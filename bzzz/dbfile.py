"""A short-lived SQLite connection to a file in the node's home, for the stores that
threads read and write (the outbox, the audit log): one connection per use, a
transaction around it, closed after."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connection(path: Path, timeout: float = 10.0) -> Iterator[sqlite3.Connection]:
    """A connection whose work commits at the end (rolls back on an error), then closes."""
    db = sqlite3.connect(path, timeout=timeout)
    try:
        with db:
            yield db
    finally:
        db.close()
