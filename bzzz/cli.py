"""The `bzzz` command. It parses arguments and hands off; the work lives in the modules."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bzzz import __version__
from bzzz.audit.cli import add_audit_commands
from bzzz.config import (
    ConfigError,
    load_settings,
    resolve_home,
)
from bzzz.control import request
from bzzz.deploy.cli import add_deploy_commands
from bzzz.errors import BzzzError, ExitCode
from bzzz.node.status import NodeStatus


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except BzzzError as exc:
        print(f"bzzz: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bzzz", description="Peer-to-peer coordinator for AI coding agents."
    )
    parser.add_argument("--version", action="version", version=f"bzzz {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, handler: object, home: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if home:
            sub.add_argument("--home", help="node home directory (default: $BZZZ_HOME or ~/.bzzz)")
        sub.set_defaults(handler=handler)
        return sub

    init = command(
        "init", "Create a node's configuration and identity key; print its peer ID.", _init
    )
    init.add_argument("--name", required=True, help="node name used in messages (node_id)")
    init.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="listen address (repeatable)",
    )
    init.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="peer to dial: .../p2p/PEER_ID (repeatable)",
    )
    init.add_argument(
        "--private-network",
        action="store_true",
        help="create a pre-shared key (swarm.key) and use it",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="rewrite an existing config.toml (the identity is kept)",
    )

    command("node", "Run the node (the network process) until SIGTERM or Ctrl-C.", _node)
    worker = command(
        "worker", "Run the node's worker processes (its task queue) until SIGTERM.", _worker
    )
    worker.add_argument(
        "--processes", type=int, help="worker processes (default: workers.processes)"
    )
    worker.add_argument(
        "--threads", type=int, help="tasks per process at once (default: workers.threads)"
    )

    status = command("status", "Show the running node's status and its view of the mesh.", _status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    peers = command("peers", "List the peers the running node knows.", _peers)
    peers.add_argument("--json", action="store_true", help="machine-readable output")

    models = command(
        "models", "List the mesh's models: where each lives, its size, calls in flight.", _models
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")

    tasks = command("tasks", "List the tasks the running node knows.", _tasks)
    tasks.add_argument("--json", action="store_true", help="machine-readable output")
    tasks.add_argument(
        "--ignored",
        action="store_true",
        help="list instead the labelled issues that are not tasks, and why (on the node that"
        " polls their repository)",
    )
    explaining = tasks.add_subparsers(dest="action", required=False, metavar="explain TASK")
    explain = explaining.add_parser(
        "explain",
        help="why each live node did or did not claim the task (asked over the mesh)",
        description="Ask every live node why it did or did not claim TASK, and print one"
        " line per node: its reason, and its record of the task's moves.",
    )
    explain.add_argument("task_id", metavar="TASK", help="OWNER/REPO#NUMBER")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument(
        "--home", default=argparse.SUPPRESS, help="node home directory (default: $BZZZ_HOME)"
    )

    logs = command("logs", "Show the node's and its workers' recent log, merged by time.", _logs)
    logs.add_argument("--task", help="only what mentions this task (OWNER/REPO#NUMBER)")
    logs.add_argument(
        "--level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="lowest level",
    )
    logs.add_argument("--since", help="only the last 90s, 10m, 2h, 1d...")
    logs.add_argument("--lines", type=int, default=50, help="at most this many (0: all)")
    logs.add_argument("--follow", "-f", action="store_true", help="then keep printing new lines")
    logs.add_argument("--json", action="store_true", help="the JSON records as written")

    doctor = command(
        "doctor",
        "Check config, identity, forge and token, model server, sandbox, queue and git"
        " identity; say what to fix.",
        _doctor,
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    command("stop", "Ask the running node to shut down.", _stop)
    add_audit_commands(commands)

    psk = command("psk", "Write a new pre-shared key file for a private network.", _psk, home=False)
    psk.add_argument("path", type=Path, help="where to write the key (must not exist)")

    from bzzz.lab.cli import add_lab_commands  # noqa: PLC0415 - the lab's, kept apart

    add_lab_commands(commands)
    add_deploy_commands(commands)
    return parser


def _init(args: argparse.Namespace) -> int:
    from bzzz.home import init_home  # noqa: PLC0415 - keeps `bzzz --help` fast

    home = resolve_home(args.home)
    peer_id = init_home(
        home,
        args.name,
        args.listen,
        args.bootstrap,
        private_network=args.private_network,
        force=args.force,
    )
    print(peer_id)
    return ExitCode.OK


def _node(args: argparse.Namespace) -> int:
    from bzzz.node.wiring import run_node  # noqa: PLC0415

    settings = load_settings(resolve_home(args.home))
    return run_node(settings)


def _worker(args: argparse.Namespace) -> int:
    from workers.pool import run_workers  # noqa: PLC0415

    settings = load_settings(resolve_home(args.home))
    processes = args.processes or settings.workers.processes
    threads = args.threads or settings.workers.threads
    if processes < 1 or threads < 1:
        raise ConfigError("--processes and --threads must be 1 or more.")
    return run_workers(settings, processes, threads)


def _status(args: argparse.Namespace) -> int:
    from bzzz.render import render_status  # noqa: PLC0415

    reply = _ask(args, "status")
    print(json.dumps(reply, indent=2) if args.json else render_status(NodeStatus.from_json(reply)))
    return ExitCode.OK


def _peers(args: argparse.Namespace) -> int:
    from bzzz.render import render_peers  # noqa: PLC0415

    reply = _ask(args, "status")
    peers = reply["peers"]
    print(json.dumps(peers, indent=2) if args.json else render_peers(NodeStatus.from_json(reply)))
    return ExitCode.OK


def _models(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415 - keeps `bzzz --help` fast

    from bzzz.render import render_models  # noqa: PLC0415

    report = NodeStatus.from_json(_ask(args, "status"))
    if report.gateway is None:
        raise ConfigError("this node runs no model gateway. Fix: set gateway.listen.")
    try:
        tags = httpx.get(f"{report.gateway.url}/api/tags", timeout=15).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(f"the node's model gateway did not answer: {exc}") from None
    models = tags.get("models", [])
    print(json.dumps(models, indent=2) if args.json else render_models(models, report))
    return ExitCode.OK


def _tasks(args: argparse.Namespace) -> int:
    from bzzz.render import render_ignored, render_tasks  # noqa: PLC0415

    if getattr(args, "action", None) == "explain":
        return _explain(args)
    reply = _ask(args, "status")
    key, render = ("ignored", render_ignored) if args.ignored else ("tasks", render_tasks)
    shown = reply.get(key, [])
    print(json.dumps(shown, indent=2) if args.json else render(NodeStatus.from_json(reply)))
    return ExitCode.OK


def _logs(args: argparse.Namespace) -> int:
    from bzzz import logview  # noqa: PLC0415

    try:
        since = logview.parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    log_dir = load_settings(resolve_home(args.home)).log_path.parent
    options = {"task": args.task, "level": args.level}
    entries = logview.recent(log_dir, since=since, lines=args.lines, **options)
    if not entries and not args.follow:
        print(f"nothing logged in {log_dir} matches", file=sys.stderr)
    shown = (json.dumps(e.raw) if args.json else e.line() for e in entries)
    for text in shown:
        print(text)
    if args.follow:
        for entry in logview.follow(log_dir, **options):
            print(json.dumps(entry.raw) if args.json else entry.line(), flush=True)
    return ExitCode.OK


def _doctor(args: argparse.Namespace) -> int:
    from bzzz import doctor  # noqa: PLC0415

    checks = doctor.diagnose(resolve_home(args.home))
    if args.json:
        print(json.dumps([c.as_json() for c in checks], indent=2))
    else:
        print("\n".join(doctor.render(checks)))
    return doctor.exit_code(checks)


def _stop(args: argparse.Namespace) -> int:
    _ask(args, "stop")
    return ExitCode.OK


def _explain(args: argparse.Namespace) -> int:
    nodes = _ask(args, "explain", task_id=args.task_id).get("nodes", [])
    if args.json:
        print(json.dumps(nodes, indent=2))
        return ExitCode.OK
    width = max((len(str(n["node"])) for n in nodes), default=0)
    for node in nodes:
        print(f"{node['node']:<{width}}  {node['line']}")
        if node.get("steps"):
            print(f"{'':<{width}}  moves: {', '.join(node['steps'])}")
    return ExitCode.OK


def _ask(args: argparse.Namespace, cmd: str, **fields: str) -> dict[str, Any]:
    from bzzz.config import CONTROL_SOCKET  # noqa: PLC0415

    return request(resolve_home(args.home) / CONTROL_SOCKET, {"cmd": cmd, **fields})


def _psk(args: argparse.Namespace) -> int:
    from bzzz.psk import write_psk  # noqa: PLC0415

    try:
        write_psk(args.path)
    except FileExistsError:
        raise ConfigError(f"{args.path} exists already; refusing to overwrite a key") from None
    print(f"wrote {args.path}; set network.psk_file to it on every node of the private network")
    return ExitCode.OK
