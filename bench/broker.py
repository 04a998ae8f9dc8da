"""Broker benchmark: Bzzz's SQLite broker against Dramatiq's Redis broker, in one run.

For each broker and 1 and 2 worker processes (one `dramatiq` command, 4 threads per
process, a trivial actor) it measures:
- enqueue rate: messages sent one by one from this process while no worker runs;
- drain rate: those messages run by the workers, from the first start to the last;
- enqueue-to-start latency p50/p99: messages sent at a steady rate to idle workers;
- idle CPU per worker process, with an empty queue.
Brokers alternate (sqlite, redis, sqlite, ...) and each figure is the median of the
repeats. Then, for SQLite, the time from `kill -9` of a worker in the middle of a
job until another worker starts that job again. Redis runs on a private
`redis-server` this script starts on loopback.

    .venv/bin/python -m bench.broker [--messages 5000] [--repeat 3] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import psutil
import redis
from dramatiq import Message
from dramatiq.broker import Broker

from bench.gossip import percentile, write_section
from bzzz.lab.processes import free_port, wait_for
from bzzz.queue import broker_from_url
from bzzz.queue.sqlite import DEFAULT_LEASE

THREADS = 4
LATENCY_RATE = 25  # messages per second: sparse, as tasks come
LATENCY_COUNT = 200
IDLE_SECONDS = 3.0
URL_VARIABLE = "BZZZ_BENCH_BROKER_URL"
EVENTS_VARIABLE = "BZZZ_BENCH_EVENTS"
REPO = Path(__file__).resolve().parents[1]


# -- the worker side: `dramatiq bench.broker:setup_worker` calls this in each process


def setup_worker() -> None:
    """Make the broker from the environment and declare the benchmark's actors."""
    dramatiq.set_broker(broker_from_url(os.environ[URL_VARIABLE]))
    events = (Path(os.environ[EVENTS_VARIABLE]) / f"{os.getpid()}.log").open("a", buffering=1)
    lock = threading.Lock()

    def record(line: str) -> None:
        with lock:
            events.write(line)

    def noop(sent_at: float) -> None:
        record(f"{sent_at} {time.time()}\n")

    def stuck() -> None:
        record(f"stuck {time.time()}\n")
        time.sleep(3600)  # until this worker is killed

    dramatiq.actor(noop, actor_name="bench_noop", max_retries=0)
    dramatiq.actor(stuck, actor_name="bench_stuck", max_retries=0)


# -- the measuring side


@dataclass
class Result:
    broker: str
    processes: int
    enqueue_per_s: float
    drain_per_s: float
    p50_ms: float
    p99_ms: float
    idle_cpu_percent: float  # per worker process


