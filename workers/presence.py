"""A worker process tells its node it is alive: a beat on the events queue every
workers.heartbeat seconds, with its threads, the tasks it runs, and what keeps it
from running tasks (a self-check redone every few minutes).

The node offers only the slots of live workers that can run tasks, so a node whose
`bzzz worker` is not running, or cannot run tasks (no git identity, no sandbox), never
claims one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from dramatiq.broker import Broker
from dramatiq.message import Message

from bzzz.config import Settings
from bzzz.work import AGENT_EXECUTORS, EVENTS_QUEUE, WORKER_BEAT, Problem, WorkerBeat

log = logging.getLogger(__name__)

RECHECK_EVERY = 300.0  # seconds between self-checks


def self_check(settings: Settings) -> tuple[Problem, ...]:
    """What keeps this worker from running its executor's tasks (blocking)."""
    if settings.workers.executor not in AGENT_EXECUTORS:
        return ()
    from workers.git_access import WorkspaceError, node_identity  # noqa: PLC0415
    from workers.sandbox import SandboxError, choose_backend  # noqa: PLC0415

    problems = []
    try:
        node_identity(settings)
    except WorkspaceError as exc:
        problems.append(
            Problem(
                "no git identity",
                f"{exc}. Fix: set git.author_name and git.author_email.",
            )
        )
    try:
        choose_backend(settings.sandbox)
    except SandboxError as exc:
        problems.append(Problem("no sandbox", f"{exc} Fix: see `bzzz sandbox check`."))
    return tuple(problems)


class Presence:
    """The beat thread of one worker process."""

    def __init__(self, broker: Broker, settings: Settings, threads: int) -> None:
        self._broker = broker
        self._settings = settings
        self._threads = threads
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._busy = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker beat", daemon=True)

    def task_started(self) -> None:
        with self._lock:
            self._busy += 1

    def task_ended(self) -> None:
        with self._lock:
            self._busy -= 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        problems: tuple[Problem, ...] = ()
        checked_at = -RECHECK_EVERY
        while True:
            if time.monotonic() - checked_at >= RECHECK_EVERY:
                problems = self_check(self._settings)
                checked_at = time.monotonic()
                for problem in problems:
                    log.warning("this worker cannot run tasks: %s", problem.text)
            with self._lock:
                beat = WorkerBeat(self.worker, self._threads, self._busy, problems)
            try:
                self._broker.enqueue(
                    Message(
                        queue_name=EVENTS_QUEUE,
                        actor_name=WORKER_BEAT,
                        args=(beat.to_dict(),),
                        kwargs={},
                        options={},
                    )
                )
            except Exception:  # the queue may be briefly locked; the next beat follows
                log.debug("sending a worker beat failed", exc_info=True)
            if self._stop.wait(self._settings.workers.heartbeat):
                return
