"""The bubblewrap backend: each command in fresh user, pid, network, mount, IPC and UTS
namespaces, as uid 1000 with no capabilities, over a read-only root built from the
host's /usr, with limits from a per-sandbox cgroup (else rlimits, which hold the process
limit only for a worker that does not run as root: as root it refuses to run without a
cgroup).

The sandbox's own /tmp is a private directory on the host that lasts as long as the
sandbox, so that files persist between commands as they do in a Docker container.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import IO

from bzzz.config import SandboxSettings
from workers.sandbox.cgroups import Cgroup, create_cgroup
from workers.sandbox.core import (
    GROUP,
    NO_EXTRAS,
    PASSWD,
    SANDBOX_ENV,
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
)

ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # symlinks into /usr, or dirs
# What of the host's /etc programs need: library paths, `alternatives` links, the time zone.
ETC_ENTRIES = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime")
PROBE_TIMEOUT = 10.0
# Puts the shell into the cgroups (`$@`: count, procs files, then bwrap's argv), then execs.
JOIN_CGROUPS = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift;'
JOIN_CGROUPS += ' n=$((n - 1)); done; exec "$@"'
# Inside: print the marker ($1) that shows bwrap set the sandbox up, then run the command.
START_COMMAND = 'printf %s "$1" && exec /bin/sh -c "$2"'


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap is not installed. Fix: apt-get install bubblewrap (or run scripts/setup)."
        )
    return path


def bwrap_args(workspace: Path, state: Path, extras: Extras = NO_EXTRAS) -> list[str]:
    """bwrap's options: `state` holds the sandbox's /tmp and its passwd and group files."""
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid", str(SANDBOX_UID),
        "--gid", str(SANDBOX_GID),
        "--hostname", "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop", "ALL",
        "--clearenv",
    ]  # fmt: skip
    for name, value in extras.environment().items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    for name in ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    for name in ("passwd", "group", "hosts"):
        args += ["--ro-bind", str(state / "etc" / name), f"/etc/{name}"]
    args += [
        "--bind", str(workspace), WORKSPACE,
        "--bind", str(state / "tmp"), SANDBOX_TMP,
        "--proc", "/proc",
        "--dev", "/dev",
    ]  # fmt: skip
    for source, target in extras.bound():
        args += ["--ro-bind", source, target]
    for source, target in extras.writable:
        args += ["--bind", source, target]
    return [*args, "--chdir", WORKSPACE, "--remount-ro", "/"]


def make_state_dir() -> Path:
    """A private host directory with the sandbox's /tmp and /etc files."""
    state = Path(tempfile.mkdtemp(prefix="bzzz-sandbox-"))  # mode 0700
    (state / "tmp").mkdir()
    (state / "etc").mkdir()
    (state / "etc" / "passwd").write_text(PASSWD)
    (state / "etc" / "group").write_text(GROUP)
    (state / "etc" / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
    return state


def rlimit_prefix(settings: SandboxSettings) -> list[str]:
    """The fallback where no cgroup can be made: address space and process count, per
    process (RLIMIT_NPROC counts all of the host user's processes, and not root's)."""
    memory = settings.memory_mb * 1024 * 1024
    return ["prlimit", f"--as={memory}", f"--nproc={settings.pids}", "--"]


RLIMITS = (
    "rlimits (RLIMIT_AS per process; RLIMIT_NPROC over all of the host user's processes;"
    " no CPU limit)"
)
ROOT_NEEDS_A_CGROUP = (
    "this worker runs as root and no cgroup can be made here, so nothing would hold"
    " sandbox.pids: RLIMIT_NPROC, the fallback, does not apply to root, and a fork bomb"
    " would run unchecked. Fix: let root write the cgroup v1 memory and pids controllers,"
    " or run the worker in a cgroup v2 with the memory and pids controllers delegated"
    " (systemd: Delegate=yes), or run it as an unprivileged user, or use the Docker backend"
)


def make_cgroup(settings: SandboxSettings, *, use_cgroups: bool = True) -> Cgroup | None:
    """A sandbox's cgroup with the settings' limits, or None where rlimits hold them
    instead: for a worker that does not run as root. As root, where no cgroup can be made
    (or `use_cgroups` is False), raises SandboxUnavailable: the process limit would not
    hold."""
    cpus = min(settings.cpus, float(os.cpu_count() or 1))
    cgroup = create_cgroup(settings.memory_mb, settings.pids, cpus) if use_cgroups else None
    if cgroup is None and os.geteuid() == 0:
        raise SandboxUnavailable(ROOT_NEEDS_A_CGROUP)
    return cgroup


class BubblewrapSandbox(BaseSandbox):
    backend = "bubblewrap"

    def __init__(
        self,
        settings: SandboxSettings,
        workspace: Path,
        extras: Extras = NO_EXTRAS,
        *,
        use_cgroups: bool = True,
    ) -> None:
        super().__init__(settings, workspace, extras)
        owner = self.workspace.stat().st_uid
        if owner != os.geteuid():
            raise SandboxError(
                f"the workspace {self.workspace} belongs to uid {owner}, not to this process"
                f" (uid {os.geteuid()}); inside the sandbox it would not be writable."
                " Fix: create the workspace as the user that runs the worker."
            )
        self._bwrap = bwrap_path()
        self.cgroup = make_cgroup(settings, use_cgroups=use_cgroups)
        try:
            self._state = make_state_dir()
        except BaseException:
            if self.cgroup is not None:
                self.cgroup.remove()
            raise
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def limits(self) -> str:
        if self.cgroup is None:
            return RLIMITS
        return f"a cgroup v{self.cgroup.version} (memory, pids, CPU)"

    def _argv(self, command: str, marker: str) -> list[str]:
        sandboxed = [
            self._bwrap,
            *bwrap_args(self.workspace, self._state, self.extras),
            "--",
            "/bin/sh",
            "-c",
            START_COMMAND,
            "bzzz-start",
            marker,
            command,
        ]
        if self.cgroup is None:
            return rlimit_prefix(self.settings) + sandboxed
        procs = [str(path) for path in self.cgroup.procs_files]
        return ["/bin/sh", "-c", JOIN_CGROUPS, "bzzz-join", str(len(procs)), *procs, *sandboxed]

    def _run(self, command: str, timeout: float) -> ExecResult:
        marker = f"bzzz-started-{secrets.token_hex(8)}\n"
        stdout = _AfterMarker(marker.encode(), OutputCapture(self.settings.output_limit))
        stderr = OutputCapture(self.settings.output_limit)
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                self._argv(command, marker),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(SANDBOX_ENV),  # bwrap's own environment is /proc/1/environ inside
                process_group=0,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start bwrap: {exc}") from exc
        self._process = process
        readers = [
            _drain(typing.cast(IO[bytes], process.stdout), stdout.feed),
            _drain(typing.cast(IO[bytes], process.stderr), stderr.feed),
        ]
        timed_out = False
        try:
            exit_code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill(process)
            exit_code = process.wait()
        finally:
            self._process = None
        for reader in readers:
            reader.join(timeout=5.0)
            if reader.is_alive():  # something outside the sandbox holds its pipes
                raise SandboxError("the sandbox's output did not end after its command did")
        duration = time.monotonic() - started
        if not stdout.seen and not timed_out and not self._closed:
            error, _ = stderr.text()
            raise SandboxError(f"bwrap could not start the sandbox: {error.strip()}")
        if exit_code < 0:  # bwrap itself was killed by a signal
            exit_code = 128 - exit_code
        out, out_cut = stdout.capture.text()
        err, err_cut = stderr.text()
        return ExecResult(
            exit_code=TIMED_OUT_EXIT if timed_out else exit_code,  # bwrap passes on the command's
            stdout=out,
            stderr=err,
            truncated=out_cut or err_cut,
            timed_out=timed_out,
            duration_s=duration,
        )

    def _kill(self, process: subprocess.Popen[bytes]) -> None:
        # bwrap's pid 1 inside dies with bwrap (PR_SET_PDEATHSIG), and with it every
        # process of the pid namespace; the cgroup catches anything in between.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def _destroy(self) -> None:
        process = self._process
        if process is not None:
            self._kill(process)
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self._state, ignore_errors=True)


