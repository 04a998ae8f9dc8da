"""`bzzz lab run`: N nodes as separate processes on loopback, from issues to pull requests.

Each node gets a home under the lab root, listens on a free loopback port and
bootstraps to the node before it (a chain); the DHT fills in the rest of the
mesh. mDNS is off: on loopback it would advertise on the machine's real network.
A local forge, seeded with a sample repository, gives each node an account and
the nodes their tasks; the lab model server (ollama's API, answering from the sample
repository's playbook) is their model; each node has a `bzzz worker` pool that runs
its claimed tasks in a sandbox and opens pull requests. The nodes and pools are the
process handles of `bzzz.lab.processes`, which the tests use too.

Stopping: Ctrl-C, SIGTERM and SIGHUP alike stop every node, pool and server within
STOP_TIMEOUT and remove the temporary homes (unless `--keep`). Killed outright, the lab
cannot: its nodes and pools get SIGTERM from the kernel (the parent-death signal,
bzzz/lifeline.py) and its guard (bzzz/lab/guard.py), which sees the lab's end, kills what
is left of them and removes the homes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from bzzz import lifeline
from bzzz.lab.forge import LocalForge
from bzzz.lab.guard import Guard
from bzzz.lab.model import LabModelServer
from bzzz.lab.processes import NodeProcess, WorkerPool, free_port
from bzzz.lab.sample import EXPECTED_TASKS, SAMPLE_OWNER, SAMPLE_REPO, sample_world
from bzzz.node.status import NodeStatus
from bzzz.render import table

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT = 20.0  # seconds the nodes and pools get to stop before they are killed


class Lab:
    """N nodes with their workers, a local forge seeded with a sample repository whose
    issues they take, and the lab model server they ask."""

    def __init__(
        self, root: Path, count: int, poll_interval: float = 5.0, guard: Guard | None = None
    ) -> None:
        """`guard`: told of every process group the lab starts."""
        self.root = root
        self.guard = guard
        self.poll_interval = poll_interval
        self.nodes = [
            NodeProcess(root / f"node-{i}", f"lab-node-{i}", free_port())
            for i in range(1, count + 1)
        ]
        self.workers = [WorkerPool(node) for node in self.nodes]
        self.forge = LocalForge(root / "forge")
        self.model = LabModelServer()
        self.owner_token = ""

    def init(self) -> None:
        """Seed the forge (one account per node) and write every node's home."""
        made = self.forge.seed(sample_world([node.name for node in self.nodes]))
        tokens = {user["login"]: user["token"] for user in made["users"]}
        self.owner_token = tokens[SAMPLE_OWNER]  # for benchmarks that open issues
        self.forge.start()
        self.model.start()
        previous: list[str] = []
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            token_file = node.home / "forge.token"
            fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(tokens[node.name])
            node.init(
                bootstrap=previous[-1:],
                forge={
                    "api_url": self.forge.api_url,
                    "token_file": "forge.token",
                    "seconds_between_writes": 0.0,
                },
                tasks={"repositories": [SAMPLE_REPO], "poll_interval": self.poll_interval},
                capabilities={"ollama_host": self.model.url},
                workers={"executor": "workers.agent:run", "heartbeat": 5.0},
                agent={"model": "lab", "model_timeout": 30.0},
                git={"author_name": node.name, "author_email": f"{node.name}@lab.bzzz.invalid"},
            )
            previous.append(node.addr)

    def start(self) -> None:
        for node in self.nodes:
            node.start(wait=False)
            self._guarded(node.process)
        for pool in self.workers:
            pool.start()
            self._guarded(pool.process)

    def _guarded(self, process: subprocess.Popen[bytes] | None) -> None:
        if self.guard is not None and process is not None:
            self.guard.watch(process.pid)  # the process leads a process group of its own

    def stop(self, timeout: float = STOP_TIMEOUT) -> list[int | None]:
        """Stop the pools and nodes (all at once; SIGKILL to what is left after `timeout`
        seconds), then the servers; the nodes' exit codes (None: never started)."""
        for pool in self.workers:
            pool.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        codes = [node.wait(left()) for node in self.nodes]
        for pool in self.workers:
            pool.wait(left())
        self.model.stop()
        self.forge.stop()
        return codes

    def reports(self) -> list[NodeStatus | None]:
        return [node.status() for node in self.nodes]

    def mesh_complete(self, reports: list[NodeStatus | None]) -> bool:
        want = len(self.nodes) - 1
        return all(r is not None and len(r.alive_peers()) == want for r in reports)

    def tasks_known(self, reports: list[NodeStatus | None]) -> bool:
        return all(
            r is not None and {t.task_id for t in r.tasks} >= EXPECTED_TASKS for r in reports
        )

    def tasks_finished(self, reports: list[NodeStatus | None]) -> bool:
        """Every node knows how every sample task ended (a pull request, or a failure)."""
        return all(
            r is not None and {t.task_id for t in r.tasks if t.result_url} >= EXPECTED_TASKS
            for r in reports
        )


