"""Execution benchmark: what running a task's commands costs.

Sandboxes: for each backend, N times in one run with the backends alternating, create a
sandbox on an empty workspace, run `true` in it, destroy it; the median and p90 of each
phase and of the whole. Docker uses the engine given (--docker-host, else a private
dockerd this script starts) with the image imported from --rootfs (built there by
mmdebstrap when the file is missing).

    .venv/bin/python -m bench.execution [--runs 30] [--backends docker bubblewrap]
        [--docker-host URL] [--rootfs FILE] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.gossip import write_section
from bzzz.config import SandboxSettings
from workers.sandbox import BACKENDS, open_sandbox
from workers.sandbox.bubblewrap_backend import BubblewrapSandbox
from workers.sandbox.docker_backend import docker_client
from workers.sandbox.dockerd import PrivateDockerd
from workers.sandbox.image import build_image

TITLE = "## Execution: sandboxes (`bench/execution.py`)"


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
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
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
