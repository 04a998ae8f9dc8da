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


def run_checks(box: Sandbox) -> list[CheckResult]:
    results = []
    for name, command in CHECKS:
        result = box.exec(command, timeout=30)
        detail = (result.stderr or result.stdout).strip()
        results.append(CheckResult(name, result.exit_code == 0, detail))
    return results


def check_sandbox(settings: SandboxSettings) -> tuple[str, list[CheckResult]]:
    """The backend chosen and what the checks found in a sandbox on a scratch workspace."""
    with (
        tempfile.TemporaryDirectory(prefix="bzzz-check-") as scratch,
        open_sandbox(settings, Path(scratch)) as box,
    ):
        return box.backend, run_checks(box)
