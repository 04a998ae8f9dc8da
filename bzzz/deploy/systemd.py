"""systemd units for a node and its workers, and `bzzz systemd install`.

The units are rendered from bzzz/templates/; the repository's systemd/ holds them as
rendered with the default UnitSettings (a test keeps the two equal). An install is
first planned (plain data, no I/O), then carried out or, with --dry-run, only printed,
so that a dry run shows exactly what a real install would do.
"""

from __future__ import annotations

import math
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from bzzz.config import CONFIG_FILE
from bzzz.errors import BzzzError, ExitCode
from workers.pool import SHUTDOWN_TIMEOUT

NODE_UNIT = "bzzz-node.service"
WORKER_UNIT = "bzzz-worker@.service"
WORKERS_DROP_IN = "bzzz-node.service.d/workers.conf"
WORKERS_DROP_IN_TEMPLATE = "bzzz-node-workers.conf"
UNIT_DIRECTORY = Path("/etc/systemd/system")
CONFIG_DIRECTORY = Path("/etc/bzzz")
TOKEN_SOURCE = CONFIG_DIRECTORY / "forge.token"
STATE_ROOT = Path("/var/lib")  # where StateDirectory= puts the node's home
STOP_MARGIN = 60  # seconds beyond the workers' shutdown timeout before systemd kills
# What ProtectHome= hides from the services: the units cannot run a bzzz installed there.
HIDDEN_FROM_SERVICES = (Path("/home"), Path("/root"), Path("/run/user"))
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
Say = Callable[[str], None]


class InstallError(BzzzError):
    """The units cannot be installed as asked; the message says why and what to do."""

    exit_code = ExitCode.CONFIG


@dataclass(frozen=True)
class UnitSettings:
    """What the units depend on. The defaults give the repository's systemd/ files."""

    user: str = "bzzz"
    home: Path = Path("/var/lib/bzzz")
    bin: Path = Path("/usr/local/bin/bzzz")

    def __post_init__(self) -> None:
        if not USER_NAME.fullmatch(self.user):
            raise InstallError(
                f"--user {self.user!r} is not a system user name (a-z, 0-9, '_', '-')"
            )
        if not self.home.is_absolute() or self.home == STATE_ROOT:
            raise InstallError(f"--home {self.home} must be an absolute path under {STATE_ROOT}")
        if not self.home.is_relative_to(STATE_ROOT):
            raise InstallError(
                f"--home {self.home} is not under {STATE_ROOT}, where StateDirectory= keeps "
                f"service state; use e.g. {STATE_ROOT / 'bzzz'} (a symlink or bind mount can "
                "put it on another disk)"
            )
        if not self.bin.is_absolute():
            raise InstallError(f"--bin {self.bin} must be an absolute path")

    @property
    def state_directory(self) -> str:
        return str(self.home.relative_to(STATE_ROOT))


def worker_stop_timeout() -> int:
    """TimeoutStopSec= of a worker: its tasks' time to finish, and a margin."""
    return math.ceil(SHUTDOWN_TIMEOUT) + STOP_MARGIN


def _template(name: str) -> Template:
    return Template(resources.files("bzzz").joinpath("templates", name).read_text("utf-8"))


def render_units(settings: UnitSettings) -> dict[str, str]:
    """Unit file name -> its text."""
    values = {
        "user": settings.user,
        "home": str(settings.home),
        "bin": str(settings.bin),
        "state_directory": settings.state_directory,
        "token_source": str(TOKEN_SOURCE),
        "node_unit": NODE_UNIT,
        "shutdown_timeout": f"{SHUTDOWN_TIMEOUT:g}",
        "stop_timeout": str(worker_stop_timeout()),
    }
    return {name: _template(name).substitute(values) for name in (NODE_UNIT, WORKER_UNIT)}


def render_workers_drop_in(workers: int) -> str:
    """The node's drop-in telling it how many worker units it has."""
    return _template(WORKERS_DROP_IN_TEMPLATE).substitute(workers=workers)


def enable_command(workers: int) -> str:
    units = " ".join(f"bzzz-worker@{number}" for number in range(1, workers + 1))
    return f"systemctl enable --now {NODE_UNIT.removesuffix('.service')} {units}"


