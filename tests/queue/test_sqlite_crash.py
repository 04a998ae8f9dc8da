"""The SQLite broker against real failures of real `dramatiq` worker processes.

Each worker is `python -m dramatiq tests.queue.actors` in a session of its own; the
actors report to an events file (see tests/queue/actors.py). Every process is killed
at the end of its test, pass or fail.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dramatiq import Message

from bzzz.lab.processes import wait_for
from bzzz.queue import SQLiteBroker

REPO = Path(__file__).resolve().parents[2]
LEASE = 2.0  # seconds


@dataclass(frozen=True)
class Event:
    kind: str  # "start" or "done"
    key: str
    pid: int
    deliveries: int
    at: float  # epoch seconds


class Queue:
    """The test's side of the queue: it sends messages and reads what the actors did."""

    def __init__(self, root: Path) -> None:
        self.path = root / "queue.db"
        self.events_path = root / "events"
        self.events_path.touch()
        self.broker = SQLiteBroker(self.path)
        self.broker.declare_queue("default")

    def send(self, actor: str, *args: object, delay: int | None = None) -> None:
        self.broker.enqueue(Message("default", actor, args, {}, {}), delay=delay)

    def events(self, kind: str | None = None, key: str | None = None) -> list[Event]:
        found = []
        for line in self.events_path.read_text().splitlines():
            event_kind, event_key, pid, deliveries, at = line.split()
            event = Event(event_kind, event_key, int(pid), int(deliveries), float(at))
            if kind in (None, event.kind) and key in (None, event.key):
                found.append(event)
        return found

    def wait_event(self, kind: str, key: str, timeout: float = 10.0) -> Event:
        wait_for(lambda: bool(self.events(kind, key)), timeout, f"{kind} {key}", interval=0.02)
        return self.events(kind, key)[0]

    def rows(self) -> list[tuple[int, int]]:
        """(state, deliveries) of every message left in the queue."""
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT state, deliveries FROM bzzz_messages ORDER BY id").fetchall()


class WorkerCommand:
    """One `dramatiq` command with one worker process, its output in a file."""

    def __init__(self, queue: Queue, log_path: Path, env: dict[str, str], threads: int) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "tests.queue.actors", "--processes", "1",
                 "--threads", str(threads), "--worker-shutdown-timeout", "10000"],
                cwd=REPO,
                env={
                    **os.environ,
                    "BZZZ_TEST_BROKER_URL": f"sqlite://{queue.path}",
                    "BZZZ_TEST_EVENTS": str(queue.events_path),
                    **env,
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        def running() -> None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited: {self.log()[-2000:]}")

        wait_for(
            lambda: "Worker process is ready for action." in self.log(),
            30,
            "the worker to start",
            interval=0.05,
            check=running,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


StartWorker = Callable[..., WorkerCommand]


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    made = Queue(tmp_path)
    yield made
    made.broker.close()


@pytest.fixture
def start_worker(queue: Queue, tmp_path: Path) -> Iterator[StartWorker]:
    workers: list[WorkerCommand] = []

    def start(
        *, threads: int = 2, lease: float = LEASE, busy_timeout: float = 30.0, wait: bool = True
    ) -> WorkerCommand:
        env = {
            "BZZZ_TEST_LEASE": str(lease),
            "BZZZ_TEST_BUSY_TIMEOUT": str(busy_timeout),
            "dramatiq_restart_delay": "200",  # ms before Dramatiq restarts a failed consumer
        }
        worker = WorkerCommand(queue, tmp_path / f"worker-{len(workers)}.log", env, threads)
        workers.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.kill()
    for worker in workers:
        print(f"----- {worker.log_path.name} -----\n{worker.log()[-3000:]}")


def test_a_killed_worker_s_message_is_redelivered_within_a_lease(
    queue: Queue, start_worker: StartWorker
) -> None:
    start_worker()
    queue.send("stuck_on_first_delivery", "job")
    first = queue.wait_event("start", "job")
    assert first.deliveries == 1
    start_worker()

    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.time()
    done = queue.wait_event("done", "job", timeout=LEASE + 10)

    assert done.pid != first.pid
    assert done.deliveries == 2
    redelivered = queue.events("start", "job")[1]
    assert redelivered.at - killed_at < LEASE + 1.5
    queue.broker.join("default", timeout=5000)


def test_a_job_longer_than_the_lease_is_not_redelivered(
    queue: Queue, start_worker: StartWorker
) -> None:
    workers = [start_worker(lease=1.0, wait=False) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    queue.send("work", "long", 2.5)
    queue.wait_event("done", "long", timeout=15)
    queue.broker.join("default", timeout=5000)
    assert len(queue.events("start", "long")) == 1


def test_sigterm_loses_nothing_and_delayed_messages_still_run(
    queue: Queue, start_worker: StartWorker
) -> None:
    worker = start_worker(threads=1)
    for number in range(4):
        queue.send("work", f"job{number}", 1.0)
    late_eta = time.time() + 3.0
    queue.send("work", "late", delay=3000)
    queue.wait_event("start", "job0")

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=20) == 0
    assert queue.events("start", "late") == []
    rows = queue.rows()
    assert rows, "the worker cannot have finished everything"
    assert all(state == 0 for state, _ in rows), "nothing claimed or dead-lettered"
    assert all(deliveries == 0 for _, deliveries in rows), "requeued ones never counted"

    start_worker(threads=1)
    late = queue.wait_event("done", "late", timeout=15)
    for number in range(4):
        queue.wait_event("done", f"job{number}", timeout=15)
    queue.broker.join("default", timeout=5000)
    assert late.at >= late_eta - 0.01
    started = [event.key for event in queue.events("start")]
    assert sorted(started) == ["job0", "job1", "job2", "job3", "late"]


def test_consumers_survive_a_write_lock_held_past_the_busy_timeout(
    queue: Queue, start_worker: StartWorker
) -> None:
    worker = start_worker(busy_timeout=0.3, lease=5.0)
    queue.send("work", "before")
    queue.wait_event("done", "before")
    queue.send("work", "during", 1.0)
    queue.wait_event("start", "during")
    queue.send("work", "delayed", delay=300)

    blocker = sqlite3.connect(queue.path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        wait_for(
            lambda: (
                "Consumer encountered a connection error" in worker.log()
                and "Failed to post_process_message" in worker.log()
            ),
            15,
            "the consumer and the ack to fail on the lock",
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    queue.wait_event("done", "delayed", timeout=15)
    queue.send("work", "after")
    queue.wait_event("done", "after", timeout=15)
    queue.broker.join("default", timeout=15_000)  # the ack of "during" retries every 5 s
    assert worker.process.poll() is None
    started = sorted(event.key for event in queue.events("start"))
    assert started == ["after", "before", "delayed", "during"]
