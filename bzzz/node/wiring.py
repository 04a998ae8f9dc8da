"""The composition root: every part of a node is built here, and nowhere else.

`run_node` is what `bzzz node` runs: logging, identity, token, forge and queue, then
the node until a signal. `build_node` wires the parts; tests and benchmarks call it
with their own detector, forge or broker.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from functools import partial

import trio
from dramatiq.broker import Broker
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from bzzz import logs
from bzzz.addresses import parse_peer_id
from bzzz.audit.store import AuditStore
from bzzz.capabilities import CapabilityDetector
from bzzz.claims.arbiter import Arbiter
from bzzz.claims.driver import ClaimDriver
from bzzz.config import ConfigError, Settings
from bzzz.forge.api import Forge
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import TOKEN_ENV, Token, TokenError, load_secret, load_token
from bzzz.gateway import GatewayParts
from bzzz.gateway.gateway import Gateway
from bzzz.gateway.mesh import MeshServer
from bzzz.gateway.upstream import Upstream
from bzzz.hive import HiveClient
from bzzz.identity import load_identity, peer_id_of
from bzzz.network.discovery import DhtDiscovery, Dialer, mdns_service_type
from bzzz.network.gate import Allowlist, ConnectionEvent, ConnectionWatcher
from bzzz.network.gossip import Gossip
from bzzz.network.host import build_stack
from bzzz.node.announcer import Announcer
from bzzz.node.audit import AuditLog, worker_entry
from bzzz.node.bridges import MdnsBridge, WorkerEvents
from bzzz.node.collaboration import build_antennae, build_help
from bzzz.node.dispatch import Dispatcher
from bzzz.node.explaining import Explainer
from bzzz.node.hive import HiveReports
from bzzz.node.membership import Membership
from bzzz.node.offering import Offering
from bzzz.node.people import build_reports
from bzzz.node.readiness import Facts
from bzzz.node.replication import Replication
from bzzz.node.report import status_of
from bzzz.node.runtime import Node, Parts, run_until_signalled
from bzzz.node.scheduler import Scheduler
from bzzz.node.sync import TaskSync
from bzzz.node.tasks import Tasks
from bzzz.node.workforce import Workforce
from bzzz.psk import read_psk
from bzzz.reports.escalation import Trigger
from bzzz.state import PeerTable
from bzzz.tasks.poller import Poller, PollResults, fetch
from bzzz.tasks.sources import HiveRepositories, StaticRepositories
from bzzz.tasks.table import load as load_tasks
from bzzz.window.metrics import TaskTimings
from bzzz.window.workers import WorkerTally
from bzzz.work import DECLINED, EventKind, TaskEvent, open_broker

log = logging.getLogger(__name__)

QUEUE_EVERY = 5.0  # seconds between readings of the queue's depths

CONNECTION_EVENTS = 1024
POLL_TICK = 1.0


def run_node(settings: Settings) -> int:
    key_pair = load_identity(settings.identity_path)
    psk = read_psk(settings.psk_path) if settings.psk_path is not None else None
    try:
        token = load_token(settings.token_path)
    except TokenError as exc:
        raise ConfigError(
            f"{exc}. Fix: correct forge.token_file or set BZZZ_FORGE_TOKEN."
        ) from None
    # Nothing this process starts (later: sandboxes) inherits the token.
    os.environ.pop(TOKEN_ENV, None)
    secrets = [secret for secret in (psk, token.reveal() if token else None) if secret]
    logs.setup(settings.log.level, settings.log_path, secrets=secrets, label=settings.node.name)
    node = build_node(settings, key_pair, psk=psk, token=token)
    try:
        trio.run(run_until_signalled, node)
    except* ConfigError as group:  # found only at start, e.g. a listen address in use
        raise _first(group) from None
    # Shut down already: a late SIGTERM must not turn a clean exit into "killed".
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0


def forge_for(settings: Settings, token: Token | None) -> Forge | None:
    """The forge a node takes tasks from: none without repositories to watch (in
    tasks.repositories, or from Hive)."""
    if not settings.tasks.repositories and not settings.hive.url:
        return None
    if token is None:
        log.warning(
            "no forge token: polling %s anonymously (60 requests an hour on github.com);"
            " this node takes no tasks",
            settings.forge.api_url,
        )
    return GitHubForge(
        settings.forge.api_url,
        token,
        timeout=settings.forge.timeout,
        seconds_between_writes=settings.forge.seconds_between_writes,
    )


def build_node(
    settings: Settings,
    key_pair: KeyPair,
    *,
    psk: str | None = None,
    token: Token | None = None,
    detector: CapabilityDetector | None = None,
    forge: Forge | None = None,
    broker: Broker | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Node:
    """A node made of its parts. Without `forge` one is made from the settings (none
    when no repositories are configured); without `broker`, the node's queue."""
    caps, net = settings.capabilities, settings.network
    name = settings.node.name
    peer_id = peer_id_of(key_pair)
    detector = detector or CapabilityDetector.for_machine(
        caps.ollama_host,
        caps.ollama_timeout,
        caps.agent_clis,
        caps.agent_path,
        gateway=bool(settings.gateway.listen),
    )
    forge = forge if forge is not None else forge_for(settings, token)
    broker = broker if broker is not None or forge is None else open_broker(settings)

    stack = build_stack(key_pair, net, settings.gossip, psk)
    allowlist = Allowlist(peer_id, [parse_peer_id(p) for p in net.allow_peers])
    peers = PeerTable(
        str(peer_id),
        name,
        dead_after=caps.peer_timeout,
        forget_after=max(600.0, 10 * caps.peer_timeout),
    )
    gossip = Gossip(
        stack.pubsub,
        max_message_bytes=settings.gossip.max_message_bytes,
        queue_high_water=settings.gossip.publish_queue_high_water,
        may_speak_for=lambda peer, node: peers.may_speak_for(str(peer), node, clock()),
        is_allowed=allowlist,
    )
    events_in, events_out = trio.open_memory_channel[ConnectionEvent](CONNECTION_EVENTS)
    dialer = Dialer(stack.host, net.dial_timeout, net.reconnect_interval)

    hive = _hive(settings)
    source = hive.source if hive else StaticRepositories(settings.tasks.repositories)
    poller = Poller(settings=settings.tasks, source=source) if forge is not None else None
    membership = Membership(settings, str(peer_id), peers, poller, clock=clock)
    table = load_tasks(settings.tasks_path, settings.tasks.history)
    arbiter = Arbiter(forge, settings, str(peer_id)) if forge is not None else None
    claims = (
        ClaimDriver(
            settings=settings,
            arbiter=arbiter,
            broker=broker,
            table=table,
            publish=gossip.publish,
            clock=clock,
        )
        if arbiter is not None and broker is not None
        else None
    )
    reports = build_reports(settings, forge, table, hive) if forge is not None else None
    if claims is not None and reports is not None:
        claims.on_quarantine = partial(reports.escalate, Trigger.QUARANTINED)
    tasks = Tasks(
        table,
        settings.tasks_path,
        name=name,
        claims=claims,
        publish=gossip.publish,
        vet=arbiter.check if arbiter is not None else None,
        fresh_for=settings.claims.clock_skew,
        clock=clock,
    )
    offering = Offering(
        peer_id=str(peer_id),
        name=name,
        facts=Facts(
            executor=settings.workers.executor,
            has_forge=forge is not None,
            has_token=token is not None,
            heartbeat=settings.workers.heartbeat,
        ),
        announcer=Announcer(name, caps, clock=clock),
        workforce=Workforce(settings.workers.heartbeat, clock=clock),
        membership=membership,
        claims=claims,
        poller=poller,
        publish=gossip.publish,
    )
    offering.remote_models = settings.claims.remote_models
    offering.connected = lambda peer: dialer.is_connected(ID.from_base58(peer))
    sync = TaskSync(stack.host, tasks, membership, settings.tasks.sync_interval, clock=clock)
    gateway = _gateway(
        settings, name, stack.host, dialer, offering=offering, membership=membership, clock=clock
    )
    help_parts = build_help(settings, stack.host, offering, claims=claims, publish=gossip.publish)
    if reports is not None:
        help_parts.asker.on_unhelped = partial(reports.escalate, Trigger.HELP_NOT_FOUND)
    build_antennae(help_parts, settings, membership, gossip.publish, reports)
    audit = AuditLog(AuditStore(settings.audit_path), str(peer_id), key_pair.private_key)
    timings, tally = TaskTimings(clock), WorkerTally(clock)
    timings.registry.register(tally)
    replication = Replication(
        audit,
        settings.replicas_path,
        settings.audit,
        stack.host,
        gossip.publish,
        membership.node_name,
        name,
    )
    parts = Parts(
        help=help_parts,
        reports=reports,
        audit=audit,
        replication=replication,
        explainer=Explainer(
            stack.host,
            name,
            claims,
            offering,
            poller,
            membership,
            settings.claims.max_attempts,
            forge=forge,
            intake=settings.tasks,
            clock=clock,
        ),
        timings=timings,
        window_token=load_secret(
            settings.dashboard_token_path, "dashboard.token_file", "dashboard-token"
        ),
        settings=settings,
        peer_id=peer_id,
        stack=stack,
        watcher=ConnectionWatcher(allowlist, stack.pubsub, events_in),
        connection_events=events_out,
        gossip=gossip,
        dialer=dialer,
        dht=(
            DhtDiscovery(stack.dht, dialer, net.namespace, net.discovery_interval)
            if stack.dht is not None
            else None
        ),
        mdns=MdnsBridge(peer_id, dialer, mdns_service_type(psk)) if net.mdns else None,
        membership=membership,
        tasks=tasks,
        dispatcher=Dispatcher(
            membership, tasks, on_capabilities=offering.refresh, on_return=sync.ask, clock=clock
        ),
        offering=offering,
        sync=sync,
        gateway=gateway,
        scheduler=Scheduler(),
        poller=poller,
        events=(
            WorkerEvents(broker, _task_events(claims, offering, audit, tally), offering.on_beat)
            if claims and broker
            else None
        ),
        closers=[detector.close],
    )
    _schedule(parts, detector, forge)
    if hive is not None:

        async def listed(enabled: dict[str, int]) -> None:
            hive.source.update(enabled)

        parts.scheduler.every("hive", settings.hive.refresh, hive.refresh, listed)
    return Node(parts, status_of=status_of, clock=clock)


