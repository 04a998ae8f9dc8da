"""Soak: one node runs thousands of tasks for many minutes; does its footprint stay flat?

Three real nodes (separate processes) on loopback against the local forge over HTTP:
`soak-a`, measured, with a `bzzz worker` pool (the `record` executor: each task is run
and reported, but does nothing else), and two peers that cannot run tasks (executor
`decline`), so `soak-a` claims and runs every task while the peers watch, poll and
relay. A feeder opens labelled issues at a steady rate and closes each one once its
task is done (as a merged pull request would). Every `--every` seconds it samples the
measured node: RSS, open descriptors, threads (psutil), trio tasks and the claim
machine's size (its status report), and the sizes of its files (the queue's SQLite
database with its WAL, tasks.json, the log).

The claim retention and the table's history are shortened (60 s, 200 tasks) so that
the node reaches its steady state well within the run.

    .venv/bin/python -m bench.soak [--tasks 2000] [--minutes 10] [--rate 4]
                                   [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.gossip import write_section
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, WorkerPool, free_port, wait_for

REPO = "lab/app"
LABEL = "bzzz-task"
NODES = ["soak-a", "soak-b", "soak-c"]
WARM_UP = 120.0  # seconds before the baseline sample


@dataclass
class Sample:
    at: float  # seconds since the feeder started
    done: int
    rss_mb: float
    fds: int
    threads: int
    trio_tasks: int
    tracked: int
    in_flight: int
    table: int
    queue_kb: float
    tasks_json_kb: float
    log_kb: float


def world() -> dict[str, object]:
    return {
        "users": [
            {"login": login, "token": f"tok-{login}-0123456789"} for login in ["lab", *NODES]
        ],
        "repos": [
            {
                "owner": "lab",
                "name": "app",
                "files": {"README.md": "# app\n"},
                "labels": [LABEL],
                "collaborators": NODES,
                "issues": [],
            }
        ],
    }


def tool_path(root: Path) -> str:
    """A PATH with an `ollama` CLI on it: the soak's tasks ask for no particular model,
    which a node can take when it has ollama."""
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "ollama"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return f"{bin_dir}:{os.environ.get('PATH', '')}"


def make_node(root: Path, forge: LocalForge, name: str, bootstrap: list[str]) -> NodeProcess:
    env = {"BZZZ_FORGE_TOKEN": f"tok-{name}-0123456789", "PATH": tool_path(root)}
    node = NodeProcess(root / name, name, free_port(), env=env)
    executor = "workers.executors:record" if name == NODES[0] else "workers.executors:decline"
    node.init(
        bootstrap,
        forge={"api_url": forge.api_url, "seconds_between_writes": 0.0, "timeout": 5.0},
        tasks={"repositories": [REPO], "poll_interval": 1.0, "history": 200},
        claims={
            "lease": 60.0,
            "gossip_renew": 5.0,
            "rank_delay": 0.5,
            "margin": 15.0,
            "retention": 60.0,
        },
        workers={"processes": 2, "threads": 4, "heartbeat": 5.0, "executor": executor},
        log={"level": "warning"},
    )
    return node


class Feeder:
    """Opens labelled issues at `rate` per second; closes each one whose task is done."""

    def __init__(self, forge: LocalForge, record: Path, total: int, rate: float) -> None:
        self.client = GitHubForge(
            forge.api_url, Token("tok-lab-0123456789"), seconds_between_writes=0
        )
        self.api = forge.api_url
        self.record = record
        self.total = total
        self.rate = rate
        self.opened = 0
        self.closed: set[int] = set()
        self.stop = threading.Event()

    def done(self) -> set[int]:
        if not self.record.exists():
            return set()
        lines = self.record.read_text().splitlines()
        return {int(json.loads(line)["task_id"].rpartition("#")[2]) for line in lines if line}

    def run(self) -> None:
        started = time.monotonic()
        while not self.stop.is_set():
            due = min(self.total, int((time.monotonic() - started) * self.rate) + 1)
            while self.opened < due:
                self.opened += 1
                self.client.create_issue(REPO, f"Soak task {self.opened}", "", [LABEL])
            for number in sorted(self.done() - self.closed):
                self._close(number)
                self.closed.add(number)
            self.stop.wait(0.5)

    def _close(self, number: int) -> None:
        request = urllib.request.Request(  # noqa: S310 - the local forge, on loopback
            f"{self.api}/repos/{REPO}/issues/{number}",
            data=json.dumps({"state": "closed"}).encode(),
            method="PATCH",
            headers={"Authorization": "token tok-lab-0123456789"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
            reply.read()


def kb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths if p.exists()) / 1024, 1)


def sample(node: NodeProcess, feeder: Feeder, started: float) -> Sample:
    assert node.process is not None
    process = psutil.Process(node.process.pid)
    report = node.status()
    assert report is not None
    assert report.process is not None
    assert report.claims is not None
    home = node.home
    queue = home / "queue" / "bzzz.db"
    return Sample(
        at=round(time.monotonic() - started, 1),
        done=len(feeder.done()),
        rss_mb=round(process.memory_info().rss / 2**20, 1),
        fds=process.num_fds(),
        threads=process.num_threads(),
        trio_tasks=report.process.trio_tasks,
        tracked=report.claims.tracked,
        in_flight=report.claims.in_flight,
        table=len(report.tasks),
        queue_kb=kb(queue, queue.with_name("bzzz.db-wal"), queue.with_name("bzzz.db-shm")),
        tasks_json_kb=kb(home / "tasks.json"),
        log_kb=kb(home / "logs" / "node.log"),
    )


def render(samples: list[Sample], tasks: int, minutes: float, rate: float) -> str:
    after = [s for s in samples if s.at >= WARM_UP] or samples[-1:]
    base, end = after[0], samples[-1]
    spans = {
        name: (min(getattr(s, name) for s in after), max(getattr(s, name) for s in after))
        for name in ("fds", "threads", "trio_tasks", "tracked", "table", "queue_kb")
    }
    rows = [s for i, s in enumerate(samples) if i % max(1, len(samples) // 12) == 0 or s is end]
    lines = [
        "## Soak: one node, thousands of tasks (`bench/soak.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on 2 cores. Three nodes on loopback against the"
        f" local forge; `soak-a` runs every task (record executor, 2 worker processes x 4"
        f" threads), its two peers cannot run tasks and watch, poll and relay. Issues opened"
        f" at {rate:g}/s and closed once done; claim retention 60 s, table history 200."
        f" {end.done} tasks in {end.at / 60:.1f} minutes (asked: {tasks} tasks, at least"
        f" {minutes:g} minutes). Samples of `soak-a`; the baseline is the first sample after"
        f" {WARM_UP:.0f} s of warm-up.",
        "",
        "| s | tasks done | RSS MB | fds | threads | trio tasks | in claim machine | in flight"
        " | table | queue KB | tasks.json KB | log KB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {s.at:.0f} | {s.done} | {s.rss_mb:.1f} | {s.fds} | {s.threads} | {s.trio_tasks}"
            f" | {s.tracked} | {s.in_flight} | {s.table} | {s.queue_kb:.0f} |"
            f" {s.tasks_json_kb:.0f} | {s.log_kb:.0f} |"
            for s in rows
        ],
        "",
        f"After warm-up: RSS {base.rss_mb:.1f} → {end.rss_mb:.1f} MB"
        f" ({end.rss_mb - base.rss_mb:+.1f} MB; median of the last five samples"
        f" {statistics.median(s.rss_mb for s in samples[-5:]):.1f} MB)."
        + "".join(f" {name} {lo} to {hi};" for name, (lo, hi) in spans.items()).rstrip(";")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=4.0, help="issues opened per second")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    root = Path(tempfile.mkdtemp(prefix="bzzz-soak-"))
    # GitHub's 5,000 requests an hour would throttle a node that runs thousands of tasks
    # in minutes: the soak is about the node's footprint, not the forge's quota.
    forge = LocalForge(root / "forge", rate_limit=10**9).start()
    nodes: list[NodeProcess] = []
    pool: WorkerPool | None = None
    feeder = Feeder(forge, root / "record.jsonl", args.tasks, args.rate)
    samples: list[Sample] = []
    try:
        forge.seed(world())
        first = make_node(root, forge, NODES[0], [])
        nodes = [first, *(make_node(root, forge, n, [first.addr]) for n in NODES[1:])]
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_ready()
        pool = WorkerPool(
            first, {"BZZZ_RECORD_FILE": str(feeder.record), "BZZZ_RECORD_SECONDS": "0"}
        )
        pool.start()
        wait_for(lambda: alive_peers(first) == len(NODES) - 1, 60, "the mesh")
        thread = threading.Thread(target=feeder.run, daemon=True)
        started = time.monotonic()
        thread.start()
        while True:
            samples.append(sample(first, feeder, started))
            print(samples[-1], flush=True)
            enough = samples[-1].done >= args.tasks and samples[-1].at >= args.minutes * 60
            if enough:
                break
            time.sleep(args.every)
        feeder.stop.set()
        thread.join(10)
    finally:
        if pool is not None:
            pool.stop()
        for node in nodes:
            node.stop(timeout=20)
        forge.stop()
        shutil.rmtree(root, ignore_errors=True)
    section = render(samples, args.tasks, args.minutes, args.rate)
    print(section)
    write_section(args.out, section)


def alive_peers(node: NodeProcess) -> int:
    report = node.status()
    return 0 if report is None else len(report.alive_peers())


if __name__ == "__main__":
    main()
