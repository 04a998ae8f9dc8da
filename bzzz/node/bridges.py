"""Where other threads' news enters trio: the workers' events and beats from the broker,
and peers found by mDNS. Each callback only hands its value to the trio thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
import trio
from dramatiq.broker import Broker
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from bzzz.addresses import dialable
from bzzz.network.discovery import Dialer, MdnsDiscovery
from bzzz.work import EVENTS_QUEUE, TASK_EVENT, WORKER_BEAT, TaskEvent, WorkerBeat

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
MDNS_QUEUE = 256


class WorkerEvents:
    """Consumes the workers' messages in-process (a Dramatiq worker thread) and hands
    each to trio: task events to `on_event`, worker beats to `on_beat`."""

    def __init__(
        self,
        broker: Broker,
        on_event: Callable[[TaskEvent], None],
        on_beat: Callable[[WorkerBeat], Awaitable[None]],
    ) -> None:
        self._broker = broker
        self._on_event = on_event
        self._on_beat = on_beat
        self._worker: dramatiq.Worker | None = None
        self.malformed = 0
        self.depths: dict[str, int] | None = None  # the queue's, read by a periodic job

    def read_depths(self) -> dict[str, int] | None:
        """The queue's depths (blocking), if its broker can tell them."""
        depths = getattr(self._broker, "depths", None)
        return depths() if callable(depths) else None

    async def keep_depths(self, depths: dict[str, int] | None) -> None:
        self.depths = depths

    def start(self, token: trio.lowlevel.TrioToken) -> None:
        def task_event(data: dict[str, Any]) -> None:  # on the Dramatiq thread
            try:
                event = TaskEvent.from_dict(data)
            except (KeyError, ValueError, TypeError) as exc:
                self._malformed(token, exc)
                return
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._on_event, event, trio_token=token)

        def worker_beat(data: dict[str, Any]) -> None:  # on the Dramatiq thread
            try:
                beat = WorkerBeat.from_dict(data)
            except (KeyError, ValueError, TypeError) as exc:
                self._malformed(token, exc)
                return
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run(self._on_beat, beat, trio_token=token)

        for name, fn in ((TASK_EVENT, task_event), (WORKER_BEAT, worker_beat)):
            dramatiq.actor(
                actor_name=name, queue_name=EVENTS_QUEUE, broker=self._broker, max_retries=0
            )(fn)
        self._worker = dramatiq.Worker(self._broker, queues={EVENTS_QUEUE}, worker_threads=1)
        self._worker.start()

    def _malformed(self, token: trio.lowlevel.TrioToken, error: Exception) -> None:
        log.warning("dropped a malformed worker message: %s", error)
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(self._count_malformed, trio_token=token)

    def _count_malformed(self) -> None:
        self.malformed += 1

    def stop(self) -> None:
        """Blocking: call through trio.to_thread."""
        if self._worker is not None:
            self._worker.stop()


class MdnsBridge:
    """Advertises this node and browses for peers by mDNS; zeroconf calls back on its
    own threads, and each peer found is dialled from trio."""

    def __init__(self, own: ID, dialer: Dialer, service_type: str) -> None:
        self._own = own
        self._dialer = dialer
        self._service_type = service_type
        self.found = 0

    async def run(self, transport_addrs: list[Any]) -> None:
        """Until cancelled; then says goodbye."""
        token = trio.lowlevel.current_trio_token()
        found_in, found_out = trio.open_memory_channel[PeerInfo](MDNS_QUEUE)

        def found(peer: PeerInfo) -> None:  # on a zeroconf thread
            def deliver() -> None:
                try:
                    found_in.send_nowait(peer)
                except trio.WouldBlock:
                    log.debug("mDNS discovery of %s dropped: queue full", peer.peer_id)

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver)

        addrs = [addr for addr in dialable(transport_addrs) if not _is_loopback(addr)]
        mdns = MdnsDiscovery(self._own, addrs, self._service_type, found)
        try:
            try:
                await trio.to_thread.run_sync(mdns.start)  # zeroconf probes its name: ~2 s
            except OSError as exc:  # no multicast-capable interface, port 5353 unusable...
                log.warning("mDNS discovery is off: %s", exc)
                return
            await self._dial(found_out)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                # trio-typing's stale stubs predate abandon_on_cancel (trio >= 0.23).
                await trio.to_thread.run_sync(mdns.stop, abandon_on_cancel=True)  # type: ignore[call-arg]

    async def _dial(self, found: trio.MemoryReceiveChannel[PeerInfo]) -> None:
        async for peer in found:
            if self._dialer.add(peer, "mdns"):
                self.found += 1
                log.info("found %s by mDNS", peer.peer_id)
            if not self._dialer.is_connected(peer.peer_id):
                await self._dialer.dial(peer.peer_id)


def _is_loopback(addr: object) -> bool:
    return str(addr).startswith(("/ip4/127.", "/ip6/::1/"))