def _hive(settings: Settings) -> HiveReports | None:
    """Hive, when hive.url is set: its repositories join tasks.repositories."""
    if not settings.hive.url:
        return None
    key = load_secret(settings.hive_key_path, "hive.key_file", "hive-key")
    client = HiveClient(settings.hive.url, key.reveal() if key else None, settings.hive.timeout)
    source = HiveRepositories(settings.tasks.repositories)
    return HiveReports(settings.node.name, client, source)


def _schedule(p: Parts, detector: CapabilityDetector, forge: Forge | None) -> None:
    """The blocking work: each job's result is handed to the node's parts on trio."""
    settings, offering = p.settings, p.offering
    p.scheduler.every(
        "capabilities", settings.capabilities.check_interval, detector.read, offering.on_reading
    )
    if p.events is not None:
        p.scheduler.every("queue", QUEUE_EVERY, p.events.read_depths, p.events.keep_depths)
    if forge is not None and p.poller is not None:
        poller, label = p.poller, settings.tasks.label

        async def absorb(results: PollResults) -> None:
            for found in poller.absorb(results):
                await p.tasks.announce(found)

        p.scheduler.planned(
            "poll", POLL_TICK, poller.plan, lambda plan: fetch(forge, label, plan), absorb
        )


def _gateway(
    settings: Settings,
    name: str,
    host: IHost,
    dialer: Dialer,
    *,
    offering: Offering,
    membership: Membership,
    clock: Callable[[], float],
) -> GatewayParts | None:
    """The model gateway (none when gateway.listen is empty)."""
    config = settings.gateway
    if not config.listen:
        return None
    upstream = Upstream(settings.capabilities.ollama_host, idle=config.idle_timeout)
    mesh = MeshServer(
        upstream,
        slots=config.mesh_slots,
        max_body=config.max_request_bytes,
        first_byte=config.first_byte_timeout,
    )
    offering.gateway_load = lambda: (mesh.slots, mesh.in_flight)

    def local_models() -> tuple[str, ...]:
        reading = offering.announcer.reading
        return reading.models if reading is not None else ()

    gateway = Gateway(
        name=name,
        host=host,
        upstream=upstream,
        local_models=local_models,
        peers=membership.model_peers,
        connected=dialer.is_connected,
        first_byte=config.first_byte_timeout,
        idle=config.idle_timeout,
        clock=clock,
    )
    host_name, port = config.host_port
    return GatewayParts(gateway, mesh, upstream, host_name, port, config.max_request_bytes)


def _task_events(
    claims: ClaimDriver, offering: Offering, audit: AuditLog, tally: WorkerTally
) -> Callable[[TaskEvent], None]:
    def on_event(event: TaskEvent) -> None:
        tally.on_event(event)
        if event.kind is EventKind.AUDIT:
            worker_entry(audit, event)
            return
        if event.kind is EventKind.FINISHED and event.result_type == DECLINED:
            offering.declined(event.reason)
        claims.on_event(event)

    return on_event


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
