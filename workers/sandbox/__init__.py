"""Sandboxes where a task's shell commands run: the workspace read-write at /workspace,
everything else read-only, a private /tmp, no network, memory/pids/CPU limits, no
capabilities, and an environment with no secrets. Two backends, Docker and bubblewrap;
with neither usable nothing runs (SandboxUnavailable), never unsandboxed.

    with open_sandbox(settings.sandbox, workspace) as box:
        result = box.exec("python3 -m pytest -q", timeout=300)
"""

from __future__ import annotations

from pathlib import Path

from bzzz.config import SandboxSettings
from workers.sandbox.core import (
    NO_EXTRAS,
    ExecResult,
    Extras,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)

__all__ = [
    "BACKENDS",
    "NO_EXTRAS",
    "ExecResult",
    "Extras",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "choose_backend",
    "open_sandbox",
]

BACKENDS = ("docker", "bubblewrap")


def choose_backend(settings: SandboxSettings) -> str:
    """The backend that will run commands: "docker" or "bubblewrap". `auto` takes Docker
    when an engine answers and has the image, else bubblewrap when it works here.
    SandboxUnavailable says what to install or fix."""
    from workers.sandbox.bubblewrap_backend import bubblewrap_problem  # noqa: PLC0415
    from workers.sandbox.docker_backend import docker_problem  # noqa: PLC0415

    probes = {
        "docker": lambda: docker_problem(settings),
        "bubblewrap": lambda: bubblewrap_problem(settings),
    }
    wanted = BACKENDS if settings.backend == "auto" else (settings.backend,)
    problems = []
    for backend in wanted:
        problem = probes[backend]()
        if problem is None:
            return backend
        problems.append(f"{backend}: {problem}")
    raise SandboxUnavailable(
        "no sandbox can run commands here, and they never run unsandboxed. " + " ".join(problems)
    )


def open_sandbox(settings: SandboxSettings, workspace: Path, extras: Extras = NO_EXTRAS) -> Sandbox:
    """A new sandbox with `workspace` at /workspace (and `extras` bound in and set); close
    it (or use `with`) to destroy it."""
    backend = choose_backend(settings)
    if backend == "docker":
        from workers.sandbox.docker_backend import DockerSandbox  # noqa: PLC0415

        return DockerSandbox(settings, workspace, extras)
    from workers.sandbox.bubblewrap_backend import BubblewrapSandbox  # noqa: PLC0415

    return BubblewrapSandbox(settings, workspace, extras)
