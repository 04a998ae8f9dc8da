"""Whether this node can run tasks, and if not why. Pure.

A node that cannot run a task must not claim it: a claim it cannot honour holds the
task for a lease and burns one of its attempts. So a node offers worker slots only
when everything a task needs is there: an executor that runs tasks, a forge token to
claim and report with, and, for the agent executor, a model and a usable sandbox.
Otherwise it offers none and says why (in `bzzz status`, `bzzz doctor` and, briefly,
in the capabilities it gossips). A node without a token or a model is still a good
peer: it watches, relays and polls.
"""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.node.status import Readiness

DECLINE = "workers.executors:decline"
# Executors that run the reasoning loop: they need a model and a sandbox.
AGENT_EXECUTORS = frozenset({"workers.agent:run"})


@dataclass(frozen=True)
class Facts:
    """What the node knows of itself; `sandbox_problem` is None once a probe found a
    sandbox that runs commands, and `sandbox_checked` says whether a probe ran yet."""

    executor: str
    capacity: int
    has_forge: bool
    has_token: bool
    models: tuple[str, ...] = ()
    sandbox_checked: bool = False
    sandbox_problem: str | None = None


def needs_sandbox(executor: str) -> bool:
    return executor in AGENT_EXECUTORS


def assess(facts: Facts, free_slots: int = 0) -> Readiness:
    reasons = [text for _, text in problems(facts)]
    if reasons:
        return Readiness(False, tuple(reasons))
    return Readiness(True, (), facts.capacity, free_slots)


def short_reasons(facts: Facts) -> list[str]:
    """The reasons as gossiped: short, with no path or host of this machine."""
    return [code for code, _ in problems(facts)]


def problems(facts: Facts) -> list[tuple[str, str]]:
    """(code, explanation with its fix) for each thing that keeps the node from tasks."""
    found: list[tuple[str, str]] = []
    if not facts.has_forge:
        found.append(
            (
                "no repositories",
                "no repositories to take tasks from. Fix: set tasks.repositories.",
            )
        )
    elif not facts.has_token:
        found.append(
            (
                "no forge token",
                "no forge token: it cannot claim or report. Fix: set BZZZ_FORGE_TOKEN or"
                " forge.token_file.",
            )
        )
    if facts.executor == DECLINE:
        found.append(
            (
                "executor declines tasks",
                f"workers.executor is {DECLINE}, which fails every task. Fix: set"
                ' workers.executor = "workers.agent:run".',
            )
        )
    if facts.executor in AGENT_EXECUTORS:
        if not facts.models:
            found.append(
                (
                    "no model",
                    "the model server lists no models. Fix: start ollama at"
                    " capabilities.ollama_host and pull a model.",
                )
            )
        if not facts.sandbox_checked:
            found.append(("sandbox not checked yet", "the sandbox is being checked."))
        elif facts.sandbox_problem is not None:
            found.append(
                (
                    "no sandbox",
                    f"no sandbox runs commands: {facts.sandbox_problem} Fix: see"
                    " `bzzz sandbox check`.",
                )
            )
    return found
