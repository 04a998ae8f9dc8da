"""The compose lab cluster's entry points (compose/docker-compose.yml runs them):

    python -m bzzz.deploy.compose forge   # seed the sample world once, then serve the forge
    python -m bzzz.deploy.compose peer    # become peer-K, write the node's home, run node + workers

Accounts: the forge service seeds `BZZZ_LAB_ACCOUNTS` node accounts, peer-1 .. peer-N, as
collaborators of the sample repository, and writes each one's token to the shared
`accounts` volume (ACCOUNTS_DIR/peer-K.token, mode 0600). A peer container is compose's
replica K of the service `peer` (`docker compose up --scale peer=N` makes replicas 1..N):
it learns K from its container name, which it asks Docker's embedded DNS server for (its
address's PTR record), and takes account peer-K: its node name, forge login and git
identity. `BZZZ_LAB_PEER` names the account instead (outside compose, or with a fixed
container name). Replicas beyond the accounts seeded stop with a message saying so.

Discovery: every peer listens on port 4001 of the compose network and finds the others by
mDNS there (the network is a private bridge; nothing is advertised beyond it); the DHT and
the reconnect supervisor do the rest. `BZZZ_LAB_BOOTSTRAP` adds bootstrap addresses.

The model: `OLLAMA_HOST` names an ollama server; empty, the peers ask the lab model server
(the `model` service, ollama's API answered from the sample repository's playbook) for
model `lab`. With a real ollama, `BZZZ_LAB_MODEL` picks the model (empty: the first one
the server lists). Any `BZZZ_<SECTION>_<KEY>` variable overrides the written settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bzzz.deploy.reverse_dns import DnsError, lookup_ptr, nameservers, replica_number
from bzzz.sample import SAMPLE_OWNER, SAMPLE_REPO, sample_world

FORGE_ROOT = Path("/lab/forge")
ACCOUNTS_DIR = Path("/lab/accounts")
PEER_HOME = Path("/var/lib/bzzz")
FORGE_PORT = 8080
MODEL_PORT = 11434
P2P_PORT = 4001
SERVICE = "peer"
SEEDED = "seeded.json"
USER_ID = GROUP_ID = (
    10000  # the image's user and group bzzz (compose/Dockerfile); peer-K: uid 10000+K
)
DEFAULT_ACCOUNTS = 8
WAIT_FOR_FORGE = 180.0
STOP_TIMEOUT = 30.0


class LabError(Exception):
    """The lab cannot start this service; the message says why and what to do."""


@dataclass(frozen=True)
class LabSettings:
    """What the compose file's environment chooses."""

    accounts: int = DEFAULT_ACCOUNTS
    forge_url: str = f"http://forge:{FORGE_PORT}"
    ollama_host: str = ""
    model: str = ""
    peer: str = ""
    bootstrap: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LabSettings:
        text = environ.get("BZZZ_LAB_ACCOUNTS", "").strip() or str(DEFAULT_ACCOUNTS)
        try:
            accounts = int(text)
        except ValueError:
            raise LabError(f"BZZZ_LAB_ACCOUNTS={text!r} is not a whole number") from None
        if not 1 <= accounts <= 1000:
            raise LabError(f"BZZZ_LAB_ACCOUNTS={accounts} is out of range: 1 to 1000")
        return cls(
            accounts=accounts,
            forge_url=(environ.get("BZZZ_LAB_FORGE_URL") or cls.forge_url).rstrip("/"),
            ollama_host=environ.get("OLLAMA_HOST", "").strip(),
            model=environ.get("BZZZ_LAB_MODEL", "").strip(),
            peer=environ.get("BZZZ_LAB_PEER", "").strip(),
            bootstrap=tuple(environ.get("BZZZ_LAB_BOOTSTRAP", "").split()),
        )

    @property
    def lab_model(self) -> bool:
        """No ollama named: the lab model server answers."""
        return not self.ollama_host

    @property
    def model_url(self) -> str:
        return self.ollama_host or f"http://model:{MODEL_PORT}"


def account_names(count: int) -> list[str]:
    return [f"{SERVICE}-{number}" for number in range(1, count + 1)]


def token_path(accounts_dir: Path, name: str) -> Path:
    return accounts_dir / f"{name}.token"


