"""Streams for model calls to peers, with one kept ready per peer called lately.

Opening a libp2p stream negotiates its protocol before the call can begin: about 3 ms
of the 6 ms a peer's model adds to the first byte over loopback (measured with
bench/gateway.py). So once a call to a peer has its answer's head, the node opens the
next stream to that peer in the background, while the answer streams, and the next call
to it starts at once. A spare is used within SPARE_AGE seconds or dropped; the serving
node ends a stream that asks nothing within mesh.REQUEST_WITHIN. A spare whose
connection has gone since costs a fresh stream, not a fail-over.
"""

from __future__ import annotations

import logging

import trio
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID

from bzzz.gateway.mesh import PROTOCOL, REQUEST_WITHIN
from bzzz.network.framing import reset

log = logging.getLogger(__name__)

SPARE_AGE = REQUEST_WITHIN / 2


class Streams:
    def __init__(self, host: IHost) -> None:
        self._host = host
        self._spares: dict[ID, tuple[INetStream, float]] = {}
        self._opening: set[ID] = set()
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Spares are opened in `nursery` from now on (none before: calls open their own)."""
        self._nursery = nursery

    @property
    def ready(self) -> int:
        return len(self._spares)

    async def open(self, peer: ID) -> INetStream:
        return await self._host.new_stream(peer, [PROTOCOL])

    def spare(self, peer: ID) -> INetStream | None:
        """A stream to `peer` opened beforehand and fresh enough to use, if there is one."""
        found = self._spares.pop(peer, None)
        if found is None:
            return None
        stream, opened = found
        if trio.current_time() - opened <= SPARE_AGE:
            return stream
        self._discard(stream)
        return None

    def refill(self, peer: ID) -> None:
        """Open a spare stream to `peer` in the background, unless one is there or coming."""
        if self._nursery is None or peer in self._opening or peer in self._spares:
            return
        self._opening.add(peer)
        self._nursery.start_soon(self._open_spare, peer)

    async def _open_spare(self, peer: ID) -> None:
        try:
            with trio.move_on_after(SPARE_AGE):
                stream = await self.open(peer)
                replaced = self._spares.pop(peer, None)
                self._spares[peer] = (stream, trio.current_time())
                if replaced is not None:
                    self._discard(replaced[0])
        except Exception as exc:  # the peer is gone: the next call opens its own stream
            log.debug("no spare stream to %s: %s", peer, exc)
        finally:
            self._opening.discard(peer)

    def _discard(self, stream: INetStream) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(reset, stream)
