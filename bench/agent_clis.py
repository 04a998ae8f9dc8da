"""What running a task through an agent CLI costs: each CLI Bzzz drives (as scripts/setup
installs it) solves the lab's issue 1 in a bubblewrap sandbox through the model relay
and a real node's gateway (the path a task takes; Gemini CLI's genai API needs the
gateway), answered by the lab model server's scripts (which answer at once, so what is
measured is the CLI, the sandbox and the gateway). For each: the time from the sandbox
command's start to the CLI's first model request, and to its end; an empty sandbox
command for reference.

    .venv/bin/python -m bench.agent_clis [--runs 5] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.gossip import write_section
from bzzz.agents import SETUP_PATH
from bzzz.config import SandboxSettings, load_settings
from bzzz.home import init_home
from bzzz.lab.model import ChatRequest, LabModelServer, Reply, sample_playbook
from bzzz.lab.processes import NodeProcess, free_port
from bzzz.lab.sample import FILES, ISSUES
from workers.clis.drivers import DRIVERS, MODEL_PORT, Request
from workers.clis.executor import LAUNCHER, AgentCli, extras, find_cli
from workers.clis.relay import SOCKET_NAME, ModelRelay
from workers.sandbox import NO_EXTRAS, open_sandbox

TOOLS = list(SETUP_PATH)
PROMPT = f"Solve issue #1: {ISSUES[0]['title']}\n\n{ISSUES[0]['body']}"


def clis() -> list[AgentCli]:
    """The agent CLIs Bzzz drives that scripts/setup installed here."""
    home = Path(tempfile.mkdtemp(prefix="bzzz-bench-home-"))
    init_home(home, "bench", extra={"capabilities": {"agent_path": TOOLS}}, force=True)
    settings = load_settings(home)
    found = []
    for name in DRIVERS:
        cli = find_cli(name, settings)
        if isinstance(cli, str):
            print(f"{name}: left out: {cli}")
        else:
            found.append(cli)
    return found


def workspace() -> Path:
    path = Path(tempfile.mkdtemp(prefix="bzzz-bench-ws-"))
    for name, text in FILES.items():
        (path / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    return path


class Timed:
    """The sample playbook, noting when each request came."""

    def __init__(self) -> None:
        self.playbook = sample_playbook(crash=False)
        self.times: list[float] = []

    def __call__(self, request: ChatRequest) -> Reply:
        self.times.append(time.monotonic())
        return self.playbook(request)


def one_run(
    cli: AgentCli | None, sandbox_settings: SandboxSettings, gateway: str, model: Timed
) -> tuple[float, float]:
    """Seconds to the first model request (0 for the empty command), and in all."""
    model.times.clear()
    first = model.times
    path = workspace()
    try:
        with ModelRelay(gateway) as relay:
            room = extras(cli, relay) if cli else NO_EXTRAS
            with open_sandbox(sandbox_settings, path, room) as box:
                if cli is None:
                    command = "true"
                else:
                    invocation = cli.driver.build(Request(cli.executable, PROMPT, "coder", 20))
                    launcher = ["python3", LAUNCHER, str(MODEL_PORT), f"/run/bzzz/{SOCKET_NAME}"]
                    command = invocation.command([*launcher, "--"]) + " > /dev/null"
                started = time.monotonic()
                ran = box.exec(command, timeout=120)
                ended = time.monotonic()
        if ran.exit_code != 0:
            raise RuntimeError(f"{cli.name if cli else 'true'} failed: {ran.stderr[-500:]}")
        if cli is not None and "farewell" not in (path / "hello.py").read_text():
            raise RuntimeError(f"{cli.name} did not make the change")
        return (first[0] - started if first else 0.0), ended - started
    finally:
        shutil.rmtree(path, ignore_errors=True)


def version(cli: AgentCli) -> str:
    said = subprocess.run(
        [cli.executable, "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return (said.stdout.strip().splitlines() or ["?"])[0]


def row(cli: AgentCli | None, runs: list[tuple[float, float]]) -> str:
    to_first = statistics.median(r[0] for r in runs)
    total = statistics.median(r[1] for r in runs)
    name = f"{cli.name} ({version(cli)})" if cli else "`true` (the sandbox alone)"
    return f"| {name} | {'-' if cli is None else f'{to_first:.2f} s'} | {total:.2f} s |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    settings = SandboxSettings(backend="bubblewrap", memory_mb=2048)
    rows = []
    model = Timed()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-node-"))
    with LabModelServer(models={"coder": model}) as lab:
        node = NodeProcess(root / "node", "bench-node", free_port())
        node.init(capabilities={"ollama_host": lab.url})
        node.start()
        try:
            for cli in [None, *clis()]:
                runs = [one_run(cli, settings, node.gateway_url, model) for _ in range(args.runs)]
                rows.append(row(cli, runs))
                print(rows[-1])
        finally:
            node.stop()
            shutil.rmtree(root, ignore_errors=True)
    section = "\n".join(
        [
            "## Agent CLIs (`bench/agent_clis.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores: each agent CLI Bzzz drives"
            " solves the lab's issue 1 (five scripted turns: commands run through the CLI's"
            " own shell tool, then its summary; aider's one reply of whole files) in a"
            " bubblewrap sandbox, through the model relay and a node's gateway, answered at"
            f" once by the lab model server; medians of {args.runs} runs."
            " An empty command in the same sandbox is the reference.",
            "",
            "| CLI | start to first model request | the whole task |",
            "|---|---|---|",
            *rows,
        ]
    )
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()
