"""A task solved by an agent CLI instead of Bzzz's own loop: the CLI runs headless, once,
inside the task's sandbox, with the issue as its instructions and the model endpoint
as its only way out. What it leaves in the work tree is delivered as the loop's work is
(`workers.agent` does both); its transcript becomes the pull request's list of commands.

The CLI is stopped with everything it started when agent.wall_time runs out, or as soon
as the forge says the node no longer holds the task.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bzzz.agents import CATALOGUE, NO_GATEWAY, locate
from bzzz.config import Settings
from workers.clis.drivers import DRIVERS, INSIDE_URL, MODEL_PORT, Driver, Request
from workers.clis.relay import SOCKET_NAME, ModelRelay
from workers.clis.transcripts import Transcript
from workers.outcome import Ending, LoopResult, Step, TaskText
from workers.sandbox import Extras, Sandbox, SandboxError

log = logging.getLogger(__name__)

INSIDE_DIR = "/run/bzzz"  # the relay's directory: its socket, and the CLI's transcript
LAUNCHER = "/opt/bzzz/inside.py"
TRANSCRIPT = "transcript.jsonl"
MAX_TRANSCRIPT = 16 * 1024 * 1024  # bytes of a transcript read back (its end)
SYSTEM_PREFIXES = ("/usr/", "/bin/", "/lib")  # bound into every sandbox already


@dataclass(frozen=True)
class AgentCli:
    """An agent CLI this node can drive: its driver and where it is installed."""

    driver: Driver
    executable: str  # its real path, the same inside the sandbox
    read_only: tuple[str, ...]  # host paths it needs, bound read-only at the same path
    path: tuple[str, ...] = ()  # directories to put first on PATH (its interpreter's)

    @property
    def name(self) -> str:
        return self.driver.name


def find_cli(name: str, settings: Settings) -> AgentCli | str:
    """The agent CLI `name` as this node would run it, or why it cannot."""
    known, driver = CATALOGUE.get(name), DRIVERS.get(name)
    if known is None:
        return f"no agent CLI is called {name!r} (known: {', '.join(sorted(CATALOGUE))})"
    if known.unable or driver is None:
        return known.unable or f"Bzzz has no driver for {name}"
    if known.needs_gateway and not settings.gateway.listen:
        return NO_GATEWAY
    found = locate(known.executable, settings.capabilities.agent_path)
    if found is None:
        return (
            f"{known.executable} is not installed (looked in capabilities.agent_path and on"
            f" PATH). Fix: run scripts/setup, which installs it from {known.package}"
        )
    executable = Path(found).resolve()
    read_only = [executable.parent.parent]  # the package: bin/.., with what it loads
    path: list[str] = []
    interpreter = _interpreter(executable)
    if interpreter is not None:
        located = interpreter if "/" in interpreter else locate(interpreter, ())
        if located is None or not Path(located).exists():
            return f"{name} runs on {interpreter}, which is not installed"
        real = Path(located).resolve()  # a virtual environment's python: the one it is of
        read_only.append(real.parent.parent)
        path.append(str(real.parent))
    kept = tuple(str(p) for p in read_only if not str(p).startswith(SYSTEM_PREFIXES))
    return AgentCli(driver, str(executable), kept, tuple(path))


def extras(cli: AgentCli, relay: ModelRelay) -> Extras:
    launcher = Path(__file__).with_name("inside.py")
    path = ":".join([*cli.path, "/usr/local/bin:/usr/bin:/bin"])
    return Extras(
        read_only=cli.read_only,
        mounts=((str(launcher), LAUNCHER),),
        writable=((str(relay.directory), INSIDE_DIR),),
        env=(("PATH", path),),
    )


def prompt(task: TaskText) -> str:
    lines = [
        f"You are working in a clone of the repository {task.repo}, in the current"
        f" directory, on the branch {task.branch}.",
        f"Solve its issue #{task.number}: {task.title}",
        "",
        task.body.strip() or "(The issue has no description beyond its title.)",
        "",
        "Change the files in the working tree and run the project's tests. Do not commit,"
        " push or open a pull request: Bzzz does that with what you leave in the working"
        " tree. When you are done, say in a few sentences what you changed.",
    ]
    if task.handed:
        lines += ["", task.handed]
    return "\n".join(lines)


def solve(
    cli: AgentCli,
    task: TaskText,
    *,
    model: str,
    settings: Settings,
    sandbox: Sandbox,
    relay: ModelRelay,
    still_holds: Callable[[], bool],
    check_every: float,
) -> LoopResult:
    """Run the CLI on the task once; its transcript as the loop's result."""
    request = Request(cli.executable, prompt(task), model, settings.agent.max_turns, task.files)
    invocation = cli.driver.build(request)
    launcher = ["python3", LAUNCHER, str(MODEL_PORT), f"{INSIDE_DIR}/{SOCKET_NAME}", "--"]
    command = invocation.command(launcher) + f" > {INSIDE_DIR}/{TRANSCRIPT}"
    lost = threading.Event()
    finished = threading.Event()

    def watch() -> None:  # a lost claim stops the CLI at once, with all it started
        while not finished.wait(check_every):
            if not still_holds():
                lost.set()
                sandbox.close()
                return

    watcher = threading.Thread(target=watch, name=f"bzzz-{cli.name}-claim", daemon=True)
    watcher.start()
    log.info("%s#%d: running %s (%s) on %s", task.repo, task.number, cli.name, model, INSIDE_URL)
    stopped = LoopResult(Ending.STOPPED, f"{cli.name} was stopped: the claim was lost")
    try:
        ran = sandbox.exec(command, timeout=settings.agent.wall_time)
    except SandboxError:
        if lost.is_set():  # closed under it
            return stopped
        raise
    finally:
        finished.set()
        watcher.join()
    if lost.is_set():  # killed with the sandbox: what it did is not to be delivered
        return stopped
    transcript = cli.driver.read(_read_transcript(relay.directory / TRANSCRIPT))
    return _result(
        cli,
        transcript,
        exit_code=ran.exit_code,
        timed_out=ran.timed_out,
        stderr=ran.stderr,
        connections=relay.connections,
    )


