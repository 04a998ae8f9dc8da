"""The systemd units and `bzzz systemd install`.

The units are checked by `systemd-analyze verify` and directive by directive. No
systemd runs here as PID 1, so the units' system call filters, address families,
MemoryDenyWriteExecute, NoNewPrivileges and empty capability bounding set are imitated
(libseccomp, prctl) to run the real node, worker and bubblewrap sandbox under them. An
install into / runs in a mount namespace over overlays of /etc and /var/lib.
"""

from __future__ import annotations

import ctypes.util
import inspect
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from bzzz.cli import main
from bzzz.deploy.systemd import (
    NODE_UNIT,
    STOP_MARGIN,
    WORKER_UNIT,
    WORKERS_DROP_IN,
    UnitSettings,
    bin_problems,
    render_units,
    render_workers_drop_in,
)
from bzzz.lab.processes import wait_for
from tests.conftest import NodeFactory
from workers.pool import SHUTDOWN_TIMEOUT
from workers.sandbox.bubblewrap_backend import bwrap_args, make_state_dir

REPOSITORY_UNITS = Path(__file__).resolve().parent.parent / "systemd"
NOBODY = 65534


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where scripts/setup installs it all."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def directives(text: str) -> dict[str, list[str]]:
    """Key -> its values in the order given (sections and comments left out)."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;[":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def one(found: dict[str, list[str]], key: str) -> str:
    (value,) = found[key]
    return value


@pytest.fixture
def executable(tmp_path: Path) -> Path:
    """A real executable for ExecStart=: `systemd-analyze verify` checks that it exists."""
    path = tmp_path / "bin" / "bzzz"
    path.parent.mkdir()
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def install(*args: str) -> int:
    return main(["systemd", "install", *args])


def test_the_repository_units_are_the_generated_ones() -> None:
    for name, text in render_units(UnitSettings()).items():
        assert (REPOSITORY_UNITS / name).read_text() == text, (
            f"systemd/{name} differs from its template: run "
            "`.venv/bin/python -m bzzz.deploy.systemd systemd/`"
        )


@pytest.mark.parametrize(
    "options",
    [(), ("--user", "bzzz-lab", "--home", "/var/lib/bzzz/lab-2", "--workers", "3")],
    ids=["defaults", "other-user-and-home"],
)
def test_the_installed_units_pass_systemd_analyze_verify(
    tmp_path: Path, executable: Path, options: tuple[str, ...]
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (apt-get install systemd, or scripts/setup)")
    root = tmp_path / "root"
    assert install("--prefix", str(root), "--bin", str(executable), *options) == 0
    units = root / "etc/systemd/system"
    result = subprocess.run(
        [
            analyze,
            "verify",
            "--man=no",
            NODE_UNIT,
            "bzzz-worker@1.service",
            "bzzz-worker@9.service",
        ],
        capture_output=True,
        text=True,
        # Our units first, then the system's (for network-online.target and the like).
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
        check=False,
    )
    # verify exits 0 on unknown keys and bad values too: it only warns. Take any output.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_node_unit_is_hardened() -> None:
    node = directives(render_units(UnitSettings())[NODE_UNIT])
    for key, value in {
        "User": "bzzz",
        "ExecStart": "/usr/local/bin/bzzz node --home /var/lib/bzzz",
        "StateDirectory": "bzzz",
        "StateDirectoryMode": "0700",
        "RuntimeDirectory": "bzzz",
        "LoadCredential": "forge-token:/etc/bzzz/forge.token",
        "UMask": "0077",
        "KillMode": "mixed",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateUsers": "yes",
        "DevicePolicy": "closed",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "RestrictNamespaces": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "SystemCallErrorNumber": "EPERM",
    }.items():
        assert one(node, key) == value, key
    assert node["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert int(node["RestartSec"][0]) > 0


def test_the_worker_unit_is_hardened_except_where_the_sandbox_needs_otherwise() -> None:
    worker = directives(render_units(UnitSettings())[WORKER_UNIT])
    for key, value in {
        "User": "bzzz",
        "ExecStart": "/usr/local/bin/bzzz worker --home /var/lib/bzzz --processes 1",
        "StateDirectory": "bzzz",
        "RuntimeDirectory": "bzzz-worker-%i",
        "LoadCredential": "forge-token:/etc/bzzz/forge.token",
        "UMask": "0077",
        "KillMode": "mixed",
        "Restart": "on-failure",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelModules": "yes",
        "ProtectClock": "yes",
        "ProtectProc": "invisible",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        "SystemCallArchitectures": "native",
        "SystemCallFilter": "@system-service @mount sethostname",
        "SystemCallErrorNumber": "EPERM",
        # What bubblewrap needs: its own /proc, cgroups, namespaces, JIT runtimes.
        "ProtectKernelTunables": "no",
        "ProtectKernelLogs": "no",
        "ProtectHostname": "no",
        "ProtectControlGroups": "no",
        "Delegate": "yes",
        "RestrictNamespaces": "user mnt pid ipc uts net cgroup",
        "MemoryDenyWriteExecute": "no",
    }.items():
        assert one(worker, key) == value, key
    assert "PrivateUsers" not in worker


def test_workers_stop_gracefully_and_outlive_a_node_restart() -> None:
    worker = directives(render_units(UnitSettings())[WORKER_UNIT])
    stop = int(one(worker, "TimeoutStopSec"))
    assert stop == math.ceil(SHUTDOWN_TIMEOUT) + STOP_MARGIN
    assert stop > SHUTDOWN_TIMEOUT + 10  # the supervisor waits that long for its processes
    assert NODE_UNIT in one(worker, "After").split()
    assert NODE_UNIT in one(worker, "Wants").split()
    # A stop or restart of the node must not reach the workers.
    assert not {"Requires", "BindsTo", "PartOf", "Requisite"} & set(worker)


def test_no_unit_carries_the_token() -> None:
    texts = [*render_units(UnitSettings()).values(), render_workers_drop_in(4)]
    for text in texts:
        found = directives(text)
        for key, values in found.items():
            assert not any("BZZZ_FORGE_TOKEN" in value for value in values), key
        assert not {"EnvironmentFile", "PassEnvironment", "SetCredential"} & set(found)
        for value in found.get("Environment", []):
            assert value.split("=")[0] in {"PYTHONUNBUFFERED", "BZZZ_WORKERS_PROCESSES"}


def test_dry_run_prints_every_unit_and_the_enable_line_and_writes_nothing(
    tmp_path: Path, executable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    options = ("--workers", "3", "--prefix", str(root), "--bin", str(executable))
    assert install("--dry-run", *options) == 0
    out = capsys.readouterr().out
    for text in render_units(UnitSettings(bin=executable)).values():
        assert text in out
    assert render_workers_drop_in(3) in out
    assert "Environment=BZZZ_WORKERS_PROCESSES=3" in out
    assert "useradd --system" in out
    assert "systemctl enable --now bzzz-node bzzz-worker@1 bzzz-worker@2 bzzz-worker@3\n" in out
    assert not root.exists()


def test_dry_run_into_the_real_root_needs_no_root_and_writes_nothing(
    executable: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("BZZZ_FORGE_TOKEN", "ghp_never_printed")
    before = set(Path("/etc/systemd/system").glob("bzzz*"))
    assert install("--dry-run", "--workers", "2", "--bin", str(executable)) == 0
    out = capsys.readouterr().out
    assert "would write /etc/systemd/system/bzzz-worker@.service" in out
    assert "ghp_never_printed" not in out
    assert set(Path("/etc/systemd/system").glob("bzzz*")) == before


def test_install_under_a_prefix_writes_the_files_with_their_modes(
    tmp_path: Path,
    executable: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # no root needed
    root = tmp_path / "root"
    assert install("--workers", "2", "--prefix", str(root), "--bin", str(executable)) == 0
    units = root / "etc/systemd/system"
    expected = {
        **render_units(UnitSettings(bin=executable)),
        WORKERS_DROP_IN: render_workers_drop_in(2),
    }
    for name, text in expected.items():
        assert (units / name).read_text() == text
        assert (units / name).stat().st_mode & 0o7777 == 0o644
    for directory in ("etc/bzzz", "var/lib/bzzz"):
        assert (root / directory).stat().st_mode & 0o7777 == 0o700
    out = capsys.readouterr().out
    assert "not run (--prefix): useradd" in out
    assert "owner bzzz not set" in out
    assert "systemctl enable --now bzzz-node bzzz-worker@1 bzzz-worker@2\n" in out

    # Again: nothing changes, and the next steps already done are left out.
    (root / "var/lib/bzzz/config.toml").write_text("")
    (root / "etc/bzzz/forge.token").write_text("")
    assert install("--workers", "2", "--prefix", str(root), "--bin", str(executable)) == 0
    again = capsys.readouterr().out
    assert f"unchanged {units / NODE_UNIT}" in again
    assert " init " not in again
    assert "forge.token'" not in again


def test_installing_into_the_real_root_needs_root(
    executable: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert install("--bin", str(executable)) == 2
    assert "needs root" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--workers", "0"), "--workers must be 1 or more"),
        (("--home", "/srv/bzzz"), "not under /var/lib"),
        (("--home", "var/lib/bzzz"), "must be an absolute path"),
        (("--user", "Bad User"), "not a system user name"),
        (("--bin", "bin/bzzz"), "must be an absolute path"),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
    message: str,
) -> None:
    root = tmp_path / "root"
    assert install("--prefix", str(root), "--bin", "/bin/sh", *options) == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_a_bzzz_the_services_cannot_see_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bzzz"
    script.write_text("#!/root/.venv/bin/python\n")
    script.chmod(0o755)
    (problem,) = bin_problems(script)
    assert "/root is hidden from the services (ProtectHome=)" in problem
    assert bin_problems(tmp_path / "missing") == [
        f"{tmp_path / 'missing'} is not an executable file (give the bzzz to run with --bin)"
    ]


# The units' system call filters, imitated with libseccomp.


def _exec_under_filter() -> None:  # runs in a fresh interpreter: the standard library only
    import ctypes  # noqa: PLC0415
    import errno  # noqa: PLC0415
    import json  # noqa: PLC0415
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    class Compare(ctypes.Structure):
        _fields_ = [
            ("arg", ctypes.c_uint),
            ("op", ctypes.c_int),
            ("mask", ctypes.c_uint64),
            ("value", ctypes.c_uint64),
        ]

    allow, masked_eq, equal = 0x7FFF0000, 7, 4
    prot_write, prot_exec, shm_exec = 0x2, 0x4, 0o100000
    spec, command = json.loads(sys.argv[1]), sys.argv[2:]
    seccomp = ctypes.CDLL(spec["library"])
    seccomp.seccomp_init.restype = ctypes.c_void_p
    context = ctypes.c_void_p(seccomp.seccomp_init(0x00050000 | errno.EPERM))

    def permit(name: str, *compares: Compare) -> None:
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # unknown on this architecture
            array = (Compare * len(compares))(*compares)
            assert seccomp.seccomp_rule_add_array(context, allow, number, len(compares), array) == 0

    conditional = set()
    if spec["families"] is not None:
        conditional.add("socket")
        for family in spec["families"]:
            permit("socket", Compare(0, equal, family, 0))
    if spec["mdwe"]:  # as systemd does it: no W+X mappings, nothing made executable later
        conditional |= {"mmap", "mprotect", "pkey_mprotect", "shmat"}
        permit("mmap", Compare(2, masked_eq, prot_exec, 0))
        permit("mmap", Compare(2, masked_eq, prot_write, 0))
        permit("mprotect", Compare(2, masked_eq, prot_exec, 0))
        permit("pkey_mprotect", Compare(2, masked_eq, prot_exec, 0))
        permit("shmat", Compare(2, masked_eq, shm_exec, 0))
    for name in set(spec["allow"]) - conditional:
        permit(name)
    if spec["no_capabilities"]:  # CapabilityBoundingSet= (empty): none survive the exec
        libc = ctypes.CDLL(None)
        for capability in range(64):
            libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP; past the last: EINVAL
    if spec["uid"] is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    assert seccomp.seccomp_load(context) == 0  # with no_new_privs, as NoNewPrivileges=yes
    os.execvp(command[0], command)  # noqa: S606 - becomes the command, as ExecStart= would


FILTER_LOADER = inspect.getsource(_exec_under_filter) + "\n_exec_under_filter()\n"


@pytest.fixture(scope="module")
def syscall_groups() -> dict[str, list[str]]:
    """systemd's system call groups (@system-service, ...), as this systemd defines them."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (apt-get install systemd, or scripts/setup)")
    listing = subprocess.run(
        [analyze, "syscall-filter", "--no-pager"], capture_output=True, text=True, check=True
    ).stdout
    groups: dict[str, list[str]] = {}
    for line in listing.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.split()[0], [])
        elif line.strip() and not line.strip().startswith("#"):
            members.append(line.strip())
    return groups


