"""`SQLiteBroker`: a Dramatiq broker keeping every queue of a node in one SQLite file.

One table holds every message, ready, claimed or dead-lettered. Each row is one
delivery with an id of its own, so re-enqueueing a message (a retry) adds a row and
every retry runs. A claimed row belongs to one process under a lease that a heartbeat
thread of that process renews; a lease that runs out sends the row back to ready, so
the messages of a worker killed with SIGKILL are redelivered within about one lease.
Delayed messages stay in the table until their eta. An idle consumer wakes when this
process writes (a condition) or another one does (`PRAGMA data_version`, polled).

Every delivered message carries two options: `bzzz_delivery_id`, its row, and
`bzzz_deliveries`, how many times that row has been handed to a worker, this time
included. docs/queue.md describes the design.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from dramatiq.broker import Broker, Consumer, MessageProxy
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import (
    BrokerConnectionError,
    ConnectionClosed,
    DecodeError,
    QueueJoinTimeout,
    QueueNotFound,
)
from dramatiq.message import Message
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

DELIVERY_ID = "bzzz_delivery_id"
DELIVERIES = "bzzz_deliveries"

DEFAULT_LEASE = 12.0  # seconds
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds
DEFAULT_DEAD_LETTER_TTL = 7 * 86400.0  # seconds, as Dramatiq's brokers
POLL_INTERVAL = 0.02  # seconds between two looks at PRAGMA data_version while idle

SCHEMA = """
CREATE TABLE IF NOT EXISTS bzzz_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the delivery id: never reused
    queue TEXT NOT NULL,
    state INTEGER NOT NULL,                -- 0 ready, 1 claimed, 2 dead letter
    ready_at INTEGER NOT NULL,             -- ms since the epoch: claimable from then on
    owner TEXT,                            -- the claiming process
    lease_until INTEGER,                   -- ms: a claim not renewed by then is ready again
    dead_until INTEGER,                    -- ms: when a dead letter is purged
    deliveries INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS bzzz_messages_ready ON bzzz_messages (queue, state, ready_at, id);
