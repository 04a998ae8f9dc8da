"""A private Docker engine for tests, benchmarks and labs: its socket, images and state
all under one directory, no bridge or iptables rules (sandboxes have no network), and
stopped by its PID. Needs root and the Debian package docker.io."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import docker

from workers.sandbox.core import SandboxError
from workers.sandbox.docker_backend import DOCKER_ERRORS

STORAGE_DRIVERS = ("overlay2", "vfs")  # vfs works on any file system, copying each layer


def dockerd_path() -> str | None:
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")


class PrivateDockerd:
    def __init__(self, root: Path) -> None:
        self.root = root  # keep it short: a unix socket path has at most 107 bytes
        self.host = f"unix://{root}/docker.sock"
        self.storage_driver = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, within: float = 60.0) -> Self:
        binary = dockerd_path()
        if binary is None:
            raise SandboxError("dockerd is not installed. Fix: apt-get install docker.io")
        problems = []
        for driver in STORAGE_DRIVERS:
            problem = self._try_start(binary, driver, within)
            if problem is None:
                self.storage_driver = driver
                return self
            problems.append(f"{driver}: {problem}")
        raise SandboxError("dockerd did not start. " + " | ".join(problems))

    def _try_start(self, binary: str, driver: str, within: float) -> str | None:
        data = self.root / f"data-{driver}"
        log = self.root / f"dockerd-{driver}.log"
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [
                    binary,
                    "--host", self.host,
                    "--data-root", str(data),
                    "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "docker.pid"),
                    "--storage-driver", driver,
                    "--iptables=false",
                    "--ip6tables=false",
                    "--bridge=none",
                    "--ip-masq=false",
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return log.read_text(errors="replace")[-600:].strip()
            if self._answers():
                return None
            time.sleep(0.1)
        self.stop()
        return f"no answer within {within:g} s"

    def _answers(self) -> bool:
        if not (self.root / "docker.sock").exists():
            return False
        try:
            client = docker.DockerClient(base_url=self.host, timeout=2)
        except DOCKER_ERRORS:
            return False
        try:
            return bool(client.ping())
        except DOCKER_ERRORS:
            return False
        finally:
            client.close()

    def stop(self, within: float = 20.0) -> None:
        """Stop dockerd (it stops its containers and its containerd); SIGKILL them after
        `within` seconds."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            containerd = self.root / "exec" / "containerd" / "containerd.pid"
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(containerd.read_text().strip()), signal.SIGKILL)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