def _expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        found |= _expand(groups[name], groups) if name.startswith("@") else {name}
    return found


def filter_prefix(
    unit: str, groups: dict[str, list[str]], uid: int | None = None, drop: str = ""
) -> list[str]:
    """A command prefix that runs a command under `unit`'s filters (less `drop`)."""
    library = ctypes.util.find_library("seccomp")
    if library is None:
        unavailable("libseccomp is not installed (it comes with systemd)")
    found = directives(unit)
    allowed: set[str] = set()
    for value in found["SystemCallFilter"]:
        names = _expand(value.removeprefix("~").replace(drop, "").split(), groups)
        allowed = allowed - names if value.startswith("~") else allowed | names
    families = [getattr(socket, name) for name in one(found, "RestrictAddressFamilies").split()]
    spec = {
        "library": library,
        "allow": sorted(allowed),
        "families": families,
        "mdwe": one(found, "MemoryDenyWriteExecute") == "yes",
        "no_capabilities": one(found, "CapabilityBoundingSet") == "",
        "uid": uid,
    }
    return [sys.executable, "-c", FILTER_LOADER, json.dumps(spec)]


@pytest.fixture
def nobodys_workspace() -> Iterator[tuple[Path, Path]]:
    """A workspace and a sandbox state directory for an unprivileged worker (nobody)."""
    if os.geteuid() != 0:
        pytest.skip("runs the sandbox as another user: needs root")
    if shutil.which("bwrap") is None:
        unavailable("bubblewrap is not installed (apt-get install bubblewrap, or scripts/setup)")
    workspace, state = Path(tempfile.mkdtemp(prefix="bzzz-ws-")), make_state_dir()
    for top in (workspace, state):
        for path in (top, *top.rglob("*")):
            os.chown(path, NOBODY, NOBODY)
    yield workspace, state
    shutil.rmtree(workspace)
    shutil.rmtree(state)


