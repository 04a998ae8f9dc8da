"""Periodic jobs on an APScheduler BackgroundScheduler, publishing through a trio bridge.

Jobs run in scheduler threads, so blocking work (asking ollama, NVML, later the
forge) never stalls the network. Anything that touches the node's state or the
mesh hops into trio through the bridge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import trio
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bzzz.capabilities import CapabilityDetector, changed, to_message
from bzzz.config import CapabilitySettings
from bzzz.protocol import Capabilities, Message, PresencePing, utc_now

log = logging.getLogger(__name__)

T = TypeVar("T")

POLL_TICK = 1.0


class TrioBridge:
    """Calls into the trio loop from worker threads; a no-op once trio has finished."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            return None


class PeriodicJobs:
    def __init__(
        self,
        node_id: str,
        *,
        settings: CapabilitySettings,
        detector: CapabilityDetector,
        publish: Callable[[Message], None],
        status: Callable[[], str],
        live_peers: Callable[[], int] = lambda: 0,
        polls: Callable[[], tuple[str, ...]] = tuple,
        slots: Callable[[], int | None] = lambda: None,
        poll_tick: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node_id = node_id
        self._settings = settings
        self._detector = detector
        self._publish = publish
        self._status = status
        self._live_peers = live_peers
        self._polls = polls
        self._slots = slots
        self._poll_tick = poll_tick
        self._clock = clock
        self._last_ping_at = -float("inf")
        self._announced = settings.presence_interval  # the interval our last ping promised
        self._last_published: Capabilities | None = None
        self._last_published_at = -float("inf")
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )

    def capabilities_job(self) -> None:
        """Read the machine; publish on a change, and at least every max_interval."""
        reading = self._detector.read()
        message = to_message(
            self._node_id, reading, self._status(), utc_now(), self._polls(), slots=self._slots()
        )
        overdue = self._clock() - self._last_published_at >= self._settings.max_interval
        if overdue or changed(self._last_published, message, self._settings.load_change):
            self._publish(message)
            self._last_published = message
            self._last_published_at = self._clock()

    def presence_interval(self) -> float:
        """Pings slow down as the mesh grows: each node then hears about
        1/presence_per_peer pings per second, whatever the number of peers.

        The interval at most doubles from one ping to the next: each ping promises the
        gap to the next, and receivers wait three promised gaps before calling us dead.
        """
        settings = self._settings
        wanted = max(settings.presence_interval, settings.presence_per_peer * self._live_peers())
        return min(wanted, 2 * self._announced)

    def presence_job(self) -> None:
        """Runs every presence_interval; pings when the current (mesh-sized) interval is up."""
        interval = self.presence_interval()
        # Half a tick of slack: the scheduler's ticks are not exact.
        if self._clock() - self._last_ping_at < interval - self._settings.presence_interval / 2:
            return
        self._last_ping_at = self._clock()
        self._announced = interval
        self._publish(PresencePing(node_id=self._node_id, interval_s=interval, timestamp=utc_now()))

    def start(self) -> None:
        now = datetime.now(UTC)
        self._scheduler.add_job(
            self._guarded(self.capabilities_job),
            "interval",
            seconds=self._settings.check_interval,
            next_run_time=now,
            id="capabilities",
        )
        self._scheduler.add_job(
            self._guarded(self.presence_job),
            "interval",
            seconds=self._settings.presence_interval,
            next_run_time=now,
            id="presence",
        )
        if self._poll_tick is not None:
            # Each tick polls only the repositories that are this node's and due.
            self._scheduler.add_job(
                self._guarded(self._poll_tick),
                "interval",
                seconds=POLL_TICK,
                next_run_time=now,
                id="poll",
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        """Blocking: waits for running jobs. Call through trio.to_thread so they can finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._detector.close()

    @staticmethod
    def _guarded(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception:
                log.exception("periodic job %s failed", job.__name__)

        run.__name__ = job.__name__
        return run
