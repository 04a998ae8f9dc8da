"""A local lab: N nodes as separate processes on loopback, from issues to pull requests.

Each node gets a home under the lab root, listens on a free loopback port and
bootstraps to the node before it (a chain); the DHT fills in the rest of the
mesh. mDNS is off: on loopback it would advertise on the machine's real network.
A local forge, seeded with a sample repository, gives each node an account and
the nodes their tasks; the lab model server (ollama's API, answering from the sample
repository's playbook) is their model; each node has a `bzzz worker` pool that runs
its claimed tasks in a sandbox and opens pull requests. The same NodeProcess class
runs the nodes of the tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bzzz.config import CONTROL_SOCKET
from bzzz.control import ControlError, request
from bzzz.forge.server import LocalForge
from bzzz.home import init_home
from bzzz.labmodel import LabModelServer
from bzzz.render import table
from bzzz.sample import EXPECTED_TASKS, SAMPLE_OWNER, SAMPLE_REPO, sample_world

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NodeProcess:
    """One `bzzz node` in its own OS process, with its home directory."""

    def __init__(self, home: Path, name: str, port: int, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.name = name
        self.port = port
        self.peer_id = ""
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    def init(self, bootstrap: Sequence[str] = (), **extra: dict[str, Any]) -> str:
        network = {"mdns": False, **extra.pop("network", {})}
        self.peer_id = str(
            init_home(
                self.home,
                self.name,
                listen=[f"/ip4/127.0.0.1/tcp/{self.port}"],
                bootstrap=bootstrap,
                extra={"network": network, **extra},
                force=True,
            )
        )
        return self.peer_id

    def start(self, wait: bool = True, command_prefix: Sequence[str] = ()) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is running already")
        log = (self.home / "node.out").open("ab")
        self.process = subprocess.Popen(
            [*command_prefix, sys.executable, "-m", "bzzz", "node", "--home", str(self.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        wait_for(
            lambda: self.status() is not None,
            timeout,
            f"{self.name} did not start",
            check=self._check_alive,
        )

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.process.returncode}:\n{self.output()[-3000:]}"
            )

    def status(self) -> dict[str, Any] | None:
        try:
            return request(self.home / CONTROL_SOCKET, {"cmd": "status"}, timeout=5.0)
        except ControlError:
            return None

    def output(self) -> str:
        path = self.home / "node.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Wait for the process to exit; SIGKILL it if it does not in time."""
        if self.process is None:
            return None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.process.returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Signal the node and wait for it; SIGKILL if it does not exit in time."""
        self.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    message: str,
    interval: float = 0.1,
    check: Callable[[], None] | None = None,
) -> None:
    """Poll `condition` until it holds; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message} within {timeout:g} s")
        time.sleep(interval)


class WorkerPool:
    """`bzzz worker` for a node: its worker processes, in their own process group."""

    def __init__(
        self,
        node: NodeProcess,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """`env`: added to the node's; `prefix`: a command to run the pool under (e.g. a
        network namespace's `ip netns exec NS`)."""
        self.node = node
        self.env = env or {}
        self.prefix = list(prefix)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "bzzz", "worker", "--home", str(self.node.home)]
        with (self.node.home / "worker.out").open("ab") as out:
            self.process = subprocess.Popen(
                [*self.prefix, *command],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.node.env, **self.env},
                start_new_session=True,
            )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


class Lab:
    """N nodes with their workers, a local forge seeded with a sample repository whose
    issues they take, and the lab model server they ask."""

    def __init__(self, root: Path, count: int, poll_interval: float = 5.0) -> None:
        self.root = root
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
        for pool in self.workers:
            pool.start()

    def stop(self) -> list[int | None]:
        for pool in self.workers:
            if pool.process is not None and pool.process.poll() is None:
                pool.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.send_signal(signal.SIGTERM)
        codes = [node.wait() for node in self.nodes]
        for pool in self.workers:
            pool.stop()
        self.model.stop()
        self.forge.stop()
        return codes

    def reports(self) -> list[dict[str, Any] | None]:
        return [node.status() for node in self.nodes]

    def mesh_complete(self, reports: list[dict[str, Any] | None]) -> bool:
        want = len(self.nodes) - 1
        return all(r is not None and sum(p["alive"] for p in r["peers"]) == want for r in reports)

    def tasks_known(self, reports: list[dict[str, Any] | None]) -> bool:
        return all(
            r is not None and {t["task_id"] for t in r["tasks"]} >= EXPECTED_TASKS for r in reports
        )

    def tasks_finished(self, reports: list[dict[str, Any] | None]) -> bool:
        """Every node knows how every sample task ended (a pull request, or a failure)."""
        return all(
            r is not None
            and {t["task_id"] for t in r["tasks"] if t.get("result_url")} >= EXPECTED_TASKS
            for r in reports
        )


