"""Execution benchmark: what running a task's commands costs, and how long an issue
takes to become a pull request in the lab.

Sandboxes: for each backend, N times in one run with the backends alternating, create a
sandbox on an empty workspace, run `true` in it, destroy it; the median and p90 of each
phase and of the whole. Docker uses the engine given (--docker-host, else a private
dockerd this script starts) with the image imported from --rootfs (built there by
mmdebstrap when the file is missing).

Lab: `bzzz lab`'s parts (3 nodes with their workers, the local forge, the lab model
server, the sandbox `auto` picks) after the sample issues are done (forks exist); then
one issue at a time, with a title the lab model's playbook knows: opened -> announced on
task_broadcast -> claim confirmed -> pull request created (forge request log and node
logs, one clock).

    .venv/bin/python -m bench.execution [--runs 30] [--backends docker bubblewrap]
        [--docker-host URL] [--rootfs FILE] [--lab-issues 6] [--only sandboxes|lab]
        [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import github

from bench.gossip import write_section
from bzzz.config import SandboxSettings
from bzzz.lab.processes import wait_for
from bzzz.lab.run import Lab
from bzzz.lab.sample import ISSUES, SAMPLE_REPO
from workers.sandbox import BACKENDS, choose_backend, open_sandbox
from workers.sandbox.bubblewrap_backend import BubblewrapSandbox
from workers.sandbox.docker_backend import docker_client
from workers.sandbox.dockerd import PrivateDockerd
from workers.sandbox.image import build_image

TITLE = "## Execution: sandboxes (`bench/execution.py`)"
LAB_TITLE = "## Execution: issue to pull request in the lab (`bench/execution.py`)"


@dataclass
class Phases:
    """Seconds per run of each phase of a sandbox's life."""

    create: list[float] = field(default_factory=list)
    exec: list[float] = field(default_factory=list)
    destroy: list[float] = field(default_factory=list)

    @property
    def total(self) -> list[float]:
        return [sum(run) for run in zip(self.create, self.exec, self.destroy, strict=True)]


def sandbox_overhead(
    settings: dict[str, SandboxSettings], runs: int, workspace: Path
) -> dict[str, Phases]:
    """Create, exec `true`, destroy: `runs` times per backend, the backends alternating."""
    phases = {backend: Phases() for backend in settings}
    for _ in range(runs):
        for backend, backend_settings in settings.items():
            started = time.perf_counter()
            box = open_sandbox(backend_settings, workspace)
            created = time.perf_counter()
            result = box.exec("true")
            executed = time.perf_counter()
            box.close()
            destroyed = time.perf_counter()
            assert result.exit_code == 0, result
            phases[backend].create.append(created - started)
            phases[backend].exec.append(executed - created)
            phases[backend].destroy.append(destroyed - executed)
    return phases


def private_docker(stack: ExitStack, rootfs: Path, base: SandboxSettings) -> SandboxSettings:
    """Settings for a private dockerd that has the sandbox image."""
    root = Path(tempfile.mkdtemp(prefix="bzzz-bd-"))
    stack.callback(shutil.rmtree, root, ignore_errors=True)
    engine = stack.enter_context(PrivateDockerd(root))
    settings = replace(base, backend="docker", docker_host=engine.host)
    build_image(settings, rootfs=rootfs, say=print)
    return settings


