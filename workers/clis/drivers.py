"""How each agent CLI is driven headless: its command line and environment for one task
against one model endpoint (their transcripts are read by `workers.clis.transcripts`). Pure.

Every CLI runs inside the sandbox, where its only way out is the model endpoint on the
sandbox's loopback (`MODEL_PORT`, relayed to the node's gateway or ollama). The key a
CLI insists on is a placeholder: the endpoint takes none, and no secret of the node's
enters the sandbox.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from workers.clis.transcripts import (
    Transcript,
    read_aider,
    read_claude,
    read_codex,
    read_gemini,
    read_opencode,
)

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
class Driver:
    name: str  # as a task's `agent:NAME` label names it
    build: Callable[[Request], Invocation]
    read: Callable[[str], Transcript]  # its output (as `build` asks for it) as a transcript


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


# The CLIs Bzzz drives (bzzz.agents.CATALOGUE says which it cannot, and why).
DRIVERS: dict[str, Driver] = {
    "claude": Driver("claude", claude_code, read_claude),
    "codex": Driver("codex", codex, read_codex),
    "opencode": Driver("opencode", opencode, read_opencode),
    "aider": Driver("aider", aider, read_aider),
    "gemini": Driver("gemini", gemini, read_gemini),
}
