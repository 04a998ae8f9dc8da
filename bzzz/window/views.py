"""What the dashboard shows, from a node's status report: pure functions from a
`NodeStatus` to the page's pieces (the mesh as a picture, the nodes, the tasks, the
audit logs), rendered by the templates in `templates/`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bzzz.node.status import NodeStatus

RADIUS = 150  # of the circle the nodes sit on, in the picture's units
CENTRE = 200
MAX_TASKS = 1000  # rows on the page; the rest are counted


@dataclass(frozen=True)
class NodeView:
    name: str
    peer_id: str
    alive: bool
    own: bool
    cpu: float
    gpu: float
    models: tuple[str, ...]
    installed: tuple[str, ...]
    status: str
    slots: str  # "2 free, 1 busy", or "" when it takes no tasks
    last_seen: str
    x: float = 0.0
    y: float = 0.0


def nodes(report: NodeStatus) -> list[NodeView]:
    """This node first, then its peers by name, each placed on the mesh's circle."""
    views = [_view(report.node_id, report.peer_id, True, True, report.capabilities, "")]
    views += [
        _view(p.node_id, p.peer_id, p.alive, False, p.capabilities, p.last_seen)
        for p in sorted(report.peers, key=lambda p: p.node_id)
    ]
    count = len(views)
    placed = []
    for index, view in enumerate(views):
        angle = 2 * math.pi * index / count - math.pi / 2
        x = CENTRE + (RADIUS * math.cos(angle) if count > 1 else 0)
        y = CENTRE + (RADIUS * math.sin(angle) if count > 1 else 0)
        placed.append(_placed(view, round(x, 1), round(y, 1)))
    return placed


def _placed(view: NodeView, x: float, y: float) -> NodeView:
    return NodeView(**{**view.__dict__, "x": x, "y": y})


def _view(  # noqa: PLR0917 - a row's fields, in the table's order
    name: str,
    peer_id: str,
    alive: bool,
    own: bool,
    caps: dict[str, Any] | None,
    last_seen: str,
) -> NodeView:
    caps = caps or {}
    free, busy = caps.get("slots"), caps.get("busy")
    return NodeView(
        name=name,
        peer_id=peer_id,
        alive=alive,
        own=own,
        cpu=float(caps.get("cpu", 0.0)),
        gpu=float(caps.get("gpu", 0.0)),
        models=tuple(str(m) for m in caps.get("models", ()))[:12],
        installed=tuple(str(m) for m in caps.get("installed", ()))[:12],
        status=str(caps.get("status", "")),
        slots=f"{free} free, {busy or 0} busy" if isinstance(free, int) else "",
        last_seen=last_seen[11:19],
    )


@dataclass(frozen=True)
class TaskView:
    task_id: str
    title: str
    state: str
    holder: str
    model: str
    result_url: str
    finished: bool
    executor: str = "loop"  # Bzzz's reasoning loop, or the agent CLI the task asks for


def tasks(report: NodeStatus) -> tuple[list[TaskView], int]:
    """The tasks, open ones first then the latest finished; and how many were left out."""
    rows = [
        TaskView(
            t.task_id,
            t.title,
            t.state,
            t.holder,
            t.model,
            t.result_url,
            t.finished,
            t.executor,
        )
        for t in report.tasks
    ]
    rows.sort(key=lambda t: (t.finished, t.task_id))
    return rows[:MAX_TASKS], max(0, len(rows) - MAX_TASKS)


def counts(report: NodeStatus) -> dict[str, int]:
    by_state: dict[str, int] = {}
    for task in report.tasks:
        by_state[task.state] = by_state.get(task.state, 0) + 1
    return dict(sorted(by_state.items()))
