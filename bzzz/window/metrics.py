"""A node's numbers in Prometheus' text format (`/metrics`), through prometheus-client.

Most are read from the node's status report at scrape time (`StatusCollector`: one
source of truth, nothing to keep in step); the two latency histograms are observed as
the claim book moves tasks (`TaskTimings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bzzz.claims.actions import Phase, TaskClaim
from bzzz.node.status import NodeStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StatusCollector(Collector):
    def __init__(self, status: Callable[[], NodeStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        s = self._status()
        yield from _messages(s)
        yield _gauge(
            "bzzz_peers_alive", "Peers heard within the liveness timeout.", len(s.alive_peers())
        )
        yield _gauge("bzzz_peers_known", "Peers this node knows of.", len(s.peers))
        tasks = GaugeMetricFamily(
            "bzzz_tasks", "Tasks this node knows, by state.", labels=["state"]
        )
        counts: dict[str, int] = {}
        for task in s.tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
        for state, count in sorted(counts.items()):
            tasks.add_metric([state], count)
        yield tasks
        yield from _polling(s)
        yield from _work(s)
        yield from _collaboration(s)
        yield from _audit(s)
        if s.process is not None:
            p = s.process
            yield _gauge("bzzz_process_rss_bytes", "Resident memory.", p.rss_mb * 1024 * 1024)
            yield _gauge("bzzz_process_open_fds", "Open file descriptors.", p.open_fds)
            yield _gauge("bzzz_process_trio_tasks", "Trio tasks alive.", p.trio_tasks)


class TaskTimings:
    """Announce-to-claim and claim-to-result latencies, observed as the claim book moves
    tasks (a status report holds no history). "Claimed" is when this node learnt that a
    node holds the task: its own claim, or a peer's."""

    SECONDS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
    KEPT = 10_000  # tasks timed at once, at most

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=False)
        self.to_claim = Histogram(
            "bzzz_task_announce_to_claim_seconds",
            "From this node learning a task to a node holding it.",
            buckets=self.SECONDS,
            registry=self.registry,
        )
        self.to_result = Histogram(
            "bzzz_task_claim_to_result_seconds",
            "From a node holding a task to its result (done, failed or quarantined).",
            buckets=self.SECONDS,
            registry=self.registry,
        )
        self._learnt: dict[str, float] = {}
        self._claimed: dict[str, float] = {}

    def moved(self, task: TaskClaim) -> None:
        now, task_id = self.clock(), task.task_id
        if task.phase is Phase.SEEN:
            self._learnt.setdefault(task_id, now)
        elif task.phase in (Phase.HELD, Phase.CLAIMED) and task_id not in self._claimed:
            if task_id in self._learnt:
                self.to_claim.observe(now - self._learnt[task_id])
            self._claimed[task_id] = now
        elif task.phase in (Phase.DONE, Phase.FAILED, Phase.QUARANTINED):
            if task_id in self._claimed:
                self.to_result.observe(now - self._claimed.pop(task_id))
            if task.phase.final:
                self._learnt.pop(task_id, None)
        for kept in (self._learnt, self._claimed):
            while len(kept) > self.KEPT:
                del kept[next(iter(kept))]


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def _messages(s: NodeStatus) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "bzzz_messages_received", "Valid messages received, by topic.", labels=["topic"]
    )
    for topic, count in sorted(s.messages.received.items()):
        received.add_metric([topic], count)
    published = CounterMetricFamily(
        "bzzz_messages_published", "Messages published, by topic.", labels=["topic"]
    )
    for topic, count in sorted(s.messages.published.items()):
        published.add_metric([topic], count)
    dropped = CounterMetricFamily(
        "bzzz_messages_dropped",
        "Messages dropped, by topic and reason.",
        labels=["topic", "reason"],
    )
    for topic, reasons in sorted(s.messages.dropped_by_topic.items()):
        for reason, count in sorted(reasons.items()):
            dropped.add_metric([topic, reason], count)
    yield from (received, published, dropped)


