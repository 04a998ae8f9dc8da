"""Blocking work on a schedule: APScheduler threads do it, trio gets the results.

The node's one concurrency rule: trio owns all of the node's state. A job is split
into up to three steps, and only the middle one runs in a scheduler thread:

    plan()      on trio: what to do this time, from the node's state (None: nothing)
    work(plan)  in a thread: the blocking part (psutil, NVML, ollama, the forge), given
                only the plan, returning a result; it touches nothing of the node's
    deliver(r)  on trio: the result becomes part of the node's state

A job whose work or delivery fails is counted, logged once per distinct cause (and
once when it works again), and runs again on its schedule.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import trio
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bzzz.node.status import JobStatus

log = logging.getLogger(__name__)

THREADS = 3

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class _Health:
    runs: int = 0
    failures: int = 0
    in_a_row: int = 0
    last_error: str | None = None


class JobHealth:
    """How each job fares. Trio-owned: jobs report through the scheduler's hop."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Health] = {}

    def succeeded(self, name: str) -> None:
        health = self._jobs.setdefault(name, _Health())
        if health.in_a_row:
            log.info("job %s works again after %d failed runs", name, health.in_a_row)
        health.runs += 1
        health.in_a_row = 0

    def failed(self, name: str, error: BaseException) -> None:
        health = self._jobs.setdefault(name, _Health())
        cause = f"{type(error).__name__}: {error}"
        if cause != health.last_error or not health.in_a_row:
            log.warning(
                "job %s failed: %s (it runs again on its schedule)",
                name,
                cause,
                exc_info=error,
            )
        health.runs += 1
        health.failures += 1
        health.in_a_row += 1
        health.last_error = cause

    def views(self) -> dict[str, JobStatus]:
        return {
            name: JobStatus(h.runs, h.failures, h.in_a_row, h.last_error)
            for name, h in sorted(self._jobs.items())
        }


class Scheduler:
    def __init__(self, health: JobHealth | None = None) -> None:
        self.health = health or JobHealth()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=THREADS)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )

    def every(
        self,
        name: str,
        interval: float,
        work: Callable[[], R],
        deliver: Callable[[R], Awaitable[None]],
        *,
        first_in: float = 0.0,
    ) -> None:
        """Run `work` every `interval` seconds (first after `first_in`); `deliver` its
        result on trio."""
        self.planned(name, interval, _always, lambda _: work(), deliver, first_in=first_in)

    def planned(
        self,
        name: str,
        interval: float,
        plan: Callable[[], P | None],
        work: Callable[[P], R],
        deliver: Callable[[R], Awaitable[None]],
        *,
        first_in: float = 0.0,
    ) -> None:
        """Like `every`, but `work` gets what `plan` (on trio) returned; a None plan
        skips the run."""

        def run() -> None:
            try:
                planned = trio.from_thread.run_sync(plan, trio_token=self._token)
                if planned is None:
                    return
                result = work(planned)
                trio.from_thread.run(deliver, result, trio_token=self._token)
            except trio.RunFinishedError:
                return  # the node has stopped
            except Exception as exc:
                self._report(self.health.failed, name, exc)
                return
            self._report(self.health.succeeded, name)

        start = datetime.now(UTC) + timedelta(seconds=first_in)
        self._scheduler.add_job(run, "interval", seconds=interval, next_run_time=start, id=name)

    def start(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._scheduler.start()

    def shutdown(self) -> None:
        """Blocking: waits for running jobs. Call it through trio.to_thread, so that
        their hops into trio can still be answered."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def _report(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(fn, *args, trio_token=self._token)


def _always() -> bool:
    return True
