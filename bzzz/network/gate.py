"""Watching connections: the peer-ID allowlist, and connection events for discovery.

py-libp2p has no peer-ID connection gate (only IP/CIDR). A connection from a
peer that is not allowed is blacklisted in pubsub at once (its messages are
dropped from that moment) and closed by the node's connection task.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.pubsub.pubsub import Pubsub
from multiaddr import Multiaddr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionEvent:
    peer_id: ID
    connected: bool
    allowed: bool


class Allowlist:
    def __init__(self, own_id: ID, allowed: Iterable[ID]) -> None:
        self._own_id = own_id
        self._allowed = frozenset(allowed)

    @property
    def enabled(self) -> bool:
        return bool(self._allowed)

    def __call__(self, peer_id: ID) -> bool:
        return not self._allowed or peer_id == self._own_id or peer_id in self._allowed


class ConnectionWatcher(INotifee):
    def __init__(
        self, allowlist: Allowlist, pubsub: Pubsub, events: trio.MemorySendChannel[ConnectionEvent]
    ) -> None:
        self._allowlist = allowlist
        self._pubsub = pubsub
        self._events = events
        self.refused = 0

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id
        allowed = self._allowlist(peer_id)
        if not allowed:
            self.refused += 1
            self._pubsub.blacklisted_peers.add(peer_id)
            log.warning("refusing %s: not in network.allow_peers", peer_id)
        self._send(ConnectionEvent(peer_id, connected=True, allowed=allowed))

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        peer_id = conn.muxed_conn.peer_id
        self._send(ConnectionEvent(peer_id, connected=False, allowed=self._allowlist(peer_id)))

    def _send(self, event: ConnectionEvent) -> None:
        try:
            self._events.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            log.debug("connection event for %s not delivered", event.peer_id)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        pass

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        pass
