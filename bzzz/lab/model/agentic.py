"""The lab's scripts played to agent CLIs: a step in the reasoning loop's format becomes
the CLI's own move. `run` is a call of the shell tool the CLI offers in its request
(Claude Code's `Bash`, Codex's `exec_command`, opencode's `bash`, ...), with the
command in that tool's own argument; `done` is the summary as the final text. So one
playbook drives the loop and every CLI alike, and the CLI itself runs each command in
its sandbox. Pure.

A request that offers no shell tool (the loop's own) gets the step unchanged. aider, which
edits only through "file listings" in the model's text and runs no command, gets the
files of the playbook entry whole (`file_listings`), where the entry has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import Reply, Text, ToolCall

# Shell tools as agent CLIs name them, and the argument each takes its command in.
SHELL_TOOLS = ("Bash", "exec_command", "shell", "bash", "run_shell_command", "shell_command")
COMMAND_ARGUMENTS = ("command", "cmd")


def for_agent(request: ChatRequest, reply: Reply) -> Reply:
    """`reply` as the asking agent CLI's move (unchanged when it is none of the loop's
    steps, or when the request offers no shell tool)."""
    if not isinstance(reply, Text) or not request.tools:
        return reply
    tool = shell_tool(request.tools)
    action = _loop_action(reply.content)
    if tool is None or action is None:
        return reply
    if action.get("action") == "done":
        return Text(str(action.get("summary", "")), reply.delay)
    command = action.get("command")
    if action.get("action") != "run" or not isinstance(command, str):
        return reply
    name, argument, as_list = tool
    value: Any = ["sh", "-c", command] if as_list else command
    return ToolCall(name, {argument: value}, reply.delay)


def shell_tool(tools: Sequence[Mapping[str, Any]]) -> tuple[str, str, bool] | None:
    """The shell tool among `tools` (ollama's shape: {"function": {"name", "parameters"}}):
    its name, the argument that takes the command, and whether that is an argv list."""
    offered = {}
    for tool in tools:
        function = tool.get("function") or {}
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            offered[function["name"]] = function.get("parameters") or {}
    for name in SHELL_TOOLS:
        if name not in offered:
            continue
        properties = offered[name].get("properties") or {}
        for argument in COMMAND_ARGUMENTS:
            if isinstance(properties, Mapping) and argument in properties:
                kind = (properties[argument] or {}).get("type")
                return name, argument, kind == "array"
    return None


def _loop_action(content: str) -> dict[str, Any] | None:
    try:
        action = json.loads(content)
    except ValueError:
        return None
    return action if isinstance(action, dict) and "action" in action else None


AIDER_MARKER = "*file listing*"  # in the system prompt of aider's whole-file edit format


def wants_file_listings(request: ChatRequest) -> bool:
    """Whether the request is aider's, asking for whole files in its listing format."""
    return not request.tools and any(
        AIDER_MARKER in message.content for message in request.messages if message.role == "system"
    )


def file_listings(files: Mapping[str, str], summary: str) -> Text:
    """A reply in aider's whole-file format: the summary, then each file, whole."""
    listings = "".join(f"{path}\n```\n{text}```\n\n" for path, text in files.items())
    return Text(f"{summary or 'Changed the files.'}\n\n{listings}".rstrip() + "\n")
