"""Plain-text tables of a node's status report (the JSON of `bzzz status --json`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bzzz.node.status import NodeStatus


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value) or "-"
    return str(value)


def age(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return "-"
    seconds = ((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 90:
        return f"{max(0.0, seconds):.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def peer_rows(report: NodeStatus) -> list[list[object]]:
    rows: list[list[object]] = []
    for peer in report.peers:
        caps = peer.capabilities or {}
        rows.append(
            [
                peer.node_id,
                _short(peer.peer_id),
                "alive" if peer.alive else "dead",
                age(peer.last_seen),
                peer.connected,
                caps.get("status"),
                caps.get("cpu"),
                caps.get("gpu"),
                caps.get("models"),
                caps.get("installed"),
            ]
        )
    return rows


PEER_HEADERS = (
    "NODE",
    "PEER",
    "STATE",
    "LAST SEEN",
    "LINK",
    "STATUS",
    "CPU%",
    "GPU%",
    "MODELS",
    "AGENT CLIS",
)


def render_peers(report: NodeStatus) -> str:
    if not report.peers:
        return "no peers heard from yet"
    return table(PEER_HEADERS, peer_rows(report))


TASK_HEADERS = (
    "TASK",
    "MODEL",
    "EXECUTOR",
    "STATE",
    "HOLDER",
    "LEASE",
    "ATTEMPTS",
    "SEEN",
    "TITLE",
)


def render_tasks(report: NodeStatus) -> str:
    if not report.tasks:
        return "\n".join(["no tasks known yet", *_help_asked(report)])
    rows = [
        [
            t.task_id,
            t.model,
            t.executor,
            t.state,
            t.holder or "-",
            f"{t.lease_s:.0f} s" if t.lease_s else "-",
            str(t.attempts),
            age(t.announced_at),
            t.title[:50],
        ]
        for t in report.tasks
    ]
    return "\n".join([table(TASK_HEADERS, rows), *_help_asked(report)])


def _help_asked(report: NodeStatus) -> list[str]:
    """The help this node's tasks asked for, and how it went."""
    if report.help is None or not report.help.asked:
        return []
    lines = ["", "help asked by this node's tasks:"]
    for a in report.help.asked:
        offers = ", ".join(a.offers) or "none"
        if a.kind == "handoff":
            how = f"handed on to {a.helper}" if a.helper else a.outcome
            want = f"a node to take it over ({a.capability or 'any model'})"
        else:
            how = f"advice from {a.helper} ({a.model})" if a.helper else a.outcome
            want = a.capability or "advice"
        lines.append(f"  {a.task_id}  for {want}: {a.asks} asks, offers from {offers}; {how}")
    return lines


def _help(report: NodeStatus) -> list[str]:
    h = report.help
    if h is None:
        return []
    helped = sum(1 for a in h.asked if a.helper)
    advised = sum(1 for g in h.given if g.outcome == "advice")
    consults = sum(1 for g in h.given if g.kind == "consult")
    took = sum(1 for g in h.given if g.kind == "handoff" and g.outcome == "taken over")
    taken = f", took {took} tasks over" if took else ""
    return [
        f"help     asked {len(h.asked)} (helped {helped}); gave {advised} of {consults}"
        f" consults, {h.giving} of {h.slots} slots busy, {h.offered} offers made{taken}"
    ]


def render_models(models: list[dict[str, Any]], report: NodeStatus) -> str:
    """The mesh's models (the gateway's merged /api/tags) with the calls each node serves."""
    if not models:
        return "no models on this node or its peers"
    calls = {report.node_id: report.gateway.serving if report.gateway else 0}
    for peer in report.peers:
        calls[peer.node_id] = int((peer.capabilities or {}).get("gateway_calls") or 0)
    rows = [
        [
            m.get("name") or m.get("model"),
            _size(m.get("size")),
            ", ".join(f"{n} ({calls.get(n, 0)} calls)" for n in m.get("bzzz_nodes") or ()),
        ]
        for m in models
    ]
    return table(("MODEL", "SIZE", "ON NODES (MESH CALLS IN FLIGHT)"), rows)