def default_bin() -> Path:
    """The bzzz that is running this: next to this Python, else on PATH."""
    beside = Path(sys.executable).with_name("bzzz")
    if beside.is_file():
        return beside
    found = shutil.which("bzzz")
    return Path(found) if found else UnitSettings().bin


def bin_problems(path: Path) -> list[str]:
    """Why the units could not run `path` here: missing, or hidden by ProtectHome=."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        return [f"{path} is not an executable file (give the bzzz to run with --bin)"]
    paths = [path.resolve()]
    interpreter = _interpreter(path)
    if interpreter is not None:
        paths.append(interpreter.resolve())
    return [
        f"{hidden} is hidden from the services (ProtectHome=), and {path} runs {found}: "
        "install Bzzz outside home directories, e.g. in a virtual environment in /opt/bzzz "
        "made with /usr/bin/python3"
        for found in paths
        for hidden in HIDDEN_FROM_SERVICES
        if found.is_relative_to(hidden)
    ]


def _interpreter(script: Path) -> Path | None:
    """The interpreter in a script's #! line (a console script's Python)."""
    try:
        with script.open("rb") as file:
            first = file.readline(4096)
    except OSError:  # executable but not readable: not a script we can look into
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return Path(words[0]) if words else None


# The steps of an install: plain data, carried out by `install`.


@dataclass(frozen=True)
class CreateUser:
    user: str
    home: Path

    @property
    def argv(self) -> tuple[str, ...]:
        return (
            "useradd",
            "--system",
            "--user-group",
            "--home-dir", str(self.home),
            "--no-create-home",
            "--shell", "/usr/sbin/nologin",
            self.user,
        )  # fmt: skip


@dataclass(frozen=True)
class MakeDirectory:
    path: Path  # as seen from the installed system
    mode: int
    owner: str | None = None  # None: root's


@dataclass(frozen=True)
class WriteFile:
    path: Path  # as seen from the installed system
    text: str
    mode: int = 0o644


@dataclass(frozen=True)
class ReloadSystemd:
    argv = ("systemctl", "daemon-reload")


Step = CreateUser | MakeDirectory | WriteFile | ReloadSystemd


def plan_install(settings: UnitSettings, workers: int) -> list[Step]:
    units = render_units(settings)
    return [
        CreateUser(settings.user, settings.home),
        MakeDirectory(CONFIG_DIRECTORY, 0o700),
        # StateDirectory= makes the home at start, but `bzzz init` must run before.
        MakeDirectory(settings.home, 0o700, owner=settings.user),
        MakeDirectory(UNIT_DIRECTORY, 0o755),
        WriteFile(UNIT_DIRECTORY / NODE_UNIT, units[NODE_UNIT]),
        WriteFile(UNIT_DIRECTORY / WORKER_UNIT, units[WORKER_UNIT]),
        MakeDirectory((UNIT_DIRECTORY / WORKERS_DROP_IN).parent, 0o755),
        WriteFile(UNIT_DIRECTORY / WORKERS_DROP_IN, render_workers_drop_in(workers)),
        ReloadSystemd(),
    ]


def install(
    settings: UnitSettings,
    workers: int,
    *,
    prefix: Path = Path("/"),
    dry_run: bool = False,
    say: Say = print,
) -> None:
    """Install the units for `workers` worker units under `prefix`, saying what is done.

    Only an install into / creates the user, sets owners and runs commands; it needs
    root. Under another prefix only files and directories are made, with their modes.
    """
    if workers < 1:
        raise InstallError("--workers must be 1 or more")
    real = prefix.resolve() == Path("/")
    if dry_run:
        say("dry run: nothing is written, created or run")
    if real:
        problems = bin_problems(settings.bin)
        if problems and not dry_run:
            raise InstallError("; ".join(problems))
        for problem in problems:
            say(f"warning: {problem}")
    if real and not dry_run and os.geteuid() != 0:
        raise InstallError("installing into / needs root: use sudo, or --dry-run or --prefix DIR")
    target = _Target(prefix, real, dry_run, say)
    for step in plan_install(settings, workers):
        target.apply(step)
    _say_next_steps(settings, workers, prefix, say)


class _Target:
    """Where the steps land: the real system, a directory standing for one, or nowhere."""

    def __init__(self, prefix: Path, real: bool, dry_run: bool, say: Say) -> None:
        self.prefix = prefix
        self.real = real
        self.dry_run = dry_run
        self.say = say

    def at(self, path: Path) -> Path:
        return self.prefix / path.relative_to("/")

    def apply(self, step: Step) -> None:
        match step:
            case CreateUser():
                self.create_user(step)
            case MakeDirectory():
                self.make_directory(step)
            case WriteFile():
                self.write_file(step)
            case ReloadSystemd():
                self.reload_systemd(step)

    def create_user(self, step: CreateUser) -> None:
        command = " ".join(step.argv)
        if not self.real:
            self.say(f"not run (--prefix): {command}")
        elif _user_exists(step.user):
            self.say(f"user {step.user} exists already: not created")
        elif self.dry_run:
            self.say(f"would run: {command}")
        else:
            self.run(step.argv)

    def make_directory(self, step: MakeDirectory) -> None:
        path = self.at(step.path)
        exists = path.is_dir()
        what = f"directory {path} (mode {step.mode:04o}"
        if step.owner:
            what += f", owner {step.owner}" if self.real else f"; owner {step.owner} not set"
        what += ")"
        if self.dry_run:
            self.say(f"would {'keep' if exists else 'create'} {what}")
            return
        path.mkdir(mode=step.mode, parents=True, exist_ok=True)
        path.chmod(step.mode)
        if step.owner and self.real:
            entry = pwd.getpwnam(step.owner)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.say(f"{'kept' if exists else 'created'} {what}")

    def write_file(self, step: WriteFile) -> None:
        path = self.at(step.path)
        if self.dry_run:
            self.say(f"would write {path} (mode {step.mode:04o}):")
            self.say(step.text)
            return
        unchanged = path.is_file() and path.read_text(encoding="utf-8") == step.text
        if not unchanged:
            temporary = path.with_name(f".{path.name}.new")
            temporary.write_text(step.text, encoding="utf-8")
            temporary.chmod(step.mode)
            temporary.replace(path)
        path.chmod(step.mode)
        self.say(f"{'unchanged' if unchanged else 'wrote'} {path} (mode {step.mode:04o})")

    def reload_systemd(self, step: ReloadSystemd) -> None:
        command = " ".join(step.argv)
        if not self.real:
            self.say(f"not run (--prefix): {command}")
        elif not Path("/run/systemd/system").is_dir():
            self.say(f"not run (systemd is not running here): {command}")
        elif self.dry_run:
            self.say(f"would run: {command}")
        else:
            self.run(step.argv)

    def run(self, argv: tuple[str, ...]) -> None:
        command = " ".join(argv)
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise InstallError(f"{command}: {argv[0]} is not installed") from None
        except subprocess.CalledProcessError as exc:
            raise InstallError(f"{command} failed: {exc.stderr.strip()}") from None
        self.say(f"ran: {command}")


def _user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def _say_next_steps(settings: UnitSettings, workers: int, prefix: Path, say: Say) -> None:
    home_there = prefix / settings.home.relative_to("/")
    token_there = prefix / TOKEN_SOURCE.relative_to("/")
    say("next:")
    if not (home_there / CONFIG_FILE).exists():
        say(
            f"  sudo -u {settings.user} {settings.bin} init --home {settings.home} "
            "--name NODE_NAME   # then set tasks.repositories in its config.toml"
        )
    if not token_there.exists():
        say(
            f"  sudo sh -c 'umask 077; cat > {TOKEN_SOURCE}'   "
            "# paste the node's forge token, then Ctrl-D"
        )
    say(f"  {enable_command(workers)}")


def write_reference_units(directory: Path) -> None:
    """Write the units as rendered with the defaults: the repository's systemd/ files."""
    for name, text in render_units(UnitSettings()).items():
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":  # python -m bzzz.deploy.systemd systemd/
    write_reference_units(Path(sys.argv[1]))
