"""What only the bubblewrap backend does: a cgroup per sandbox, removed on close; bwrap's
own failures reported as sandbox errors. Where no cgroup can be made:
test_root_without_cgroups.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.sandbox.support import TEST_SETTINGS
from workers.sandbox import SandboxError
from workers.sandbox.bubblewrap_backend import BubblewrapSandbox

pytestmark = pytest.mark.usefixtures("bubblewrap_works")
SETTINGS = replace(TEST_SETTINGS, backend="bubblewrap")


def test_limits_live_in_a_cgroup_that_close_removes(workspace: Path) -> None:
    box = BubblewrapSandbox(SETTINGS, workspace)
    try:
        if box.cgroup is None:
            pytest.skip("no writable cgroup here: see test_root_without_cgroups.py")
        directories = list(box.cgroup.directories)
        assert box.limits == f"a cgroup v{box.cgroup.version} (memory, pids, CPU)"
        memory = next(d for d in directories if (d / "memory.limit_in_bytes").exists())
        assert int((memory / "memory.limit_in_bytes").read_text()) == 128 * 1024 * 1024
        pids = next(d for d in directories if (d / "pids.max").exists())
        assert (pids / "pids.max").read_text().strip() == "64"
        assert box.exec("dd if=/dev/zero of=/dev/null bs=50M count=1").exit_code == 0
        assert int((memory / "memory.max_usage_in_bytes").read_text()) >= 50 * 1024 * 1024
    finally:
        box.close()
    assert not any(directory.exists() for directory in directories)


def test_a_workspace_this_user_does_not_own_is_refused(workspace: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the workspace away")
    os.chown(workspace, 4321, 4321)
    with pytest.raises(SandboxError, match="uid 4321"):
        BubblewrapSandbox(SETTINGS, workspace)


def test_bwrap_failing_to_start_is_a_sandbox_error(workspace: Path) -> None:
    with BubblewrapSandbox(SETTINGS, workspace) as box:
        box.workspace = workspace / "gone"  # bwrap cannot bind what does not exist
        with pytest.raises(SandboxError, match="bwrap could not start"):
            box.exec("true")


def test_cgroups_of_dead_workers_are_removed(workspace: Path) -> None:
    with BubblewrapSandbox(SETTINGS, workspace) as first:
        if first.cgroup is None:
            pytest.skip("no writable cgroup here")
        bases = [directory.parent for directory in first.cgroup.directories]
    process = subprocess.Popen(["true"])
    process.wait()
    orphans = [base / f"bzzz-sandbox-{process.pid}-0123abcd" for base in bases]
    for orphan in orphans:
        orphan.mkdir()
    try:
        with BubblewrapSandbox(SETTINGS, workspace):
            assert not any(orphan.exists() for orphan in orphans)
    finally:
        for orphan in orphans:
            with contextlib.suppress(OSError):
                orphan.rmdir()
