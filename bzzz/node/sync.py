"""Task-table sync over direct libp2p streams: a node catches up with a peer's table when
it meets the peer (joining, restarting, a partition healed) and, as anti-entropy, with one
random live peer every `tasks.sync_interval`. Trio-owned; the pure half is
`bzzz.tasks.sync`.

The protocol (`/bzzz/task-sync/1.0.0`), one exchange per stream, each message preceded by
its length (4 bytes, big-endian): the asker sends `{"digest": ...}` (its table's); the
peer answers with its digest and, if the two differ, its tasks (zlib-compressed JSON). A
malformed request or reply is dropped and counted.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from bzzz.network.framing import FramingError, receive_message, send_message
from bzzz.node.membership import Membership
from bzzz.node.status import SyncStatus
from bzzz.node.tasks import Tasks
from bzzz.tasks.sync import (
    MAX_BYTES,
    SyncError,
    decode_reply,
    decode_request,
    digest,
    encode_reply,
    encode_request,
)

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/task-sync/1.0.0")
TIMEOUT = 20.0
MAX_REQUEST = 4096


@dataclass
class _PeerSync:
    last_at: str = ""  # UTC, ISO 8601
    rounds: int = 0
    unchanged: int = 0
    learnt: int = 0
    bytes_in: int = 0
    failures: int = 0
    last_ms: float = 0.0


@dataclass
class TaskSync:
    host: IHost
    tasks: Tasks
    membership: Membership
    interval: float
    clock: Callable[[], float] = time.monotonic
    dropped: int = 0  # malformed requests and replies
    _peers: dict[str, _PeerSync] = field(default_factory=dict)
    _wanted: trio.Event = field(default_factory=trio.Event)
    _queue: set[str] = field(default_factory=set)

    def start(self) -> None:
        self.host.set_stream_handler(PROTOCOL, self._serve)

    def ask(self, peer_id: ID) -> None:
        """Catch up with this peer soon (it just connected)."""
        self._queue.add(str(peer_id))
        self._wanted.set()

    async def run(self) -> None:
        """Sync with the peers asked for, and with a random live peer every interval."""
        next_round = self.clock() + self.interval
        while True:
            with trio.move_on_at(trio.current_time() + max(0.0, next_round - self.clock())):
                await self._wanted.wait()
            self._wanted = trio.Event()
            if self.clock() >= next_round:
                next_round = self.clock() + self.interval
                live = self.membership.peers.live_peer_ids(self.clock())
                if live:
                    self._queue.add(random.choice(live))  # noqa: S311 - not security
            while self._queue:
                await self.sync_with(ID.from_base58(self._queue.pop()))

    async def sync_with(self, peer_id: ID) -> int:
        """Ask one peer for its table; returns how many tasks this node learnt."""
        entry = self._peers.setdefault(str(peer_id), _PeerSync())
        started = self.clock()
        try:
            with trio.fail_after(TIMEOUT):
                stream = await self.host.new_stream(peer_id, [PROTOCOL])
                try:
                    await send_message(stream, encode_request(digest(self.tasks.table.records())))
                    data = await receive_message(stream, MAX_BYTES)
                finally:
                    await stream.close()
            reply = decode_reply(data)
        except (SyncError, FramingError) as exc:
            self.dropped += 1
            entry.failures += 1
            log.info("dropped %s's task table: %s", peer_id, exc)
            return 0
        except Exception as exc:  # the peer went away, timed out, speaks no sync...
            entry.failures += 1
            log.debug("task sync with %s failed: %s", peer_id, exc)
            return 0
        entry.rounds += 1
        entry.bytes_in += len(data)
        entry.last_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        if reply.tasks is None:
            entry.unchanged += 1
            entry.last_ms = round((self.clock() - started) * 1000, 1)
            return 0
        learnt = self.tasks.synced(reply.tasks)
        entry.last_ms = round((self.clock() - started) * 1000, 1)
        entry.learnt += learnt
        if learnt:
            name = self.membership.node_name(str(peer_id))
            log.info("learnt of %d tasks from %s's table", learnt, name)
        return learnt

    async def _serve(self, stream: INetStream) -> None:
        try:
            with trio.fail_after(TIMEOUT):
                their_digest = decode_request(await receive_message(stream, MAX_REQUEST))
                await send_message(stream, encode_reply(self.tasks.table.records(), their_digest))
                await stream.close()
        except (SyncError, FramingError) as exc:
            self.dropped += 1
            log.info("dropped a task sync request: %s", exc)
            await stream.reset()
        except Exception as exc:
            log.debug("answering a task sync failed: %s", exc)
            await stream.reset()

    def views(self) -> dict[str, SyncStatus]:
        return {
            peer: SyncStatus(
                p.last_at,
                p.rounds,
                p.unchanged,
                p.learnt,
                p.bytes_in,
                p.failures,
                self.membership.node_name(peer),
                p.last_ms,
            )
            for peer, p in sorted(self._peers.items())
        }
