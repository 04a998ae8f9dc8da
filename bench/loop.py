"""Loop benchmark: how a model does on five toy issues, each in a toy git repository of
its own, through Bzzz's reasoning loop (the code a node runs: `OllamaChat`, the loop, a
real sandbox). Per issue: solved or not (a check run in the sandbox after the loop),
how the loop ended, commands run, model calls, seconds per call, tokens per second
written, the largest prompt.

The models: GGUF models the lab model server runs through llama.cpp (`--gguf`, by
default the two that ship on PyPI), or the models of a real ollama server
(`--ollama-host URL --model NAME`, repeatable). What an operator runs to measure their
own:

    .venv/bin/python -m bench.loop --ollama-host http://127.0.0.1:11434 \\
        --model qwen2.5-coder:7b --model llama3.2:3b --num-ctx 8192 --num-predict 1024 \\
        --no-write

    .venv/bin/python -m bench.loop [--gguf smollm2 --gguf gemma3-270m] [--max-steps 8]
        [--wall-time 120] [--num-ctx 4096] [--num-predict 256] [--temperature 0] [--threads 2]
        [--issues readme,file,typo,gitignore,function] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench.gossip import write_section
from bzzz.config import SandboxSettings
from bzzz.lab.model import LabModelServer, gguf_models
from workers.agent import SandboxRunner
from workers.loop import Budget, LoopResult, TaskText, run_loop
from workers.models import OllamaChat, choose_model, fit_options
from workers.sandbox import choose_backend, open_sandbox

TITLE = "## Reasoning loop: toy issues with real models (`bench/loop.py`)"
FILES = {
    "README.md": "# toy\n\nA toy project.\n",
    "hello.py": 'def greet(name):\n    return "Helo, " + name + "!"\n\n\nprint(greet("world"))\n',
}


@dataclass(frozen=True)
class Issue:
    key: str
    title: str
    body: str
    check: str  # a shell command, run in the sandbox: exit 0 when the issue is solved


ISSUES = (
    Issue(
        "readme",
        "Add a line 'Run python3 hello.py to greet.' to README.md",
        "The README should say how to run the program.",
        "grep -qF 'Run python3 hello.py to greet.' README.md",
    ),
    Issue(
        "file",
        "Add a CONTRIBUTING.md file",
        "CONTRIBUTING.md should say: Open an issue before a pull request.",
        "grep -qi 'open an issue' CONTRIBUTING.md",
    ),
    Issue(
        "typo",
        "Fix the typo 'Helo' in hello.py",
        "greet() returns 'Helo, NAME!'; it should return 'Hello, NAME!'.",
        'python3 -B -c \'import hello; assert hello.greet("x") == "Hello, x!"\'',
    ),
    Issue(
        "gitignore",
        "Ignore __pycache__ directories in .gitignore",
        "Python's __pycache__ directories should not be committed.",
        "grep -q '__pycache__' .gitignore",
    ),
    Issue(
        "function",
        "Add a function add(a, b) to calc.py",
        "Make a new file calc.py with a function add(a, b) that returns a + b.",
        "python3 -B -c 'from calc import add; assert add(2, 3) == 5'",
    ),
)


@dataclass(frozen=True)
class Outcome:
    model: str
    issue: str
    solved: bool
    loop: LoopResult
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        written = sum(c.reply_tokens for c in self.loop.calls)
        seconds = sum(c.reply_seconds or c.seconds for c in self.loop.calls)
        return written / seconds if seconds else 0.0


def toy_repository(path: Path) -> Path:
    path.mkdir(parents=True)
    for name, text in FILES.items():
        (path / name).write_text(text)
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "."],
        ["git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qm", "toy"],
    ):
        subprocess.run(command, cwd=path, check=True, capture_output=True)
    return path


def changed(path: Path) -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=path, capture_output=True, text=True, check=True
    )
    return bool(status.stdout.strip())


def attempt(
    host: str,
    model: str,
    issue: Issue,
    budget: Budget,
    args: argparse.Namespace,
    *,
    temperature: float,
    root: Path,
) -> Outcome:
    choice = choose_model(model, "", host, 30.0)
    options = fit_options(args.num_ctx, args.num_predict, temperature, choice.context_length)
    budget = replace(budget, context_window=options.num_ctx, reply_tokens=options.num_predict)
    chat = OllamaChat(host, choice.name, budget.model_timeout, options)
    label = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{model}-{temperature:g}-{issue.key}")
    repository = toy_repository(root / label)
    files = tuple(sorted(FILES))
    task = TaskText(
        "bench/toy", 1, issue.title, issue.body, f"bzzz/task-1-{issue.key}", "main", files
    )
    settings = SandboxSettings(backend=args.sandbox, command_timeout=budget.command_timeout)
    began = time.monotonic()
    with open_sandbox(settings, repository) as sandbox:
        loop = run_loop(
            task, chat, SandboxRunner(sandbox), budget, changed=lambda: changed(repository)
        )
        seconds = time.monotonic() - began
        solved = sandbox.exec(issue.check, 30.0).exit_code == 0
    return Outcome(f"{model}, temperature {temperature:g}", issue.key, solved, loop, seconds)


def report(outcome: Outcome) -> None:
    loop = outcome.loop
    print(
        f"{outcome.model} {outcome.issue}: solved={outcome.solved} {loop.reason}"
        f" ({len(loop.steps)} commands, {len(loop.calls)} calls, {outcome.seconds:.1f} s)"
        + ("" if outcome.solved else f"; last reply: {loop.last_reply[:300]!r}"),
        flush=True,
    )


@contextmanager
def lab_server(specs: list[str], threads: int) -> Iterator[tuple[str, list[str]]]:
    models = gguf_models(specs, threads=threads)
    with LabModelServer(models=dict(models)) as server:
        yield server.url, list(models)


def render(outcomes: list[Outcome], budget: Budget, args: argparse.Namespace, where: str) -> str:
    lines = [
        TITLE,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with {os.cpu_count()}"
        f" CPUs, Python {platform.python_version()}: {where}. Each toy issue in a git"
        f" repository of its own, sandbox {choose_backend(SandboxSettings(backend=args.sandbox))};"
        f" budget {budget.max_steps} commands, {budget.wall_time:.0f} s, num_ctx"
        f" {args.num_ctx}, num_predict {args.num_predict}. Solved: the"
        " issue's check passes in the sandbox after the loop, whatever the model said.",
        "",
        "| model | solved | commands / call | s / call | tokens/s written | largest prompt"
        " | endings |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in dict.fromkeys(o.model for o in outcomes):
        mine = [o for o in outcomes if o.model == model]
        calls = [c for o in mine for c in o.loop.calls]
        steps = sum(len(o.loop.steps) for o in mine)
        counted = Counter(o.loop.ending.value for o in mine)
        endings = "; ".join(f"{ending} ({n})" for ending, n in counted.most_common())
        speed = statistics.median(o.tokens_per_second for o in mine)
        lines.append(
            f"| {model} | {sum(o.solved for o in mine)} of {len(mine)}"
            f" ({', '.join(o.issue for o in mine if o.solved) or 'none'})"
            f" | {steps} / {len(calls)}"
            f" | {statistics.median(c.seconds for c in calls):.1f}"
            f" | {speed:.0f} | {max(c.prompt_tokens for c in calls)} | {endings} |"
        )
    lines += [
        "",
        "What the models did, by their last replies (at most one per model shown):",
        "",
        *(f"- {o.model}, {o.issue}: `{_one_line(o.loop.last_reply)}`" for o in _samples(outcomes)),
        "",
        "To measure your own models, against your ollama:",
        "",
        "```sh",
        ".venv/bin/python -m bench.loop --ollama-host http://127.0.0.1:11434 \\",
        "    --model qwen2.5-coder:7b --num-ctx 8192 --num-predict 1024 --no-write",
        "```",
    ]
    return "\n".join(lines) + "\n"


def _samples(outcomes: list[Outcome]) -> list[Outcome]:
    """One unsolved outcome per model: the first with a reply to show."""
    picked: dict[str, Outcome] = {}
    for outcome in outcomes:
        if not outcome.solved and outcome.loop.last_reply and outcome.model not in picked:
            picked[outcome.model] = outcome
    return list(picked.values())


def _one_line(text: str) -> str:
    line = " ".join(text.split()).replace("`", "'")
    return line if len(line) <= 200 else f"{line[:200]}…"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gguf", action="append", default=[], metavar="SPEC")
    parser.add_argument("--ollama-host", metavar="URL")
    parser.add_argument("--model", action="append", default=[], metavar="NAME")
    parser.add_argument("--issues", default=",".join(i.key for i in ISSUES))
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--wall-time", type=float, default=120.0)
    parser.add_argument("--model-timeout", type=float, default=60.0)
    parser.add_argument("--num-ctx", type=int, default=4096)
    parser.add_argument("--num-predict", type=int, default=256)
    parser.add_argument(
        "--temperature", type=float, action="append", default=[], help="repeatable (default 0)"
    )
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model")
    parser.add_argument("--sandbox", default="bubblewrap", choices=("auto", "docker", "bubblewrap"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print the results only")
    args = parser.parse_args()
    issues = [i for i in ISSUES if i.key in args.issues.split(",")]
    budget = Budget(
        max_steps=args.max_steps,
        wall_time=args.wall_time,
        model_timeout=args.model_timeout,
        command_timeout=30.0,
        output_chars=4000,
    )
    outcomes: list[Outcome] = []
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bzzz-bl-")))
        if args.ollama_host:
            host, models = args.ollama_host, args.model or [""]
            where = f"ollama at {args.ollama_host}"
        else:
            specs = args.gguf or ["smollm2", "gemma3-270m"]
            host, models = stack.enter_context(lab_server(specs, args.threads))
            where = (
                "the lab model server running GGUF models through llama.cpp"
                f" (llama-cpp-python 0.3.16, {args.threads} threads)"
            )
        for model in models:
            for temperature in args.temperature or [0.0]:
                for issue in issues:
                    outcome = attempt(
                        host, model, issue, budget, args, temperature=temperature, root=scratch
                    )
                    outcomes.append(outcome)
                    report(outcome)
    section = render(outcomes, budget, args, where)
    print(section)
    if not args.no_write:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