def docker_note(settings: SandboxSettings) -> str:
    client = docker_client(settings)
    try:
        info = client.info()
    finally:
        client.close()
    return f"Docker {info['ServerVersion']}, {info['Driver']}"


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def render_sandboxes(phases: dict[str, Phases], runs: int, notes: dict[str, str]) -> str:
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [
        TITLE,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}. Each run creates a sandbox on"
        " an empty workspace, runs `true` in it and destroys it; the backends alternate,"
        f" {runs} runs each, in one run of the script. Create includes choosing the backend"
        " (Docker: a ping and an image lookup; bubblewrap: a trial `bwrap`); for Docker it"
        " starts the container, for bubblewrap it makes the cgroup, and each bubblewrap"
        " command builds its namespaces anew. Milliseconds, median / p90.",
        "",
        "| backend | create | exec `true` | destroy | total |",
        "|---|---|---|---|---|",
    ]
    for backend, measured in phases.items():
        cells = [
            f"{statistics.median(values) * 1000:.0f} / {p90(values) * 1000:.0f}"
            for values in (measured.create, measured.exec, measured.destroy, measured.total)
        ]
        lines.append(f"| {backend} ({notes[backend]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class IssueTiming:
    """Seconds from opening the issue."""

    announced: float
    claimed: float
    pull_request: float


def lab_issue_to_pull_request(issues: int, poll_interval: float) -> list[IssueTiming]:
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-lab-"))
    lab = Lab(root, 3, poll_interval=poll_interval)
    timings = []
    try:
        lab.init()
        lab.start()
        wait_for(lambda: lab.tasks_finished(lab.reports()), 180, "the sample issues' results")
        gh = github.Github(
            base_url=lab.forge.api_url, auth=github.Auth.Token(lab.owner_token), retry=None
        )
        repo = gh.get_repo(SAMPLE_REPO)
        for n in range(issues):
            title = ISSUES[n % 3]["title"]
            mark = lab.forge.requests()[-1].seq
            opened = time.time()
            number = repo.create_issue(title=title, labels=["bzzz-task"]).number
            task = f"{SAMPLE_REPO}#{number}"
            created: list[float] = []

            def pull_created(mark: int = mark, created: list[float] = created) -> bool:
                created[:] = [
                    r.time
                    for r in lab.forge.requests(mark)
                    if r.method == "POST" and r.path.endswith("/pulls") and r.status == 201
                ]
                return bool(created)

            wait_for(pull_created, 120, f"a pull request for {task}")
            announced = min(_logged(node.home, f"announcing task {task} ") for node in lab.nodes)
            claimed = min(_logged(node.home, f"{task}: claimed (comment") for node in lab.nodes)
            timings.append(IssueTiming(announced - opened, claimed - opened, created[0] - opened))
            print(task, timings[-1], flush=True)
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)
    return timings


def _logged(home: Path, text: str) -> float:
    """When a node's log first said `text` (epoch seconds; infinity if it never did)."""
    for line in (home / "logs" / "node.log").read_text().splitlines():
        entry = json.loads(line)
        if str(entry.get("message", "")).startswith(text):
            return datetime.fromisoformat(entry["time"]).timestamp()
    return float("inf")


def render_lab(timings: list[IssueTiming], poll_interval: float) -> str:
    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {statistics.median(values):.2f} s | {max(values):.2f} s |"

    backend = choose_backend(SandboxSettings())
    return (
        "\n".join(
            [
                LAB_TITLE,
                "",
                f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} with"
                f" {os.cpu_count()} CPUs: 3 nodes, poll interval {poll_interval:g} s, sandbox"
                f" {backend}, the lab model server (scripted replies: the time is Bzzz's, not a"
                f" model's). {len(timings)} issues, one at a time; seconds from opening each.",
                "",
                "| from opening the issue to | median | max |",
                "|---|---|---|",
                row("announced (task_broadcast)", [t.announced for t in timings]),
                row("claim confirmed on the forge", [t.claimed for t in timings]),
                row("pull request opened", [t.pull_request for t in timings]),
                "",
                "Claim to pull request (fork clone, branch, sandboxed loop of 3-4 commands, commit,"
                " push, pull request): median"
                f" {statistics.median([t.pull_request - t.claimed for t in timings]):.2f} s.",
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--docker-host", help="a running engine that has the image")
    parser.add_argument(
        "--rootfs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "bzzz-sandbox-rootfs.tar",
        help="root file system tarball for a private dockerd's image (built when missing)",
    )
    parser.add_argument("--lab-issues", type=int, default=6)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--only", choices=("sandboxes", "lab"))
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    if args.only != "sandboxes":
        timings = lab_issue_to_pull_request(args.lab_issues, args.poll_interval)
        section = render_lab(timings, args.poll_interval)
        print(section)
        write_section(args.out, section)
    if args.only == "lab":
        return
    base = SandboxSettings()
    settings: dict[str, SandboxSettings] = {}
    notes: dict[str, str] = {}
    with ExitStack() as stack:
        if "docker" in args.backends:
            if args.docker_host:
                settings["docker"] = replace(base, backend="docker", docker_host=args.docker_host)
            else:
                settings["docker"] = private_docker(stack, args.rootfs, base)
            notes["docker"] = docker_note(settings["docker"])
        if "bubblewrap" in args.backends:
            settings["bubblewrap"] = replace(base, backend="bubblewrap")
        workspace = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bzzz-bw-")))
        if "bubblewrap" in settings:
            with BubblewrapSandbox(settings["bubblewrap"], workspace) as probe:
                notes["bubblewrap"] = f"limits by {probe.limits}"
        phases = sandbox_overhead(settings, args.runs, workspace)
    section = render_sandboxes(phases, args.runs, notes)
    print(section)
    write_section(args.out, section)


if __name__ == "__main__":
    main()
