"""The node's status report, read off its parts on the trio thread."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psutil
import trio
from libp2p.peer.id import ID

from bzzz.gateway import GatewayParts
from bzzz.help import HelpParts
from bzzz.node.people import ReportParts
from bzzz.node.status import (
    AuditStatus,
    ClaimCounts,
    DiscoveryStatus,
    EscalationStatus,
    GatewayStatus,
    HelpAsked,
    HelpGiven,
    HelpStatus,
    IgnoredIssue,
    MessageCounts,
    NodeStatus,
    PeerStatus,
    PollingStatus,
    ProcessStats,
    QueueStatus,
    ReportProblem,
    ReportsStatus,
    WorkerStatus,
)
from bzzz.protocol import as_json_dict

if TYPE_CHECKING:
    from bzzz.node.runtime import Node, Parts


def status_of(node: Node) -> NodeStatus:
    p = node.parts
    now = node.clock()
    wall = datetime.now(UTC)
    peers = tuple(
        PeerStatus(
            peer_id=view.peer_id,
            node_id=view.node_id,
            alive=view.alive,
            last_seen=(wall - timedelta(seconds=view.silence)).isoformat(timespec="milliseconds"),
            connected=p.dialer.is_connected(ID.from_base58(view.peer_id)),
            capabilities=as_json_dict(view.capabilities) if view.capabilities else None,
        )
        for view in p.membership.peers.views(now)
    )
    latest = p.offering.announcer.latest
    claims = p.tasks.claims
    own = p.offering.own_state()
    return NodeStatus(
        peer_id=str(node.peer_id),
        node_id=node.name,
        addrs=tuple(node.addrs()),
        status=own.status,
        uptime_s=round(now - node.started, 1),
        capabilities=as_json_dict(latest) if latest else None,
        peers=peers,
        connections=len(p.stack.host.get_connected_peers()),
        mesh=p.gossip.mesh_sizes(),
        messages=MessageCounts(
            received=dict(p.gossip.received),
            published=dict(p.gossip.published),
            dropped=dict(p.gossip.dropped),
            dropped_by_topic=p.gossip.dropped_by_topic(),
        ),
        tasks=tuple(p.tasks.table.records()),
        polling=_polling(node),
        discovery=DiscoveryStatus(
            known=len(p.dialer.known()),
            dials=p.dialer.dials,
            dial_failures=p.dialer.dial_failures,
            dht_found=p.dht.found if p.dht else None,
            mdns_found=p.mdns.found if p.mdns else None,
            refused=p.watcher.refused,
        ),
        readiness=p.offering.readiness,
        jobs=p.scheduler.health.views(),
        claims=ClaimCounts(len(claims.book.tasks()), claims.lanes) if claims else None,
        process=process_stats(),
        workers=tuple(
            WorkerStatus(b.worker, b.threads, b.busy, tuple(x.text for x in b.problems))
            for b in p.offering.workforce.live()
        ),
        sync=p.sync.views(),
        gateway=_gateway(p.gateway),
        help=_help(p.help),
        reports=_reports(p.reports),
        audit=_audit(p),
        dashboard=node.window_url,
        queue=QueueStatus(**p.events.depths) if p.events and p.events.depths else None,
        ignored=tuple(
            IgnoredIssue(i.task_id, i.title, i.reason)
            for i in (p.poller.ignored() if p.poller else ())
        ),
    )


def _audit(p: Parts) -> AuditStatus:
    latest = p.audit.latest
    replicas, alarms = p.replication.views()
    return AuditStatus(
        p.audit.size,
        latest.size if latest else 0,
        latest.root.hex() if latest else "",
        latest.timestamp if latest else 0,
        p.audit.problem,
        replicas,
        alarms,
        p.replication.rejected,
    )


def _reports(parts: ReportParts | None) -> ReportsStatus | None:
    if parts is None:
        return None
    shot = parts.sender.snapshot
    return ReportsStatus(
        waiting=shot.waiting,
        delivered=shot.delivered,
        problems=tuple(
            ReportProblem(x.target, x.state.value, x.waiting, x.error) for x in shot.problems
        ),
        escalated=tuple(
            EscalationStatus(e.task_id, e.trigger, e.reason, e.at)
            for e in parts.escalator.escalated
        ),
    )


def process_stats() -> ProcessStats:
    me = psutil.Process()
    return ProcessStats(
        rss_mb=round(me.memory_info().rss / 2**20, 1),
        open_fds=me.num_fds(),
        threads=me.num_threads(),
        trio_tasks=_count_tasks(trio.lowlevel.current_root_task()),
    )


def _count_tasks(task: trio.lowlevel.Task | None) -> int:
    if task is None:
        return 0
    return 1 + sum(
        _count_tasks(child) for nursery in task.child_nurseries for child in nursery.child_tasks
    )


def _gateway(parts: GatewayParts | None) -> GatewayStatus | None:
    if parts is None:
        return None
    counts, mesh = parts.gateway.counts, parts.mesh
    return GatewayStatus(
        url=f"http://{parts.host}:{parts.bound}",
        local_calls=counts.local,
        remote_calls=counts.remote,
        failovers=counts.failovers,
        unavailable=counts.unavailable,
        mesh_slots=mesh.slots,
        serving=mesh.in_flight,
        served=mesh.served,
        refused=mesh.refused,
    )


def _help(parts: HelpParts) -> HelpStatus:
    giver = parts.giver
    return HelpStatus(
        slots=giver.slots,
        giving=giver.giving,
        offered=giver.offered,
        asked=tuple(
            HelpAsked(
                a.task_id,
                a.question[:300],
                a.capability,
                a.asks,
                tuple(a.offers),
                a.helper,
                a.model,
                a.outcome,
                a.first_offer_ms,
                a.accepted_ms,
                a.kind,
            )
            for a in parts.asker.asked
        ),
        given=tuple(
            HelpGiven(g.task_id, g.asker, g.model, round(g.seconds, 1), g.outcome, g.kind)
            for g in giver.given
        ),
    )


def _polling(node: Node) -> dict[str, PollingStatus]:
    p = node.parts
    own = str(node.peer_id)
    views = {view.repo: view for view in p.poller.views()} if p.poller else {}
    report = {}
    for repo, peer_id in sorted(p.membership.pollers.items()):
        name = node.name if peer_id == own else p.membership.node_name(peer_id)
        view = views.get(repo) if peer_id == own else None
        if view is None:
            report[repo] = PollingStatus(name, peer_id)
        else:
            report[repo] = PollingStatus(
                name,
                peer_id,
                polls=view.polls,
                not_modified=view.not_modified,
                next_in_s=round(view.next_in_s, 1),
                error=view.error,
                rate_remaining=view.rate_remaining,
            )
    return report
