"""Who may help with a task, and which offer the asking node takes. Pure.

A request names a capability: a model (`qwen2.5-coder:7b`, or `model:qwen2.5-coder`), an
agent CLI (`claude`), or nothing in particular (`advice`): then any model that can chat
will do. A node may offer when it is not the asker, has a consult slot free (for a
hand-off: could claim the task now) and has what was asked; only such nodes offer (an
offer's `can_help` is always true, and a node that cannot help stays silent). The asker
ranks the offers: those that cover what was asked first, then the soonest (eta), then
the least busy, then rendezvous order on the task, so that equal helpers share the work
the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bzzz.gateway.api import canonical
from bzzz.protocol import MAX_HELP_HOPS, TaskHelpRequest
from bzzz.rendezvous import score

ANYTHING = frozenset({"", "advice", "any", "model", "ollama"})  # any model that can chat
MAX_LISTED = 16  # capabilities named in one offer


@dataclass(frozen=True)
class Helper:
    """What a node could bring to a consult."""

    node_id: str
    models: tuple[str, ...]
    installed: tuple[str, ...]  # agent CLIs
    free: int  # consult slots free
    task_slots: int = 0  # tasks it could claim now (a hand-off takes one)


@dataclass(frozen=True)
class Bid:
    """An offer as the asker sees it."""

    peer_id: str
    node_id: str
    capabilities: tuple[str, ...]
    eta_seconds: int
    busy: int = 0


def wanted(capability: str) -> str:
    """The capability's name as matched: lower case, without a `model:` prefix."""
    return capability.strip().lower().removeprefix("model:")


def covers(capability: str, models: Iterable[str], installed: Iterable[str] = ()) -> bool:
    """Whether a node with `models` and agent CLIs `installed` has what was asked."""
    name = wanted(capability)
    models = tuple(models)
    if name in ANYTHING:
        return bool(models)
    return bool(_matching(name, models, installed))


def _matching(name: str, models: Iterable[str], installed: Iterable[str]) -> list[str]:
    model = canonical(name)
    return [m for m in models if canonical(m) == model] + [
        i for i in installed if i.strip().lower() == name
    ]


def may_offer(request: TaskHelpRequest, me: Helper) -> bool:
    """Whether this node offers to help with `request`: a consult it can give now, or a
    task handed on that it could claim now (a free worker slot)."""
    room = me.task_slots if request.kind == "handoff" else me.free
    return (
        request.from_node != me.node_id
        and (request.hop or 0) < MAX_HELP_HOPS
        and room > 0
        and covers(request.requested_capability, me.models, me.installed)
    )


def eligible(request: TaskHelpRequest, helpers: Iterable[Helper]) -> list[str]:
    """The nodes that may help with `request`, by name (the state manager's answer)."""
    return sorted(h.node_id for h in helpers if may_offer(request, h))


def listed(capability: str, models: Sequence[str], installed: Sequence[str]) -> list[str]:
    """What an offer names: what was asked for first, then the node's other models."""
    first = _matching(wanted(capability), models, installed)
    return [*first, *(m for m in models if m not in first)][:MAX_LISTED]


def rank(task_id: str, capability: str, bids: Iterable[Bid]) -> list[Bid]:
    """The offers, best first."""

    def key(bid: Bid) -> tuple[bool, int, int, float]:
        covered = covers(capability, bid.capabilities, bid.capabilities)
        return (not covered, bid.eta_seconds, bid.busy, -score(task_id, bid.node_id))

    return sorted(bids, key=key)
