"""Who is in the mesh, as this node sees it: liveness, who polls which repository, what
live peers offer, and greeting newcomers. Trio-owned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import trio

from bzzz.claims.matching import Offer
from bzzz.config import Settings
from bzzz.gateway.routing import ModelPeer
from bzzz.protocol import Capabilities
from bzzz.state import PeerTable
from bzzz.tasks.intake import assign_pollers
from bzzz.tasks.poller import Poller

log = logging.getLogger(__name__)


class Membership:
    def __init__(
        self,
        settings: Settings,
        own_peer: str,
        peers: PeerTable,
        poller: Poller | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._own = own_peer
        self.peers = peers
        self._poller = poller
        self._clock = clock
        self._started = clock()
        self.live = 0
        self.pollers: dict[str, str] = {}  # repository -> peer ID of its poller
        self.newcomer = trio.Event()  # set when a peer appears: greet it

    def sweep(self) -> None:
        """Mark silent peers dead, forget long-dead ones, and reassign polling."""
        now = self._clock()
        swept = self.peers.sweep(now)
        self.live = len(self.peers.live_peer_ids(now))
        for view in swept.died:
            log.info(
                "peer %s (%s) is dead: silent for %.0f s", view.node_id, view.peer_id, view.silence
            )
        for view in swept.forgotten:
            log.info("forgot peer %s (%s)", view.node_id, view.peer_id)
        self._assign_pollers(now)

    def _assign_pollers(self, now: float) -> None:
        """A node polls nothing until it has been up for two presence intervals: by then
        its neighbours have greeted it with their capabilities, so it does not poll what
        another peer already polls."""
        poller = self._poller
        settle = 2 * self._settings.capabilities.presence_interval
        if poller is None or now - self._started < settle:
            return
        offered: dict[str, tuple[str, ...]] = {}
        for peer_id in self.peers.live_peer_ids(now):
            record = self.peers.get(peer_id)
            caps = record.capabilities if record else None
            offered[peer_id] = tuple(caps.polls or ()) if caps else ()
        pollers = assign_pollers(self._own, poller.repositories(), offered)
        assigned = frozenset(repo for repo, peer in pollers.items() if peer == self._own)
        for repo in sorted(assigned - poller.assigned):
            log.info("polling %s from now on", repo)
        for repo in sorted(poller.assigned - assigned):
            log.info("%s is polled by %s from now on", repo, pollers.get(repo) or "nobody")
        self.pollers = pollers
        poller.assigned = assigned

    def _live_capabilities(self) -> Iterator[tuple[str, str, Capabilities]]:
        """(peer ID, node name, latest capabilities) of each live peer that has sent some."""
        for peer_id in self.peers.live_peer_ids(self._clock()):
            record = self.peers.get(peer_id)
            if record is not None and record.capabilities is not None:
                yield peer_id, record.node_id, record.capabilities

    def offers(self) -> tuple[Offer, ...]:
        """What each live peer offers, from its latest capabilities."""
        return tuple(
            Offer(
                peer_id,
                tuple(caps.models),
                tuple(caps.installed),
                caps.slots if caps.slots is not None else int(caps.status == "idle"),
                node_id,
                caps.gateway_slots is not None,
            )
            for peer_id, node_id, caps in self._live_capabilities()
        )

    def model_peers(self) -> list[ModelPeer]:
        """Live peers' models and model-gateway load, for routing model calls."""
        return [
            ModelPeer(
                peer_id,
                node_id,
                tuple(caps.models),
                caps.gateway_slots or 0,
                caps.gateway_calls or 0,
            )
            for peer_id, node_id, caps in self._live_capabilities()
        ]

    def node_name(self, peer_id: str) -> str:
        record = self.peers.get(peer_id)
        return record.node_id if record is not None else peer_id
