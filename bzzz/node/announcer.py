"""What this node tells the mesh about itself: capabilities and presence pings.

Trio-owned. The machine is read in a scheduler thread (`CapabilityDetector.read`);
the reading is handed here, where it becomes a capabilities message together with
the node's own state (status, free slots, repositories it polls, why it takes no
tasks). A message is published when it changed enough, and at least every
`max_interval`; pings go out every presence interval, which grows with the mesh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bzzz.capabilities import Reading, changed, to_message
from bzzz.config import CapabilitySettings
from bzzz.protocol import Capabilities, PresencePing, utc_now


@dataclass(frozen=True)
class Self:
    """The node's own state that goes into its capabilities."""

    status: str = "idle"
    polls: tuple[str, ...] = ()
    slots: int | None = None  # None: it takes part in no claims
    cannot_run: tuple[str, ...] = ()
    gateway: tuple[int, int] | None = None  # mesh model calls: slots, calls served now


class Announcer:
    def __init__(
        self,
        node_id: str,
        settings: CapabilitySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self._settings = settings
        self._clock = clock
        self.reading: Reading | None = None  # the machine, as last read
        self.latest: Capabilities | None = None  # what we published last
        self._latest_at = -float("inf")
        self._last_ping_at = -float("inf")
        self._announced = settings.presence_interval  # the interval our last ping promised

    def capabilities(self, reading: Reading | None, own: Self) -> Capabilities | None:
        """The message to publish for this reading, or None: nothing worth saying."""
        if reading is not None:
            self.reading = reading
        if self.reading is None:
            return None
        message = to_message(
            self.node_id,
            self.reading,
            own.status,
            utc_now(),
            own.polls,
            slots=own.slots,
            cannot_run=list(own.cannot_run) or None,
            gateway=own.gateway,
        )
        overdue = self._clock() - self._latest_at >= self._settings.max_interval
        if not (overdue or changed(self.latest, message, self._settings.load_change)):
            return None
        self.latest = message
        self._latest_at = self._clock()
        return message

    def again(self) -> Capabilities | None:
        """Our latest capabilities with a fresh timestamp, for peers that just appeared."""
        if self.latest is None:
            return None
        self.latest = self.latest.model_copy(update={"timestamp": utc_now()})
        return self.latest

    def presence_interval(self, live_peers: int) -> float:
        """Pings slow down as the mesh grows: each node then hears about
        1/presence_per_peer pings per second, whatever the number of peers.

        The interval at most doubles from one ping to the next: each ping promises the
        gap to the next, and receivers wait three promised gaps before calling us dead.
        """
        settings = self._settings
        wanted = max(settings.presence_interval, settings.presence_per_peer * live_peers)
        return min(wanted, 2 * self._announced)

    def presence(self, live_peers: int) -> PresencePing | None:
        """Called every presence_interval: a ping when the current interval is up."""
        interval = self.presence_interval(live_peers)
        # Half a tick of slack: the ticks are not exact.
        if self._clock() - self._last_ping_at < interval - self._settings.presence_interval / 2:
            return None
        self._last_ping_at = self._clock()
        self._announced = interval
        return PresencePing(node_id=self.node_id, interval_s=interval, timestamp=utc_now())
