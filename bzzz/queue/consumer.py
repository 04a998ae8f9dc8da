"""`SQLiteConsumer`: hands one queue's messages of a `SQLiteBroker` to a Dramatiq worker.

It claims ready messages, as many at once as its prefetch leaves room for, hands them
out one by one, and settles each through the broker. Idle, it sleeps until something
is written or the earliest delayed message is due; once per idle timeout it sends
expired claims back to ready.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import current_millis
from dramatiq.errors import BrokerConnectionError
from dramatiq.message import Message

from bzzz.queue.delivery import DELIVERY_ID, without_delivery

if TYPE_CHECKING:
    from bzzz.queue.sqlite import SQLiteBroker

log = logging.getLogger(__name__)


class SQLiteConsumer(Consumer):
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
            marks = self.broker._storage.marks()
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
            self.broker._storage.wait_for_change(marks, wake_at)

    def ack(self, message: MessageProxy) -> None:
        delivery_id = message.options[DELIVERY_ID]
        self._handed_out.discard(delivery_id)
        self.broker._ack(delivery_id)

    def nack(self, message: MessageProxy) -> None:
        delivery_id = message.options[DELIVERY_ID]
        self._handed_out.discard(delivery_id)
        self.broker._nack(delivery_id, without_delivery(message.copy()).encode())

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
