"""A node's status report: what `bzzz status --json` prints, as typed frozen dataclasses.

The node builds a `NodeStatus`; the control socket carries its JSON; clients (the
CLI's tables, the lab, the tests) read it back with `NodeStatus.from_json`. The JSON
is documented in the README; a peer's `capabilities` is its latest capabilities
message exactly as it travels on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from bzzz.tasks.table import TaskRecord


@dataclass(frozen=True)
class PeerStatus:
    peer_id: str
    node_id: str
    alive: bool
    last_seen: str  # UTC, ISO 8601
    connected: bool
    capabilities: dict[str, Any] | None  # the wire message


@dataclass(frozen=True)
class MessageCounts:
    received: dict[str, int]
    published: dict[str, int]
    dropped: dict[str, int]  # by drop reason
    dropped_by_topic: dict[str, dict[str, int]] = field(default_factory=dict)  # topic: reason: n


@dataclass(frozen=True)
class PollingStatus:
    """Who polls a repository; how the polls go, where this node is the poller."""

    poller: str  # node name (or peer ID of a peer not yet known by name)
    peer_id: str
    polls: int | None = None
    not_modified: int | None = None
    next_in_s: float | None = None
    error: str | None = None
    rate_remaining: int | None = None  # the forge's rate limit left after the last poll


@dataclass(frozen=True)
class DiscoveryStatus:
    known: int
    dials: int
    dial_failures: int
    dht_found: int | None  # None: the DHT is off
    mdns_found: int | None  # None: mDNS is off
    refused: int  # connections from peers not in network.allow_peers


@dataclass(frozen=True)
class IgnoredIssue:
    """An issue of a repository this node polls that is not a task, and why."""

    task_id: str
    title: str
    reason: str


@dataclass(frozen=True)
class JobStatus:
    """A periodic job of blocking work (capabilities, polls, probes)."""

    runs: int
    failures: int
    failing_since_runs: int  # failures in a row; 0 when the last run worked
    last_error: str | None


@dataclass(frozen=True)
class Readiness:
    """Whether this node takes tasks, and if not why: each reason names its fix."""

    takes_tasks: bool
    reasons: tuple[str, ...] = ()
    capacity: int = 0  # worker slots it offers when it takes tasks
    free_slots: int = 0


@dataclass(frozen=True)
class WorkerStatus:
    """A live worker process of this node, from its latest beat."""

    worker: str  # host:pid
    threads: int
    busy: int
    problems: tuple[str, ...] = ()  # what keeps it from running tasks


@dataclass(frozen=True)
class SyncStatus:
    """Task-table syncs this node asked of one peer."""

    last_at: str  # UTC, ISO 8601; "" before the first
    rounds: int
    unchanged: int  # rounds in which the tables agreed (one small round trip)
    learnt: int  # tasks this node learnt from the peer's table
    bytes_in: int
    failures: int
    node_id: str = ""
    last_ms: float = 0.0  # how long the last round took


@dataclass(frozen=True)
class GatewayStatus:
    """The model gateway: its address, the calls it routed, the peers' calls it serves."""

    url: str
    local_calls: int  # answered by this machine's model server
    remote_calls: int  # answered by a peer's
    failovers: int  # a peer busy or failing before its first byte: the next one tried
    unavailable: int  # no node had the model, or none had a slot
    mesh_slots: int  # peers' calls this node serves at once
    serving: int  # peers' calls it serves now
    served: int
    refused: int  # peers' calls turned away (busy, or not carried)


@dataclass(frozen=True)
class HelpAsked:
    """A task of this node that asked its peers for help, and how that went."""

    task_id: str
    question: str
    capability: str
    asks: int
    offers: tuple[str, ...]  # the nodes that offered, in order
    helper: str  # the node whose advice came ("" if none)
    model: str
    outcome: str  # "helped", "asking", or why not
    first_offer_ms: float | None = None  # from the ask to its first offer
    accepted_ms: float | None = None  # from the ask to the helper holding the case, less
    # the bid window
    kind: str = "consult"  # or "handoff": the task was to go to the helper


@dataclass(frozen=True)
class HelpGiven:
    task_id: str
    asker: str  # the asking node's peer ID
    model: str
    seconds: float
    outcome: str  # "advice", "taken over", or why not
    kind: str = "consult"  # or "handoff": a task handed on to this node


