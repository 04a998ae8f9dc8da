"""Whether this node can run tasks, and if not why. Pure.

A node that cannot run a task must not claim it: a claim it cannot honour holds the
task for a lease and burns one of its attempts. So a node offers worker slots only
when everything a task needs is there: an executor that runs tasks, a forge token to
claim and report with, live workers (`bzzz worker`) that can run it and, for the agent
executor, a model. Otherwise it offers none and says why (in `bzzz status`, `bzzz
doctor` and, in a few words, in the capabilities it gossips). A node without a token
or a model is still a good peer: it watches, relays and polls.
"""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.node.status import Readiness
from bzzz.work import AGENT_EXECUTORS, Problem

DECLINE = "workers.executors:decline"


@dataclass(frozen=True)
class Facts:
    """What the node knows of itself. `worker_threads` counts the live workers that can
    run tasks; `worker_problems` is what keeps the others from it."""

    executor: str
    has_forge: bool
    has_token: bool
    models: tuple[str, ...] = ()
    mesh_models: tuple[str, ...] = ()  # other nodes' models, reachable through the gateway
    worker_threads: int = 0
    worker_problems: tuple[Problem, ...] = ()
    heartbeat: float = 10.0  # workers.heartbeat, to say how long a worker may be silent


def capacity(facts: Facts) -> int:
    """The worker slots this node offers: none unless it can run tasks."""
    return 0 if problems(facts) else facts.worker_threads


def assess(facts: Facts, free_slots: int = 0) -> Readiness:
    found = problems(facts)
    if found:
        return Readiness(False, tuple(p.text for p in found))
    return Readiness(True, (), facts.worker_threads, free_slots)


def short_reasons(facts: Facts) -> list[str]:
    """The reasons as gossiped: short, with no path or host of this machine."""
    return [p.code for p in problems(facts)]


def problems(facts: Facts) -> list[Problem]:
    """Each thing that keeps the node from tasks, with its fix."""
    found: list[Problem] = []
    if not facts.has_forge:
        found.append(
            Problem(
                "no repositories",
                "no repositories to take tasks from. Fix: set tasks.repositories.",
            )
        )
    elif not facts.has_token:
        found.append(
            Problem(
                "no forge token",
                "no forge token: it cannot claim or report. Fix: set BZZZ_FORGE_TOKEN or"
                " forge.token_file.",
            )
        )
    if facts.executor == DECLINE:
        found.append(
            Problem(
                "executor declines tasks",
                f"workers.executor is {DECLINE}, which fails every task. Fix: set"
                ' workers.executor = "workers.agent:run".',
            )
        )
        return found  # its workers do not matter
    if facts.executor in AGENT_EXECUTORS and not (facts.models or facts.mesh_models):
        found.append(
            Problem(
                "no model",
                "the model server lists no models and no peer offers one through the"
                " gateway. Fix: start ollama at capabilities.ollama_host and pull a model.",
            )
        )
    found.extend(facts.worker_problems)
    if not facts.worker_threads and not facts.worker_problems:
        found.append(
            Problem(
                "no live worker",
                f"no worker of this node has been heard from in {3 * facts.heartbeat:.0f} s."
                " Fix: start `bzzz worker` with this node's home (or `systemctl start"
                " bzzz-worker@1`).",
            )
        )
    return found
