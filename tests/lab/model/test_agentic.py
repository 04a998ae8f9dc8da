"""The lab's scripts played to agent CLIs: loop steps as each CLI's own moves."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bzzz.lab.model import ChatRequest, Message, Text, ToolCall, done_step, run_step
from bzzz.lab.model.agentic import for_agent, wants_file_listings
from bzzz.lab.model.responders import sample_playbook
from bzzz.lab.sample import FILES, ISSUES, SAMPLE_PLAYBOOK


def tool(name: str, argument: str, kind: str = "string") -> dict[str, object]:
    parameters = {"type": "object", "properties": {argument: {"type": kind}}}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def request(*tools: dict[str, object], system: str = "") -> ChatRequest:
    messages = (Message("system", system),) if system else ()
    return ChatRequest("lab", (*messages, Message("user", "hi")), tools=tools)


def test_a_run_step_becomes_a_call_of_the_shell_tool_each_cli_offers() -> None:
    step = run_step("ls -la")
    claude = for_agent(request(tool("Read", "path"), tool("Bash", "command")), step)
    assert claude == ToolCall("Bash", {"command": "ls -la"})
    codex = for_agent(request(tool("exec_command", "cmd")), step)
    assert codex == ToolCall("exec_command", {"cmd": "ls -la"})
    argv = for_agent(request(tool("shell", "command", "array")), step)
    assert argv == ToolCall("shell", {"command": ["sh", "-c", "ls -la"]})


def test_a_done_step_becomes_the_final_text_and_the_loop_gets_its_steps_unchanged() -> None:
    done = done_step("All fixed.")
    assert for_agent(request(tool("bash", "command")), done) == Text("All fixed.")
    assert for_agent(request(), run_step("ls")) == run_step("ls")  # the loop's request
    assert for_agent(request(tool("Read", "path")), run_step("ls")) == run_step("ls")
    plain = Text("not a step")
    assert for_agent(request(tool("Bash", "command")), plain) is plain


def test_aider_gets_issue_1s_files_whole_in_its_listing_format() -> None:
    aider = request(system="You MUST use this *file listing* format: path, then a fence")
    assert wants_file_listings(aider)
    title = ISSUES[0]["title"]
    asked = ChatRequest("lab", (*aider.messages[:1], Message("user", f"Solve: {title}")))
    reply = sample_playbook()(asked)
    assert isinstance(reply, Text)
    for path, text in SAMPLE_PLAYBOOK[1]["files"].items():
        assert f"{path}\n```\n{text}```\n" in reply.content
    assert reply.content.startswith("Added farewell(name) to hello.py")


def test_issue_1s_whole_files_are_what_its_steps_leave(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    for step in SAMPLE_PLAYBOOK[1]["steps"]:
        if step.get("action") == "run":
            subprocess.run(["sh", "-c", step["command"]], cwd=tmp_path, check=True)
    changed = {
        n: (tmp_path / n).read_text() for n in FILES if (tmp_path / n).read_text() != FILES[n]
    }
    assert changed == SAMPLE_PLAYBOOK[1]["files"], json.dumps(changed, indent=1)
