"""A local lab: N nodes as separate processes on loopback, their mesh shown forming live.

Each node gets a home under the lab root, listens on a free loopback port and
bootstraps to the node before it (a chain); the DHT fills in the rest of the
mesh. mDNS is off: on loopback it would advertise on the machine's real network.
The same NodeProcess class runs the nodes of the multi-process tests.
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
from bzzz.home import init_home
from bzzz.render import table

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


class Lab:
    def __init__(self, root: Path, count: int) -> None:
        self.root = root
        self.nodes = [
            NodeProcess(root / f"node-{i}", f"lab-node-{i}", free_port())
            for i in range(1, count + 1)
        ]

    def init(self) -> None:
        previous: list[str] = []
        for node in self.nodes:
            node.init(bootstrap=previous[-1:])
            previous.append(node.addr)

    def start(self) -> None:
        for node in self.nodes:
            node.start(wait=False)

    def stop(self) -> list[int | None]:
        for node in self.nodes:
            node.send_signal(signal.SIGTERM)
        return [node.wait() for node in self.nodes]

    def reports(self) -> list[dict[str, Any] | None]:
        return [node.status() for node in self.nodes]

    def mesh_complete(self, reports: list[dict[str, Any] | None]) -> bool:
        want = len(self.nodes) - 1
        return all(r is not None and sum(p["alive"] for p in r["peers"]) == want for r in reports)


def render_lab(lab: Lab, reports: list[dict[str, Any] | None], elapsed: float) -> str:
    rows = []
    for node, report in zip(lab.nodes, reports, strict=True):
        if report is None:
            state = (
                "running"
                if node.running()
                else f"exited {node.process.returncode if node.process else '-'}"
            )
            rows.append([node.name, node.peer_id[-8:], state, "-", "-", "-", "-", "-"])
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
                dropped,
            ]
        )
    headers = ("NODE", "PEER", "STATE", "PEERS ALIVE", "LINKS", "MESH", "CPU%", "DROPPED")
    return f"Bzzz lab: {len(lab.nodes)} nodes on loopback, {elapsed:.0f}s\n\n" + table(
        headers, rows
    )


def run_lab(count: int, duration: float | None, root: Path | None, keep: bool = False) -> int:
    made_root = root is None
    lab_root = Path(tempfile.mkdtemp(prefix="bzzz-lab-")) if root is None else root
    lab = Lab(lab_root, count)
    interactive = sys.stdout.isatty()
    print(f"lab homes in {lab_root}")
    lab.init()
    started = time.monotonic()
    lab.start()
    formed_at: float | None = None
    codes: list[int | None] = []
    try:
        while duration is None or time.monotonic() - started < duration:
            reports = lab.reports()
            elapsed = time.monotonic() - started
            if formed_at is None and lab.mesh_complete(reports):
                formed_at = elapsed
            view = render_lab(lab, reports, elapsed)
            if formed_at is not None:
                view += (
                    f"\n\nmesh formed: every node hears every other, {formed_at:.1f}s after start"
                )
            if interactive:
                print("\x1b[2J\x1b[H" + view + "\n\nCtrl-C stops the lab.", flush=True)
            elif int(elapsed) % 5 == 0:
                print(view + "\n", flush=True)
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping the lab…")
    finally:
        codes = lab.stop()
        if made_root and not keep:
            shutil.rmtree(lab_root, ignore_errors=True)
    clean = all(code == 0 for code in codes)
    print(f"lab stopped: {sum(code == 0 for code in codes)}/{count} nodes exited cleanly")
    if formed_at is None:
        print("the mesh did not form; node logs are in each home's node.out (use --keep)")
    return 0 if clean and formed_at is not None else 1