class Workers:
    """One `dramatiq` command with `processes` worker processes, in its own session."""

    def __init__(self, url: str, processes: int, events: Path) -> None:
        self.processes = processes
        self.log_path = events / f"command-{time.monotonic_ns()}.out"
        with self.log_path.open("wb") as log:
            self.command = subprocess.Popen(
                [sys.executable, "-m", "dramatiq", "bench.broker:setup_worker",
                 "--processes", str(processes), "--threads", str(THREADS)],
                cwd=REPO,
                env={**os.environ, URL_VARIABLE: url, EVENTS_VARIABLE: str(events)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> None:
        def ready() -> bool:
            return self.log_path.read_text().count("ready for action") >= self.processes

        def running() -> None:
            if self.command.poll() is not None:
                raise RuntimeError(f"dramatiq exited: {self.log_path.read_text()[-2000:]}")

        wait_for(ready, 60, "the workers to start", interval=0.01, check=running)

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.command.pid).children()

    def stop(self) -> None:
        if self.command.poll() is None:
            self.command.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.command.wait(timeout=30)
        if self.command.poll() is None:
            os.killpg(self.command.pid, signal.SIGKILL)
            self.command.wait()


def event_lines(events: Path) -> list[str]:
    return [line for path in events.glob("*.log") for line in path.read_text().splitlines()]


def noop_times(events: Path) -> list[tuple[float, float]]:
    """(sent_at, started_at) of every bench_noop run."""
    return [
        (float(sent), float(started))
        for sent, started in (line.split() for line in event_lines(events))
        if sent != "stuck"
    ]


def send(broker: Broker, actor: str, *args: Any) -> None:
    broker.enqueue(Message("default", actor, args, {}, {}))


def idle_cpu_percent(workers: Workers) -> float:
    """CPU per worker process while the queue is empty, in % of one core."""
    children = workers.children()
    before = [sum(child.cpu_times()[:2]) for child in children]
    time.sleep(IDLE_SECONDS)
    after = [sum(child.cpu_times()[:2]) for child in children]
    spent = statistics.mean(b - a for a, b in zip(before, after, strict=True))
    return spent / IDLE_SECONDS * 100


def bench(kind: str, url: str, processes: int, messages: int, root: Path) -> Result:
    events = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    broker = broker_from_url(url)
    broker.declare_queue("default")
    started = time.perf_counter()
    for _ in range(messages):
        send(broker, "bench_noop", 0.0)
    enqueue_rate = messages / (time.perf_counter() - started)

    workers = Workers(url, processes, events)
    try:
        wait_for(lambda: len(event_lines(events)) >= messages, 300, "the drain", interval=0.02)
        starts = [started_at for _, started_at in noop_times(events)]
        drain_rate = messages / (max(starts) - min(starts))
        broker.join("default", timeout=30_000)

        for _ in range(LATENCY_COUNT):
            send(broker, "bench_noop", time.time())
            time.sleep(1 / LATENCY_RATE)
        wait_for(
            lambda: len(event_lines(events)) >= messages + LATENCY_COUNT,
            60,
            "the latency messages",
            interval=0.02,
        )
        latencies = [(run - sent) * 1000 for sent, run in noop_times(events) if sent > 0]
        broker.join("default", timeout=30_000)
        idle = idle_cpu_percent(workers)
    finally:
        workers.stop()
        broker.close()
    return Result(
        kind,
        processes,
        enqueue_rate,
        drain_rate,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        idle,
    )


def redelivery_s(root: Path) -> float:
    """Seconds from `kill -9` of a worker in the middle of a job to another worker starting it."""
    events = Path(tempfile.mkdtemp(prefix="redelivery-", dir=root))
    url = f"sqlite://{events}/queue.db"
    broker = broker_from_url(url)
    broker.declare_queue("default")
    first = Workers(url, 1, events)
    second: Workers | None = None
    try:
        first.wait_ready()
        send(broker, "bench_stuck")
        wait_for(lambda: bool(stuck_starts(events)), 30, "the job to start", interval=0.01)
        [(victim, _)] = stuck_starts(events)
        second = Workers(url, 1, events)
        second.wait_ready()
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        wait_for(lambda: len(stuck_starts(events)) == 2, 120, "the redelivery", interval=0.01)
        return next(at for pid, at in stuck_starts(events) if pid != victim) - killed_at
    finally:
        for workers in (first, second):
            if workers is not None:
                os.killpg(workers.command.pid, signal.SIGKILL)
                workers.command.wait()
        broker.close()


def stuck_starts(events: Path) -> list[tuple[int, float]]:
    return [
        (int(path.stem), float(line.split()[1]))
        for path in events.glob("*.log")
        for line in path.read_text().splitlines()
        if line.startswith("stuck")
    ]


@contextmanager
def redis_server(root: Path) -> Iterator[str]:
    """A private redis-server on loopback, without persistence; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH: run scripts/setup")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, 10, "redis-server to answer", interval=0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def median_result(runs: list[Result]) -> Result:
    def med(field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs)

    return Result(
        runs[0].broker,
        runs[0].processes,
        med("enqueue_per_s"),
        med("drain_per_s"),
        med("p50_ms"),
        med("p99_ms"),
        med("idle_cpu_percent"),
    )


def redis_version() -> str:
    found = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout
    return next((word[2:] for word in found.split() if word.startswith("v=")), "?")


METHOD = """\
One `dramatiq` command with 1 or 2 worker processes of {threads} threads (Dramatiq's
default prefetch, twice the threads), a trivial actor, the broker and this script
on the same machine. Enqueue: {messages} messages sent one by one from one thread
while no worker runs. Drain: those messages, from the first start to the last.
Latency: {count} messages sent at {rate} msg/s to otherwise idle workers, from before
the send to the actor's start. Idle CPU: per worker process over {idle:.0f} s with an empty
queue. Brokers alternate; medians of {repeat} runs."""


def render(results: list[Result], redeliveries: list[float], messages: int, repeat: int) -> str:
    machine = (
        f"{len(os.sched_getaffinity(0))} cores (`nproc`), Python {platform.python_version()},"
        f" Dramatiq {dramatiq.__version__}, SQLite {sqlite3.sqlite_version},"
        f" redis-server {redis_version()}"
    )
    method = METHOD.format(
        threads=THREADS,
        messages=messages,
        count=LATENCY_COUNT,
        rate=LATENCY_RATE,
        idle=IDLE_SECONDS,
        repeat=repeat,
    )
    lines = [
        "## Broker (`bench/broker.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}. {method}",
        "",
        "| broker | processes | enqueue | drain | start latency p50 | p99 | idle CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.broker} | {r.processes} | {r.enqueue_per_s:,.0f}/s | {r.drain_per_s:,.0f}/s"
            f" | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.idle_cpu_percent:.1f} % |"
        )
    by_key = {(r.broker, r.processes): r for r in results}
    lines.append("")
    for processes in sorted({r.processes for r in results}):
        sqlite, redis_ = by_key.get(("sqlite", processes)), by_key.get(("redis", processes))
        if sqlite and redis_:
            lines.append(
                f"- {processes} process{'es' if processes > 1 else ''}: SQLite drains"
                f" {sqlite.drain_per_s / redis_.drain_per_s:.2f}x as fast as Redis"
                f" and enqueues {sqlite.enqueue_per_s / redis_.enqueue_per_s:.2f}x as fast;"
                f" its p99 start latency is {sqlite.p99_ms:.1f} ms (target < 50 ms)."
            )
    if redeliveries:
        runs = ", ".join(f"{r:.1f}" for r in redeliveries)
        lines.append(
            f"- Redelivery after `kill -9` of a worker mid-job (SQLite, lease"
            f" {DEFAULT_LEASE:g} s, the default): median {statistics.median(redeliveries):.1f} s"
            f" (runs: {runs} s)."
        )
    lines += ["", ANALYSIS]
    return "\n".join(lines) + "\n"


ANALYSIS = """\
SQLite enqueues with one autocommit INSERT (WAL, `synchronous=NORMAL`: no fsync per
message) where Redis runs a Lua script over a socket, and a consumer claims a batch up
to its prefetch in one UPDATE; every ack is one DELETE. An idle SQLite consumer wakes
within the 20 ms `PRAGMA data_version` poll when another process writes, which bounds
its latency and costs the idle CPU above; Dramatiq's Redis consumer, finding nothing,
sleeps for a backoff that doubles up to its 1 s timeout. Redelivery takes the remaining lease
(renewed every lease/3 while the worker lives) plus up to a second until an idle
consumer reaps it. Dramatiq's Redis broker requeues a dead worker's messages only
during random maintenance once its heartbeat is 60 s old; it is not timed here (the
shared notes measured 247 s)."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redeliveries", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-broker-"))
    results: list[Result] = []
    try:
        with redis_server(root) as redis_url:
            flusher = redis.Redis.from_url(redis_url)
            for processes in args.processes:
                runs: dict[str, list[Result]] = {"sqlite": [], "redis": []}
                for repeat in range(args.repeat):
                    for kind in ("sqlite", "redis"):
                        if kind == "redis":
                            flusher.flushall()
                            url = redis_url
                        else:
                            url = f"sqlite://{root}/queue-{processes}-{repeat}.db"
                        result = bench(kind, url, processes, args.messages, root)
                        print(result, flush=True)
                        runs[kind].append(result)
                results += [median_result(runs["sqlite"]), median_result(runs["redis"])]
        redeliveries = []
        for _ in range(args.redeliveries):
            redeliveries.append(redelivery_s(root))
            print(f"redelivered after {redeliveries[-1]:.2f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    section = render(results, redeliveries, args.messages, args.repeat)
    print(section)
    write_section(args.out, section)


if __name__ == "__main__":
    main()
