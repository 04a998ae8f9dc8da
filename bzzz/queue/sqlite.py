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

This module is the broker: Dramatiq's contract, claims and their leases. Beside it:
`schema` (the table and its statements), `storage` (connections, errors as Dramatiq's,
wake-ups), `consumer` (`SQLiteConsumer`), `dead_letters` and `delivery` (the two options).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dramatiq.broker import Broker, Consumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import BrokerConnectionError, DecodeError, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from bzzz.queue import dead_letters as dead
from bzzz.queue.consumer import SQLiteConsumer
from bzzz.queue.dead_letters import DeadLetter
from bzzz.queue.delivery import DELIVERIES, DELIVERY_ID, without_delivery
from bzzz.queue.schema import ACK, CLAIM, EXPIRED, NACK, REAP, RENEW, REQUEUE, SCHEMA
from bzzz.queue.storage import Storage

log = logging.getLogger(__name__)

DEAD_STATE = 2

DEFAULT_LEASE = 12.0  # seconds
DEFAULT_BUSY_TIMEOUT = 30.0  # seconds
DEFAULT_DEAD_LETTER_TTL = 7 * 86400.0  # seconds, as Dramatiq's brokers


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
        self._storage = Storage(self.path, busy_timeout)
        self._lock = threading.Lock()
        self._process = _Process()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._storage.db() as db:
            (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                log.warning("%s: SQLite refused WAL mode (%s); the queue will be slow", path, mode)
            db.executescript(SCHEMA)
        self._storage.close_connections()  # none open when a worker command forks its processes

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
        message = without_delivery(message)
        self.emit_before("enqueue", message, delay)
        with self._storage.db() as db:
            (delivery_id,) = db.execute(
                "INSERT INTO bzzz_messages (queue, state, ready_at, message_id, body)"
                " VALUES (?, 0, ?, ?, ?) RETURNING id",
                (message.queue_name, _ready_at(message), message.message_id, message.encode()),
            ).fetchone()
        self._storage.notify()
        message = message.copy(options={DELIVERY_ID: delivery_id})
        self.emit_after("enqueue", message, delay)
        return message

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)  # type: ignore[no-untyped-call]
        if self.queue_prefetch is not None and queue_name in self.queues:
            prefetch = self.queue_prefetch
        self._start_heartbeat()
        return SQLiteConsumer(self, queue_name, prefetch=prefetch, timeout_ms=timeout)

    def flush(self, queue_name: str) -> None:
        """Drop every message of `queue_name` and its delay queue, dead letters included."""
        with self._storage.db() as db:
            db.execute(
                "DELETE FROM bzzz_messages WHERE queue IN (?, ?)", (queue_name, dq_name(queue_name))
            )
        self._storage.notify()

    def flush_all(self) -> None:
        for queue_name in self.get_declared_queues():
            self.flush(queue_name)

    def join(self, queue_name: str, *, timeout: int | None = None) -> None:
        """Wait until `queue_name` and its delay queue hold nothing ready, delayed or running.

        Raises `QueueJoinTimeout` after `timeout` milliseconds.
        """
        deadline = math.inf if timeout is None else time.monotonic() + timeout / 1000
        while True:
            marks = self._storage.marks()
            with self._storage.db() as db:
                (unfinished,) = db.execute(
                    "SELECT count(*) FROM bzzz_messages WHERE queue IN (?, ?) AND state IN (0, 1)",
                    (queue_name, dq_name(queue_name)),
                ).fetchone()
            if unfinished == 0:
                return
            if time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            self._storage.wait_for_change(marks, deadline)

    def close(self) -> None:
        """Stop renewing this process's leases and close its connections."""
        with self._lock:
            process, self._process = self._process, _Process()
        if process.pid == os.getpid():
            process.stopping.set()
            heartbeat = process.heartbeat
            if heartbeat is not None and heartbeat is not threading.current_thread():
                heartbeat.join(timeout=5)
        self._storage.close_connections()

    def depths(self) -> dict[str, int]:
        """Messages in every queue by state (ready, claimed, dead), and how many of those
        not dead were delivered more than once (a worker died or gave one back)."""
        with self._storage.db() as db:
            rows = db.execute(
                "SELECT state, count(*), sum(deliveries > 1) FROM bzzz_messages GROUP BY state"
            ).fetchall()
        counts = {"ready": 0, "claimed": 0, "dead": 0, "redelivered": 0}
        for state, count, again in rows:
            counts[("ready", "claimed", "dead")[state]] = int(count)
            if state != DEAD_STATE:
                counts["redelivered"] += int(again or 0)
        return counts

    # -- dead letters

    def dead_letters(self, queue_name: str | None = None, *, limit: int = 1000) -> list[DeadLetter]:
        """Dead letters of `queue_name` (its delay queue's too) or of every queue, oldest first."""
        with self._storage.db() as db:
            return dead.select(db, queue_name, limit)

    def retry_dead_letters(
        self, delivery_ids: Iterable[int] | None = None, *, queue_name: str | None = None
    ) -> int:
        """Move dead letters back to ready, as new (delivery count 0); returns how many.

        Those with the given delivery ids, else all of `queue_name`, else all. A message
        keeps its options: one whose retries are spent is dead-lettered again by the
        Retries middleware if it fails once more.
        """
        with self._storage.db() as db:
            moved = dead.retry(db, delivery_ids, queue_name)
        self._storage.notify()
        return moved

    def purge_dead_letters(self, *, expired_only: bool = True) -> int:
        """Delete dead letters past their TTL (or all of them); returns how many."""
        with self._storage.db() as db:
            return dead.purge(db, expired_only=expired_only)

    # -- what consumers and the heartbeat use

    def _claim(self, queue_name: str, limit: int) -> list[Message[Any]]:
        process = self._here()
        now = current_millis()
        with self._storage.db() as db:
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
        with self._storage.db() as db:
            (ready_at,) = db.execute(
                "SELECT min(ready_at) FROM bzzz_messages WHERE queue = ? AND state = 0",
                (queue_name,),
            ).fetchone()
        return None if ready_at is None else int(ready_at)

    def _ack(self, delivery_id: int) -> None:
        process = self._here()
        with self._storage.db() as db:
            db.execute(ACK, {"id": delivery_id, "owner": process.owner})
        process.release([delivery_id])
        self._storage.notify()

    def _nack(self, delivery_id: int, body: bytes | None) -> None:
        process = self._here()
        dead_until = current_millis() + int(self.dead_letter_ttl * 1000)
        with self._storage.db() as db:
            db.execute(
                NACK,
                {"id": delivery_id, "owner": process.owner, "dead_until": dead_until, "body": body},
            )
        process.release([delivery_id])
        self._storage.notify()

    def _requeue(self, delivery_ids: list[int]) -> None:
        if not delivery_ids:
            return
        process = self._here()
        with self._storage.db() as db:
            db.execute(REQUEUE, {"owner": process.owner, "ids": json.dumps(delivery_ids)})
        process.release(delivery_ids)
        self._storage.notify()

    def _release(self, delivery_ids: list[int]) -> None:
        """Stop renewing these: their lease runs out and they return to ready."""
        self._here().release(delivery_ids)

    def _reap_expired(self) -> int:
        """Send claims whose lease ran out (their process died or stalled) back to ready."""
        now = current_millis()
        with self._storage.db() as db:
            (any_expired,) = db.execute(EXPIRED, (now,)).fetchone()
            reaped = db.execute(REAP, (now,)).rowcount if any_expired else 0
        if reaped:
            log.warning("%d messages ready again: their worker stopped renewing its lease", reaped)
            self._storage.notify()
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
                    with self._storage.db() as db:
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


def _ready_at(message: Message[Any]) -> int:
    eta = message.options.get("eta")
    return int(eta) if isinstance(eta, int | float) else current_millis()
