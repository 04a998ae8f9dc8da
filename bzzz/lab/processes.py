"""The lab's process handles: a `bzzz node` (NodeProcess) and its `bzzz worker` pool
(WorkerPool) as OS processes of their own, each in its own process group, and the helpers
that start them on loopback (free_port) and wait for them (wait_for). `bzzz lab run` and
the tests both run their nodes through these.

Nothing they start outlives the process that started it: each runs under the lifeline
launcher with BZZZ_DIE_WITH_PARENT (bzzz/lifeline.py), so that it gets SIGTERM when its
starter exits, even killed outright; killing one kills its whole process group. Start
them from the main thread (the signal comes when the starting thread ends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bzzz import lifeline
from bzzz.config import CONTROL_SOCKET
from bzzz.control import ControlError, request
from bzzz.home import init_home
from bzzz.node.status import NodeStatus

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, and not one this process handed out before: a node's listen,
    gateway and dashboard ports are picked before it binds any of them, and the kernel
    may offer a just-closed port again."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class NodeProcess:
    """One `bzzz node` in its own OS process, with its home directory."""

    def __init__(self, home: Path, name: str, port: int, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.name = name
        self.port = port
        self.peer_id = ""
        self.env = env or {}
        self.gateway_url = ""  # the node's model gateway, once init made its home
        self.dashboard_url = ""  # its operator's window
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def addr(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.port}/p2p/{self.peer_id}"

    def init(self, bootstrap: Sequence[str] = (), **extra: dict[str, Any]) -> str:
        network = {"mdns": False, **extra.pop("network", {})}
        # Nodes of one machine need model gateways on ports of their own.
        gateway = {"listen": f"127.0.0.1:{free_port()}", **extra.pop("gateway", {})}
        self.gateway_url = f"http://{gateway['listen']}" if gateway["listen"] else ""
        dashboard = {"listen": f"127.0.0.1:{free_port()}", **extra.pop("dashboard", {})}
        self.dashboard_url = f"http://{dashboard['listen']}/" if dashboard["listen"] else ""
        self.peer_id = str(
            init_home(
                self.home,
                self.name,
                listen=[f"/ip4/127.0.0.1/tcp/{self.port}"],
                bootstrap=bootstrap,
                extra={"network": network, "gateway": gateway, "dashboard": dashboard, **extra},
                force=True,
            )
        )
        return self.peer_id

    def start(self, wait: bool = True, command_prefix: Sequence[str] = ()) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is running already")
        self.process = start_process(
            [*command_prefix, sys.executable, "-m", "bzzz", "node", "--home", str(self.home)],
            self.home / "node.out",
            self.env,
        )
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

    def status(self) -> NodeStatus | None:
        """The node's status report, or None while it does not answer."""
        reply = self.status_json()
        return None if reply is None else NodeStatus.from_json(reply)

    def status_json(self) -> dict[str, Any] | None:
        """The report as `bzzz status --json` prints it."""
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
        """SIGKILL the node's process group, and wait for the node."""
        if self.process is not None and self.process.poll() is None:
            kill_group(self.process.pid)
            self.process.wait()


def start_process(
    command: Sequence[str], out: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """`command` in a session (and process group) of its own, its output appended to `out`,
    with `env` added to this process's environment; it dies with this process."""
    with out.open("ab") as log:
        return subprocess.Popen(
            lifeline.command(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=lifeline.child_env({**os.environ, "PYTHONUNBUFFERED": "1", **env}),
            start_new_session=True,
        )


def kill_group(pgid: int) -> None:
    """SIGKILL every process of process group `pgid` (none left is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


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
        self.process = start_process(
            [*self.prefix, *command], self.node.home / "worker.out", {**self.node.env, **self.env}
        )

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Wait for the supervisor to exit, then SIGKILL what is left of its process group
        (all of it if it does not exit in time)."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        kill_group(self.process.pid)
        return self.process.wait(5)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.send_signal(signal.SIGTERM)
        self.wait(timeout)
