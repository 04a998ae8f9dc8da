"""How each agent CLI is driven headless: its command line and environment for one task
against one model endpoint, and how its output reads back as a transcript. Pure.

Every CLI runs inside the sandbox, where its only way out is the model endpoint on the
sandbox's loopback (`MODEL_PORT`, relayed to the node's gateway or ollama). The key a
CLI insists on is a placeholder: the endpoint takes none, and no secret of the node's
enters the sandbox.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MODEL_PORT = 11434  # ollama's own port: what CLIs that speak ollama's API try first
INSIDE_URL = f"http://127.0.0.1:{MODEL_PORT}"
PLACEHOLDER_KEY = "bzzz-no-key"  # the endpoint checks no key; CLIs refuse to start without
QUIET = {  # no update checks, telemetry or error reports: they would only time out
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "NO_COLOR": "1",
}


@dataclass(frozen=True)
class Request:
    executable: str  # the CLI's path (the same inside the sandbox as on the host)
    prompt: str
    model: str
    max_turns: int
    files: tuple[str, ...] = ()  # the repository's files (for a CLI that is given them)


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    setup: str = ""  # shell run first, in the sandbox (a config directory to make)

    def command(self, launcher: Iterable[str]) -> str:
        """The `sh -c` command: the setup, then the CLI behind `launcher`, with its
        environment."""
        variables = [f"{name}={value}" for name, value in sorted(self.env.items())]
        run = shlex.join(["env", *variables, *launcher, *self.argv])
        return f"{self.setup} && exec {run}" if self.setup else f"exec {run}"


@dataclass(frozen=True)
class Command:
    command: str
    exit_code: int
    output: str


@dataclass(frozen=True)
class Transcript:
    """What a CLI's output says it did: the commands it ran, its last words, its turns."""

    commands: list[Command] = field(default_factory=list)
    summary: str = ""
    turns: int = 0
    failed: str = ""  # the CLI's own error, if it ended on one
    tokens: int = 0


@dataclass(frozen=True)
class Driver:
    name: str  # as a task's `agent:NAME` label names it
    build: Callable[[Request], Invocation]
    read: Callable[[str], Transcript]  # its output (as `build` asks for it) as a transcript
    budget: str = "agent.wall_time"  # what bounds a run besides the time limit, in words


def claude_code(request: Request) -> Invocation:
    argv = (
        request.executable,
        "-p",
        request.prompt,
        "--model", request.model,
        "--output-format", "stream-json",
        "--verbose",
        "--permission-mode", "bypassPermissions",  # the sandbox is the boundary
        "--max-turns", str(request.max_turns),
    )  # fmt: skip
    env = {
        **QUIET,
        "ANTHROPIC_BASE_URL": INSIDE_URL,
        "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        # Its background calls (titles, summaries) go to the task's model too.
        "ANTHROPIC_SMALL_FAST_MODEL": request.model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": request.model,
        "IS_SANDBOX": "1",
    }
    return Invocation(argv, env)


def read_claude(output: str) -> Transcript:
    """Claude Code's stream-json: tool uses, their results, then a `result` line."""
    uses: dict[str, str] = {}
    commands: list[Command] = []
    summary, failed, turns, tokens = "", "", 0, 0
    for event in _json_lines(output):
        content = (event.get("message") or {}).get("content")
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                uses[str(block.get("id"))] = _tool_text(block)
            elif block.get("type") == "tool_result" and str(block.get("tool_use_id")) in uses:
                result = block.get("content")
                text = result if isinstance(result, str) else _blocks_text(result)
                code = 1 if block.get("is_error") else 0
                commands.append(Command(uses.pop(str(block["tool_use_id"])), code, text))
        if event.get("type") == "result":
            summary = str(event.get("result") or "")
            turns = int(event.get("num_turns") or 0)
            usage = event.get("usage") or {}
            tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
            if event.get("is_error") or event.get("subtype") != "success":
                failed = f"Claude Code ended with {event.get('subtype')}: {summary}"[:500]
    return Transcript(commands, summary, turns, failed, tokens)


CODEX_HOME = "/tmp/codex"  # noqa: S108 - the sandbox's own /tmp


def codex(request: Request) -> Invocation:
    provider = (
        f'model_providers.bzzz={{name="bzzz",base_url="{INSIDE_URL}/v1",'
        'wire_api="responses",env_key="BZZZ_MODEL_KEY"}'
    )
    argv = (
        request.executable,
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",  # the sandbox is the boundary
        "-c", "model_provider=bzzz",
        "-c", provider,
        # No update check, analytics or telemetry export: with no network they only wait
        # (5.7 s of each run, measured, until they time out).
        "-c", "check_for_update_on_startup=false",
        "-c", "analytics.enabled=false",
        "-c", 'otel.exporter="none"',
        "-m", request.model,
        request.prompt,
    )  # fmt: skip
    env = {**QUIET, "CODEX_HOME": CODEX_HOME, "BZZZ_MODEL_KEY": PLACEHOLDER_KEY}
    return Invocation(argv, env, setup=f"mkdir -p {CODEX_HOME}")


