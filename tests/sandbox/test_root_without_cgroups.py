"""bubblewrap where no cgroup can be made. RLIMIT_NPROC, the fallback, does not apply to
root, so a worker running as root refuses to sandbox without a cgroup (and `bzzz sandbox
check` and `bzzz doctor` say why); a worker that is not root is held by rlimits.

"No cgroup can be made" is simulated two ways: `use_cgroups=False`, and, for the
commands, a private mount namespace in which every cgroup file system is read-only (as in
a container that cannot write /sys/fs/cgroup)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bzzz.home import init_home
from tests.sandbox.support import TEST_SETTINGS
from workers.sandbox import SandboxUnavailable
from workers.sandbox.bubblewrap_backend import (
    RLIMITS,
    ROOT_NEEDS_A_CGROUP,
    BubblewrapSandbox,
    bubblewrap_problem,
)

pytestmark = pytest.mark.usefixtures("bubblewrap_works")
SETTINGS = replace(TEST_SETTINGS, backend="bubblewrap")
BZZZ = Path(sys.executable).with_name("bzzz")
STRANGER = 48879  # a uid with no processes: RLIMIT_NPROC counts only the sandbox's


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the root case needs root")


def states() -> set[Path]:
    return set(Path("/tmp").glob("bzzz-sandbox-*"))


def test_as_root_without_a_cgroup_it_refuses(workspace: Path) -> None:
    needs_root()
    before = states()
    with pytest.raises(SandboxUnavailable, match=r"runs as root.*sandbox\.pids") as refused:
        BubblewrapSandbox(SETTINGS, workspace, use_cgroups=False)
    assert "Delegate=yes" in str(refused.value)  # and the fixes
    assert states() == before  # nothing left behind
    assert bubblewrap_problem(SETTINGS, use_cgroups=False) == ROOT_NEEDS_A_CGROUP
    assert bubblewrap_problem(SETTINGS) is None  # here, with cgroups, it runs


def without_cgroups(argv: list[str]) -> list[str]:
    """`argv` in a private mount namespace where every cgroup file system is read-only."""
    mounts = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")
    ]
    remount = 'n=$1; shift; while [ "$n" -gt 0 ]; do mount -o remount,bind,ro "$1" || exit 125;'
    remount += ' shift; n=$((n - 1)); done; exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", remount,
            "sh", str(len(mounts)), *mounts, *argv]  # fmt: skip


def run(argv: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {"PATH": os.environ["PATH"], "HOME": str(home), "BZZZ_HOME": str(home), **env}
    return subprocess.run(
        without_cgroups(argv), check=False, capture_output=True, text=True, env=environ, timeout=120
    )


def test_sandbox_check_and_doctor_say_why_as_root(tmp_path: Path) -> None:
    needs_root()
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    home = tmp_path / "home"
    closed = "http://127.0.0.1:9"
    init_home(
        home,
        "node-a",
        extra={
            "forge": {"api_url": f"{closed}/api/v3", "timeout": 2.0},
            "capabilities": {"ollama_host": closed},
            "sandbox": {"backend": "bubblewrap"},
        },
    )

    check = run([str(BZZZ), "sandbox", "check", "--backend", "bubblewrap"], home)
    assert check.returncode == 2, check
    assert "runs as root and no cgroup can be made" in check.stderr + check.stdout

    doctor = run([str(BZZZ), "doctor", "--home", str(home)], home)
    assert doctor.returncode == 1, doctor
    (line,) = [text for text in doctor.stdout.splitlines() if "sandbox" in text.split(":")[0]]
    assert line.startswith("FAIL  sandbox")
    assert "runs as root and no cgroup can be made" in line


def as_user(uid: int, work: Callable[[], object]) -> object:
    """`work()` in a forked child running as `uid` (no groups); its JSON result."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result: object = {"ok": work()}
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = json.loads(pipe.read() or b'{"error": "no answer"}')
    os.waitpid(child, 0)
    assert "error" not in answer, answer["error"]
    return answer["ok"]


def test_a_worker_that_is_not_root_is_held_by_rlimits(workspace: Path) -> None:
    def sandboxed() -> dict[str, object]:
        with BubblewrapSandbox(SETTINGS, workspace, use_cgroups=False) as box:
            memory = box.exec("dd if=/dev/zero of=/dev/null bs=400M count=1")
            forks = box.exec("for i in $(seq 1 200); do sleep 1 & done; wait")  # limit: 64
            return {
                "limits": box.limits,
                "memory": [memory.exit_code, memory.stderr.lower()],
                "forks": (forks.stdout + forks.stderr).lower(),
                "echo": box.exec("echo fine").stdout,
            }

    if os.geteuid() == 0:  # the stranger's own workspace, where it can reach it
        home = Path(tempfile.mkdtemp(prefix="bzzz-stranger-"))
        try:
            workspace = home / "workspace"
            workspace.mkdir()
            for path in (home, workspace):
                os.chown(path, STRANGER, STRANGER)
            found = as_user(STRANGER, sandboxed)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    else:
        found = sandboxed()
    assert isinstance(found, dict)
    assert found["limits"] == RLIMITS
    exit_code, stderr = found["memory"]
    assert exit_code != 0
    assert "memory" in stderr
    assert "fork" in found["forks"]  # RLIMIT_NPROC held
    assert found["echo"] == "fine\n"
