"""The workers' numbers in /metrics: counted by the node from the events its `bzzz
worker` processes send through the queue (task started and finished, each sandboxed
command, the loop's model calls), so that one registry covers node and workers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from bzzz.work import EventKind, TaskEvent

TIMED_OUT_EXIT = 124  # what the sandboxes report for a command that ran out of time
KEPT = 1000  # running tasks timed at once, at most


class WorkerTally(Collector):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.busy: dict[str, float] = {}  # seconds, by worker
        self.tasks: Counter[str] = Counter()
        self.runs: Counter[str] = Counter()
        self.timeouts: Counter[str] = Counter()
        self.model_calls: Counter[tuple[str, str]] = Counter()  # (model, serving node)
        self._started: dict[tuple[str, str], float] = {}

    def on_event(self, event: TaskEvent) -> None:
        key, now = (event.worker, event.task_id), self.clock()
        match event.kind:
            case EventKind.STARTED:
                self.tasks[event.worker] += 1
                self._started[key] = now
                while len(self._started) > KEPT:
                    del self._started[next(iter(self._started))]
            case EventKind.FINISHED if key in self._started:
                spent = now - self._started.pop(key)
                self.busy[event.worker] = self.busy.get(event.worker, 0.0) + spent
            case EventKind.AUDIT:
                self._audited(event)
            case _:
                pass

    def _audited(self, event: TaskEvent) -> None:
        entry = event.entry
        if entry.get("type") == "command":
            self.runs[event.worker] += 1
            if entry.get("exit_code") == TIMED_OUT_EXIT:
                self.timeouts[event.worker] += 1
        elif entry.get("type") == "model_calls":
            served = entry.get("served_by")
            model = str(entry.get("model", ""))[:100]
            for node, calls in served.items() if isinstance(served, dict) else ():
                if isinstance(calls, int) and calls > 0:
                    self.model_calls[model, str(node)[:64]] += calls

    def collect(self) -> Iterator[Metric]:
        counted: tuple[tuple[str, str, Mapping[str, float]], ...] = (
            ("bzzz_worker_busy_seconds", "Seconds workers spent running tasks.", self.busy),
            ("bzzz_worker_tasks", "Tasks workers started.", self.tasks),
            ("bzzz_sandbox_runs", "Commands run in the sandbox.", self.runs),
            (
                "bzzz_sandbox_timeouts",
                "Sandboxed commands stopped at their time limit.",
                self.timeouts,
            ),
        )
        for name, text, counts in counted:
            family = CounterMetricFamily(name, text, labels=["worker"])
            for worker, value in sorted(counts.items()):
                family.add_metric([worker], value)
            yield family
        calls = CounterMetricFamily(
            "bzzz_model_calls",
            "The loop's model calls, by model and serving node.",
            labels=["model", "node"],
        )
        for (model, node), value in sorted(self.model_calls.items()):
            calls.add_metric([model, node], value)
        yield calls