CREATE INDEX IF NOT EXISTS bzzz_messages_lease ON bzzz_messages (lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS bzzz_messages_dead ON bzzz_messages (dead_until) WHERE state = 2;
"""

CLAIM = """
UPDATE bzzz_messages
SET state = 1, owner = :owner, lease_until = :lease_until, deliveries = deliveries + 1
WHERE id IN (
    SELECT id FROM bzzz_messages
    WHERE queue = :queue AND state = 0 AND ready_at <= :now
    ORDER BY ready_at, id LIMIT :limit
)
RETURNING ready_at, id, deliveries, body
"""
# A delivery is ours to settle while we own it, or once it is back to ready (reaped).
MINE = "id = :id AND (owner = :owner OR state = 0)"
ACK = f"DELETE FROM bzzz_messages WHERE {MINE}"  # noqa: S608 (constant text)
NACK = f"""
UPDATE bzzz_messages
SET state = 2, owner = NULL, lease_until = NULL, dead_until = :dead_until,
    body = coalesce(:body, body)
WHERE {MINE}
"""  # noqa: S608 (constant text)
# Requeued messages were never started, so their delivery does not count.
REQUEUE = """
UPDATE bzzz_messages
SET state = 0, owner = NULL, lease_until = NULL, deliveries = max(deliveries - 1, 0)
WHERE owner = :owner AND id IN (SELECT value FROM json_each(:ids))
"""
RENEW = """
UPDATE bzzz_messages SET lease_until = :lease_until
WHERE owner = :owner AND id IN (SELECT value FROM json_each(:ids))
"""
EXPIRED = "SELECT EXISTS (SELECT 1 FROM bzzz_messages WHERE state = 1 AND lease_until < ?)"
REAP = """
UPDATE bzzz_messages SET state = 0, owner = NULL, lease_until = NULL
WHERE state = 1 AND lease_until < ?
"""
# Dead letters of a queue (and of its delay queue), or of all queues when :queue is NULL,
# and of the given delivery ids, or of all when :ids is NULL.
SELECTED_DEAD = """
state = 2 AND (:queue IS NULL OR queue IN (:queue, :delayed))
AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
"""


@dataclass(frozen=True)
class DeadLetter:
    """A message that failed for good (nacked), kept until `expires_at`."""

    delivery_id: int
    queue_name: str
    message_id: str
    deliveries: int
    expires_at: datetime
    body: bytes

    @property
    def message(self) -> Message[Any]:
        return Message.decode(self.body)


class _Connections:
    """One SQLite connection per (process, thread): a connection must never cross a fork."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[tuple[int, sqlite3.Connection]] = []
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
                self._opened.append((key[0], connection))
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
            mine = [connection for owner, connection in self._opened if owner == pid]
            self._generation += 1
        for connection in mine:
            self._close(connection)

    def _close(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            self._opened = [(p, c) for p, c in self._opened if c is not connection]
        connection.close()


class _Process:
    """What a broker owns in the current process; a forked child makes its own."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.owner = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self.heartbeat: threading.Thread | None = None
        self._lock = threading.Lock()
        self._held: set[int] = set()  # claimed here, not yet acked, nacked or requeued

    def hold(self, delivery_ids: Iterable[int]) -> None:
        with self._lock:
            self._held.update(delivery_ids)

    def release(self, delivery_ids: Iterable[int]) -> None:
        with self._lock:
            self._held.difference_update(delivery_ids)

    def held(self) -> list[int]:
        with self._lock:
            return list(self._held)


class SQLiteBroker(Broker):
    """A Dramatiq broker on the SQLite file at `path` (made if missing), shared by processes.

    `lease`: seconds a claim lasts without renewal (the heartbeat renews every lease/3);
    the messages of a dead worker are redelivered about this long after it died.
    `busy_timeout`: seconds a statement waits for another writer before failing with
    `ConnectionClosed`. `dead_letter_ttl`: seconds a dead letter is kept.
    `queue_prefetch`: how many messages a consumer holds at once (running ones
    included); None keeps the worker's choice (twice its threads).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        middleware: list[Middleware] | None = None,
        lease: float = DEFAULT_LEASE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        dead_letter_ttl: float = DEFAULT_DEAD_LETTER_TTL,
        queue_prefetch: int | None = None,
    ) -> None:
        super().__init__(middleware=middleware)
        self.path = Path(path)
        self.lease = lease
        self.dead_letter_ttl = dead_letter_ttl
        self.queue_prefetch = queue_prefetch
        self.queues: set[str] = set()
        self._connections = _Connections(self.path, busy_timeout)
        self._lock = threading.Lock()
        self._process = _Process()
        self._changed = threading.Condition()
        self._generation = 0  # bumped on every write this process makes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                log.warning("%s: SQLite refused WAL mode (%s); the queue will be slow", path, mode)
            db.executescript(SCHEMA)
        self._connections.close_all()  # none open when a worker command forks its processes

    def __repr__(self) -> str:
        return f"SQLiteBroker({str(self.path)!r})"

    # -- Dramatiq's broker contract

    def declare_queue(self, queue_name: str) -> None:
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues.add(queue_name)
        self.emit_after("declare_queue", queue_name)
        delayed = dq_name(queue_name)
        self.delay_queues.add(delayed)
        self.emit_after("declare_delay_queue", delayed)

    def get_declared_queues(self) -> set[str]:
        return set(self.queues)

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        if delay is not None:
            message = message.copy(
                queue_name=dq_name(message.queue_name),
                options={"eta": current_millis() + delay},
            )
        message = _without_delivery(message)
        self.emit_before("enqueue", message, delay)
        with self._db() as db:
            (delivery_id,) = db.execute(
                "INSERT INTO bzzz_messages (queue, state, ready_at, message_id, body)"
                " VALUES (?, 0, ?, ?, ?) RETURNING id",
                (message.queue_name, _ready_at(message), message.message_id, message.encode()),
            ).fetchone()
        self._notify()
        message = message.copy(options={DELIVERY_ID: delivery_id})
        self.emit_after("enqueue", message, delay)
        return message

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]
        if self.queue_prefetch is not None and queue_name in self.queues:
            prefetch = self.queue_prefetch
        self._start_heartbeat()
        return _SQLiteConsumer(self, queue_name, prefetch=prefetch, timeout_ms=timeout)

    def flush(self, queue_name: str) -> None:
        """Drop every message of `queue_name` and its delay queue, dead letters included."""
        with self._db() as db:
            db.execute(
                "DELETE FROM bzzz_messages WHERE queue IN (?, ?)", (queue_name, dq_name(queue_name))
            )
        self._notify()

    def flush_all(self) -> None:
        for queue_name in self.get_declared_queues():
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until `queue_name` and its delay queue hold nothing ready, delayed or running.

        Raises `QueueJoinTimeout` after `timeout` milliseconds.
        """
        deadline = math.inf if timeout is None else time.monotonic() + timeout / 1000
        while True:
            marks = self._marks()
            with self._db() as db:
                (unfinished,) = db.execute(
                    "SELECT count(*) FROM bzzz_messages WHERE queue IN (?, ?) AND state IN (0, 1)",
                    (queue_name, dq_name(queue_name)),
                ).fetchone()
            if unfinished == 0:
                return
            if time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            self._wait_for_change(marks, deadline)

    def close(self) -> None:
        """Stop renewing this process's leases and close its connections."""
        with self._lock:
            process, self._process = self._process, _Process()
        if process.pid == os.getpid():
            process.stopping.set()
            heartbeat = process.heartbeat
            if heartbeat is not None and heartbeat is not threading.current_thread():
                heartbeat.join(timeout=5)
        self._connections.close_all()

    # -- dead letters

    def dead_letters(self, queue_name: str | None = None, *, limit: int = 1000) -> list[DeadLetter]:
        """Dead letters of `queue_name` (its delay queue's too) or of every queue, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, queue, message_id, deliveries, dead_until, body FROM bzzz_messages"  # noqa: S608 (constant text)
                f" WHERE {SELECTED_DEAD} ORDER BY id LIMIT :limit",
                {**_selection(queue_name, None), "limit": limit},
            ).fetchall()
        return [
            DeadLetter(id_, queue, message_id, deliveries, _datetime(dead_until), body)
            for id_, queue, message_id, deliveries, dead_until, body in rows
        ]

    def retry_dead_letters(
        self, delivery_ids: Iterable[int] | None = None, *, queue_name: str | None = None
    ) -> int:
        """Move dead letters back to ready, as new (delivery count 0); returns how many.

        Those with the given delivery ids, else all of `queue_name`, else all. A message
        keeps its options: one whose retries are spent is dead-lettered again by the
        Retries middleware if it fails once more.
        """
        with self._db() as db:
            moved = db.execute(
                "UPDATE bzzz_messages"  # noqa: S608 (constant text)
                " SET state = 0, ready_at = :now, dead_until = NULL, deliveries = 0"
                f" WHERE {SELECTED_DEAD}",
                {**_selection(queue_name, delivery_ids), "now": current_millis()},
            ).rowcount
        self._notify()
        return moved

    def purge_dead_letters(self, *, expired_only: bool = True) -> int:
        """Delete dead letters past their TTL (or all of them); returns how many."""
        horizon = current_millis() if expired_only else 2**62
        with self._db() as db:
            (any_due,) = db.execute(
                "SELECT EXISTS (SELECT 1 FROM bzzz_messages WHERE state = 2 AND dead_until < ?)",
                (horizon,),
            ).fetchone()
            if not any_due:  # spare the write lock
                return 0
            return db.execute(
                "DELETE FROM bzzz_messages WHERE state = 2 AND dead_until < ?", (horizon,)
            ).rowcount

    # -- what consumers and the heartbeat use

    def _claim(self, queue_name: str, limit: int) -> list[Message[Any]]:
        process = self._here()
        now = current_millis()
        with self._db() as db:
            rows = db.execute(
                CLAIM,
                {
                    "owner": process.owner,
                    "lease_until": now + int(self.lease * 1000),
                    "queue": queue_name,
                    "now": now,
                    "limit": limit,
                },
            ).fetchall()
        process.hold(row[1] for row in rows)
        messages = []
        for _, delivery_id, deliveries, body in sorted(rows):
            try:
                message = Message.decode(body)
            except DecodeError:
                log.exception("dead letter %d of %s: not a message", delivery_id, queue_name)
                self._nack(delivery_id, None)
                continue
            delivery = {DELIVERY_ID: delivery_id, DELIVERIES: deliveries}
            messages.append(message.copy(options=delivery))
        return messages

    def _next_ready(self, queue_name: str) -> int | None:
        """When the first ready message of `queue_name` may be claimed (ms), if there is one."""
        with self._db() as db:
            (ready_at,) = db.execute(
                "SELECT min(ready_at) FROM bzzz_messages WHERE queue = ? AND state = 0",
                (queue_name,),
            ).fetchone()
        return None if ready_at is None else int(ready_at)

    def _ack(self, delivery_id: int) -> None:
        process = self._here()
        with self._db() as db:
            db.execute(ACK, {"id": delivery_id, "owner": process.owner})
        process.release([delivery_id])
        self._notify()

    def _nack(self, delivery_id: int, body: bytes | None) -> None:
        process = self._here()
        dead_until = current_millis() + int(self.dead_letter_ttl * 1000)
        with self._db() as db:
            db.execute(
                NACK,
                {"id": delivery_id, "owner": process.owner, "dead_until": dead_until, "body": body},
            )
        process.release([delivery_id])
        self._notify()

    def _requeue(self, delivery_ids: list[int]) -> None:
        if not delivery_ids:
            return
        process = self._here()
        with self._db() as db:
            db.execute(REQUEUE, {"owner": process.owner, "ids": json.dumps(delivery_ids)})
        process.release(delivery_ids)
        self._notify()

    def _release(self, delivery_ids: list[int]) -> None:
        """Stop renewing these: their lease runs out and they return to ready."""
        self._here().release(delivery_ids)

    def _reap_expired(self) -> int:
        """Send claims whose lease ran out (their process died or stalled) back to ready."""
        now = current_millis()
        with self._db() as db:
            (any_expired,) = db.execute(EXPIRED, (now,)).fetchone()
            reaped = db.execute(REAP, (now,)).rowcount if any_expired else 0
        if reaped:
            log.warning("%d messages ready again: their worker stopped renewing its lease", reaped)
            self._notify()
        return reaped

    def _here(self) -> _Process:
        with self._lock:
            if self._process.pid != os.getpid():
                self._process = _Process()
            return self._process

    def _start_heartbeat(self) -> None:
        process = self._here()
        with self._lock:
            if process.heartbeat is None:
                process.heartbeat = threading.Thread(
                    target=self._beat, args=(process,), name="bzzz-queue-heartbeat", daemon=True
                )
                process.heartbeat.start()

    def _beat(self, process: _Process) -> None:
        while not process.stopping.wait(self.lease / 3):
            try:
                held = process.held()
                if held:
                    with self._db() as db:
                        db.execute(
                            RENEW,
                            {
                                "lease_until": current_millis() + int(self.lease * 1000),
                                "owner": process.owner,
                                "ids": json.dumps(held),
                            },
                        )
                self._reap_expired()
                self.purge_dead_letters()
            except BrokerConnectionError as error:
                log.warning("could not renew the queue leases of this process: %s", error)

    # -- storage and wake-ups

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; SQLite errors become Dramatiq connection errors."""
        try:
            yield self._connections.get()
        except sqlite3.OperationalError as error:
            self._connections.forget()
            closed = f"SQLite queue {self.path}: {error}"
            raise ConnectionClosed(closed) from error  # type: ignore[no-untyped-call]

    def _notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def _marks(self) -> tuple[int, int]:
        """Where writes stand now, for `_wait_for_change`: ours, and everyone's."""
        with self._db() as db:
            (version,) = db.execute("PRAGMA data_version").fetchone()
        return self._generation, int(version)

    def _wait_for_change(self, marks: tuple[int, int], until: float) -> None:
        """Block until something was written since `marks` were taken, or `until` (monotonic)."""
        generation, version = marks
        while (remaining := until - time.monotonic()) > 0:
            with self._changed:
                if self._generation == generation:
                    self._changed.wait(min(remaining, POLL_INTERVAL))
                if self._generation != generation:
                    return
            if self._marks()[1] != version:
                return


