"""The SQLite file of `SQLiteBroker` as one process sees it: connections, errors, wake-ups.

Each (process, thread) opens its own connection on first use, in autocommit mode (every
statement its own transaction), and a forked child opens new ones: a connection never
crosses a fork. `sqlite3.OperationalError` becomes Dramatiq's `ConnectionClosed` and the
thread's connection is reopened. Waiters wake when this process writes (a condition) or
another one does (`PRAGMA data_version`, polled).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

from dramatiq.errors import ConnectionClosed

POLL_INTERVAL = 0.02  # seconds between two looks at PRAGMA data_version while idle


class Connections:
    """One SQLite connection per (process, thread): a connection must never cross a fork.

    A thread's connection is closed once the thread has ended (checked whenever a new
    one is opened): a process whose threads come and go, as trio's worker threads do in
    the node, keeps no more connections (and file descriptors) than it has threads.
    """

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[int, threading.Thread, sqlite3.Connection]] = []
        self._generation = 0  # bumped by close_all: every thread then opens a new one

    def get(self) -> sqlite3.Connection:
        key = (os.getpid(), self._generation)
        if getattr(self._local, "key", None) != key:
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit: every statement its own transaction
                check_same_thread=False,  # only close_all touches another thread's connection
            )
            connection.execute("PRAGMA synchronous = NORMAL")  # durable across crashes in WAL
            with self._lock:
                ended = [
                    c for pid, thread, c in self._opened if pid == key[0] and not thread.is_alive()
                ]
                self._opened.append((key[0], threading.current_thread(), connection))
            for old in ended:
                self._close(old)
            self._local.key, self._local.connection = key, connection
        return cast(sqlite3.Connection, self._local.connection)

    def forget(self) -> None:
        """Drop this thread's connection, after an error that may have broken it."""
        if getattr(self._local, "key", None) == (os.getpid(), self._generation):
            self._close(self._local.connection)
        self._local.key = None

    def close_all(self) -> None:
        """Close every connection this process opened."""
        pid = os.getpid()
        with self._lock:
            mine = [connection for owner, _, connection in self._opened if owner == pid]
            self._generation += 1
        for connection in mine:
            self._close(connection)

    def _close(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            self._opened = [(p, t, c) for p, t, c in self._opened if c is not connection]
        connection.close()


class Storage:
    """The SQLite file at `path`: this thread's connection, and wake-ups on writes.

    `busy_timeout`: seconds a statement waits for another writer before failing.
    """

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self._connections = Connections(path, busy_timeout)
        self._changed = threading.Condition()
        self._generation = 0  # bumped on every write this process makes

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; SQLite errors become Dramatiq connection errors."""
        try:
            yield self._connections.get()
        except sqlite3.OperationalError as error:
            self._connections.forget()
            closed = f"SQLite queue {self.path}: {error}"
            raise ConnectionClosed(closed) from error  # type: ignore[no-untyped-call]

    def close_connections(self) -> None:
        """Close every connection this process opened; the next statement opens a new one."""
        self._connections.close_all()

    def notify(self) -> None:
        """Wake this process's waiters: it wrote."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def marks(self) -> tuple[int, int]:
        """Where writes stand now, for `wait_for_change`: ours, and everyone's."""
        with self.db() as db:
            (version,) = db.execute("PRAGMA data_version").fetchone()
        return self._generation, int(version)

    def wait_for_change(self, marks: tuple[int, int], until: float) -> None:
        """Block until something was written since `marks` were taken, or `until` (monotonic)."""
        generation, version = marks
        while (remaining := until - time.monotonic()) > 0:
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(min(remaining, POLL_INTERVAL))
                if self._generation != generation:
                    return
            if self.marks()[1] != version:
                return
