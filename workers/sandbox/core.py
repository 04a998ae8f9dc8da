"""What every sandbox backend shares: the result of a command, the errors, the interface,
the environment a command sees, and output capture that keeps the head and the tail."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from bzzz.config import SandboxSettings
from bzzz.errors import BzzzError, ExitCode

# Inside every sandbox: the workspace, the user commands run as, and the whole environment.
WORKSPACE = "/workspace"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own /tmp, private to it
SANDBOX_UID = 1000
SANDBOX_GID = 1000
SANDBOX_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": SANDBOX_TMP,  # tools' caches and dotfiles stay out of the workspace's diff
    "LANG": "C.UTF-8",
}
PASSWD = (
    f"sandbox:x:{SANDBOX_UID}:{SANDBOX_GID}:Bzzz sandbox:/tmp:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
)
GROUP = f"sandbox:x:{SANDBOX_GID}:\nnogroup:x:65534:\n"

TIMED_OUT_EXIT = 124  # as coreutils `timeout` reports it
KILLED_EXIT = 137  # 128 + SIGKILL: what the out-of-memory killer leaves


@dataclass(frozen=True)
class Extras:
    """What a sandbox adds for a program that is not the loop's commands (an agent CLI):
    host paths bound read-only at the same path (its installation, its interpreter), files
    bound read-only elsewhere, a private host directory bound writable (the model relay's
    socket and the CLI's transcript), and variables set over SANDBOX_ENV. Nothing here
    is a secret of the node's."""

    read_only: tuple[str, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()  # (host path, path inside), read-only
    writable: tuple[tuple[str, str], ...] = ()  # (host directory, path inside)
    env: tuple[tuple[str, str], ...] = ()

    def environment(self) -> dict[str, str]:
        return {**SANDBOX_ENV, **dict(self.env)}

    def bound(self) -> list[tuple[str, str]]:
        """Every (host path, path inside) pair to bind read-only."""
        return [(path, path) for path in self.read_only] + list(self.mounts)


NO_EXTRAS = Extras()


@dataclass(frozen=True)
class ExecResult:
    exit_code: int  # the command's; 124 when it timed out, 137 when killed (OOM)
    stdout: str
    stderr: str
    truncated: bool  # output was cut (to settings.output_limit characters, head and tail kept)
    timed_out: bool
    duration_s: float


class SandboxError(BzzzError):
    """The sandbox itself failed (not the command run in it)."""

    exit_code = ExitCode.CONFIG


class SandboxUnavailable(SandboxError):
    """No sandbox backend can run here. Commands are never run unsandboxed instead."""


class Sandbox(Protocol):
    backend: str  # "docker" or "bubblewrap"

    @property
    def limits(self) -> str:
        """What holds its memory, process and CPU limits, in words."""
        ...

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """Run `sh -c command` in /workspace; `timeout` defaults to settings.command_timeout."""
        ...

    def close(self) -> None:
        """Destroy the sandbox and everything running in it; idempotent."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class BaseSandbox:
    """One command at a time, timeouts defaulted, a closed sandbox refused, `with` support."""

    backend: str

    def __init__(
        self, settings: SandboxSettings, workspace: Path, extras: Extras = NO_EXTRAS
    ) -> None:
        self.settings = settings
        self.workspace = checked_workspace(workspace)
        self.extras = extras
        self._lock = threading.Lock()
        self._closed = False

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        seconds = self.settings.command_timeout if timeout is None else timeout
        if seconds <= 0:
            raise ValueError(f"timeout must be positive, not {seconds}")
        with self._lock:
            if self._closed:
                raise SandboxError(f"this {self.backend} sandbox is closed")
            return self._run(command, seconds)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._destroy()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, command: str, timeout: float) -> ExecResult:
        raise NotImplementedError

    def _destroy(self) -> None:
        raise NotImplementedError


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def checked_workspace(workspace: Path) -> Path:
    path = Path(workspace).resolve()
    if not path.is_dir():
        raise SandboxError(f"the workspace {path} is not a directory")
    return path


class OutputCapture:
    """A stream's first and last `limit` characters, however much the command writes:
    the bytes in between are counted, not kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._keep = limit * 4  # bytes: one character is at most four bytes of UTF-8
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def feed(self, data: bytes) -> None:
        self._total += len(data)
        room = self._keep - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            del self._tail[: max(0, len(self._tail) - self._keep)]

    def text(self) -> tuple[str, bool]:
        """The output as text, and whether its middle was cut."""
        dropped = self._total - len(self._head) - len(self._tail)
        # surrogateescape keeps invalid bytes countable and exact until the very end
        if dropped == 0:
            whole = bytes(self._head + self._tail).decode("utf-8", "surrogateescape")
            if len(whole) <= self.limit:
                return _clean(whole), False
            head, tail = whole, whole
        else:
            head = bytes(self._head).decode("utf-8", "surrogateescape")
            tail = bytes(self._tail).decode("utf-8", "surrogateescape")
        budget = max(0, self.limit - len(_marker(self._total)))
        kept_head = head[: budget - budget // 2]
        kept_tail = tail[len(tail) - budget // 2 :] if budget // 2 else ""
        cut = self._total - _utf8_len(kept_head) - _utf8_len(kept_tail)
        return _clean(kept_head + _marker(cut) + kept_tail), True


def _marker(cut_bytes: int) -> str:
    return f"\n[... {cut_bytes} bytes cut ...]\n"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _clean(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