class _SQLiteConsumer(Consumer):
    def __init__(self, broker: SQLiteBroker, queue_name: str, *, prefetch: int, timeout_ms: int):
        self.broker = broker
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        self.timeout = timeout_ms / 1000
        self._claimed: deque[Message[Any]] = deque()  # claimed, not yet handed to the worker
        self._handed_out: set[int] = set()  # delivery ids handed out and not settled
        self._is_delay_queue = queue_name in broker.delay_queues

    @property
    def outstanding_message_count(self) -> int:
        return len(self._claimed) + len(self._handed_out)

    def __next__(self) -> MessageProxy | None:
        deadline = time.monotonic() + self.timeout
        while True:
            if self._claimed:
                message = self._claimed.popleft()
                self._handed_out.add(message.options[DELIVERY_ID])
                return MessageProxy(message)
            marks = self.broker._marks()
            wake_at = deadline
            room = self.prefetch - self.outstanding_message_count
            next_ready = self.broker._next_ready(self.queue_name) if room > 0 else None
            if next_ready is not None:
                wait_ms = next_ready - current_millis()
                if wait_ms <= 0:
                    self._claimed.extend(self.broker._claim(self.queue_name, room))
                    continue
                wake_at = min(deadline, time.monotonic() + wait_ms / 1000)
            if time.monotonic() >= deadline:
                self.broker._reap_expired()
                return None
            self.broker._wait_for_change(marks, wake_at)

    def ack(self, message: MessageProxy) -> None:
        delivery_id = message.options[DELIVERY_ID]
        self._handed_out.discard(delivery_id)
        self.broker._ack(delivery_id)

    def nack(self, message: MessageProxy) -> None:
        delivery_id = message.options[DELIVERY_ID]
        self._handed_out.discard(delivery_id)
        self.broker._nack(delivery_id, _without_delivery(message.copy()).encode())

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        delivery_ids = [message.options[DELIVERY_ID] for message in messages]
        self._handed_out.difference_update(delivery_ids)
        self.broker._requeue(delivery_ids)

    def close(self) -> None:
        """Give back what this consumer claimed and the worker never got.

        The delay queue's messages the worker got wait in its memory for their eta
        (already due here), and Dramatiq drops that memory when it restarts a consumer
        after an error: those go back too.
        """
        leftovers = [message.options[DELIVERY_ID] for message in self._claimed]
        self._claimed.clear()
        if self._is_delay_queue:
            leftovers += self._handed_out
            self._handed_out.clear()
        try:
            self.broker._requeue(leftovers)
        except BrokerConnectionError as error:
            log.warning(
                "could not requeue %d messages of %s (%s); they are ready again in one lease",
                len(leftovers),
                self.queue_name,
                error,
            )
            self.broker._release(leftovers)


def _without_delivery(message: Message[Any]) -> Message[Any]:
    """`message` without the options of a past delivery (a retry carries them)."""
    if DELIVERY_ID not in message.options and DELIVERIES not in message.options:
        return message
    options = {k: v for k, v in message.options.items() if k not in (DELIVERY_ID, DELIVERIES)}
    return dataclasses.replace(message, options=options)


def _ready_at(message: Message[Any]) -> int:
    eta = message.options.get("eta")
    return int(eta) if isinstance(eta, int | float) else current_millis()


def _datetime(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def _selection(queue_name: str | None, delivery_ids: Iterable[int] | None) -> dict[str, Any]:
    return {
        "queue": queue_name,
        "delayed": None if queue_name is None else dq_name(queue_name),
        "ids": None if delivery_ids is None else json.dumps(list(delivery_ids)),
    }
