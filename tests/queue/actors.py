"""Actors for the crash tests, run by real `dramatiq` worker processes:

    python -m dramatiq tests.queue.actors --processes 1 --threads 2

The broker is BZZZ_TEST_BROKER_URL (lease and busy timeout from BZZZ_TEST_LEASE and
BZZZ_TEST_BUSY_TIMEOUT, in seconds). Every actor appends what it did to the file
BZZZ_TEST_EVENTS, one line each: "<event> <key> <pid> <deliveries> <epoch seconds>".
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dramatiq
from dramatiq.middleware import CurrentMessage

from bzzz.queue import DELIVERIES, broker_from_url

broker = broker_from_url(
    os.environ["BZZZ_TEST_BROKER_URL"],
    lease=float(os.environ.get("BZZZ_TEST_LEASE", "12")),
    busy_timeout=float(os.environ.get("BZZZ_TEST_BUSY_TIMEOUT", "30")),
)
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)
EVENTS = Path(os.environ["BZZZ_TEST_EVENTS"])
STUCK = 60.0  # seconds: longer than any test waits, and the test kills the worker first


def record(event: str, key: str) -> None:
    message = CurrentMessage.get_current_message()
    deliveries = message.options.get(DELIVERIES, 0) if message else 0
    with EVENTS.open("a") as events:
        events.write(f"{event} {key} {os.getpid()} {deliveries} {time.time():.6f}\n")


@dramatiq.actor(max_retries=0)
def work(key: str, seconds: float = 0.0) -> None:
    record("start", key)
    time.sleep(seconds)  # the work itself
    record("done", key)


@dramatiq.actor(max_retries=0)
def stuck_on_first_delivery(key: str) -> None:
    record("start", key)
    message = CurrentMessage.get_current_message()
    if message is not None and message.options.get(DELIVERIES) == 1:
        time.sleep(STUCK)
    record("done", key)