def read_codex(output: str) -> Transcript:
    """`codex exec --json`: items (commands, messages), turns, errors."""
    commands: list[Command] = []
    summary, failed, turns, tokens = "", "", 0, 0
    for event in _json_lines(output):
        kind, item = event.get("type"), event.get("item") or {}
        if kind == "item.completed" and item.get("type") == "command_execution":
            code = item.get("exit_code")
            commands.append(
                Command(
                    str(item.get("command", "")),
                    code if isinstance(code, int) else -1,
                    str(item.get("aggregated_output", "")),
                )
            )
        elif kind == "item.completed" and item.get("type") == "agent_message":
            summary = str(item.get("text", ""))
        elif kind == "turn.completed":
            turns += 1
            usage = event.get("usage") or {}
            tokens += int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        elif kind in ("turn.failed", "error"):
            error = event.get("error") or {}
            failed = str(error.get("message") if isinstance(error, dict) else error)
            failed = failed or str(event.get("message", "codex failed"))
    return Transcript(commands, summary, turns, failed[:500], tokens)


def opencode(request: Request) -> Invocation:
    """opencode's `run`, with the endpoint as an OpenAI-compatible provider of its inline
    config; `--pure`: no plugins, which it would fetch from npm at every start."""
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "provider": {
            "bzzz": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Bzzz",
                "options": {"baseURL": f"{INSIDE_URL}/v1", "apiKey": PLACEHOLDER_KEY},
                "models": {request.model: {"name": request.model}},
            }
        },
    }
    argv = (
        request.executable,
        "run",
        "--pure",
        "--format", "json",
        "--auto",  # approve its tools: the sandbox is the boundary
        "-m", f"bzzz/{request.model}",
        request.prompt,
    )  # fmt: skip
    env = {**QUIET, "OPENCODE_CONFIG_CONTENT": json.dumps(config)}
    return Invocation(argv, env)


def read_opencode(output: str) -> Transcript:
    """`opencode run --format json`: tool uses with their output, texts, steps."""
    commands: list[Command] = []
    summary, failed, turns, tokens = "", "", 0, 0
    for event in _json_lines(output):
        kind, part = event.get("type"), event.get("part") or {}
        if kind == "tool_use":
            state = part.get("state") or {}
            code = (state.get("metadata") or {}).get("exit")
            commands.append(
                Command(
                    _tool_text({"name": part.get("tool"), "input": state.get("input")}),
                    code
                    if isinstance(code, int)
                    else (0 if state.get("status") == "completed" else 1),
                    str(state.get("output", "")),
                )
            )
        elif kind == "text":
            summary = str(part.get("text", ""))
        elif kind == "step_finish":
            turns += 1
            used = part.get("tokens") or {}
            tokens += int(used.get("input") or 0) + int(used.get("output") or 0)
        elif kind == "error":
            error = event.get("error") or {}
            failed = str((error.get("data") or {}).get("message") or error.get("name") or error)
    return Transcript(commands, summary, turns, failed[:500], tokens)


AIDER_HOME = "/tmp/aider"  # noqa: S108 - the sandbox's own /tmp: its histories stay out of the tree
MAX_AIDER_FILES = 30  # a small repository's files go into aider's chat; a larger one's do not


def aider(request: Request) -> Invocation:
    """aider's one-shot `--message`. It edits only through file listings in the model's
    reply (it runs no shell command unasked, and never under --yes-always), touches no
    git (Bzzz commits), and keeps its histories in the sandbox's /tmp."""
    files = request.files if len(request.files) <= MAX_AIDER_FILES else ()
    argv = (
        request.executable,
        "--message", request.prompt,
        "--model", f"openai/{request.model}",
        "--openai-api-base", f"{INSIDE_URL}/v1",
        "--openai-api-key", PLACEHOLDER_KEY,
        "--edit-format", "whole",
        "--yes-always",
        # Bzzz keeps the clone's git directory outside the sandbox: without --no-git,
        # aider would make a repository of its own in the work tree.
        "--no-git", "--no-gitignore",
        "--no-auto-lint", "--no-auto-test",
        "--map-tokens", "0",
        "--no-check-update", "--no-show-release-notes", "--analytics-disable",
        "--no-show-model-warnings", "--no-pretty", "--no-fancy-input", "--no-stream",
        "--chat-history-file", f"{AIDER_HOME}/chat.md",
        "--input-history-file", f"{AIDER_HOME}/input",
        *files,
    )  # fmt: skip
    return Invocation(argv, QUIET, setup=f"mkdir -p {AIDER_HOME}")


