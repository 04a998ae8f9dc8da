"""One Bzzz peer at run time: starts the parts `wiring` built, in the order py-libp2p
needs, keeps the node's own offer current, and shuts everything down in reverse.

Shutdown order: the scheduler's threads first (they hop into trio), then the node's
tasks, then the host's connections, then the pubsub services.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr
from trio_typing import TaskStatus

from bzzz.addresses import AddressError, check_bindable, dialable, parse_bootstrap, parse_listen
from bzzz.claims.actions import TaskClaim
from bzzz.claims.driver import ClaimDriver
from bzzz.config import ConfigError, Settings
from bzzz.control import serve
from bzzz.forge.token import Token
from bzzz.gateway import GatewayParts, httpd
from bzzz.help import HelpParts
from bzzz.help.asking import PROTOCOL as HELP_PROTOCOL
from bzzz.network.discovery import DhtDiscovery, Dialer
from bzzz.network.gate import ConnectionEvent, ConnectionWatcher
from bzzz.network.gossip import Gossip
from bzzz.network.host import Stack
from bzzz.node.audit import AuditLog
from bzzz.node.bridges import SHUTDOWN_GRACE, MdnsBridge, WorkerEvents
from bzzz.node.commands import worker_command
from bzzz.node.dispatch import Dispatcher
from bzzz.node.explaining import Explainer
from bzzz.node.membership import Membership
from bzzz.node.offering import Offering
from bzzz.node.people import ReportParts
from bzzz.node.recorder import Recorder
from bzzz.node.replication import Replication
from bzzz.node.scheduler import Scheduler
from bzzz.node.status import NodeStatus
from bzzz.node.sync import TaskSync
from bzzz.node.tasks import Tasks
from bzzz.node.window import open_window
from bzzz.protocol import AntennaeMessage, Message, TaskHelpRequest, TaskHelpResponse, Topic
from bzzz.tasks.poller import Poller
from bzzz.window.metrics import TaskTimings

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
GREET_DEBOUNCE = 0.5
CLAIMS_COALESCE = 0.2  # seconds: a burst of claim changes is announced once
SUBSCRIPTION_WAIT = 10.0


@dataclass
class Parts:
    """Everything a node is made of; built by `bzzz.node.wiring`."""

    settings: Settings
    peer_id: ID
    stack: Stack
    watcher: ConnectionWatcher
    connection_events: trio.MemoryReceiveChannel[ConnectionEvent]
    gossip: Gossip
    dialer: Dialer
    dht: DhtDiscovery | None
    mdns: MdnsBridge | None
    membership: Membership
    tasks: Tasks
    dispatcher: Dispatcher
    offering: Offering
    sync: TaskSync
    gateway: GatewayParts | None
    help: HelpParts
    reports: ReportParts | None  # escalations and other reports (a node with a forge)
    audit: AuditLog  # what this node took part in, signed
    replication: Replication  # the peers' audit logs, replicated here
    explainer: Explainer  # why a task was (not) claimed, asked of every node
    window_token: Token | None  # the dashboard's, if it asks for one
    timings: TaskTimings  # announce-to-claim and claim-to-result, for /metrics
    scheduler: Scheduler
    poller: Poller | None
    events: WorkerEvents | None
    closers: list[Callable[[], None]]  # blocking: run once the scheduler has stopped


class Node:
    def __init__(
        self,
        parts: Parts,
        *,
        status_of: Callable[[Node], NodeStatus],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.name = parts.settings.node.name
        self.peer_id = parts.peer_id
        self._status_of = status_of
        self.clock = clock
        self.started = clock()
        self._stop = trio.Event()
        self.window_url = ""  # the dashboard's address, once it is up

    # ---- running ----------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        p = self.parts
        host, pubsub = p.stack.host, p.stack.pubsub
        host.get_network().register_notifee(p.watcher)
        listen = [parse_listen(addr) for addr in self.settings.network.listen]
        async with AsyncExitStack() as services:
            # Pubsub services outside host.run(): nested inside, they crash at
            # shutdown while peers are still sending.
            await services.enter_async_context(background_trio_service(pubsub))
            await services.enter_async_context(background_trio_service(p.stack.gossipsub))
            await services.enter_async_context(host.run(listen))
            services.push_async_callback(host.close)  # host.run() alone leaves connections open
            if p.gateway is not None:
                services.push_async_callback(p.gateway.upstream.aclose)
            services.push_async_callback(p.help.upstream.aclose)
            self._check_listening(listen)
            if p.stack.dht is not None:
                await services.enter_async_context(background_trio_service(p.stack.dht))
            await pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                await self._start(nursery)
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
                        await trio.to_thread.run_sync(self._stop_threads, abandon_on_cancel=True)  # type: ignore[call-arg]
                        if p.events is not None:
                            await trio.to_thread.run_sync(p.events.stop, abandon_on_cancel=True)  # type: ignore[call-arg]
                nursery.cancel_scope.cancel()
        log.info("node %s stopped", self.name)

    async def _start_gateway(self, nursery: trio.Nursery, gateway: GatewayParts) -> None:
        gateway.mesh.start(self.parts.stack.host)
        gateway.gateway.streams.start(nursery)
        try:
            gateway.bound = await nursery.start(
                partial(httpd.serve, max_body=gateway.max_body),
                gateway.host,
                gateway.port,
                gateway.gateway.handle,
            )
        except OSError as exc:
            raise ConfigError(
                f"gateway.listen: cannot listen on {gateway.host}:{gateway.port} ({exc})."
                f" Fix: stop what holds it or choose another port (in"
                f" {self.settings.config_path} or BZZZ_GATEWAY_LISTEN)."
            ) from None
        log.info("model gateway on http://%s:%d", gateway.host, gateway.bound)

    def status(self) -> NodeStatus:
        return self._status_of(self)

    def _stop_threads(self) -> None:
        self.parts.scheduler.shutdown()
        for close in self.parts.closers:
            close()

    async def _start(self, nursery: trio.Nursery) -> None:
        p = self.parts
        await nursery.start(p.gossip.run, p.dispatcher.on_message)
        nursery.start_soon(self._watch_connections)
        await nursery.start(p.dialer.supervise)
        for text in self.settings.network.bootstrap:
            peer = parse_bootstrap(text)
            if p.dialer.add(peer, "bootstrap", bootstrap=True):
                nursery.start_soon(p.dialer.dial, peer.peer_id)
        if p.dht is not None:
            nursery.start_soon(p.dht.run)
        if p.mdns is not None:
            nursery.start_soon(p.mdns.run, p.stack.host.get_transport_addrs())
        self._start_help(nursery)
        if p.reports is not None:
            p.reports.escalator.start(nursery)
            nursery.start_soon(p.reports.sender.run)
        recorder = Recorder(p.audit, p)

        def moved(task: TaskClaim) -> None:
            recorder.moved(task)
            p.explainer.moved(task)
            p.timings.moved(task)

        if p.tasks.claims is not None:
            p.tasks.claims.book.on_move = moved
        p.explainer.start()
        await p.audit.open()
        nursery.start_soon(p.audit.run, recorder.observe)
        p.dispatcher.listeners.append(p.replication.heard)
        await p.replication.start(nursery)
        await nursery.start(serve, self.settings.control_socket, self._control)
        p.sync.start()
        nursery.start_soon(p.sync.run)
        if p.gateway is not None:
            await self._start_gateway(nursery, p.gateway)
        self.window_url = await open_window(self, nursery)
        nursery.start_soon(self._sweep)
        nursery.start_soon(self._greet_newcomers)
        nursery.start_soon(self._ping)
        nursery.start_soon(p.tasks.save)
        claims = p.tasks.claims
        if claims is not None:
            await nursery.start(claims.run)
            nursery.start_soon(self._track_claims, claims)
            p.tasks.resume()
        token = trio.lowlevel.current_trio_token()
        if p.events is not None:
            p.events.start(token)
        p.scheduler.start(token)

    def _start_help(self, nursery: trio.Nursery) -> None:
        """Offers and requests arrive as gossip; advice is given on a help stream."""
        p = self.parts
        giver, asker = p.help.giver, p.help.asker

        def heard(origin: ID, message: Message) -> None:
            match message:
                case TaskHelpRequest():
                    nursery.start_soon(giver.on_request, message, str(origin))
                case TaskHelpResponse():
                    asker.on_offer(origin, message)
                case AntennaeMessage():
                    if p.help.proposer is not None:
                        p.help.proposer.on_message(message)
                    if p.help.reviewer is not None:
                        nursery.start_soon(p.help.reviewer.on_message, message)
                case _:
                    pass

        p.dispatcher.listeners.append(heard)
        asker.start(nursery)
        p.stack.host.set_stream_handler(HELP_PROTOCOL, giver.serve)

    def _check_listening(self, listen: list[Multiaddr]) -> None:
        bound = self.parts.stack.host.get_transport_addrs()
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

    async def publish(self, message: Message) -> None:
        await self.parts.gossip.publish(message)

    # ---- loops ----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(SWEEP_INTERVAL)
            self.parts.membership.sweep()
            self.parts.offering.refresh()

    async def _track_claims(self, claims: ClaimDriver) -> None:
        """Claims change the task table and the free slots."""
        while True:
            await claims.changed.wait()
            claims.changed = trio.Event()
            self.parts.tasks.sync()
            if self.parts.reports is not None:
                await self.parts.reports.note_tasks()  # to Hive, if there is one
            # The free slots change the market now; peers hear them with the next
            # capability reading (every capabilities.check_interval), not per claim.
            self.parts.offering.refresh()
            await trio.sleep(CLAIMS_COALESCE)

    async def _ping(self) -> None:
        interval = self.settings.capabilities.presence_interval
        while True:
            ping = self.parts.offering.announcer.presence(self.parts.membership.live)
            if ping is not None:
                await self.publish(ping)
            await trio.sleep(interval)

    async def _greet_newcomers(self) -> None:
        """Re-announce our capabilities when a peer appears, so it need not wait for the
        next periodic publish to know us."""
        membership = self.parts.membership
        while True:
            await membership.newcomer.wait()
            await trio.sleep(GREET_DEBOUNCE)  # one announcement for a burst of newcomers
            membership.newcomer = trio.Event()
            message = self.parts.offering.announcer.again()
            if message is not None:
                await self.publish(message)

    async def _watch_connections(self) -> None:
        p = self.parts
        network = p.stack.host.get_network()
        async with trio.open_nursery() as nursery:
            async for event in p.connection_events:
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
        p = self.parts
        if p.dht is not None:
            await p.dht.add_peer(peer_id)
        # Greet a new neighbour as soon as it can hear us (its subscriptions arrived).
        try:
            await p.stack.pubsub.wait_for_subscription(
                peer_id, Topic.CAPABILITIES, timeout=SUBSCRIPTION_WAIT
            )
        except trio.TooSlowError:
            return
        p.membership.newcomer.set()
        p.sync.ask(peer_id)  # catch up on the tasks gossiped while we were apart

    # ---- control ----------------------------------------------------------------------

    async def _control(self, command: dict[str, Any]) -> dict[str, Any]:
        match command.get("cmd"):
            case "status":
                return self._status_of(self).to_json()
            case "stop":
                self.stop()
                return {"stopping": True}
            case "help" | "handoff" | "review":
                return await worker_command(self.parts.help, command)
            case "audit":
                return await self.parts.audit.position(str(command.get("task_id", ""))[:256])
            case "explain":
                task_id = str(command.get("task_id", ""))[:300]
                return {"nodes": await self.parts.explainer.ask_all(task_id)}
            case other:
                known = "status, stop, help, handoff, review, audit, explain"
                return {"error": f"unknown command {other!r}; known: {known}"}

    def addrs(self) -> list[str]:
        transport = self.parts.stack.host.get_transport_addrs()
        return [f"{addr}/p2p/{self.peer_id}" for addr in dialable(transport)]


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