def render_lab(lab: Lab, reports: list[NodeStatus | None], elapsed: float) -> str:
    rows: list[list[object]] = []
    for node, report in zip(lab.nodes, reports, strict=True):
        if report is None:
            state = (
                "running"
                if node.running()
                else f"exited {node.process.returncode if node.process else '-'}"
            )
            rows.append([node.name, node.peer_id[-8:], state, "-", "-", "-", "-", "-", "-", "-"])
            continue
        caps = report.capabilities or {}
        rows.append(
            [
                node.name,
                node.peer_id[-8:],
                report.status,
                f"{len(report.alive_peers())}/{len(lab.nodes) - 1}",
                report.connections,
                report.mesh.get("capabilities", 0),
                f"{caps.get('cpu', '-')}",
                len(report.tasks),
                sum(report.messages.dropped.values()),
                _work(report),
            ]
        )
    headers = (
        "NODE",
        "PEER",
        "STATE",
        "PEERS ALIVE",
        "LINKS",
        "MESH",
        "CPU%",
        "TASKS",
        "DROPPED",
        "WORK",
    )
    view = f"Bzzz lab: {len(lab.nodes)} nodes on loopback, forge {lab.forge.url}, {elapsed:.0f}s"
    lines = [view, "", table(headers, rows)]
    known = next((r for r in reports if r is not None and r.tasks), None)
    if known is not None:
        polling = known.polling.get(SAMPLE_REPO)
        poller = polling.poller if polling else "-"
        lines += ["", f"tasks from {SAMPLE_REPO} (polled by {poller}):"]
        lines += [
            f"  {t.task_id:<14} {t.state:<9} {t.holder or '-':<12} {t.result_url or t.title}"
            for t in known.tasks
        ]
    return "\n".join(lines)


def _work(report: NodeStatus) -> str:
    """Whether the node takes tasks: its free slots, or why it takes none."""
    ready = report.readiness
    if ready.takes_tasks:
        return f"{ready.free_slots}/{ready.capacity} slots free"
    return "takes none: " + "; ".join((report.capabilities or {}).get("cannot_run") or ["-"])