def test_the_worker_units_filters_let_bubblewrap_make_a_sandbox(
    nobodys_workspace: tuple[Path, Path], syscall_groups: dict[str, list[str]]
) -> None:
    workspace, state = nobodys_workspace
    worker = render_units(UnitSettings())[WORKER_UNIT]
    bwrap = [
        "bwrap",
        *bwrap_args(workspace, state),
        "/bin/sh", "-c", "hostname > /workspace/made-in; id -u >> /workspace/made-in",
    ]  # fmt: skip

    def run(prefix: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *bwrap], capture_output=True, text=True, timeout=30, check=False
        )

    result = run(filter_prefix(worker, syscall_groups, uid=NOBODY))
    if "setting up uid map" in result.stderr or "No permissions to creat" in result.stderr:
        unavailable(f"unprivileged user namespaces are off here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert (workspace / "made-in").read_text() == "sandbox\n1000\n"
    # The imitation bites: without @mount, bwrap cannot assemble the sandbox.
    without_mount = run(filter_prefix(worker, syscall_groups, uid=NOBODY, drop="@mount"))
    assert without_mount.returncode != 0
    assert "Operation not permitted" in without_mount.stderr


def test_the_node_and_a_worker_run_and_stop_under_their_units_filters(
    make_node: NodeFactory, syscall_groups: dict[str, list[str]]
) -> None:
    units = render_units(UnitSettings())
    node = make_node("filtered")
    node.start(command_prefix=filter_prefix(units[NODE_UNIT], syscall_groups))
    command = [sys.executable, "-m", "bzzz", "worker", "--home", str(node.home), "--processes", "1"]
    with (node.home / "worker.out").open("ab") as out:
        worker = subprocess.Popen(
            [*filter_prefix(units[WORKER_UNIT], syscall_groups), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        log = node.home / "logs" / "worker.log"
        wait_for(
            lambda: log.exists() and "worker process up" in log.read_text(),
            30,
            "the worker process to start",
        )
        assert node.status() is not None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker_exit = worker.wait(30)
    assert worker_exit == 0, (node.home / "worker.out").read_text()
    assert node.stop() == 0, node.output()


def test_installing_into_the_root_creates_the_user_and_sets_owners(
    tmp_path: Path, executable: Path
) -> None:
    """A real install into /, in a mount namespace whose /etc and /var/lib are overlays
    on scratch directories: the host's users, units and state are left as they are."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("useradd") is None:
        pytest.skip("needs root, unshare and useradd")
    layers = {"etc": "/etc", "var-lib": "/var/lib"}
    mounts = []
    for name, target in layers.items():
        for part in ("upper", "work"):
            (tmp_path / name / part).mkdir(parents=True)
        options = (
            f"lowerdir={target},upperdir={tmp_path / name}/upper,workdir={tmp_path / name}/work"
        )
        mounts.append(f"mount -t overlay overlay -o {options} {target}")
    check = "; ".join(f'[ "$(findmnt -no FSTYPE {t})" = overlay ]' for t in layers.values())
    bzzz = f"{sys.executable} -m bzzz systemd install --workers 2 --bin {executable}"
    script = "; ".join([
        "set -e", *mounts, check, bzzz, bzzz,
        "getent passwd bzzz",
        "stat -c '%a %U %n' /etc/bzzz /var/lib/bzzz /etc/systemd/system/bzzz-node.service",
    ])  # fmt: skip
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "overlay" in result.stderr and result.returncode != 0:
        pytest.skip(f"cannot mount overlays here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ran: useradd --system --user-group --home-dir /var/lib/bzzz" in out
    assert "user bzzz exists already: not created" in out  # the second install
    assert ":/var/lib/bzzz:/usr/sbin/nologin" in out
    assert "700 root /etc/bzzz\n700 bzzz /var/lib/bzzz\n644 root /etc/systemd/system/" in out
