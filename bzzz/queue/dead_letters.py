"""Dead letters of `SQLiteBroker`: messages nacked for good, kept until their TTL runs out.

Each function works on the connection it is given; `SQLiteBroker`'s `dead_letters`,
`retry_dead_letters` and `purge_dead_letters` call them, and its heartbeat purges
expired dead letters.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dramatiq.common import current_millis, dq_name
from dramatiq.message import Message

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


def select(db: sqlite3.Connection, queue_name: str | None, limit: int) -> list[DeadLetter]:
    """Dead letters of `queue_name` (its delay queue's too) or of every queue, oldest first."""
    rows = db.execute(
        "SELECT id, queue, message_id, deliveries, dead_until, body FROM bzzz_messages"  # noqa: S608 (constant text)
        f" WHERE {SELECTED_DEAD} ORDER BY id LIMIT :limit",
        {**_selection(queue_name, None), "limit": limit},
    ).fetchall()
    return [
        DeadLetter(id_, queue, message_id, deliveries, _datetime(dead_until), body)
        for id_, queue, message_id, deliveries, dead_until, body in rows
    ]


def retry(
    db: sqlite3.Connection, delivery_ids: Iterable[int] | None, queue_name: str | None
) -> int:
    """Move dead letters back to ready, as new (delivery count 0); returns how many."""
    return db.execute(
        "UPDATE bzzz_messages"  # noqa: S608 (constant text)
        " SET state = 0, ready_at = :now, dead_until = NULL, deliveries = 0"
        f" WHERE {SELECTED_DEAD}",
        {**_selection(queue_name, delivery_ids), "now": current_millis()},
    ).rowcount


def purge(db: sqlite3.Connection, *, expired_only: bool) -> int:
    """Delete dead letters past their TTL (or all of them); returns how many."""
    horizon = current_millis() if expired_only else 2**62
    (any_due,) = db.execute(
        "SELECT EXISTS (SELECT 1 FROM bzzz_messages WHERE state = 2 AND dead_until < ?)",
        (horizon,),
    ).fetchone()
    if not any_due:  # spare the write lock
        return 0
    return db.execute(
        "DELETE FROM bzzz_messages WHERE state = 2 AND dead_until < ?", (horizon,)
    ).rowcount


def _datetime(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def _selection(queue_name: str | None, delivery_ids: Iterable[int] | None) -> dict[str, Any]:
    return {
        "queue": queue_name,
        "delayed": None if queue_name is None else dq_name(queue_name),
        "ids": None if delivery_ids is None else json.dumps(list(delivery_ids)),
    }