def read_aider(output: str) -> Transcript:
    """aider's plain output: the files it edited, its errors, its token counts."""
    edited = re.findall(r"^Applied edit to (.+)$", output, re.MULTILINE)
    commands = [Command(f"edit {path.strip()}", 0, "") for path in edited]
    failed = next(
        (line for line in output.splitlines() if line.startswith(("litellm.", "Error:"))), ""
    )
    sent = [
        _kilo(n) + _kilo(m)
        for n, m in re.findall(r"Tokens: ([\d.]+k?) sent, ([\d.]+k?) received", output)
    ]
    return Transcript(commands, _aider_said(output, edited), len(sent), failed[:500], sum(sent))


def _aider_said(output: str, edited: list[str]) -> str:
    """The model's words before its first file listing: after aider's "Added FILE to the
    chat." lines, up to the first line that names an edited file."""
    lines = output.splitlines()
    start = max(
        (i + 1 for i, line in enumerate(lines) if line.endswith(" to the chat.")), default=0
    )
    names = {path.strip() for path in edited}
    said = []
    for line in lines[start:]:
        if line.strip() in names or line.startswith("Tokens: "):
            break
        said.append(line.strip())
    return " ".join(" ".join(said).split())


def _kilo(count: str) -> int:
    return int(float(count[:-1]) * 1000) if count.endswith("k") else int(float(count))


GEMINI_SETTINGS = "/tmp/.gemini/settings.json"  # noqa: S108 - under the sandbox's HOME


def gemini(request: Request) -> Invocation:
    """Gemini CLI's `-p`, on the endpoint as Google's genai API (the gateway translates it
    to ollama's chat). Its settings pick the API key as its way in, trust the work tree
    (else --yolo is overridden), and turn off statistics and updates."""
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True},
        "model": {"maxSessionTurns": request.max_turns},
    }
    argv = (
        request.executable,
        "-p", request.prompt,
        "-m", request.model,
        "--yolo",  # approve its tools: the sandbox is the boundary
        "--output-format", "stream-json",
    )  # fmt: skip
    env = {
        **QUIET,
        "GEMINI_API_KEY": PLACEHOLDER_KEY,
        "GOOGLE_GEMINI_BASE_URL": INSIDE_URL,
        "GEMINI_CLI_NO_RELAUNCH": "true",  # one process: no child with more memory
    }
    written = shlex.quote(json.dumps(settings))
    setup = f"mkdir -p /tmp/.gemini && printf %s {written} > {GEMINI_SETTINGS}"
    return Invocation(argv, env, setup=setup)


def read_gemini(output: str) -> Transcript:
    """Gemini CLI's stream-json: assistant messages (in deltas), tool uses and results,
    then a `result` line."""
    uses: dict[str, str] = {}
    commands: list[Command] = []
    said: list[str] = []
    failed, tokens = "", 0
    for event in _json_lines(output):
        kind = event.get("type")
        if kind == "message" and event.get("role") == "assistant":
            said.append(str(event.get("content", "")))
        elif kind == "tool_use":
            said = []  # the summary is what it says after its last tool
            uses[str(event.get("tool_id"))] = _tool_text(
                {"name": event.get("tool_name"), "input": event.get("parameters")}
            )
        elif kind == "tool_result" and str(event.get("tool_id")) in uses:
            code = 0 if event.get("status") == "success" else 1
            output_text = event.get("output")
            commands.append(Command(uses.pop(str(event["tool_id"])), code, str(output_text or "")))
        elif kind == "result":
            stats = event.get("stats") or {}
            tokens = int(stats.get("total_tokens") or 0)
            if event.get("status") != "success":
                failed = f"Gemini CLI ended with {event.get('status')}: {event.get('error')}"
        elif kind == "error":
            failed = str(event.get("message") or event)
    turns = len(commands) + 1 if said or commands else 0
    return Transcript(commands, "".join(said).strip(), turns, failed[:500], tokens)


# The CLIs Bzzz drives (bzzz.agents.CATALOGUE says which it cannot, and why).
DRIVERS: dict[str, Driver] = {
    "claude": Driver("claude", claude_code, read_claude, budget="--max-turns (agent.max_turns)"),
    "codex": Driver("codex", codex, read_codex),
    "opencode": Driver("opencode", opencode, read_opencode),
    "aider": Driver("aider", aider, read_aider),
    "gemini": Driver("gemini", gemini, read_gemini, budget="model.maxSessionTurns"),
}


def _json_lines(output: str) -> Iterable[dict[str, Any]]:
    for raw in output.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


def _tool_text(block: Mapping[str, Any]) -> str:
    arguments = block.get("input") or {}
    if isinstance(arguments, dict) and isinstance(arguments.get("command"), str):
        return str(arguments["command"])
    return f"{block.get('name')} {json.dumps(arguments)[:300]}"


def _blocks_text(blocks: Any) -> str:
    if not isinstance(blocks, list):
        return str(blocks or "")
    return "\n".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