def _size(size: object) -> str:
    if not isinstance(size, int) or size <= 0:
        return "-"
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def render_ignored(report: NodeStatus) -> str:
    if not report.ignored:
        return "no ignored issues in the repositories this node polls"
    rows = [[i.task_id, i.title[:40], i.reason] for i in report.ignored]
    return table(("ISSUE", "TITLE", "WHY IT IS NOT A TASK"), rows)


def _polling(report: NodeStatus) -> str:
    return ", ".join(f"{repo} by {entry.poller}" for repo, entry in report.polling.items()) or "-"


def _readiness(report: NodeStatus) -> list[str]:
    ready = report.readiness
    if ready.takes_tasks:
        return [f"work     takes tasks: {ready.free_slots} of {ready.capacity} slots free"]
    return ["work     takes no tasks:", *[f"         - {reason}" for reason in ready.reasons]]


def _sync(report: NodeStatus) -> list[str]:
    return [
        f"sync     with {entry.node_id or _short(peer)}: {age(entry.last_at or None)},"
        f" {entry.rounds} rounds ({entry.unchanged} unchanged), {entry.learnt} tasks learnt"
        for peer, entry in report.sync.items()
    ]


def _reports(report: NodeStatus) -> list[str]:
    r = report.reports
    if r is None:
        return []
    lines = [f"reports  {r.waiting} waiting, {r.delivered} delivered since start"]
    lines += [f"reports  {p.target}: {p.waiting} {p.state}: {p.error}" for p in r.problems]
    lines += [f"escalated {e.task_id} ({e.trigger}): {e.reason}" for e in r.escalated]
    return lines


def _audit(report: NodeStatus) -> list[str]:
    a = report.audit
    if a is None:
        return []
    signed = (
        f"; signed at size {a.checkpoint_size} (root {a.checkpoint_root[:16]}…)"
        if a.checkpoint_size
        else "; no checkpoint yet"
    )
    lines = [f"audit    {a.size} entries{signed}"]
    if a.problem:
        lines.append(f"audit    THIS NODE'S LOG IS NOT WHAT IT SIGNED: {a.problem}")
    if a.replicas:
        held = ", ".join(f"{r.node_id} at {r.checkpoint_size}" for r in a.replicas)
        lines.append(f"audit    replicas verified: {held}")
    lines += [f"audit    ALARM {x.node_id}: {x.fault}: {x.detail}" for x in a.alarms]
    return lines


def _jobs(report: NodeStatus) -> list[str]:
    failing = {name: job for name, job in report.jobs.items() if job.failing_since_runs}
    return [
        f"job      {name} failing ({job.failing_since_runs} runs): {job.last_error}"
        for name, job in failing.items()
    ]


def render_status(report: NodeStatus) -> str:
    dropped = report.messages.dropped
    lines = [
        f"node     {report.node_id}  ({report.status}, up {report.uptime_s:.0f}s)",
        f"peer id  {report.peer_id}",
        *[f"addr     {addr}" for addr in report.addrs],
        f"peers    {len(report.alive_peers())} alive of {len(report.peers)} known,"
        f" {report.connections} connected",
        f"mesh     {_mesh(report.mesh)}",
        f"dropped  {', '.join(f'{k}={v}' for k, v in sorted(dropped.items())) or 'none'}",
        f"tasks    {len(report.tasks)} known; polled: {_polling(report)}",
        *_readiness(report),
        *_sync(report),
        *_help(report),
        *_reports(report),
        *_audit(report),
        *_jobs(report),
        "",
        render_peers(report),
    ]
    return "\n".join(lines)


def _mesh(mesh: dict[str, int]) -> str:
    return " ".join(f"{topic}={count}" for topic, count in mesh.items()) or "-"


def _short(peer_id: str) -> str:
    return f"{peer_id[:8]}…{peer_id[-6:]}" if len(peer_id) > 16 else peer_id