def render_lab(lab: Lab, reports: list[dict[str, Any] | None], elapsed: float) -> str:
    rows: list[list[object]] = []
    for node, report in zip(lab.nodes, reports, strict=True):
        if report is None:
            state = (
                "running"
                if node.running()
                else f"exited {node.process.returncode if node.process else '-'}"
            )
            rows.append([node.name, node.peer_id[-8:], state, "-", "-", "-", "-", "-", "-"])
            continue
        alive = [p["node_id"] for p in report["peers"] if p["alive"]]
        dropped = sum((report["messages"].get("dropped") or {}).values())
        caps = report.get("capabilities") or {}
        rows.append(
            [
                node.name,
                node.peer_id[-8:],
                report["status"],
                f"{len(alive)}/{len(lab.nodes) - 1}",
                report["connections"],
                report["mesh"].get("capabilities", 0),
                f"{caps.get('cpu', '-')}",
                len(report.get("tasks") or []),
                dropped,
            ]
        )
    headers = ("NODE", "PEER", "STATE", "PEERS ALIVE", "LINKS", "MESH", "CPU%", "TASKS", "DROPPED")
    view = f"Bzzz lab: {len(lab.nodes)} nodes on loopback, forge {lab.forge.url}, {elapsed:.0f}s"
    lines = [view, "", table(headers, rows)]
    known = next((r for r in reports if r is not None and r.get("tasks")), None)
    if known is not None:
        polling = known.get("polling", {}).get(SAMPLE_REPO, {})
        lines += ["", f"tasks from {SAMPLE_REPO} (polled by {polling.get('poller', '-')}):"]
        lines += [
            f"  {t['task_id']:<14} {t['state']:<9} {t.get('holder') or '-':<12}"
            f" {t.get('result_url') or t['title']}"
            for t in known["tasks"]
        ]
    return "\n".join(lines)


def run_lab(
    count: int,
    duration: float | None,
    root: Path | None,
    *,
    keep: bool = False,
    until_ready: bool = False,
    until_done: bool = False,
) -> int:
    """Run the lab until Ctrl-C or `duration`; with `until_ready`, stop as soon as the mesh
    has formed and every node knows the sample tasks; with `until_done`, once every node
    knows how every sample task ended. 0 when what was waited for happened and every node
    exited cleanly."""
    made_root = root is None
    lab_root = Path(tempfile.mkdtemp(prefix="bzzz-lab-")) if root is None else root
    lab = Lab(lab_root, count)
    print(f"lab homes in {lab_root}")
    lab.init()
    progress = Progress(time.monotonic())
    lab.start()
    codes: list[int | None] = []
    try:
        while duration is None or progress.elapsed() < duration:
            reports = lab.reports()
            progress.update(lab, reports)
            if until_ready and progress.ready():
                break
            if until_done and progress.finished_at is not None:
                break
            progress.show()
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping the lab…")
    finally:
        codes = lab.stop()
        if made_root and not keep:
            shutil.rmtree(lab_root, ignore_errors=True)
    print("\n\n".join([progress.last_view, *progress.status_lines()]))
    print(f"lab stopped: {sum(code == 0 for code in codes)}/{count} nodes exited cleanly")
    clean = all(code == 0 for code in codes)
    reached = progress.finished_at is not None if until_done else progress.ready()
    return 0 if clean and reached else 1


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

    def update(self, lab: Lab, reports: list[dict[str, Any] | None]) -> None:
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
            print("\x1b[2J\x1b[H" + text + "\n\nCtrl-C stops the lab.", flush=True)
        elif int(self.elapsed()) // 5 != self._printed_at:  # a snapshot every 5 s in a log
            self._printed_at = int(self.elapsed()) // 5
            print(text + "\n", flush=True)

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