def run_lab(
    count: int,
    duration: float | None,
    root: Path | None,
    *,
    keep: bool = False,
    until_ready: bool = False,
    until_done: bool = False,
) -> int:
    """Run the lab until Ctrl-C, SIGTERM, SIGHUP or `duration`; with `until_ready`, stop as
    soon as the mesh has formed and every node knows the sample tasks; with `until_done`,
    once every node knows how every sample task ended. 0 when what was waited for happened
    and every node exited cleanly."""
    lifeline.arm_from_env()  # a lab started by a test or a tool stops when that ends
    lab_root = Path(tempfile.mkdtemp(prefix="bzzz-lab-")) if root is None else root
    removed = root is None and not keep
    progress = Progress(time.monotonic())
    codes: list[int | None] = []
    lab = Lab(lab_root, count)
    guard: Guard | None = None
    with stop_signals() as received:
        try:
            # First the guard, which cleans up after a lab that is killed outright.
            lab.guard = guard = Guard(remove=lab_root if removed else None)
            say(f"lab homes in {lab_root}")
            lab.init()
            progress.started = time.monotonic()
            lab.start()
            while duration is None or progress.elapsed() < duration:
                reports = lab.reports()
                progress.update(lab, reports)
                if until_ready and progress.ready():
                    break
                if until_done and progress.finished_at is not None:
                    break
                progress.show()
                time.sleep(1.0)
        except Stopping as stop:
            say(f"\nstopping the lab ({stop.name})…")
        finally:
            received.append(0)  # from here on, a signal does not cut the cleanup short
            codes = lab.stop()
            if removed:
                shutil.rmtree(lab_root, ignore_errors=True)
            if guard is not None:
                guard.release()
    say("\n\n".join([progress.last_view, *progress.status_lines()]))
    clean = sum(code == 0 for code in codes)
    where = f"removed {lab_root}" if removed else f"homes kept in {lab_root}"
    say(f"lab stopped: {clean}/{count} nodes exited cleanly; {where}")
    reached = progress.finished_at is not None if until_done else progress.ready()
    return 0 if clean == count and reached else 1


class Stopping(BaseException):
    """A stop signal came (a BaseException, as KeyboardInterrupt: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP raise Stopping in the main thread, the first one only
    and only until the list yielded has an entry (the lab is stopping): a second signal
    does not cut the cleanup short. A hangup ignored from the start (`nohup`) stays
    ignored. The previous handlers come back after."""
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        first = not received
        received.append(signum)
        if first:
            raise Stopping(signum)

    wanted = [
        signum
        for signum in STOP_SIGNALS
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN
    ]
    previous = {signum: signal.signal(signum, on_signal) for signum in wanted}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def say(text: str) -> None:
    """Print, unless the terminal is gone (a hangup): the lab stops all the same."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


class Progress:
    """What the lab has reached so far, and when; shows the live view."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.formed_at: float | None = None
        self.tasks_at: float | None = None
        self.finished_at: float | None = None
        self.last_view = ""
        self._interactive = sys.stdout.isatty()
        self._printed_at = -1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, lab: Lab, reports: list[NodeStatus | None]) -> None:
        if self.formed_at is None and lab.mesh_complete(reports):
            self.formed_at = self.elapsed()
        if self.tasks_at is None and lab.tasks_known(reports):
            self.tasks_at = self.elapsed()
        if self.finished_at is None and lab.tasks_finished(reports):
            self.finished_at = self.elapsed()
        self.last_view = render_lab(lab, reports, self.elapsed())

    def ready(self) -> bool:
        return self.formed_at is not None and self.tasks_at is not None

    def show(self) -> None:
        text = "\n\n".join([self.last_view, *self.status_lines()])
        if self._interactive:
            say("\x1b[2J\x1b[H" + text + "\n\nCtrl-C stops the lab.")
        elif int(self.elapsed()) // 5 != self._printed_at:  # a snapshot every 5 s in a log
            self._printed_at = int(self.elapsed()) // 5
            say(text + "\n")

    def status_lines(self) -> list[str]:
        lines = []
        if self.formed_at is None:
            lines.append(
                "the mesh has not formed (node logs: each home's node.out; keep them with --keep)"
            )
        else:
            lines.append(
                f"mesh formed: every node hears every other, {self.formed_at:.1f}s after start"
            )
        if self.tasks_at is None:
            lines.append("not every node knows the sample tasks yet")
        else:
            lines.append(
                f"tasks announced: every node knows the {len(EXPECTED_TASKS)} tasks,"
                f" {self.tasks_at:.1f}s after start"
            )
        if self.finished_at is not None:
            lines.append(
                f"tasks finished: every node knows each task's result,"
                f" {self.finished_at:.1f}s after start"
            )
        return lines
