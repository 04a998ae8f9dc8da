"""The two options of a message `SQLiteBroker` delivers, and how a re-enqueued one loses them.

`bzzz_delivery_id` is the message's row in the broker's table (also on the message
`enqueue` returns); `bzzz_deliveries` counts how many times that row has been handed to a
worker, this time included. A retry carries both from its past delivery until it is
stored as a row of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dramatiq.message import Message

DELIVERY_ID = "bzzz_delivery_id"
DELIVERIES = "bzzz_deliveries"


def without_delivery(message: Message[Any]) -> Message[Any]:
    """`message` without the options of a past delivery (a retry carries them)."""
    if DELIVERY_ID not in message.options and DELIVERIES not in message.options:
        return message
    options = {k: v for k, v in message.options.items() if k not in (DELIVERY_ID, DELIVERIES)}
    return dataclasses.replace(message, options=options)
