"""What a sandbox enforces, on both backends: the workspace writable and nothing else, a
private /tmp, no network, no privileges, limits, timeouts that kill every process, cut
output, and no secret in the environment."""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from bzzz.config import SandboxSettings
from workers.sandbox import Sandbox, SandboxError, open_sandbox


def host_processes_with(argv: list[str]) -> list[int]:
    """Host pids whose command line is exactly `argv` (sandboxed processes included)."""
    wanted = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(argv: list[str], within: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within
    while (left := host_processes_with(argv)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_runs_a_shell_command_with_exit_code_and_both_streams(box: Sandbox) -> None:
    result = box.exec("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.truncated
    assert not result.timed_out
    assert 0 < result.duration_s < 10
    itself = box.exec("exit 124")  # as `timeout` reports, but before any time limit
    assert (itself.exit_code, itself.timed_out) == (124, False)


def test_workspace_is_writable_and_files_persist_but_shell_state_does_not(
    box: Sandbox, workspace: Path
) -> None:
    (workspace / "from-host.txt").write_text("hello\n")
    assert box.exec("pwd; cat from-host.txt").stdout == "/workspace\nhello\n"
    assert box.exec("echo made > made.txt && mkdir -p sub && echo x > /tmp/kept").exit_code == 0
    assert (workspace / "made.txt").read_text() == "made\n"
    assert box.exec("export FOO=bar; cd sub; pwd").stdout == "/workspace/sub\n"
    assert box.exec('echo "${FOO:-unset}"; pwd; cat /tmp/kept').stdout == ("unset\n/workspace\nx\n")


def test_everything_but_workspace_and_tmp_is_read_only(box: Sandbox) -> None:
    for path in ("/etc/bzzz", "/usr/bzzz", "/bzzz", "/usr/bin/bzzz", "/usr/lib/bzzz"):
        result = box.exec(f"touch {path}")
        assert result.exit_code != 0, path
        assert "Read-only file system" in result.stderr or "denied" in result.stderr
    assert box.exec("touch /tmp/ok /workspace/ok").exit_code == 0


def test_tmp_is_private(
    settings: SandboxSettings, box: Sandbox, tmp_path: Path, workspace: Path
) -> None:
    name = f"bzzz-sandbox-test-{uuid.uuid4().hex}"
    host_file = Path("/tmp") / name
    host_file.write_text("host secret")
    try:
        assert box.exec(f"cat /tmp/{name}").exit_code != 0
        assert box.exec(f"echo inside > /tmp/{name}-inside").exit_code == 0
        assert not Path(f"/tmp/{name}-inside").exists()
        other = tmp_path / "other"
        other.mkdir()
        with open_sandbox(settings, other) as second:
            assert second.exec(f"cat /tmp/{name}-inside").exit_code != 0
    finally:
        host_file.unlink()


def test_no_network_host_loopback_is_unreachable(box: Sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        probe = (
            "import socket\n"
            "print(sorted(name for _, name in socket.if_nameindex()))\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        )
        result = box.exec(f'python3 -c "{probe}"', timeout=20)
        assert result.stdout == "['lo']\n"  # loopback of its own, nothing else
        assert result.exit_code != 0
        assert "ConnectionRefusedError" in result.stderr
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_no_dns(box: Sandbox) -> None:
    probe = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('deb.debian.org', 80)\n"
        "except socket.gaierror as e:\n"
        "    print('no dns', e.errno)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.sendto(b'x', ('192.0.2.53', 53))\n"
        "except OSError as e:\n"
        "    print('unreachable', e.errno)\n"
    )
    result = box.exec(f'python3 -c "{probe}"', timeout=20)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("no dns")
    assert "unreachable" in result.stdout


def test_runs_unprivileged(box: Sandbox) -> None:
    result = box.exec("id -u; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status")
    uid, *status = result.stdout.splitlines()
    assert int(uid) != 0
    fields = dict(line.split(":\t") for line in status)
    assert int(fields["CapEff"], 16) == 0
    assert int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"] == "1"


def test_timeout_kills_the_command_and_its_background_children(box: Sandbox) -> None:
    seconds = str(random.randint(100_000, 999_999))  # names these sleeps on the host
    started = time.monotonic()
    result = box.exec(f"sleep {seconds} & sleep {seconds} & echo started; sleep {seconds}", 1)
    assert result.timed_out
    assert result.exit_code == 124
    assert result.stdout == "started\n"
    assert 1 <= result.duration_s < 6
    assert time.monotonic() - started < 8
    assert wait_until_gone(["sleep", seconds]) == []


def test_processes_left_behind_do_not_outlive_their_command(box: Sandbox) -> None:
    seconds = str(random.randint(100_000, 999_999))
    result = box.exec(f"sleep {seconds} & setsid sleep {seconds} & echo left")
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "left\n", False)
    assert wait_until_gone(["sleep", seconds]) == []


def test_memory_limit_kills_with_137(box: Sandbox) -> None:
    result = box.exec("dd if=/dev/zero of=/dev/null bs=400M count=1")  # limit: 128 MiB
    assert result.exit_code == 137
    assert not result.timed_out
    assert box.exec("echo still here").stdout == "still here\n"


def test_pids_limit_holds(box: Sandbox) -> None:
    result = box.exec("for i in $(seq 1 200); do sleep 1 & done; wait")  # limit: 64
    assert "fork" in (result.stdout + result.stderr).lower()


def test_fork_bomb_is_contained(box: Sandbox) -> None:
    result = box.exec("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=3)
    assert result.timed_out
    assert box.exec("echo alive").stdout == "alive\n"


def test_output_is_cut_to_head_and_tail(box: Sandbox) -> None:
    result = box.exec("seq 1 100000; seq 1 100000 >&2")  # limit: 2000 characters
    assert result.truncated
    for text in (result.stdout, result.stderr):
        assert len(text) <= 2000
        assert text.startswith("1\n2\n3\n")
        assert text.endswith("99999\n100000\n")
        assert "bytes cut" in text
    short = box.exec("seq 1 10")
    assert not short.truncated
    assert short.stdout == "".join(f"{n}\n" for n in range(1, 11))


def test_environment_holds_no_secret(
    settings: SandboxSettings, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"ghp_{uuid.uuid4().hex}"
    monkeypatch.setenv("BZZZ_FORGE_TOKEN", secret)
    monkeypatch.setenv("GITHUB_TOKEN", secret)
    with open_sandbox(settings, workspace) as box:
        env = box.exec("env").stdout
        environs = box.exec("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'").stdout
    names = {line.split("=", 1)[0] for line in env.splitlines()}
    assert names <= {"PATH", "HOME", "LANG", "PWD", "HOSTNAME", "SHLVL", "OLDPWD"}
    for text in (env, environs):
        assert secret not in text
        assert "BZZZ_" not in text
    assert "PATH=" in environs  # the processes' environments were read


def test_a_closed_sandbox_refuses_commands_and_closes_again(
    settings: SandboxSettings, workspace: Path
) -> None:
    box = open_sandbox(settings, workspace)
    box.close()
    box.close()
    with pytest.raises(SandboxError, match="closed"):
        box.exec("true")


def test_close_stops_a_running_command(settings: SandboxSettings, workspace: Path) -> None:
    seconds = str(random.randint(100_000, 999_999))
    box = open_sandbox(settings, workspace)
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(box.exec(f"sleep {seconds}", timeout=60))
        except SandboxError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not host_processes_with(["sleep", seconds]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert host_processes_with(["sleep", seconds]), "the command never started"
    finally:
        box.close()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome, "exec neither returned nor raised"
    assert wait_until_gone(["sleep", seconds]) == []
