"""Replicating the audit logs between nodes. Trio-owned; the stores are read and written
in threads.

Each node announces its latest signed checkpoint on `audit/checkpoints/v1` when it signs
one, when it meets a peer, and at least every `audit.announce_every`. A peer that hears
it fetches what it lacks from that node over `/bzzz/audit/1.0.0` (bzzz.audit.exchange),
checks every page (bzzz.audit.replica) and keeps a replica (bzzz.node.replicas), up to
`audit.replicas` logs of at most `audit.replica_entries` entries each. It serves its
replicas as well as its own log, so any peer can give the proofs of a node's entries.

A log that is not what its node signed (two roots for one size, a history that is not
the one signed before, a smaller log signed after a larger one) raises an alarm in this
node's status. Two roots for one size are proof anyone can check: the finder publishes
both checkpoints, and every peer that verifies them raises the same alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from bzzz.audit.checkpoint import equivocation, from_text
from bzzz.audit.exchange import (
    MAX_REPLY,
    MAX_REQUEST,
    PAGE_ENTRIES,
    ExchangeError,
    Page,
    Request,
    answer,
    decode_page,
    decode_request,
    encode_error,
    encode_request,
)
from bzzz.audit.replica import Fault, Problem
from bzzz.config.sections_help import AuditSettings
from bzzz.network.framing import FramingError, receive_message, reset, send_message
from bzzz.node.audit import AuditLog
from bzzz.node.replicas import Replica, keep_page, open_all, open_replica, raise_alarm
from bzzz.node.status import AuditAlarm, ReplicaStatus
from bzzz.protocol import AuditCheckpoint, Message, utc_now

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/audit/1.0.0")
TIMEOUT = 30.0  # seconds for one page
SERVING = 4  # requests answered at once
TICK = 1.0  # seconds between looks at what to announce


@dataclass
class Replication:
    audit: AuditLog
    directory: Path
    settings: AuditSettings
    host: IHost
    publish: Callable[[Message], Awaitable[None]]
    node_name: Callable[[str], str]  # a peer ID's node name, if known
    own_name: str
    rejected: int = 0  # announcements and pages dropped as malformed or unsigned
    replicas: dict[str, Replica] = field(default_factory=dict)  # by peer ID
    found: list[AuditAlarm] = field(default_factory=list)  # about logs not replicated here
    _met: set[str] = field(default_factory=set)
    _greet: bool = False  # announce now: a peer was met
    _relay: AuditCheckpoint | None = None  # an equivocation found here, to publish
    _wanted: trio.Event = field(default_factory=trio.Event)
    _serving: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(SERVING))

    async def start(self, nursery: trio.Nursery) -> None:
        for replica in await trio.to_thread.run_sync(open_all, self.directory):
            self.replicas[replica.origin] = replica
        self.host.set_stream_handler(PROTOCOL, self._serve)
        nursery.start_soon(self._announce)
        nursery.start_soon(self._fetch_wanted)

    # ---- hearing ------------------------------------------------------------------------

    def heard(self, origin: ID, message: Message) -> None:
        """Every accepted message: a peer met for the first time is told our checkpoint."""
        peer = str(origin)
        if peer not in self._met:
            self._met.add(peer)
            self._greet = True
        if isinstance(message, AuditCheckpoint):
            if message.conflicting is None:
                self._announced(peer, message.checkpoint)
            else:
                self._relayed(message.checkpoint, message.conflicting)

    def _announced(self, peer: str, text: str) -> None:
        try:
            origin = from_text(text).origin
        except ValueError:
            origin = ""
        if origin != peer:  # a node announces its own checkpoints only
            self.rejected += 1
            return
        replica = self.replicas.get(peer)
        if replica is None:
            if len(self.replicas) >= self.settings.replicas:
                return
            # Blocking (a small SQLite file made), once per peer in the node's life.
            replica = open_replica(self.directory, peer, self.node_name(peer))
            self.replicas[peer] = replica
        if replica.broken:
            return
        problem = replica.follower.announced(text)
        if problem is not None:
            self._problem(replica, problem)
        elif replica.follower.next_request(self._room(replica)) is not None:
            self._wanted.set()

    def _relayed(self, first: str, second: str) -> None:
        try:
            a, b = from_text(first), from_text(second)
        except ValueError:
            self.rejected += 1
            return
        if not equivocation(a, b):
            self.rejected += 1
            return
        detail = f"two roots signed for size {a.size}"
        problem = Problem(Fault.EQUIVOCATION, detail, (first, second))
        replica = self.replicas.get(a.origin)
        if replica is not None:
            self._problem(replica, problem, relay=False)
        elif not any(x.peer_id == a.origin and x.fault == problem.fault for x in self.found):
            self.found.append(_alarm(a.origin, self.node_name(a.origin), problem))
            log.warning("node %s equivocated: %s", self.node_name(a.origin), problem.detail)

    def _problem(self, replica: Replica, problem: Problem, relay: bool = True) -> None:
        if problem.fault in (Fault.UNSIGNED, Fault.MALFORMED):
            self.rejected += 1
            replica.failures += 1
            log.info("dropped %s's audit checkpoint: %s", replica.node_id, problem.detail)
            return
        alarm = raise_alarm(replica, problem)
        if alarm is None:
            return
        log.warning(
            "the audit log of node %s is not what it signed (%s): %s",
            replica.node_id,
            alarm.fault,
            alarm.detail,
        )
        if relay and problem.fault is Fault.EQUIVOCATION and len(problem.evidence) == 2:
            first, second = problem.evidence
            message = AuditCheckpoint(
                node_id=self.own_name, checkpoint=first, conflicting=second, timestamp=utc_now()
            )
            self._relay = message
            self._greet = True

    # ---- announcing ---------------------------------------------------------------------

    async def _announce(self) -> None:
        sent, next_at = "", 0.0
        while True:
            now = trio.current_time()
            text = self.audit.latest_text
            if self._relay is not None:
                relay, self._relay = self._relay, None
                await self.publish(relay)
            if text and (text != sent or now >= next_at or self._greet):
                self._greet = False
                await self.publish(
                    AuditCheckpoint(node_id=self.own_name, checkpoint=text, timestamp=utc_now())
                )
                sent, next_at = text, now + self.settings.announce_every
            await trio.sleep(TICK)

    # ---- fetching -----------------------------------------------------------------------

    async def _fetch_wanted(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted = trio.Event()
            for replica in list(self.replicas.values()):
                if not replica.broken:
                    await self.fetch(replica)

    async def fetch(self, replica: Replica) -> None:
        """Bring the replica up to the checkpoint its node announced last: verified, and
        its entries kept up to the bound. What fails is tried again at the next
        announcement."""
        follower = replica.follower
        peer = ID.from_base58(replica.origin)
        started, kept = trio.current_time(), follower.kept.size
        try:
            while (request := follower.next_request(self._room(replica))) is not None:
                page = await self._ask(peer, request)
                problem = follower.check_page(page, request)
                if problem is not None:
                    self._problem(replica, problem)
                    return
                changed = follower.accept(page)
                await trio.to_thread.run_sync(keep_page, replica, page, changed)
        except (ExchangeError, FramingError) as exc:
            self.rejected += 1
            replica.failures += 1
            log.info("dropped a page of %s's audit log: %s", replica.node_id, exc)
            return
        except Exception as exc:  # the node went away, timed out...
            replica.failures += 1
            log.debug("fetching %s's audit log failed: %s", replica.node_id, exc)
            return
        replica.fetched_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        if follower.kept.size > kept:
            replica.fetch_ms = round((trio.current_time() - started) * 1000, 1)

    def _room(self, replica: Replica) -> int:
        kept = replica.follower.kept.size
        return max(0, min(PAGE_ENTRIES, self.settings.replica_entries - kept))

    async def _ask(self, peer: ID, request: Request) -> Page:
        with trio.fail_after(TIMEOUT):
            stream = await self.host.new_stream(peer, [PROTOCOL])
            try:
                await send_message(stream, encode_request(request))
                return decode_page(await receive_message(stream, MAX_REPLY))
            finally:
                await stream.close()

    # ---- serving ------------------------------------------------------------------------

    async def _serve(self, stream: INetStream) -> None:
        async with self._serving:
            try:
                with trio.fail_after(TIMEOUT):
                    request = decode_request(await receive_message(stream, MAX_REQUEST))
                    if request.origin == self.audit.origin:
                        store = self.audit.store
                    elif request.origin in self.replicas:
                        store = self.replicas[request.origin].store
                    else:
                        await send_message(stream, encode_error("no such log here"))
                        await stream.close()
                        return
                    reply = await trio.to_thread.run_sync(answer, store, request)
                    await send_message(stream, reply)
                    await stream.close()
            except (ExchangeError, FramingError) as exc:
                self.rejected += 1
                log.info("dropped an audit log request: %s", exc)
                await reset(stream)
            except Exception as exc:
                log.debug("answering an audit log request failed: %s", exc)
                await reset(stream)

    # ---- status -------------------------------------------------------------------------

    def views(self) -> tuple[tuple[ReplicaStatus, ...], tuple[AuditAlarm, ...]]:
        replicas = tuple(
            ReplicaStatus(
                r.origin,
                self.node_name(r.origin) if r.node_id == r.origin else r.node_id,
                r.follower.size,
                r.follower.kept.size,
                r.follower.checkpoint.timestamp if r.follower.checkpoint else 0,
                r.fetched_at,
                r.failures,
                r.fetch_ms,
            )
            for r in self.replicas.values()
        )
        alarms = tuple(a for r in self.replicas.values() for a in r.alarms) + tuple(self.found)
        return replicas, alarms


def _alarm(origin: str, node_id: str, problem: Problem) -> AuditAlarm:
    return AuditAlarm(
        origin,
        node_id,
        str(problem.fault),
        problem.detail,
        datetime.now(UTC).isoformat(timespec="milliseconds"),
        problem.evidence,
    )
