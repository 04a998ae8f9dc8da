"""The commands that set a machine up: `bzzz sandbox build-image|check` and `bzzz systemd
install`. Parsers and handlers; the work lives in workers.sandbox and bzzz.deploy.systemd."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from bzzz.config import CONFIG_FILE, SandboxSettings, load_settings, resolve_home
from bzzz.errors import ExitCode
from bzzz.liveline import LiveLine

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_deploy_commands(commands: Commands) -> None:
    _sandbox_parser(commands)
    _systemd_parser(commands)


def _sandbox_parser(commands: Commands) -> None:
    help_text = "The sandboxes where tasks' commands run (Docker or bubblewrap)."
    sandbox = commands.add_parser("sandbox", help=help_text, description=help_text)
    actions = sandbox.add_subparsers(required=True, metavar="ACTION")
    build = actions.add_parser(
        "build-image",
        help="build the Docker sandbox image from Debian packages",
        description="Build sandbox.image from Debian packages: mmdebstrap makes a minimal "
        "root file system (git, python3, coreutils, ...) and the Docker engine imports it. "
        "No image registry is needed.",
    )
    build.set_defaults(handler=_sandbox_build_image)
    build.add_argument(
        "--rootfs",
        type=Path,
        metavar="FILE.tar",
        help="import this root file system tarball if it exists, else build it there and keep it",
    )
    build.add_argument("--suite", default="bookworm", help="Debian suite (default bookworm)")
    build.add_argument("--mirror", help="Debian mirror URL (default: mmdebstrap's)")
    check = actions.add_parser(
        "check",
        help="show which backend runs commands here and check what it enforces",
        description="Open a sandbox as a task would (backend chosen by sandbox.backend) on a "
        "scratch workspace and check from inside: no root, no capabilities, read-only root, "
        "no network, no secrets. Exit 0 when all hold, 1 when one does not, 2 when no "
        "backend can run here.",
    )
    check.set_defaults(handler=_sandbox_check)
    check.add_argument("--backend", choices=("auto", "docker", "bubblewrap"))
    for sub in (build, check):
        sub.add_argument("--home", help="node home directory (default: $BZZZ_HOME or ~/.bzzz)")
        sub.add_argument("--image", help="image name (default: sandbox.image)")
        sub.add_argument("--docker-host", help="Docker engine (default: sandbox.docker_host)")


def _systemd_parser(commands: Commands) -> None:
    help_text = "systemd units for the node and its workers (see docs/systemd.md)."
    systemd = commands.add_parser("systemd", help=help_text, description=help_text)
    actions = systemd.add_subparsers(required=True, metavar="ACTION")
    install = actions.add_parser(
        "install",
        help="write the units, create the user and the directories",
        description="Write bzzz-node.service and bzzz-worker@.service to /etc/systemd/system, "
        "tell the node how many worker units it has, create the user and the node's home, "
        "and print what was done and the `systemctl enable` line to run. Into / it needs "
        "root; --dry-run and --prefix do not.",
    )
    install.set_defaults(handler=_systemd_install)
    install.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker units to run (default 1)"
    )
    install.add_argument(
        "--dry-run",
        action="store_true",
        help="print every file (in full) and command; write, create and run nothing",
    )
    install.add_argument(
        "--prefix",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="install the files under DIR; create no user, run nothing (default /)",
    )
    install.add_argument("--user", default="bzzz", help="user the services run as (bzzz)")
    install.add_argument(
        "--home",
        type=Path,
        default=Path("/var/lib/bzzz"),
        help="the node's home, under /var/lib (default /var/lib/bzzz)",
    )
    install.add_argument(
        "--bin", type=Path, help="the bzzz the units run (default: this one)", metavar="PATH"
    )


def _systemd_install(args: argparse.Namespace) -> int:
    from bzzz.deploy.systemd import UnitSettings, default_bin, install  # noqa: PLC0415

    settings = UnitSettings(user=args.user, home=args.home, bin=args.bin or default_bin())
    with LiveLine() as line:
        install(settings, args.workers, prefix=args.prefix, dry_run=args.dry_run, say=line.say)
    return ExitCode.OK


def _sandbox_settings(args: argparse.Namespace) -> SandboxSettings:
    """The node's [sandbox] settings where it has a configuration, else the defaults;
    then the command line's."""
    import dataclasses  # noqa: PLC0415

    home = resolve_home(args.home)
    settings = load_settings(home).sandbox if (home / CONFIG_FILE).exists() else SandboxSettings()
    given = {
        "backend": getattr(args, "backend", None),
        "image": args.image,
        "docker_host": args.docker_host,
    }
    return dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})


def _sandbox_build_image(args: argparse.Namespace) -> int:
    from workers.sandbox.image import build_image  # noqa: PLC0415

    settings = _sandbox_settings(args)
    with LiveLine() as line:
        image_id = build_image(
            settings, rootfs=args.rootfs, suite=args.suite, mirror=args.mirror, say=line.say
        )
    print(f"built {settings.image} ({image_id})")
    return ExitCode.OK


def _sandbox_check(args: argparse.Namespace) -> int:
    from workers.sandbox.selfcheck import check_sandbox  # noqa: PLC0415

    backend, results = check_sandbox(_sandbox_settings(args))
    print(f"backend: {backend}")
    for result in results:
        mark = "ok  " if result.passed else "FAIL"
        print(f"  {mark} {result.name}" + ("" if result.passed else f": {result.detail}"))
    return ExitCode.OK if all(result.passed for result in results) else ExitCode.FAILURE
