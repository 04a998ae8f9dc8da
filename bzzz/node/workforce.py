"""This node's workers, as their beats tell: which are alive, how many tasks they can
run, and what keeps them from running any. Trio-owned; the beats arrive through the
broker's events (`bridges.WorkerEvents`).

A worker is alive while its beats keep coming (three heartbeats and a margin). Only
live workers that report no problem count towards the node's capacity. A task that a
worker had to decline for a problem of the node (no model server, no git identity...)
closes the node's offer for a while, so that it does not claim the next task only to
let it go again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bzzz.work import Problem, WorkerBeat

DECLINE_HOLD = 120.0  # seconds a declined task keeps the node from claiming
MARGIN = 5.0


@dataclass(frozen=True)
class Seen:
    beat: WorkerBeat
    at: float  # monotonic seconds of the node


class Workforce:
    def __init__(self, heartbeat: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._dead_after = 3 * heartbeat + MARGIN
        self._clock = clock
        self._workers: dict[str, Seen] = {}
        self._declined: tuple[float, str] | None = None

    def beat(self, beat: WorkerBeat) -> None:
        self._workers[beat.worker] = Seen(beat, self._clock())

    def declined(self, reason: str) -> None:
        self._declined = (self._clock(), reason)

    def live(self) -> list[WorkerBeat]:
        """The live workers; the dead are forgotten."""
        now = self._clock()
        for worker, seen in list(self._workers.items()):
            if now - seen.at > self._dead_after:
                del self._workers[worker]
        return [seen.beat for seen in self._workers.values()]

    def threads(self) -> int:
        """Tasks the live workers that can run tasks take at once."""
        return sum(beat.threads for beat in self.live() if not beat.problems)

    def problems(self) -> tuple[Problem, ...]:
        """What keeps the workers from running tasks: a recent decline, and the problems
        that every live worker reports (a worker without any can run tasks)."""
        found: dict[str, Problem] = {}
        if self._declined is not None:
            at, reason = self._declined
            if self._clock() - at < DECLINE_HOLD:
                found["declined a task"] = Problem(
                    "declined a task",
                    f"a worker could not run the last task here: {reason} (no task is"
                    f" claimed for {DECLINE_HOLD:.0f} s).",
                )
        live = self.live()
        if live and all(beat.problems for beat in live):
            for beat in live:
                for problem in beat.problems:
                    found.setdefault(problem.code, problem)
        return tuple(found.values())

    def dead_after(self) -> float:
        return self._dead_after
