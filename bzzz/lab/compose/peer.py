"""The compose lab's `peer` service: become peer-K, write the node's home, run the node
and its workers under a supervisor."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bzzz import lifeline
from bzzz.lab.compose.reverse_dns import DnsError, lookup_ptr, nameservers, replica_number
from bzzz.lab.compose.settings import (
    ACCOUNTS_DIR,
    GROUP_ID,
    P2P_PORT,
    PEER_HOME,
    SEEDED,
    SERVICE,
    STOP_TIMEOUT,
    USER_ID,
    WAIT_FOR_FORGE,
    LabError,
    LabSettings,
    say,
    token_path,
    write_secret,
)
from bzzz.lab.sample import SAMPLE_REPO


def own_addresses() -> list[str]:
    """This container's IPv4 addresses, as Docker wrote them into /etc/hosts."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos if not str(info[4][0]).startswith("127.")})


def account_number(name: str) -> int:
    """K of account peer-K."""
    match = re.fullmatch(rf"{SERVICE}-([1-9][0-9]*)", name)
    if match is None:
        raise LabError(f"{name!r} is not a lab account: peer-1, peer-2, ...")
    return int(match[1])


def check_account(name: str, seeded: Mapping[str, Any]) -> None:
    """Refuse an account the forge was not seeded with (`seeded`: its marker)."""
    accounts = int(seeded.get("accounts", 0))
    if account_number(name) > accounts:
        raise LabError(
            f"this is {name}, but the forge has accounts for {accounts} peers only. Fix: "
            f"docker compose down -v, then up again with "
            f"BZZZ_LAB_ACCOUNTS={account_number(name)} or more."
        )


def replica_account(lookup: Callable[[str], list[str]] | None = None) -> str:
    """peer-K, K being this container's replica number of the service `peer`."""
    if lookup is None:
        servers = nameservers()
        if not servers:
            raise LabError("no name server in /etc/resolv.conf to ask this container's name")

        def lookup(ip: str) -> list[str]:
            return lookup_ptr(ip, servers[0])

    addresses = own_addresses()
    names: list[str] = []
    for ip in addresses:
        try:
            names += lookup(ip)
        except DnsError:
            continue
        numbers = [n for n in (replica_number(name, SERVICE) for name in names) if n]
        if numbers:
            return f"{SERVICE}-{numbers[0]}"
    raise LabError(
        f"cannot tell which replica of {SERVICE!r} this container is (addresses "
        f"{addresses or 'none'}, names {names or 'none'}). Fix: run it as a compose service "
        "named peer, or set BZZZ_LAB_PEER=peer-K."
    )


def wait_for_forge(settings: LabSettings, accounts_dir: Path, name: str, within: float) -> str:
    """Wait until the forge is seeded and answers; this peer's token."""
    deadline = time.monotonic() + within
    health = f"{settings.forge_url}/_forge/health"
    problem = ""
    path = token_path(accounts_dir, name)
    while time.monotonic() < deadline:
        marker = accounts_dir / SEEDED
        if marker.exists():
            check_account(name, json.loads(marker.read_text(encoding="utf-8")))
        if marker.exists() and path.exists():
            try:
                with urllib.request.urlopen(health, timeout=3) as response:  # noqa: S310
                    if response.status == 200:
                        return path.read_text(encoding="utf-8").strip()
            except (OSError, urllib.error.URLError) as exc:
                problem = f"{health}: {exc}"
        else:
            problem = f"no {path} yet (has the forge service seeded?)"
        time.sleep(1.0)
    raise LabError(f"the forge is not ready after {within:g} s: {problem}")


def node_sections(settings: LabSettings, name: str) -> dict[str, dict[str, Any]]:
    """The node's settings besides its name and listen address (as the lab writes them)."""
    model = "lab" if settings.lab_model else settings.model
    return {
        "network": {"mdns": True, "bootstrap": list(settings.bootstrap)},
        "forge": {
            "api_url": f"{settings.forge_url}/api/v3",
            "token_file": "forge.token",
            "seconds_between_writes": 0.0,
        },
        "tasks": {"repositories": [SAMPLE_REPO], "poll_interval": 5.0},
        "capabilities": {"ollama_host": settings.model_url},
        "workers": {"executor": "workers.agent:run", "heartbeat": 5.0},
        "agent": {"model": model, "model_timeout": 30.0 if settings.lab_model else 300.0},
        "git": {"author_name": name, "author_email": f"{name}@lab.bzzz.invalid"},
    }


