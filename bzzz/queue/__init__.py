"""The node-local queue between a Bzzz node and its workers: Dramatiq on SQLite by default.

    broker = broker_from_url("sqlite:///var/lib/bzzz/queue.db")  # or redis://, amqp://
    dramatiq.set_broker(broker)

See docs/queue.md.
"""

from bzzz.queue.dead_letters import DeadLetter
from bzzz.queue.delivery import DELIVERIES, DELIVERY_ID
from bzzz.queue.middleware import PoisonGuard, PrefetchPerThread
from bzzz.queue.sqlite import SQLiteBroker
from bzzz.queue.url import BrokerURLError, broker_from_url, redact_url

__all__ = [
    "DELIVERIES",
    "DELIVERY_ID",
    "BrokerURLError",
    "DeadLetter",
    "PoisonGuard",
    "PrefetchPerThread",
    "SQLiteBroker",
    "broker_from_url",
    "redact_url",
]
