"""The Docker backend: one long-lived container per sandbox (no network, read-only root,
tmpfs /tmp, memory/pids/CPU limits, no capabilities, no-new-privileges), each command a
fresh `sh -c` exec in it under coreutils `timeout`, read with a client-side deadline.

Inside, commands run as the workspace's owner, or as uid 1000 when root owns the
workspace: the tree is then lent to uid 1000 while the sandbox lives and handed back to
its owner when the sandbox is closed. PID 1 (docker-init) runs as nobody, apart from the
commands, so that killing all of the command user's processes after each command leaves
the container standing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import struct
import time
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import DockerException, ImageNotFound
from docker.models.containers import Container

from bzzz.config import SandboxSettings
from workers.sandbox.core import (
    KILLED_EXIT,
    NO_EXTRAS,
    SANDBOX_GID,
    SANDBOX_TMP,
    SANDBOX_UID,
    TIMED_OUT_EXIT,
    WORKSPACE,
    BaseSandbox,
    ExecResult,
    Extras,
    OutputCapture,
    SandboxError,
    SandboxUnavailable,
    process_alive,
)

API_TIMEOUT = 60.0
PROBE_TIMEOUT = 3.0
KILL_AFTER = 2.0  # seconds between `timeout`'s SIGTERM and its SIGKILL
BACKSTOP = 10.0  # more seconds the client waits before it declares the container dead
NOBODY = "65534:65534"
LABEL = "bzzz.sandbox"
OWNER_LABEL = "bzzz.sandbox.owner"  # HOST:PID of the process that made the container
# $1: seconds, $2: the command. `timeout` signals its whole process group; `kill -9 -1`
# then ends whatever else the command left behind (background jobs, setsid daemons).
RUN_COMMAND = (
    f'timeout -k {KILL_AFTER:g} "$1" sh -c "$2"; status=$?; kill -9 -1 2>/dev/null; exit $status'
)
DOCKER_ERRORS = (DockerException, requests.RequestException)


def docker_client(settings: SandboxSettings, timeout: float = API_TIMEOUT) -> docker.DockerClient:
    """A client of settings.docker_host, else of DOCKER_HOST, else of the default socket."""
    try:
        if settings.docker_host:
            return docker.DockerClient(base_url=settings.docker_host, timeout=int(timeout))
        return docker.from_env(timeout=int(timeout))
    except DOCKER_ERRORS as exc:
        where = settings.docker_host or os.environ.get("DOCKER_HOST") or "the default socket"
        raise SandboxUnavailable(
            f"no Docker engine answers at {where} ({exc}). Fix: start dockerd, or set"
            " sandbox.docker_host (or DOCKER_HOST) to a running engine."
        ) from None


def docker_problem(settings: SandboxSettings) -> str | None:
    """Why Docker cannot sandbox here, or None when the engine answers and has the image."""
    try:
        client = docker_client(settings, PROBE_TIMEOUT)
    except SandboxUnavailable as exc:
        return str(exc)
    try:
        client.images.get(settings.image)
    except ImageNotFound:
        return (
            f"the Docker engine has no image {settings.image}. Fix: run `bzzz sandbox build-image`."
        )
    except DOCKER_ERRORS as exc:
        return f"the Docker engine did not answer ({exc}). Fix: check that dockerd runs."
    finally:
        client.close()
    return None


class DockerSandbox(BaseSandbox):
    backend = "docker"
    limits = "the container's cgroup (memory, pids, CPU)"

    def __init__(
        self, settings: SandboxSettings, workspace: Path, extras: Extras = NO_EXTRAS
    ) -> None:
        super().__init__(settings, workspace, extras)
        self._client = docker_client(settings)
        self._user, self._owner = _command_user(self.workspace)
        if self._owner is not None:
            _chown_tree(self.workspace, SANDBOX_UID, SANDBOX_GID)
        self._broken = False
        try:
            remove_orphans(self._client)
            self.container: Container = self._client.containers.run(**self._container_spec())
        except DOCKER_ERRORS as exc:
            self._hand_back()
            self._client.close()
            raise SandboxError(f"cannot start a container of {settings.image}: {exc}") from exc

    def _container_spec(self) -> dict[str, Any]:
        memory = f"{self.settings.memory_mb}m"
        cpus = min(self.settings.cpus, float(os.cpu_count() or 1))
        return {
            "image": self.settings.image,
            "command": ["sleep", "infinity"],
            "name": f"bzzz-sandbox-{secrets.token_hex(6)}",
            "hostname": "sandbox",
            "labels": {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:{os.getpid()}"},
            "detach": True,
            "init": True,  # docker-init reaps what the commands orphan
            "user": NOBODY,
            "environment": self.extras.environment(),
            "working_dir": WORKSPACE,
            "volumes": {
                str(self.workspace): {"bind": WORKSPACE, "mode": "rw"},
                **{host: {"bind": inside, "mode": "ro"} for host, inside in self.extras.bound()},
                **{host: {"bind": inside, "mode": "rw"} for host, inside in self.extras.writable},
            },
            "network_mode": "none",
            "read_only": True,
            "tmpfs": {SANDBOX_TMP: f"rw,exec,nosuid,nodev,size={memory},mode=1777"},
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": self.settings.pids,
            "nano_cpus": int(cpus * 1e9),
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }

    def _run(self, command: str, timeout: float) -> ExecResult:
        if self._broken:
            raise SandboxError("this sandbox's container stopped answering and was destroyed")
        limit = self.settings.output_limit
        outputs = {1: OutputCapture(limit), 2: OutputCapture(limit)}
        api = self._client.api
        started = time.monotonic()
        deadline = started + timeout + KILL_AFTER + BACKSTOP
        try:
            exec_id = api.exec_create(
                self.container.id,
                ["sh", "-c", RUN_COMMAND, "bzzz-exec", f"{timeout:.3f}", command],
                user=self._user,
                workdir=WORKSPACE,
            )["Id"]
            stream = api.exec_start(exec_id, socket=True)
            try:
                _read_frames(stream, outputs, deadline)
            finally:
                stream.close()
            exit_code = self._exit_code(exec_id, deadline)
        except _DeadlinePassed:
            self._broken = True
            self._remove_container()
            raise SandboxError(
                f"the container did not end a command {BACKSTOP:g} s after its timeout;"
                " the sandbox was destroyed"
            ) from None
        except DOCKER_ERRORS as exc:
            raise SandboxError(f"the Docker engine failed to run a command: {exc}") from exc
        duration = time.monotonic() - started
        # `timeout` exits 124, or 137 when its SIGTERM had to be followed by SIGKILL; a
        # command that exits so by itself before the time is up did not time out.
        timed_out = exit_code in (TIMED_OUT_EXIT, KILLED_EXIT) and duration >= timeout
        out, out_cut = outputs[1].text()
        err, err_cut = outputs[2].text()
        return ExecResult(
            exit_code=TIMED_OUT_EXIT if timed_out else exit_code,
            stdout=out,
            stderr=err,
            truncated=out_cut or err_cut,
            timed_out=timed_out,
            duration_s=duration,
        )

    def _exit_code(self, exec_id: str, deadline: float) -> int:
        while True:
            state = self._client.api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            if time.monotonic() > deadline:
                raise _DeadlinePassed
            time.sleep(0.01)

    def _remove_container(self) -> None:
        with contextlib.suppress(*DOCKER_ERRORS):
            self.container.remove(force=True)

    def _destroy(self) -> None:
        self._remove_container()
        self._client.close()
        self._hand_back()

    def _hand_back(self) -> None:
        if self._owner is not None:
            _chown_tree(self.workspace, *self._owner)


def remove_orphans(client: docker.DockerClient) -> None:
    """Remove the sandbox containers of processes on this host that died without closing
    them (a worker killed with SIGKILL): they would sleep forever."""
    host = socket.gethostname()
    for container in client.api.containers(all=True, filters={"label": LABEL}):
        owner = (container.get("Labels") or {}).get(OWNER_LABEL, "")
        name, _, pid = owner.rpartition(":")
        if name == host and pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(*DOCKER_ERRORS):
                client.api.remove_container(container["Id"], force=True)


class _DeadlinePassed(Exception):
    pass


def _read_frames(stream: Any, outputs: dict[int, OutputCapture], deadline: float) -> None:
    """Read Docker's multiplexed stream (8-byte headers: stream number, size) until it
    ends, giving up at `deadline` (the SDK's own reads wait forever)."""
    while header := _read_exactly(stream, 8, deadline):
        kind, size = struct.unpack(">BxxxL", header)
        data = _read_exactly(stream, size, deadline)
        if kind in outputs:
            outputs[kind].feed(data)


def _read_exactly(stream: Any, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        remaining = deadline - time.monotonic()
        pending = getattr(stream, "pending", None)  # TLS sockets may hold decrypted bytes
        if not (pending and pending()):
            ready, _, _ = select.select([stream], [], [], max(0.0, remaining))
            if not ready:
                raise _DeadlinePassed
        wanted = size - len(data)
        chunk = stream.recv(wanted) if hasattr(stream, "recv") else stream.read(wanted)
        if not chunk:
            if data:
                raise SandboxError("the Docker engine cut a command's output short")
            return b""
        data += chunk
    return data


def _command_user(workspace: Path) -> tuple[str, tuple[int, int] | None]:
    """The uid:gid that commands run as, and the owner to hand the workspace back to
    (None when it is not lent)."""
    info = workspace.stat()
    if info.st_uid != 0:
        return f"{info.st_uid}:{info.st_gid}", None
    if os.geteuid() != 0:
        raise SandboxError(
            f"the workspace {workspace} belongs to root; commands cannot run as root and"
            " this process cannot lend it to another user. Fix: create the workspace as"
            " the user that runs the worker."
        )
    return f"{SANDBOX_UID}:{SANDBOX_GID}", (info.st_uid, info.st_gid)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