def _polling(s: NodeStatus) -> Iterator[Metric]:
    polls = CounterMetricFamily(
        "bzzz_forge_polls", "Polls of a repository by this node.", labels=["repo"]
    )
    unchanged = CounterMetricFamily(
        "bzzz_forge_polls_not_modified",
        "Polls the forge answered 304 Not Modified (free of rate limit).",
        labels=["repo"],
    )
    remaining = GaugeMetricFamily(
        "bzzz_forge_rate_limit_remaining",
        "The forge's rate limit left after this node's last poll of a repository.",
        labels=["repo"],
    )
    for repo, p in sorted(s.polling.items()):
        if p.polls is not None:
            polls.add_metric([repo], p.polls)
            unchanged.add_metric([repo], p.not_modified or 0)
        if p.rate_remaining is not None:
            remaining.add_metric([repo], p.rate_remaining)
    yield from (polls, unchanged, remaining)


def _work(s: NodeStatus) -> Iterator[Metric]:
    r = s.readiness
    yield _gauge("bzzz_takes_tasks", "1 if this node takes tasks.", 1 if r.takes_tasks else 0)
    yield _gauge("bzzz_worker_slots", "Worker slots this node offers.", r.capacity)
    yield _gauge("bzzz_worker_slots_free", "Worker slots free.", r.free_slots)
    yield _gauge("bzzz_workers", "Live worker processes.", len(s.workers))
    yield _gauge(
        "bzzz_workers_busy", "Worker threads running a task.", sum(w.busy for w in s.workers)
    )
    if s.queue is not None:
        queue = GaugeMetricFamily(
            "bzzz_queue_messages", "The task queue, by state.", labels=["state"]
        )
        for state in ("ready", "claimed", "dead"):
            queue.add_metric([state], getattr(s.queue, state))
        yield queue
        yield _gauge(
            "bzzz_queue_redelivered", "Queued tasks delivered more than once.", s.queue.redelivered
        )
    failures = CounterMetricFamily(
        "bzzz_job_failures", "Failed runs of a periodic job.", labels=["job"]
    )
    for name, job in sorted(s.jobs.items()):
        failures.add_metric([name], job.failures)
    yield failures
    if s.gateway is not None:
        g = s.gateway
        calls = CounterMetricFamily(
            "bzzz_gateway_calls", "Model calls routed by the gateway.", labels=["served_by"]
        )
        calls.add_metric(["local"], g.local_calls)
        calls.add_metric(["peer"], g.remote_calls)
        yield calls
        yield _counter("bzzz_gateway_failovers", "Calls moved to the next node.", g.failovers)
        yield _counter("bzzz_gateway_unavailable", "Calls no node could take.", g.unavailable)
        yield _counter("bzzz_gateway_served", "Peers' model calls served here.", g.served)


def _collaboration(s: NodeStatus) -> Iterator[Metric]:
    if s.help is not None:
        yield _counter("bzzz_help_offered", "Offers of help made.", s.help.offered)
        yield _gauge("bzzz_help_giving", "Consults given now.", s.help.giving)
    if s.reports is not None:
        yield _gauge("bzzz_reports_waiting", "Reports not delivered yet.", s.reports.waiting)
        yield _counter("bzzz_reports_delivered", "Reports delivered.", s.reports.delivered)
        yield _gauge("bzzz_escalations", "Tasks escalated to people.", len(s.reports.escalated))


def _audit(s: NodeStatus) -> Iterator[Metric]:
    if s.audit is None:
        return
    a = s.audit
    yield _gauge("bzzz_audit_entries", "Entries in this node's audit log.", a.size)
    yield _gauge(
        "bzzz_audit_checkpoint_size", "Entries its latest checkpoint covers.", a.checkpoint_size
    )
    yield _gauge("bzzz_audit_alarms", "Peers' logs that are not what they signed.", len(a.alarms))
    replicas = GaugeMetricFamily(
        "bzzz_audit_replica_size", "Verified size of a peer's log kept here.", labels=["node"]
    )
    for replica in a.replicas:
        replicas.add_metric([replica.node_id], replica.checkpoint_size)
    yield replicas
