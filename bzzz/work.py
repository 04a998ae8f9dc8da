"""What passes between a node and its workers through the broker, in both directions.

The node enqueues a `TaskSpec` on the tasks queue; workers send `TaskEvent`s (about a
task) and `WorkerBeat`s (about themselves) back on the events queue, which the node
consumes in-process. Both travel as plain JSON
dicts (Dramatiq's encoder); `from_dict` validates what comes back, since a worker
may be of another version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware

from bzzz.config import Settings
from bzzz.queue.url import broker_from_url

TASKS_QUEUE = "bzzz-tasks"
EVENTS_QUEUE = "bzzz-events"
RUN_TASK = "run_task"
TASK_EVENT = "task_event"
WORKER_BEAT = "worker_beat"
# A finished task's result_type when the node could not run it (a problem of the node,
# not of the task): the claim is let go, no attempt is used, nothing is reported.
DECLINED = "declined"
# A finished task's result_type when the worker handed the task on to another node (the
# node's hand-off said the successor holds it): nothing to report, no attempt used.
HANDED = "handed"
# How the successor's model is told that the task was handed on to it (the lab's scripted
# model recognises it).
HANDED_ON = "handed it on to you"
# Executors that run the reasoning loop: they need a model, a sandbox and a git identity.
AGENT_EXECUTORS = frozenset({"workers.agent:run"})


@dataclass(frozen=True)
class TaskSpec:
    task_id: str
    repo: str
    number: int
    issue_url: str
    model: str
    input: str
    branch_prefix: str
    node: str  # the node that holds the claim
    comment_id: int  # the claim comment: workers check it still holds before acting
    attempt: int
    nonce: str = ""  # the claim's nonce on that comment: the fencing token with comment_id
    # A task handed on to this node: who handed it on, why, and where its work so far is
    # ("owner/repository:branch"; "" when nothing was pushed).
    handed_by: str = ""
    handed_reason: str = ""
    continue_from: str = ""
    agent: str = ""  # the agent CLI to run it ("": Bzzz's reasoning loop)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        known = {f.name for f in fields(cls)}  # a node of another version may add fields
        return cls(**{name: value for name, value in data.items() if name in known})


class EventKind(StrEnum):
    STARTED = "started"
    HEARTBEAT = "heartbeat"
    HELP = "help"  # the worker lacks a capability or is stuck
    AUDIT = "audit"  # an entry for the node's audit log (a command run, model calls, a diff)
    FINISHED = "finished"


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    comment_id: int
    kind: EventKind
    worker: str  # host:pid of the worker process
    succeeded: bool = False
    result_type: str = ""  # pull_request, issue or failure (the brief's result types)
    result_url: str = ""
    reason: str = ""  # why it failed, or what help it needs
    duration_ms: int = 0
    progress: str = ""
    nonce: str = ""  # the claim it ran under (TaskSpec.nonce)
    entry: dict[str, Any] = field(default_factory=dict)  # an AUDIT event's

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskEvent:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["kind"] = EventKind(values["kind"])
        event = cls(**values)
        if not isinstance(event.task_id, str) or not isinstance(event.comment_id, int):
            raise TypeError("task_id must be a string and comment_id an integer")
        return event


@dataclass(frozen=True)
class Problem:
    """Something that keeps a worker from running tasks: a short code (gossiped) and
    the explanation with its fix (the node's status and log only)."""

    code: str
    text: str


@dataclass(frozen=True)
class WorkerBeat:
    """A worker process says, every workers.heartbeat, that it is alive, how many tasks it
    runs at once, and what keeps it from running tasks, if anything."""

    worker: str  # host:pid
    threads: int
    busy: int  # tasks it runs now
    problems: tuple[Problem, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerBeat:
        problems = tuple(Problem(str(p["code"]), str(p["text"])) for p in data.get("problems", ()))
        beat = cls(str(data["worker"]), int(data["threads"]), int(data["busy"]), problems)
        if beat.threads < 0 or beat.busy < 0:
            raise ValueError("threads and busy must not be negative")
        return beat


def open_broker(settings: Settings, extra: list[Middleware] | None = None) -> Broker:
    """The node's queue, as `workers.broker_url` names it (nothing connects yet)."""
    middleware = [m() for m in default_middleware] + [CurrentMessage(), *(extra or [])]
    return broker_from_url(
        settings.workers.broker_url, middleware=middleware, relative_to=settings.home
    )
