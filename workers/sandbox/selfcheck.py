"""`bzzz sandbox check`: open a sandbox on an empty workspace and check from inside what
it must enforce."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bzzz.config import SandboxSettings
from workers.sandbox import Sandbox, open_sandbox

# (what is checked, a command that exits 0 when it holds)
CHECKS = (
    ("commands run as a user other than root", 'test "$(id -u)" != 0'),
    ("no capabilities", "grep -Eq '^CapEff:[[:space:]]+0+$' /proc/self/status"),
    ("no new privileges", "grep -Eq '^NoNewPrivs:[[:space:]]+1$' /proc/self/status"),
    ("the workspace is writable", "touch /workspace/.bzzz-check && rm /workspace/.bzzz-check"),
    ("its private /tmp is writable", "touch /tmp/.bzzz-check && rm /tmp/.bzzz-check"),
    (
        "the rest is read-only",
        "! touch /.bzzz-check 2>/dev/null && ! touch /etc/.bzzz-check 2>/dev/null"
        " && ! touch /usr/.bzzz-check 2>/dev/null",
    ),
    ("no network but loopback", "test -z \"$(tail -n +3 /proc/net/dev | grep -v '^ *lo:')\""),
    (
        "no secrets in the environment",
        "! cat /proc/self/environ | tr '\\0' '\\n' | grep -Eiq '^(BZZZ_|[^=]*(TOKEN|SECRET|KEY)=)'",
    ),
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


def pids_check(pids: int) -> tuple[str, str]:
    """No more than `pids` processes: starting more than that must fail ("Cannot fork").
    What the sandbox's own limit holds, however the backend holds it."""
    start_too_many = f"for i in $(seq 1 {pids + 16}); do sleep 2 & done; wait"
    return f"at most sandbox.pids ({pids}) processes", f"! ( {start_too_many} ) 2>/dev/null"


def run_checks(box: Sandbox, pids: int) -> list[CheckResult]:
    results = []
    for name, command in (*CHECKS, pids_check(pids)):
        result = box.exec(command, timeout=30)
        detail = (result.stderr or result.stdout).strip()
        results.append(CheckResult(name, result.exit_code == 0, detail))
    return results


def check_sandbox(settings: SandboxSettings) -> tuple[str, list[CheckResult]]:
    """The backend chosen and what the checks found in a sandbox on a scratch workspace,
    led by what holds its limits."""
    with (
        tempfile.TemporaryDirectory(prefix="bzzz-check-") as scratch,
        open_sandbox(settings, Path(scratch)) as box,
    ):
        held = CheckResult(f"limits held by {box.limits}", True, "")
        return box.backend, [held, *run_checks(box, settings.pids)]
