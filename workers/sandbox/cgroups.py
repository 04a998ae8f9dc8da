"""Per-sandbox cgroups holding the memory, pids and CPU limits of bubblewrap sandboxes.

cgroup v1 controllers are used where they are mounted and writable (hybrid hosts), else
a cgroup v2 child of this process's own cgroup when its controllers are delegated to
children. Anything else gets None, and the caller falls back to rlimits.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.sandbox.core import process_alive

CPU_PERIOD_US = 100_000
NAME_PREFIX = "bzzz-sandbox-"
OWNED_NAME = re.compile(NAME_PREFIX + r"(\d+)-[0-9a-f]+")  # the pid of the process that made it
V1_REQUIRED = ("memory", "pids")  # cpu is applied where mounted, but not required


@dataclass(frozen=True)
class _Mount:
    root: str  # the part of the hierarchy this mount shows
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts() -> list[_Mount]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mounts.append(
            _Mount(
                root=fields[3],
                point=Path(fields[4].replace("\\040", " ")),
                fstype=tail[0],
                options=frozenset(tail[2].split(",")),
            )
        )
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for cgroup v2) -> this process's cgroup path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _inside(mount: _Mount, path: str) -> Path | None:
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    return mount.point / path[len(root) :].lstrip("/")


class Cgroup:
    """One sandbox's cgroup directories (one per v1 controller, or one v2 directory)."""

    def __init__(self, directories: list[Path], version: int) -> None:
        self.directories = directories
        self.version = version

    @property
    def procs_files(self) -> list[Path]:
        """Write a pid into each of these to put that process under the limits."""
        return [directory / "cgroup.procs" for directory in self.directories]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in procs.read_text().split())
        return found

    def kill_all(self, within: float = 5.0) -> None:
        """SIGKILL every process in the cgroup, until it is empty or `within` seconds pass."""
        deadline = time.monotonic() + within
        while pids := self.pids():
            kill_file = self.directories[0] / "cgroup.kill"
            if self.version == 2 and kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        deadline = time.monotonic() + 5.0
        for directory in self.directories:
            while directory.exists():
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break  # left behind: empty or not, it limits nothing else
                    time.sleep(0.02)


def remove_orphans(base: Path) -> None:
    """Remove the empty cgroups that sandboxes of processes now dead left in `base`
    (a worker killed with SIGKILL never closes its sandboxes)."""
    for child in base.glob(NAME_PREFIX + "*"):
        owner = OWNED_NAME.fullmatch(child.name)
        if owner is not None and not process_alive(int(owner[1])):
            with contextlib.suppress(OSError):
                child.rmdir()


@dataclass(frozen=True)
class _Limits:
    memory: int  # bytes
    pids: int
    cpu_quota: int  # microseconds per CPU_PERIOD_US


def create_cgroup(memory_mb: int, pids: int, cpus: float) -> Cgroup | None:
    """A new cgroup with these limits, or None where this process cannot make one."""
    name = f"{NAME_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    limits = _Limits(memory_mb * 1024 * 1024, pids, max(1000, int(cpus * CPU_PERIOD_US)))
    mounts, own = _mounts(), _own_cgroups()
    return _create_v1(name, _v1_bases(mounts, own), limits) or _create_v2(name, mounts, own, limits)


def _v1_bases(mounts: list[_Mount], own: dict[str, str]) -> dict[str, Path]:
    """Controller -> this process's writable cgroup directory in its v1 hierarchy."""
    bases: dict[str, Path] = {}
    for mount in mounts:
        for controller in ("memory", "pids", "cpu"):
            if (
                mount.fstype == "cgroup"
                and controller in mount.options
                and controller in own
                and controller not in bases
            ):
                base = _inside(mount, own[controller])
                if base is not None and os.access(base, os.W_OK):
                    bases[controller] = base
    return bases


_V1_LIMITS: dict[str, Callable[[_Limits], dict[str, int]]] = {
    "memory": lambda limits: {
        "memory.limit_in_bytes": limits.memory,
        "memory.memsw.limit_in_bytes": limits.memory,  # present with swap accounting
    },
    "pids": lambda limits: {"pids.max": limits.pids},
    "cpu": lambda limits: {
        "cpu.cfs_period_us": CPU_PERIOD_US,
        "cpu.cfs_quota_us": limits.cpu_quota,
    },
}


def _create_v1(name: str, bases: dict[str, Path], limits: _Limits) -> Cgroup | None:
    if not all(controller in bases for controller in V1_REQUIRED):
        return None
    cgroup = Cgroup([], 1)
    try:
        for controller, base in bases.items():
            directory = base / name
            if directory not in cgroup.directories:  # co-mounted controllers share one
                remove_orphans(base)
                directory.mkdir()
                cgroup.directories.append(directory)
            for file, value in _V1_LIMITS[controller](limits).items():
                if (directory / file).exists():
                    (directory / file).write_text(str(value))
    except OSError:
        cgroup.remove()
        return None
    return cgroup


def _create_v2(
    name: str, mounts: list[_Mount], own: dict[str, str], limits: _Limits
) -> Cgroup | None:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in own:
        return None
    base = _inside(mount, own[""])
    if base is None or not os.access(base, os.W_OK):
        return None
    directory = base / name
    remove_orphans(base)
    try:
        directory.mkdir()
    except OSError:
        return None
    cgroup = Cgroup([directory], 2)
    try:
        # The files exist only where the parent delegates these controllers to children.
        (directory / "memory.max").write_text(str(limits.memory))
        (directory / "pids.max").write_text(str(limits.pids))
        optional = {"memory.swap.max": "0", "cpu.max": f"{limits.cpu_quota} {CPU_PERIOD_US}"}
        for file, value in optional.items():
            if (directory / file).exists():
                (directory / file).write_text(value)
    except OSError:
        cgroup.remove()
        return None
    return cgroup