def prepare_peer(settings: LabSettings, home: Path, accounts_dir: Path, name: str) -> str:
    """Write the node's home (token, config.toml; the identity is kept); its peer ID."""
    from bzzz.home import init_home  # noqa: PLC0415

    token = wait_for_forge(settings, accounts_dir, name, WAIT_FOR_FORGE)
    home.mkdir(parents=True, exist_ok=True)
    write_secret(home / "forge.token", token)
    peer_id = init_home(
        home,
        name,
        listen=[f"/ip4/0.0.0.0/tcp/{P2P_PORT}"],
        extra=node_sections(settings, name),
        force=True,
    )
    return str(peer_id)


class Supervisor:
    """Runs the node and its workers; stops both when either ends or on SIGTERM, SIGINT or
    SIGHUP. They die with it even when it is killed outright (bzzz/lifeline.py)."""

    def __init__(self, commands: Sequence[Sequence[str]], env: Mapping[str, str]) -> None:
        self.commands = [list(command) for command in commands]
        self.env = dict(env)
        self.stopping = threading.Event()
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, lambda *_: self.stopping.set())
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            env = lifeline.child_env(self.env)
            self.processes = [
                subprocess.Popen(lifeline.command(command), env=env) for command in self.commands
            ]
            while not self.stopping.wait(0.5):
                ended = [
                    (command, process.returncode)
                    for command, process in zip(self.commands, self.processes, strict=True)
                    if process.poll() is not None
                ]
                if ended:
                    command, code = ended[0]
                    say(f"{' '.join(command[:2])} exited with {code}; stopping the rest")
                    break
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        codes = [p.returncode for p in self.processes]
        if self.stopping.is_set() and all(code == 0 for code in codes):
            return 0
        return next((code for code in codes if code), 1)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sandbox_report(home: Path) -> None:
    """Say which sandbox the tasks' commands will run in, or why none can."""
    try:
        result = subprocess.run(
            ["bzzz", "sandbox", "check", "--home", str(home)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"sandbox check did not run: {exc}")
        return
    lines = (result.stdout + result.stderr).strip().splitlines()
    if result.returncode == 0:
        say(f"sandbox check passed: {lines[0] if lines else ''}")
        return
    say("sandbox check FAILED: tasks will fail until it passes (see compose/README.md)")
    for line in lines:
        say(f"  {line}")


def leave_root(name: str, uid: int, argv: Sequence[str]) -> None:
    """Started as root (the peer service runs as root with CAP_SYS_ADMIN for this only):
    mount a fresh /proc over the one Docker masked, so that bubblewrap may mount its
    sandboxes' own /proc, then run `argv` again as `uid` (group bzzz), with no
    capabilities, none that could come back (an empty bounding set), never root again.

    Each peer has its own uid: where the sandbox limits processes with RLIMIT_NPROC
    (no writable cgroup in a container), that limit counts every process of the uid on
    the machine, and peers sharing one would share it."""
    mount = ["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc"]
    result = subprocess.run(mount, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        say(
            f"cannot mount a fresh /proc ({result.stderr.strip()}): the sandbox will not run."
            " The peer service needs cap_add SYS_ADMIN and seccomp=unconfined (see README.md)"
        )
    PEER_HOME.mkdir(parents=True, exist_ok=True)
    for path in [PEER_HOME, *PEER_HOME.rglob("*")]:  # a peer's home follows its uid
        os.lchown(path, uid, GROUP_ID)
    os.environ.update({"HOME": str(PEER_HOME), "BZZZ_LAB_PEER": name})
    command = ["setpriv", f"--reuid={uid}", f"--regid={GROUP_ID}", "--clear-groups"]
    command += ["--bounding-set=-all", "--inh-caps=-all", "--", sys.executable, *argv]
    sys.stdout.flush()
    os.execvp(command[0], command)  # noqa: S606


def peer_main(settings: LabSettings) -> int:
    name = settings.peer or replica_account()
    number = account_number(name)
    if os.geteuid() == 0:
        if os.environ.get("BZZZ_LAB_IMAGE") != "1":  # set by compose/Dockerfile
            raise LabError(
                "a peer starts as root only in the lab's image (it mounts /proc), not here"
            )
        leave_root(name, USER_ID + number, ["-m", "bzzz.lab.compose", "peer"])
    lifeline.arm_from_env()  # opt-in; here, after the change of user (which would clear it)
    say(f"this is {name} (uid {os.getuid()})")
    peer_id = prepare_peer(settings, PEER_HOME, ACCOUNTS_DIR, name)
    say(f"{name} is peer {peer_id}; forge {settings.forge_url}, model {settings.model_url}")
    sandbox_report(PEER_HOME)
    home = ["--home", str(PEER_HOME)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return Supervisor([["bzzz", "node", *home], ["bzzz", "worker", *home]], env).run()
