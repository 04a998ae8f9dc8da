"""What passes between a node and its workers through the broker, in both directions.

The node enqueues a `TaskSpec` on the tasks queue; workers send `TaskEvent`s back on
the events queue, which the node consumes in-process. Both travel as plain JSON
dicts (Dramatiq's encoder); `from_dict` validates what comes back, since a worker
may be of another version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


class EventKind(StrEnum):
    STARTED = "started"
    HEARTBEAT = "heartbeat"
    HELP = "help"  # the worker lacks a capability or is stuck
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


def open_broker(settings: Settings, extra: list[Middleware] | None = None) -> Broker:
    """The node's queue, as `workers.broker_url` names it (nothing connects yet)."""
    middleware = [m() for m in default_middleware] + [CurrentMessage(), *(extra or [])]
    return broker_from_url(
        settings.workers.broker_url, middleware=middleware, relative_to=settings.home
    )
