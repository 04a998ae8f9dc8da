"""One Bzzz peer: the network process. trio owns the main thread.

The Node wires the libp2p stack (host, GossipSub, DHT), discovery, the peer
table, the periodic jobs and the control endpoint, and shuts them down in the
order py-libp2p needs: scheduler threads first (they call into trio), then the
node's tasks, then the host's connections, then the pubsub services.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import Callable, Collection
from contextlib import AsyncExitStack
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import trio
from dramatiq.broker import Broker
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr
from trio_typing import TaskStatus

from bzzz.capabilities import CapabilityDetector
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.machine import Phase
from bzzz.claims.matching import Offer, rank
from bzzz.config import ConfigError, Settings
from bzzz.control import serve
from bzzz.forge.api import Forge
from bzzz.identity import peer_id_of
from bzzz.jobs import PeriodicJobs, TrioBridge
from bzzz.network.addresses import (
    AddressError,
    check_bindable,
    dialable,
    parse_bootstrap,
    parse_listen,
    parse_peer_id,
)
from bzzz.network.discovery import DhtDiscovery, Dialer, MdnsDiscovery, mdns_service_type
from bzzz.network.gate import Allowlist, ConnectionEvent, ConnectionWatcher
from bzzz.network.gossip import Gossip
from bzzz.network.host import build_stack
from bzzz.protocol import (
    Capabilities,
    DropReason,
    Message,
    TaskBroadcast,
    TaskClaim,
    TaskResult,
    Topic,
    as_json_dict,
    utc_now,
)
from bzzz.state import Observation, PeerTable
from bzzz.tasks.intake import poller_for
from bzzz.tasks.poller import Poller
from bzzz.tasks.sources import StaticRepositories
from bzzz.tasks.table import load as load_tasks
from bzzz.tasks.table import save as save_tasks
from bzzz.work import EVENTS_QUEUE, TASK_EVENT, TaskEvent

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
FINAL_STATES = {Phase.DONE.value, Phase.QUARANTINED.value, Phase.CLOSED.value}
SWEEP_INTERVAL = 1.0
ANNOUNCE_DEBOUNCE = 0.5


class Node:
    def __init__(
        self,
        settings: Settings,
        key_pair: KeyPair,
        *,
        psk: str | None = None,
        detector: CapabilityDetector | None = None,
        forge: Forge | None = None,
        broker: Broker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.node.name
        self.peer_id = peer_id_of(key_pair)
        self._psk = psk
        self._clock = clock
        self._started = clock()
        caps = settings.capabilities
        self._detector = detector or CapabilityDetector.for_machine(
            caps.ollama_host, caps.ollama_timeout, caps.agent_clis
        )
        self.stack = build_stack(key_pair, settings.network, settings.gossip, psk)
        self.allowlist = Allowlist(
            self.peer_id, [parse_peer_id(p) for p in settings.network.allow_peers]
        )
        self.peers = PeerTable(
            str(self.peer_id),
            self.name,
            dead_after=caps.peer_timeout,
            forget_after=max(600.0, 10 * caps.peer_timeout),
        )
        self.gossip = Gossip(
            self.stack.pubsub,
            max_message_bytes=settings.gossip.max_message_bytes,
            queue_high_water=settings.gossip.publish_queue_high_water,
            may_speak_for=lambda peer, name: self.peers.may_speak_for(
                str(peer), name, self._clock()
            ),
            is_allowed=self.allowlist,
            on_message=self._on_message,
        )
        self.dialer = Dialer(
            self.stack.host, settings.network.dial_timeout, settings.network.reconnect_interval
        )
        self.dht_discovery = (
            DhtDiscovery(
                self.stack.dht,
                self.dialer,
                settings.network.namespace,
                settings.network.discovery_interval,
            )
            if self.stack.dht is not None
            else None
        )
        self.status = "idle"
        # Called on the trio thread with every accepted message from another peer.
        self.listeners: list[Callable[[ID, Message], None]] = []
        self.own_capabilities: Capabilities | None = None
        self.mdns_found = 0
        self.live_peers = 0  # kept by the sweep; read by the jobs' threads
        self.tasks = load_tasks(settings.tasks_path)
        self._tasks_changed = trio.Event()
        self._forge = forge
        self.poller: Poller | None = None  # made when the node runs: it needs the trio bridge
        self.pollers: dict[str, str] = {}  # repository -> peer ID of its poller
        self.assigned_repos: frozenset[str] = frozenset()  # read by the poll job's thread
        self._broker = broker
        # Claims need the forge (the arbiter) and a queue for the workers.
        self.claims = (
            ClaimDriver(
                settings=settings,
                peer_id=str(self.peer_id),
                forge=forge,
                broker=broker,
                ranker=self._rank,
                publish=self.publish,
                record=self.tasks.get,
                clock=clock,
            )
            if forge is not None and broker is not None
            else None
        )
        self._stop = trio.Event()
        self._newcomer = trio.Event()
        self._events_in, self._events_out = trio.open_memory_channel[ConnectionEvent](1024)
        self._watcher = ConnectionWatcher(self.allowlist, self.stack.pubsub, self._events_in)

    # ---- running ----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        host, pubsub = self.stack.host, self.stack.pubsub
        host.get_network().register_notifee(self._watcher)
        listen = [parse_listen(addr) for addr in self.settings.network.listen]
        async with AsyncExitStack() as services:
            # Pubsub services outside host.run(): nested inside, they crash at
            # shutdown while peers are still sending.
            await services.enter_async_context(background_trio_service(pubsub))
            await services.enter_async_context(background_trio_service(self.stack.gossipsub))
            await services.enter_async_context(host.run(listen))
            services.push_async_callback(host.close)  # host.run() alone leaves connections open
            self._check_listening(listen)
            if self.stack.dht is not None:
                await services.enter_async_context(background_trio_service(self.stack.dht))
            await pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.gossip.run)
                nursery.start_soon(self._watch_connections, self._events_out)
                await nursery.start(self.dialer.supervise)
                self._dial_bootstrap(nursery)
                if self.dht_discovery is not None:
                    nursery.start_soon(self.dht_discovery.run)
                if self.settings.network.mdns:
                    nursery.start_soon(self._run_mdns)
                await nursery.start(serve, self.settings.control_socket, self._control)
                nursery.start_soon(self._sweep)
                nursery.start_soon(self._greet_newcomers)
                nursery.start_soon(self._save_tasks)
                if self.claims is not None:
                    await nursery.start(self.claims.run)
                    nursery.start_soon(self._track_claims, self.claims)
                    self._resume_claims(self.claims)
                jobs = self._start_jobs()
                events = self._start_events()
                try:
                    log.info(
                        "node %s up as %s on %s", self.name, self.peer_id, " ".join(self.addrs())
                    )
                    task_status.started()
                    await self._stop.wait()
                    log.info("node %s stopping", self.name)
                finally:
                    # The jobs call into trio: they end before the tasks they call.
                    with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                        await trio.to_thread.run_sync(jobs.shutdown, abandon_on_cancel=True)  # type: ignore[call-arg]
                        if events is not None:
                            await trio.to_thread.run_sync(events.stop, abandon_on_cancel=True)  # type: ignore[call-arg]
                nursery.cancel_scope.cancel()
        log.info("node %s stopped", self.name)

    def _check_listening(self, listen: list[Multiaddr]) -> None:
        bound = self.stack.host.get_transport_addrs()
        if len(bound) < len(listen):
            for addr in listen:
                try:
                    check_bindable(addr)
                except AddressError as exc:
                    problem = str(exc)
                    break
            else:
                problem = f"listening on {len(bound)} of {len(listen)} addresses"
            raise ConfigError(
                f"network.listen: {problem}. Fix: stop what holds the address or choose"
                f" another (in {self.settings.config_path} or BZZZ_NETWORK_LISTEN)."
            )

    def _dial_bootstrap(self, nursery: trio.Nursery) -> None:
        for text in self.settings.network.bootstrap:
            peer = parse_bootstrap(text)
            if self.dialer.add(peer, "bootstrap", bootstrap=True):
                nursery.start_soon(self.dialer.dial, peer.peer_id)

    async def _run_mdns(self) -> None:
        """Advertise and browse by mDNS until cancelled, then say goodbye."""
        token = trio.lowlevel.current_trio_token()
        found_in, found_out = trio.open_memory_channel[PeerInfo](256)

        def found(peer: PeerInfo) -> None:  # on a zeroconf thread
            def deliver() -> None:
                try:
                    found_in.send_nowait(peer)
                except trio.WouldBlock:
                    log.debug("mDNS discovery of %s dropped: queue full", peer.peer_id)

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver)

        addrs = [
            addr
            for addr in dialable(self.stack.host.get_transport_addrs())
            if not _is_loopback(addr)
        ]
        mdns = MdnsDiscovery(self.peer_id, addrs, mdns_service_type(self._psk), found)
        try:
            try:
                await trio.to_thread.run_sync(mdns.start)  # zeroconf probes its name: ~2 s
            except OSError as exc:  # no multicast-capable interface, port 5353 unusable...
                log.warning("mDNS discovery is off: %s", exc)
                return
            await self._dial_mdns_peers(found_out)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_GRACE):
                # trio-typing's stale stubs predate abandon_on_cancel (trio >= 0.23).
                await trio.to_thread.run_sync(mdns.stop, abandon_on_cancel=True)  # type: ignore[call-arg]

    async def _dial_mdns_peers(self, found: trio.MemoryReceiveChannel[PeerInfo]) -> None:
        async for peer in found:
            if self.dialer.add(peer, "mdns"):
                self.mdns_found += 1
                log.info("found %s by mDNS", peer.peer_id)
            if not self.dialer.is_connected(peer.peer_id):
                await self.dialer.dial(peer.peer_id)

    def _start_jobs(self) -> PeriodicJobs:
        bridge = TrioBridge(trio.lowlevel.current_trio_token())

        def publish(message: Message) -> None:
            bridge.run(self.publish, message)

        def announce(task: TaskBroadcast) -> None:
            bridge.run(self.announce_task, task)

        if self._forge is not None:
            self.poller = Poller(
                self._forge,
                settings=self.settings.tasks,
                source=StaticRepositories(self.settings.tasks.repositories),
                announce=announce,
                assigned=lambda: self.assigned_repos,
            )
        poller = self.poller
        jobs = PeriodicJobs(
            self.name,
            settings=self.settings.capabilities,
            detector=self._detector,
            publish=publish,
            status=lambda: self.status,
            slots=self.free_slots,
            live_peers=lambda: self.live_peers,
            polls=poller.repositories if poller is not None else tuple,
            poll_tick=poller.tick if poller is not None else None,
        )
        jobs.start()
        return jobs

    async def announce_task(self, task: TaskBroadcast) -> None:
        """Announce a task found on the forge, unless the mesh knows it already."""
        if task.task_id in self.tasks:
            return
        self.tasks.add(task, announced_by=self.name, seen_at=utc_now())
        self._tasks_changed.set()
        log.info("announcing task %s (%s)", task.task_id, task.issue_url)
        await self.publish(task)
        if self.claims is not None:
            self.claims.learn(task.task_id, task.model)

    # ---- claims -------------------------------------------------------------------------

    def free_slots(self) -> int | None:
        if self.claims is None:
            return None
        return max(0, self.settings.workers.slots - self.claims.book.free_slots_used())

    def _rank(self, task_id: str, model: str, failed_on: Collection[str]) -> int | None:
        """Our place among the peers that could take the task now (None: not eligible)."""
        now = self._clock()
        own = self.own_capabilities
        offers = []
        if own is not None:
            offers.append(
                Offer(
                    str(self.peer_id),
                    tuple(own.models),
                    tuple(own.installed),
                    self.free_slots() or 0,
                )
            )
        for peer_id in self.peers.live_peer_ids(now):
            record = self.peers.get(peer_id)
            caps = record.capabilities if record else None
            if caps is None or (record is not None and record.node_id in failed_on):
                continue
            slots = caps.slots if caps.slots is not None else int(caps.status == "idle")
            offers.append(Offer(peer_id, tuple(caps.models), tuple(caps.installed), slots))
        order = rank(task_id, model, offers)
        own_id = str(self.peer_id)
        return order.index(own_id) if own_id in order else None

    def _resume_claims(self, claims: ClaimDriver) -> None:
        """Tasks learnt before a restart that are not finished are open to claims again."""
        for record in self.tasks.records():
            if record.state not in FINAL_STATES:
                claims.learn(record.task_id, record.model, check_first=True)

    async def _track_claims(self, claims: ClaimDriver) -> None:
        """Keep the task table's claim fields (shown by `bzzz tasks`, saved) current."""
        while True:
            await claims.changed.wait()
            claims.changed = trio.Event()
            now = self._clock()
            dirty = False
            for task in claims.book.tasks():
                ours = task.phase.ours
                lease_end = task.our_lease_end if ours else task.lease_until
                held = ours or task.phase is Phase.HELD
                dirty |= self.tasks.update(
                    task.task_id,
                    state=task.phase.value,
                    holder=task.holder,
                    lease_s=round(max(0.0, lease_end - now), 1) if held else 0.0,
                    attempts=len(task.attempts),
                    result_url=task.result_url,
                )
            self.status = "busy" if self.free_slots() == 0 else "idle"
            if dirty:
                self._tasks_changed.set()
            await trio.sleep(0.2)  # coalesce bursts of changes

    def _start_events(self) -> dramatiq.Worker | None:
        """Consume the workers' events in-process; each is handed to the trio thread."""
        if self.claims is None or self._broker is None:
            return None
        token = trio.lowlevel.current_trio_token()
        claims = self.claims

        def task_event(data: dict[str, Any]) -> None:
            try:
                event = TaskEvent.from_dict(data)
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("dropped a malformed worker event: %s", exc)
                return
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(claims.on_event, event, trio_token=token)

        dramatiq.actor(
            actor_name=TASK_EVENT, queue_name=EVENTS_QUEUE, broker=self._broker, max_retries=0
        )(task_event)
        worker = dramatiq.Worker(self._broker, queues={EVENTS_QUEUE}, worker_threads=1)
        worker.start()
        return worker

    async def _save_tasks(self) -> None:
        while True:
            await self._tasks_changed.wait()
            self._tasks_changed = trio.Event()
            text = self.tasks.to_json()
            with trio.CancelScope(shield=True):  # a save once begun is finished
                await trio.to_thread.run_sync(save_tasks, text, self.settings.tasks_path)

    async def publish(self, message: Message) -> None:
        if isinstance(message, Capabilities):
            self.own_capabilities = message
        await self.gossip.publish(message)

    async def _watch_connections(self, events: trio.MemoryReceiveChannel[ConnectionEvent]) -> None:
        network = self.stack.host.get_network()
        async with trio.open_nursery() as nursery:
            async for event in events:
                if not event.allowed:
                    if event.connected:
                        try:
                            await network.close_peer(event.peer_id)
                        except Exception:
                            log.debug(
                                "closing refused peer %s failed", event.peer_id, exc_info=True
                            )
                elif event.connected:
                    nursery.start_soon(self._on_connected, event.peer_id)

    async def _on_connected(self, peer_id: ID) -> None:
        if self.dht_discovery is not None:
            await self.dht_discovery.add_peer(peer_id)
        # Greet a new neighbour as soon as it can hear us (its subscriptions arrived).
        with contextlib.suppress(trio.TooSlowError):
            await self.stack.pubsub.wait_for_subscription(peer_id, Topic.CAPABILITIES, timeout=10.0)
            self._newcomer.set()

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(SWEEP_INTERVAL)
            now = self._clock()
            sweep = self.peers.sweep(now)
            self.live_peers = len(self.peers.live_peer_ids(now))
            self._assign_pollers(now)
            for view in sweep.died:
                log.info(
                    "peer %s (%s) is dead: silent for %.0f s",
                    view.node_id,
                    view.peer_id,
                    view.silence,
                )
            for view in sweep.forgotten:
                log.info("forgot peer %s (%s)", view.node_id, view.peer_id)

    def _assign_pollers(self, now: float) -> None:
        """Who polls each repository: rendezvous hashing over the live peers that can.

        A node polls nothing until it has been up for two presence intervals: by then its
        neighbours have greeted it with their capabilities, so it does not poll what
        another peer already polls.
        """
        settle = 2 * self.settings.capabilities.presence_interval
        if self.poller is None or now - self._started < settle:
            return
        own = str(self.peer_id)
        mine = set(self.poller.repositories())
        offers: dict[str, list[str]] = {repo: [own] for repo in mine}
        for peer_id in self.peers.live_peer_ids(now):
            record = self.peers.get(peer_id)
            polls = record.capabilities.polls if record and record.capabilities else None
            for repo in polls or ():
                offers.setdefault(repo, []).append(peer_id)
        pollers = {repo: poller_for(repo, peers) or "" for repo, peers in offers.items()}
        assigned = frozenset(repo for repo, peer in pollers.items() if peer == own)
        for repo in sorted(assigned - self.assigned_repos):
            log.info("polling %s from now on", repo)
        for repo in sorted(self.assigned_repos - assigned):
            log.info("%s is polled by %s from now on", repo, pollers.get(repo) or "nobody")
        self.pollers = pollers
        self.assigned_repos = assigned

    async def _greet_newcomers(self) -> None:
        """Re-announce our capabilities when a peer appears, so it need not wait for the
        next periodic publish to know us."""
        while True:
            await self._newcomer.wait()
            await trio.sleep(ANNOUNCE_DEBOUNCE)  # one announcement for a burst of newcomers
            self._newcomer = trio.Event()
            if self.own_capabilities is not None:
                await self.publish(
                    self.own_capabilities.model_copy(update={"timestamp": utc_now()})
                )

    # ---- messages ---------------------------------------------------------------------

    def _on_message(self, origin: ID, message: Message) -> None:
        outcome = self.peers.observe(str(origin), message, self._clock())
        if outcome is Observation.OWN:
            return
        if outcome is Observation.SPOOFED:
            self.gossip.dropped[DropReason.SPOOFED] += 1
            return
        if isinstance(message, TaskBroadcast):
            self._learn_task(origin, message)
            if self.claims is not None:
                self.claims.learn(message.task_id, message.model)
        elif isinstance(message, TaskClaim) and self.claims is not None:
            self.claims.heard_claim(message)
        elif isinstance(message, TaskResult) and self.claims is not None:
            self.claims.heard_result(message)
        for listener in self.listeners:
            listener(origin, message)
        if outcome in (Observation.NEW, Observation.REVIVED):
            self._newcomer.set()
            log.info(
                "peer %s (%s) is %s",
                message.sender,
                origin,
                "alive" if outcome is Observation.NEW else "alive again",
            )

    def _learn_task(self, origin: ID, task: TaskBroadcast) -> None:
        record = self.peers.get(str(origin))
        announced_by = record.node_id if record is not None else str(origin)
        if self.tasks.add(task, announced_by=announced_by, seen_at=utc_now()):
            self._tasks_changed.set()
            log.info("task %s announced by %s", task.task_id, announced_by)

    # ---- control ----------------------------------------------------------------------

    async def _control(self, command: dict[str, Any]) -> dict[str, Any]:
        match command.get("cmd"):
            case "status":
                return self.status_report()
            case "stop":
                self.stop()
                return {"stopping": True}
            case other:
                return {"error": f"unknown command {other!r}; known: status, stop"}

    def addrs(self) -> list[str]:
        return [
            f"{addr}/p2p/{self.peer_id}" for addr in dialable(self.stack.host.get_transport_addrs())
        ]

    def status_report(self) -> dict[str, Any]:
        now = self._clock()
        wall = datetime.now(UTC)
        peers = []
        for view in self.peers.views(now):
            peer_id = ID.from_base58(view.peer_id)
            peers.append(
                {
                    "peer_id": view.peer_id,
                    "node_id": view.node_id,
                    "alive": view.alive,
                    "last_seen": (wall - timedelta(seconds=view.silence)).isoformat(
                        timespec="milliseconds"
                    ),
                    "connected": self.dialer.is_connected(peer_id),
                    "capabilities": as_json_dict(view.capabilities) if view.capabilities else None,
                }
            )
        return {
            "peer_id": str(self.peer_id),
            "node_id": self.name,
            "addrs": self.addrs(),
            "status": self.status,
            "uptime_s": round(now - self._started, 1),
            "capabilities": as_json_dict(self.own_capabilities) if self.own_capabilities else None,
            "peers": peers,
            "connections": len(self.stack.host.get_connected_peers()),
            "mesh": self.gossip.mesh_sizes(),
            "messages": {
                "received": dict(self.gossip.received),
                "published": dict(self.gossip.published),
                "dropped": dict(self.gossip.dropped),
            },
            "tasks": [asdict(record) for record in self.tasks.records()],
            "polling": self._polling_report(),
            "discovery": {
                "known": len(self.dialer.known()),
                "dials": self.dialer.dials,
                "dial_failures": self.dialer.dial_failures,
                "dht_found": self.dht_discovery.found if self.dht_discovery else None,
                "mdns_found": self.mdns_found if self.settings.network.mdns else None,
                "refused": self._watcher.refused,
            },
        }

    def _polling_report(self) -> dict[str, Any]:
        views = {view.repo: view for view in self.poller.views()} if self.poller else {}
        report: dict[str, Any] = {}
        for repo, peer_id in sorted(self.pollers.items()):
            record = self.peers.get(peer_id)
            entry: dict[str, Any] = {
                "poller": self.name
                if peer_id == str(self.peer_id)
                else (record.node_id if record else peer_id),
                "peer_id": peer_id,
            }
            view = views.get(repo)
            if peer_id == str(self.peer_id) and view is not None:
                entry.update(
                    polls=view.polls,
                    not_modified=view.not_modified,
                    next_in_s=round(view.next_in_s, 1),
                    error=view.error,
                )
            report[repo] = entry
        return report


def _is_loopback(addr: object) -> bool:
    text = str(addr)
    return text.startswith(("/ip4/127.", "/ip6/::1/"))


async def run_until_signalled(node: Node) -> None:
    """Run `node` until SIGTERM or SIGINT; a second signal stops at once."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                count = 0
                async for signum in signals:
                    count += 1
                    log.info("received %s", signal.Signals(signum).name)
                    node.stop()
                    if count > 1:
                        nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await node.run()
            nursery.cancel_scope.cancel()
