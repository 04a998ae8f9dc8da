"""`bzzz worker`: Dramatiq worker processes for the node's task queue, supervised.

Each process runs a Dramatiq Worker with `threads` threads on the tasks queue. The
supervisor restarts a process that dies (its task is redelivered by the broker) and
on SIGTERM or SIGINT stops them all, letting running tasks finish within the
shutdown timeout.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from dramatiq import Worker

from bzzz import lifeline, logs
from bzzz.config import ConfigError, Settings, load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import TokenError, load_token
from bzzz.queue.middleware import PrefetchPerThread
from bzzz.work import TASKS_QUEUE, open_broker
from workers.actors import declare
from workers.executors import load_executor
from workers.presence import Presence

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
SHUTDOWN_TIMEOUT = 600.0  # seconds running tasks get to finish on SIGTERM


def serve_process(home: Path, threads: int) -> None:
    """One worker process: runs tasks until SIGTERM, or until its supervisor ends."""
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and supervisor.pid is not None:
        lifeline.die_with(supervisor.pid)  # SIGTERM when the supervisor ends, even killed
    settings = load_settings(home)
    token = load_token(settings.token_path)
    logs.setup(
        settings.log.level,
        settings.home / "logs" / "worker.log",
        secrets=[token.reveal()] if token else [],
        label=f"{settings.node.name}-worker",
    )
    forge = GitHubForge(
        settings.forge.api_url,
        token,
        timeout=settings.forge.timeout,
        seconds_between_writes=settings.forge.seconds_between_writes,
    )
    broker = open_broker(settings, [PrefetchPerThread()])
    presence = Presence(broker, settings, threads)  # tells the node this process is alive
    executor = load_executor(settings.workers.executor)
    declare(broker, settings, forge, executor, token, presence=presence)
    worker = Worker(broker, queues={TASKS_QUEUE}, worker_threads=threads)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.start()
    presence.start()
    log.info("worker process up: %d threads on %s", threads, TASKS_QUEUE)
    while not stopping:
        signal.pause()
    presence.stop()
    worker.stop(timeout=int(SHUTDOWN_TIMEOUT * 1000))
    broker.close()
    log.info("worker process stopped")


def run_workers(settings: Settings, processes: int, threads: int) -> int:
    lifeline.arm_from_env()  # opt-in: dies with its starter (the lab, the tests)
    try:
        load_token(settings.token_path)
    except TokenError as exc:
        raise ConfigError(
            f"{exc}. Fix: correct forge.token_file or set BZZZ_FORGE_TOKEN."
        ) from None
    load_executor(settings.workers.executor)  # fail now, not in every child
    logs.setup(settings.log.level, settings.home / "logs" / "worker.log", label="workers")
    spawn = multiprocessing.get_context("spawn")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def start() -> BaseProcess:
        process = spawn.Process(target=serve_process, args=(settings.home, threads), daemon=False)
        process.start()
        return process

    children = [start() for _ in range(processes)]
    while not stopping:
        time.sleep(0.2)  # a supervisor's poll, not synchronisation
        for index, child in enumerate(children):
            if not child.is_alive() and not stopping:
                log.warning(
                    "worker process %s exited (%s); restarting it", child.pid, child.exitcode
                )
                time.sleep(RESTART_DELAY)
                children[index] = start()
    for child in children:
        if child.is_alive() and child.pid is not None:
            child.terminate()
    for child in children:
        child.join(SHUTDOWN_TIMEOUT + 10)
    return 0