def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` with `mode`, atomically."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    partial.replace(path)


# ----- the forge service -------------------------------------------------------------


def seed_once(
    forge_root: Path, accounts_dir: Path, count: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Seed the sample world with `count` node accounts unless done already; what was
    seeded. The tokens are written first, the marker last: a seed that failed leaves
    nothing in the forge (one transaction) and is made again at the next start."""
    from bzzz.forge.server import LocalForge, SeedError  # noqa: PLC0415 - peers need neither

    marker = accounts_dir / SEEDED
    if marker.exists():
        seeded: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        if seeded.get("accounts") != count:
            say(
                f"the forge was seeded with {seeded.get('accounts')} node accounts, not "
                f"{count}: keeping them (docker compose down -v, then up, seeds anew)"
            )
        return seeded
    names = account_names(count)
    tokens = {name: "bzf_" + secrets.token_hex(20) for name in names}
    accounts_dir.mkdir(parents=True, exist_ok=True)
    for name, token in tokens.items():
        write_secret(token_path(accounts_dir, name), token, 0o640)  # for the group bzzz
    world = sample_world(names)
    world["users"] = [
        {**user, "token": tokens[user["login"]]} if user["login"] in tokens else user
        for user in world["users"]
    ]
    try:
        made = LocalForge(forge_root).seed(world)
    except SeedError as exc:
        raise LabError(
            f"cannot seed the forge in {forge_root}: {exc}. Fix: docker compose down -v "
            "(removes the lab's volumes), then up again."
        ) from None
    owner = next(user["token"] for user in made["users"] if user["login"] == SAMPLE_OWNER)
    write_secret(forge_root / f"{SAMPLE_OWNER}.token", owner)  # not shared with the peers
    seeded = {"accounts": count, "repository": SAMPLE_REPO, "logins": names}
    marker.write_text(json.dumps(seeded) + "\n", encoding="utf-8")
    say(f"seeded {SAMPLE_REPO} with {count} node accounts: {names[0]} .. {names[-1]}")
    return seeded


def forge_main(settings: LabSettings) -> int:
    seed_once(FORGE_ROOT, ACCOUNTS_DIR, settings.accounts, say=_say)
    command = ["bzzz", "forge", "serve", "--root", str(FORGE_ROOT)]
    command += ["--host", "0.0.0.0", "--port", str(FORGE_PORT)]  # noqa: S104 - the lab network
    sys.stdout.flush()
    os.execvp(command[0], command)  # noqa: S606 - becomes the forge, signals and all


# ----- the peer service --------------------------------------------------------------


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
    """Runs the node and its workers; stops both when either ends or on SIGTERM."""

    def __init__(self, commands: Sequence[Sequence[str]], env: Mapping[str, str]) -> None:
        self.commands = [list(command) for command in commands]
        self.env = dict(env)
        self.stopping = threading.Event()
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, lambda *_: self.stopping.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.processes = [subprocess.Popen(command, env=self.env) for command in self.commands]
            while not self.stopping.wait(0.5):
                ended = [
                    (command, process.returncode)
                    for command, process in zip(self.commands, self.processes, strict=True)
                    if process.poll() is not None
                ]
                if ended:
                    command, code = ended[0]
                    _say(f"{' '.join(command[:2])} exited with {code}; stopping the rest")
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
        _say(f"sandbox check did not run: {exc}")
        return
    lines = (result.stdout + result.stderr).strip().splitlines()
    if result.returncode == 0:
        _say(f"sandbox check passed: {lines[0] if lines else ''}")
        return
    _say("sandbox check FAILED: tasks will fail until it passes (see compose/README.md)")
    for line in lines:
        _say(f"  {line}")


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
        _say(
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
        leave_root(name, USER_ID + number, ["-m", "bzzz.deploy.compose", "peer"])
    _say(f"this is {name} (uid {os.getuid()})")
    peer_id = prepare_peer(settings, PEER_HOME, ACCOUNTS_DIR, name)
    _say(f"{name} is peer {peer_id}; forge {settings.forge_url}, model {settings.model_url}")
    sandbox_report(PEER_HOME)
    home = ["--home", str(PEER_HOME)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return Supervisor([["bzzz", "node", *home], ["bzzz", "worker", *home]], env).run()


def _say(text: str) -> None:
    print(f"bzzz-lab: {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    roles: dict[str, Callable[[LabSettings], int]] = {"forge": forge_main, "peer": peer_main}
    if len(args) != 1 or args[0] not in roles:
        print("usage: python -m bzzz.deploy.compose forge|peer", file=sys.stderr)
        return 2
    try:
        return roles[args[0]](LabSettings.from_env(os.environ))
    except LabError as exc:
        print(f"bzzz-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
