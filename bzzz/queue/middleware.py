"""Dramatiq middleware for Bzzz's workers, for any broker unless told otherwise."""

from __future__ import annotations

import logging

from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware, SkipMessage
from dramatiq.worker import Worker

from bzzz.queue.delivery import DELIVERIES

log = logging.getLogger(__name__)


class PoisonGuard(Middleware):
    """Dead-letter a message handed to workers more than `max_deliveries` times.

    A worker killed mid-job (SIGKILL, the OOM killer) never fails its message: the
    broker redelivers it, and Dramatiq's retry limit never applies (Dramatiq #213).
    This counts deliveries instead. Needs a broker that sets `bzzz_deliveries`
    (`SQLiteBroker`); messages without it pass.
    """

    def __init__(self, max_deliveries: int) -> None:
        self.max_deliveries = max_deliveries

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        deliveries = message.options.get(DELIVERIES)
        if isinstance(deliveries, int) and deliveries > self.max_deliveries:
            log.error(
                "dead-lettering message %s (%s): delivered %d times, its workers never finished",
                message.message_id,
                message.actor_name,
                deliveries,
            )
            message.fail()
            raise SkipMessage(f"delivered {deliveries} times")


class PrefetchPerThread(Middleware):
    """Let each worker process hold only as many messages as it has threads.

    Dramatiq's default (twice the threads) lets one process hoard long jobs while
    another idles.
    """

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        worker.queue_prefetch = worker.worker_threads
