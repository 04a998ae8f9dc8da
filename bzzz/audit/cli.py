"""`bzzz audit show|verify|export`: the node's audit log, read from its home (the node need not
run). Parsers and handlers; the work lives in bzzz.audit.store and bzzz.audit.verify."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TypeAlias

from bzzz.audit.export import export
from bzzz.audit.store import ALARM_PREFIX, AuditStore
from bzzz.audit.verify import problems
from bzzz.config import ConfigError, load_settings, resolve_home
from bzzz.errors import ExitCode
from bzzz.identity import load_identity, peer_id_of

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
HOME_HELP = "node home directory (default: $BZZZ_HOME or ~/.bzzz)"
NODE_HELP = "another node's log, from the replica kept here (its name or peer ID)"


def add_audit_commands(commands: Commands) -> None:
    help_text = "The node's signed audit log: what it took part in."
    audit = commands.add_parser("audit", help=help_text, description=help_text)
    actions = audit.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser("show", help="list entries, oldest first")
    show.set_defaults(handler=_show)
    show.add_argument("--home", help=HOME_HELP)
    show.add_argument("--node", default="", help=NODE_HELP)
    show.add_argument("--task", default="", help="only this task's (OWNER/REPO#NUMBER)")
    show.add_argument("--type", default="", help="only this type (task_claimed, escalation...)")
    show.add_argument("--since", default="", help="only at or after this time (ISO 8601, UTC)")
    show.add_argument("--limit", type=int, default=1000, help="at most this many")
    show.add_argument("--json", action="store_true", help="the entries as stored")
    verify = actions.add_parser(
        "verify",
        help="check this node's log and its replicas of the others' against their checkpoints",
        description="Check every entry's hash, every checkpoint's signature (by its node's"
        " key, read from its peer ID) and that each checkpoint's root is the root of the"
        " entries it covers, for this node's log and each replica it keeps of another's;"
        " and report two roots signed for one size (equivocation) and the alarms raised"
        " while replicating. Exit 0 when all hold, 1 when something does not.",
    )
    verify.set_defaults(handler=_verify)
    verify.add_argument("--home", help=HOME_HELP)
    exporting = actions.add_parser(
        "export",
        help="write entries with their proofs and the latest checkpoint, as JSON",
        description="Write the entries covered by the latest checkpoint (all, or a task's"
        " or type's), each with its RFC 6962 inclusion proof, and the checkpoint's signed"
        " text: what a third party checks offline (docs/audit.md).",
    )
    exporting.set_defaults(handler=_export)
    exporting.add_argument("--home", help=HOME_HELP)
    exporting.add_argument("--node", default="", help=NODE_HELP)
    exporting.add_argument("--task", default="", help="only this task's entries")
    exporting.add_argument("--type", default="", help="only this type's entries")


def _store(args: argparse.Namespace) -> tuple[AuditStore, str]:
    """The log asked for (this node's, or a replica's by --node) and its node's peer ID."""
    settings = load_settings(resolve_home(args.home))
    origin = peer_id_of(load_identity(settings.identity_path)).to_base58()
    wanted = getattr(args, "node", "")
    if not wanted or wanted in (origin, settings.node.name):
        return AuditStore(settings.audit_path), origin
    for peer, store in _replicas(settings.replicas_path):
        if wanted in (peer, store.get_meta("node_id")):
            return store, peer
    raise ConfigError(
        f"--node: no replica of {wanted!r} is kept in {settings.replicas_path}."
        " Fix: name a node this one replicates (see `bzzz status`)."
    )


def _replicas(directory: Path) -> list[tuple[str, AuditStore]]:
    paths = sorted(directory.glob("*.db")) if directory.is_dir() else []
    return [(path.stem, AuditStore(path)) for path in paths]


def _show(args: argparse.Namespace) -> int:
    store, _ = _store(args)
    for entry in store.entries(task=args.task, type=args.type, since=args.since, limit=args.limit):
        if args.json:
            print(entry.leaf.decode("utf-8"))
            continue
        fields = json.loads(entry.leaf)
        details = " ".join(
            f"{k}={v}"
            for k, v in fields.items()
            if k not in ("type", "at", "task") and v not in ("", [], None)
        )
        print(f"{entry.index:>6}  {entry.at}  {entry.type:<18} {entry.task:<20} {details}")
    return ExitCode.OK


def _export(args: argparse.Namespace) -> int:
    store, _ = _store(args)
    print(json.dumps(export(store, task=args.task, type_=args.type), indent=1))
    return ExitCode.OK


def _verify(args: argparse.Namespace) -> int:
    settings = load_settings(resolve_home(args.home))
    origin = peer_id_of(load_identity(settings.identity_path)).to_base58()
    logs = [("this node", origin, AuditStore(settings.audit_path), False)]
    for peer, store in _replicas(settings.replicas_path):
        logs.append((f"replica of {store.get_meta('node_id') or peer}", peer, store, True))
    failed = False
    for label, peer, store, replica in logs:
        found = problems(store, peer, replica=replica)
        found += [f"alarm: {value}" for _, value in store.meta_items(ALARM_PREFIX)]
        checkpoints = store.checkpoints()
        if found:
            failed = True
            for problem in found:
                print(f"FAIL  {label}: {problem}")
            continue
        latest = f", the latest at size {checkpoints[-1][0]}" if checkpoints else ""
        print(
            f"ok    {label}: {store.size()} entries; {len(checkpoints)} checkpoints signed by"
            f" {peer}{latest}, each the root of the entries it covers"
        )
    return 1 if failed else ExitCode.OK