class _AfterMarker:
    """Passes on stdout after the marker that the sandbox prints once bwrap has set it up:
    without the marker, bwrap failed and the command never ran."""

    def __init__(self, marker: bytes, capture: OutputCapture) -> None:
        self.marker = marker
        self.capture = capture
        self.seen = False
        self._deciding = True
        self._start = b""

    def feed(self, data: bytes) -> None:
        if not self._deciding:
            self.capture.feed(data)
            return
        self._start += data
        if len(self._start) >= len(self.marker) or not self.marker.startswith(self._start):
            self._deciding = False
            self.seen = self._start.startswith(self.marker)
            self.capture.feed(self._start[len(self.marker) :] if self.seen else self._start)


def _drain(stream: IO[bytes], sink: Callable[[bytes], None]) -> threading.Thread:
    def pump() -> None:
        with stream:
            while chunk := os.read(stream.fileno(), 65536):
                sink(chunk)

    thread = threading.Thread(target=pump, daemon=True, name="bzzz-sandbox-output")
    thread.start()
    return thread


def bubblewrap_problem(settings: SandboxSettings, *, use_cgroups: bool = True) -> str | None:
    """Why bubblewrap cannot sandbox here, or None when a trial sandbox runs `true` and the
    limits can be held (as root: a trial cgroup can be made)."""
    try:
        bwrap = bwrap_path()
        trial = make_cgroup(settings, use_cgroups=use_cgroups)
    except SandboxUnavailable as exc:
        return str(exc)
    if trial is not None:
        trial.remove()
    with tempfile.TemporaryDirectory(prefix="bzzz-probe-") as workspace:
        state = make_state_dir()
        try:
            result = subprocess.run(
                [bwrap, *bwrap_args(Path(workspace), state), "--", "/bin/true"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=dict(SANDBOX_ENV),
                timeout=PROBE_TIMEOUT,
                check=False,
                text=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap did not run: {exc}"
        finally:
            shutil.rmtree(state, ignore_errors=True)
    if result.returncode != 0:
        return (
            f"bwrap cannot make a sandbox here: {result.stderr.strip()}. Fix: allow user"
            " namespaces (sysctl kernel.unprivileged_userns_clone=1 and"
            " user.max_user_namespaces > 0), or run the worker as root."
        )
    return None
