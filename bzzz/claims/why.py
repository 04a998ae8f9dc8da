"""Why this node did or did not claim a task, in words for the operator (`bzzz tasks
explain`, the dashboard's task page). Pure.

`explain` reads what the claim book knows of the task now (its phase, holder, lease,
attempts) with this node's market, slots and readiness; `Decisions` keeps a short
record of the task's moves through the book, so that the answer can also say how it
got there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from bzzz.claims.actions import Phase, TaskClaim
from bzzz.claims.matching import ANY_MODEL, Market, can_run, has_agent, split_requirement

MAX_TASKS = 500  # tasks with a record; the oldest record goes first
MAX_STEPS = 12  # moves kept per task


@dataclass(frozen=True)
class Situation:
    """This node's side of the question, as the node sees it now."""

    node: str
    market: Market
    used_slots: int
    max_attempts: int
    readiness: tuple[str, ...] = ()  # why it takes no tasks ("" when it does)
    place: int | None = None  # its rank among the nodes that could take the task


def explain(task: TaskClaim | None, situation: Situation, now: float) -> str:
    """One line: where the task stands for this node, and why."""
    if task is None:
        return "this node has not heard of it as a task"
    words = _BY_PHASE.get(task.phase)
    return words(task, situation, now) if words else why_not(task, situation)


def _held(task: TaskClaim, _: Situation, now: float) -> str:
    if now < task.lease_until:
        left = max(0, round(task.lease_until - now))
        return f"held by {task.holder}: it waits for that node's lease ({left} s left)"
    return f"{task.holder}'s lease ran out: the forge decides who holds it next"


def _waiting(task: TaskClaim, situation: Situation, now: float) -> str:
    place = situation.place
    rank = f"ranked #{place + 1}" if place is not None else "ranked"
    wait = max(0, round(task.claim_at - now))
    return (
        f"{rank} among the nodes that can take it: claims in {wait} s unless one ranked"
        " higher claims first"
    )


def _quarantined(task: TaskClaim, _: Situation, __: float) -> str:
    tried = ", ".join(sorted(task.attempts)) or "its nodes"
    return f"quarantined: it failed on {tried}; a person must look at it"


_BY_PHASE: dict[Phase, Callable[[TaskClaim, Situation, float], str]] = {
    Phase.DONE: lambda t, _, __: f"done by {t.holder or 'a node'}: {t.result_url or 'no link'}",
    Phase.QUARANTINED: _quarantined,
    Phase.CLOSED: lambda *_: "closed: the issue is no longer a task",
    Phase.CLAIMED: lambda t, _, now: f"this node holds it ({t.phase}); {lease_text(t, now)}",
    Phase.CLAIMING: lambda *_: (
        "this node is claiming it now (its claim is on its way to the forge)"
    ),
    Phase.ADOPTING: lambda *_: (
        "a claim this node made before it restarted: waiting for a worker to take it"
    ),
    Phase.CHECKING: lambda *_: "asking the forge who holds it",
    Phase.HELD: _held,
    Phase.WAITING: _waiting,
}
_BY_PHASE[Phase.QUEUED] = _BY_PHASE[Phase.RUNNING] = _BY_PHASE[Phase.CLAIMED]


def why_not(task: TaskClaim, situation: Situation) -> str:
    """Why an open task (seen, or failed here) is not being claimed by this node."""
    own = situation.market.own
    model, agent = split_requirement(task.model)
    wanted = "a model" if model.strip().lower() in ANY_MODEL else f"`{model}`"
    drivable = ", ".join(a for a in own.installed if a != "ollama") or "none"
    free = max(0, own.free_slots - situation.used_slots)
    reasons = (
        (
            situation.node in task.attempts,
            f"it failed on this node already ({len(task.attempts)} attempts in all)",
        ),
        (
            len(task.attempts) >= situation.max_attempts,
            f"it failed on {len(task.attempts)} nodes, the most it may (claims.max_attempts)",
        ),
        (
            bool(situation.readiness),
            f"this node cannot run tasks: {'; '.join(situation.readiness)}",
        ),
        (
            not has_agent(task.model, own),
            f"this node does not offer the agent CLI `{agent}` (it drives: {drivable};"
            " `bzzz doctor` says why one is missing)",
        ),
        (
            not can_run(task.model, own) and (not own.gateway or situation.place is None),
            f"this node lacks {wanted} (it has {', '.join(own.models) or 'no models'})"
            + (" and no live node has it" if own.gateway else ""),
        ),
        (free == 0, f"no free worker slot ({situation.used_slots} in use of {own.free_slots})"),
        (situation.place is None, "not eligible now"),
    )
    place = (situation.place or 0) + 1
    fallback = f"eligible (ranked #{place}): it claims when the task is next considered"
    return next((why for applies, why in reasons if applies), fallback)


def lease_text(task: TaskClaim, now: float) -> str:
    left = max(0, round(task.our_lease_end - now))
    return f"its lease ends in {left} s unless renewed"


@dataclass
class Decisions:
    """A short record per task of its moves through this node's claim book."""

    _steps: OrderedDict[str, list[str]] = field(default_factory=OrderedDict)

    def moved(self, task: TaskClaim, at: str) -> None:
        step = f"{at[11:19]} {task.phase}"
        if task.holder and task.phase in (Phase.HELD, Phase.DONE, Phase.FAILED):
            step += f" ({task.holder})"
        steps = self._steps.setdefault(task.task_id, [])
        self._steps.move_to_end(task.task_id)
        steps.append(step)
        del steps[:-MAX_STEPS]
        while len(self._steps) > MAX_TASKS:
            self._steps.popitem(last=False)

    def of(self, task_id: str) -> list[str]:
        return list(self._steps.get(task_id, ()))