@dataclass(frozen=True)
class HelpStatus:
    """Help between peers: what this node asked for, and what it gave."""

    slots: int  # consults this node gives at once
    giving: int
    offered: int  # offers made
    asked: tuple[HelpAsked, ...]  # the latest, oldest first
    given: tuple[HelpGiven, ...]


@dataclass(frozen=True)
class ReportProblem:
    target: str  # forge, webhook or hive
    state: str  # pending (retried with back-off) or misconfigured
    waiting: int
    error: str


@dataclass(frozen=True)
class EscalationStatus:
    task_id: str
    trigger: str
    reason: str
    at: str


@dataclass(frozen=True)
class ReportsStatus:
    """Reports to people and services (the outbox), and this node's escalations."""

    waiting: int
    delivered: int  # since the node started
    problems: tuple[ReportProblem, ...] = ()
    escalated: tuple[EscalationStatus, ...] = ()


@dataclass(frozen=True)
class ReplicaStatus:
    """A replica this node keeps of another node's audit log."""

    peer_id: str
    node_id: str
    checkpoint_size: int  # the latest verified
    kept: int  # entries kept here
    checkpoint_at: int = 0  # unix seconds, when the node signed it
    fetched_at: str = ""  # UTC, ISO 8601
    failures: int = 0  # fetches that failed (the node unreachable...)
    fetch_ms: float = 0.0  # how long the last fetch that brought entries took


@dataclass(frozen=True)
class AuditAlarm:
    """A node's log that is not what it signed: equivocation, inconsistent, rolled_back."""

    peer_id: str
    node_id: str
    fault: str
    detail: str
    at: str  # UTC, ISO 8601, when this node found it
    evidence: tuple[str, ...] = ()  # the signed checkpoints that prove it


@dataclass(frozen=True)
class AuditStatus:
    """This node's audit log (its size and the latest checkpoint it signed), the replicas
    it keeps of the others', and what it found wrong with them."""

    size: int
    checkpoint_size: int = 0
    checkpoint_root: str = ""  # hex
    checkpoint_at: int = 0  # unix seconds
    problem: str = ""  # this node's own log does not match its checkpoints
    replicas: tuple[ReplicaStatus, ...] = ()
    alarms: tuple[AuditAlarm, ...] = ()
    rejected: int = 0  # checkpoint messages and pages dropped as malformed or unsigned


@dataclass(frozen=True)
class QueueStatus:
    """The node's task queue (its SQLite broker), read every few seconds."""

    ready: int
    claimed: int
    dead: int  # dead letters kept
    redelivered: int  # messages not dead delivered more than once


@dataclass(frozen=True)
class ClaimCounts:
    tracked: int  # tasks in the claim machine (finished ones until their retention ends)
    in_flight: int  # tasks with forge, queue or mesh actions under way


@dataclass(frozen=True)
class ProcessStats:
    """The node process's footprint: what a node that runs for months must keep flat."""

    rss_mb: float
    open_fds: int
    threads: int
    trio_tasks: int


@dataclass(frozen=True)
class NodeStatus:
    peer_id: str
    node_id: str
    addrs: tuple[str, ...]
    status: str  # idle or busy
    uptime_s: float
    capabilities: dict[str, Any] | None  # this node's latest, as published
    peers: tuple[PeerStatus, ...]
    connections: int
    mesh: dict[str, int]  # peers in each topic's mesh
    messages: MessageCounts
    tasks: tuple[TaskRecord, ...]
    polling: dict[str, PollingStatus]
    discovery: DiscoveryStatus
    readiness: Readiness
    jobs: dict[str, JobStatus] = field(default_factory=dict)
    claims: ClaimCounts | None = None  # None: this node takes part in no claims
    process: ProcessStats | None = None
    workers: tuple[WorkerStatus, ...] = ()
    ignored: tuple[IgnoredIssue, ...] = ()  # in the repositories this node polls
    sync: dict[str, SyncStatus] = field(default_factory=dict)  # by peer ID
    gateway: GatewayStatus | None = None  # None: no gateway
    help: HelpStatus | None = None
    reports: ReportsStatus | None = None  # None: no forge, nothing to report
    audit: AuditStatus | None = None
    dashboard: str = ""  # the operator's window: its address ("" for none)
    queue: QueueStatus | None = None  # None: not read yet, or a broker that cannot say

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _ADAPTER.dump_python(self, mode="json")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeStatus:
        return _ADAPTER.validate_python(data)

    def alive_peers(self) -> list[PeerStatus]:
        return [peer for peer in self.peers if peer.alive]


_ADAPTER = TypeAdapter(NodeStatus)
