"""What a lab model answers in one turn, and the JSON script format that describes it.

A reply is one of four kinds; each may first wait `delay` seconds (a slow or hung model):

    Text(content)                 the assistant message's content
    ToolCall(name, arguments)     an assistant message with one entry in `tool_calls`
    HttpError(status, message)    an HTTP error reply `{"error": message}`
    StreamError(message, partial) stream `partial`, then an `{"error": message}` line
                                  (without streaming: HTTP 500, as ollama answers)

In a JSON script a step is a string (text) or an object with exactly one of these keys,
plus an optional `"delay"` in seconds (an object with only `"delay"` answers "" late):

    {"content": "text"}
    {"json": <any JSON value>}            text: that value, serialised
    {"run": "shell command", "thought": "..."}   text: a Bzzz loop `run` action
    {"done": "summary", "thought": "..."}        text: a Bzzz loop `done` action
    {"tool_call": {"name": "f", "arguments": {...}}}
    {"error": "message", "status": 500}
    {"stream_error": "message", "partial": "text sent before it"}

A script file maps model names to lists of steps: `{"coder": ["hi", {"done": "ok"}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bzzz.errors import BzzzError, ExitCode

KINDS = ("content", "json", "run", "done", "tool_call", "error", "stream_error")


class ScriptError(BzzzError, ValueError):
    """A script or step that does not follow the format above."""

    exit_code = ExitCode.CONFIG


def _check_delay(delay: float) -> None:
    if not delay >= 0:  # also refuses NaN
        raise ScriptError(f"delay must be a number of seconds >= 0, not {delay!r}")


@dataclass(frozen=True)
class Text:
    content: str
    delay: float = 0.0

    def __post_init__(self) -> None:
        _check_delay(self.delay)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    delay: float = 0.0

    def __post_init__(self) -> None:
        _check_delay(self.delay)
        if not self.name:
            raise ScriptError("a tool call needs a function name")


@dataclass(frozen=True)
class HttpError:
    status: int
    message: str
    delay: float = 0.0

    def __post_init__(self) -> None:
        _check_delay(self.delay)
        if not 400 <= self.status <= 599:
            raise ScriptError(f"an error status is 400-599, not {self.status}")


@dataclass(frozen=True)
class StreamError:
    message: str
    partial: str = ""
    delay: float = 0.0

    def __post_init__(self) -> None:
        _check_delay(self.delay)


Reply = Text | ToolCall | HttpError | StreamError
ScriptStep = Reply


def run_step(command: str, thought: str = "", delay: float = 0.0) -> Text:
    """A reply in the Bzzz reasoning loop's format: run one shell command next."""
    action = {"thought": thought, "action": "run", "command": command}
    return Text(json.dumps(action), delay)


def done_step(summary: str, thought: str = "", delay: float = 0.0) -> Text:
    """A reply in the Bzzz reasoning loop's format: the task is finished."""
    action = {"thought": thought, "action": "done", "summary": summary}
    return Text(json.dumps(action), delay)


def parse_step(raw: Any) -> Reply:
    if isinstance(raw, str):
        return Text(raw)
    if not isinstance(raw, dict):
        raise ScriptError(f"a step is a string or an object, not {type(raw).__name__}")
    delay = raw.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise ScriptError(f"delay must be a number of seconds, not {delay!r}")
    kinds = [key for key in KINDS if key in raw]
    if len(kinds) > 1:
        raise ScriptError(f"a step has one of {', '.join(KINDS)}; this one has {kinds}")
    kind = kinds[0] if kinds else None
    allowed = {"delay", kind, *_EXTRA_KEYS.get(kind, ())}
    if unknown := sorted(set(raw) - allowed):
        raise ScriptError(f"unknown keys in step {raw!r}: {unknown}")
    return _STEP_PARSERS[kind](raw, float(delay))


def parse_script(raw: Any) -> dict[str, list[Reply]]:
    """`{"model name": [step, ...], ...}` -> steps per model name."""
    if not isinstance(raw, dict) or not raw:
        raise ScriptError("a script is a JSON object mapping model names to lists of steps")
    script: dict[str, list[Reply]] = {}
    for name, steps in raw.items():
        if not name.strip():
            raise ScriptError("a model name may not be empty")
        if not isinstance(steps, list) or not steps:
            raise ScriptError(f"model {name!r}: give a non-empty list of steps")
        try:
            script[name] = [parse_step(step) for step in steps]
        except ScriptError as exc:
            raise ScriptError(f"model {name!r}: {exc}") from None
    return script


def load_script(path: Path) -> dict[str, list[Reply]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScriptError(f"cannot read {path}: {exc}") from None
    return parse_script(raw)


def step_as_json(step: Reply) -> dict[str, Any]:
    """The JSON form of a step: `parse_step(step_as_json(s)) == s`."""
    raw: dict[str, Any]
    if isinstance(step, Text):
        raw = {"content": step.content}
    elif isinstance(step, ToolCall):
        raw = {"tool_call": {"name": step.name, "arguments": dict(step.arguments)}}
    elif isinstance(step, HttpError):
        raw = {"error": step.message, "status": step.status}
    else:
        raw = {"stream_error": step.message, "partial": step.partial}
    if step.delay:
        raw["delay"] = step.delay
    return raw


_EXTRA_KEYS: dict[str | None, tuple[str, ...]] = {
    "run": ("thought",),
    "done": ("thought",),
    "error": ("status",),
    "stream_error": ("partial",),
}


def _string(raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ScriptError(f"{key!r} must be a string in step {raw!r}")
    return value


def _tool_call(raw: dict[str, Any], delay: float) -> ToolCall:
    call = raw["tool_call"]
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise ScriptError(f'a tool call is {{"name": "...", "arguments": {{...}}}}, not {call!r}')
    arguments = call.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ScriptError(f"tool call arguments must be an object, not {arguments!r}")
    if unknown := sorted(set(call) - {"name", "arguments"}):
        raise ScriptError(f"unknown keys in tool call {call!r}: {unknown}")
    return ToolCall(call["name"], arguments, delay)


def _http_error(raw: dict[str, Any], delay: float) -> HttpError:
    status = raw.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int):
        raise ScriptError(f"status must be an integer, not {status!r}")
    return HttpError(status, _string(raw, "error"), delay)


_STEP_PARSERS: dict[str | None, Callable[[dict[str, Any], float], Reply]] = {
    None: lambda raw, delay: Text("", delay),
    "content": lambda raw, delay: Text(_string(raw, "content"), delay),
    "json": lambda raw, delay: Text(json.dumps(raw["json"]), delay),
    "run": lambda raw, delay: run_step(_string(raw, "run"), _string(raw, "thought", ""), delay),
    "done": lambda raw, delay: done_step(_string(raw, "done"), _string(raw, "thought", ""), delay),
    "tool_call": _tool_call,
    "error": _http_error,
    "stream_error": lambda raw, delay: StreamError(
        _string(raw, "stream_error"), _string(raw, "partial", ""), delay
    ),
}
