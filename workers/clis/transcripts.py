"""What an agent CLI's output says it did: the commands it ran, its last words, its turns
and tokens, read from each CLI's own transcript format. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


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