def _result(
    cli: AgentCli,
    transcript: Transcript,
    *,
    exit_code: int,
    timed_out: bool,
    stderr: str,
    connections: int,
) -> LoopResult:
    steps = [Step(c.command, c.exit_code, c.output, False) for c in transcript.commands]

    def ended(ending: Ending, why: str, summary: str = "") -> LoopResult:
        return LoopResult(
            ending,
            why,
            summary,
            steps=steps,
            tokens=transcript.tokens,
            model_calls=transcript.turns,
        )

    if timed_out:
        return ended(Ending.WALL_TIME, f"{cli.name} ran out of time (agent.wall_time)")
    if exit_code == 0 and not transcript.failed:
        return ended(Ending.DONE, "done", transcript.summary)
    said = transcript.failed or stderr.strip()[-500:] or "no message"
    if connections == 0:  # it never reached the model: its installation, or the endpoint
        why = f"{cli.name} failed before it asked the model (exit {exit_code}): {said}"
        return ended(Ending.AGENT_BROKE, why)
    return ended(Ending.AGENT_FAILED, f"{cli.name} failed (exit {exit_code}): {said}")


def _read_transcript(path: Path) -> str:
    try:
        with path.open("rb") as transcript:
            size = transcript.seek(0, os.SEEK_END)
            transcript.seek(max(0, size - MAX_TRANSCRIPT))
            return transcript.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _interpreter(executable: Path) -> str | None:
    """The program a script's `#!` line names: a path, or a name to look up on PATH
    (`node` for `#!/usr/bin/env node`)."""
    try:
        with executable.open("rb") as file:
            first = file.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        return words[1] if len(words) > 1 else None
    return words[0]


def audit_entries(
    loop: LoopResult, name: str, model: str, served_by: dict[str, int]
) -> list[dict[str, object]]:
    """The run's entries for the node's audit log: each command, then the model calls."""
    entries = [step.audit_entry(number) for number, step in enumerate(loop.steps, 1)]
    entries.append(
        {"type": "model_calls", "model": model, "calls": loop.model_calls,
         "tokens": loop.tokens, "served_by": served_by, "agent": name}
    )  # fmt: skip
    return entries
