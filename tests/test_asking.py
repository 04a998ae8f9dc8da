"""Asking peers for help through the node: the control command sent, and the answers
read (a node that does not answer, or answers badly, is no help, with the reason)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bzzz.control import ControlError
from workers.asking import NodeHelp, help_command, parse_answer
from workers.outcome import HelpAnswer, Step

STEPS = [Step(f"cmd {n}", n % 2, f"output {n} " + "x" * 1000, False) for n in range(10)]


def node_help(socket: Path, **kwargs: Any) -> NodeHelp:
    return NodeHelp(
        socket, "t-1", repo="lab/hello", number=7, title="Add farewell()", body="b" * 9000, **kwargs
    )


def test_no_node_at_the_socket_is_no_help_with_the_reason(tmp_path: Path) -> None:
    answer = node_help(tmp_path / "home" / "control.sock").ask("Why?", "", STEPS, "")
    assert not answer.helped
    assert answer.reason == (
        "the node could not ask its peers: no node is running with home [home] (no control.sock)"
    )
    assert str(tmp_path) not in answer.reason  # it may reach the forge
    # a socket path too long for a unix socket is the same
    far = tmp_path / ("d" * 120) / "control.sock"
    assert "too long" in node_help(far).ask("Why?", "", [], "").reason


def test_the_command_carries_the_question_and_bounded_context(tmp_path: Path) -> None:
    sent: list[tuple[Path, dict[str, Any], float]] = []

    def send(path: Path, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        sent.append((path, command, timeout))
        return {"helped": True, "node": "c", "model": "m", "advice": "Try it.", "asks": 1}

    socket = tmp_path / "control.sock"
    answer = node_help(socket, send=send).ask("Why?", "qwen2.5-coder:7b", STEPS, "d" * 9000)
    assert answer == HelpAnswer(True, node="c", model="m", advice="Try it.", asks=1)
    path, command, timeout = sent[0]
    assert (path, timeout) == (socket, 180.0)
    assert command["cmd"] == "help"
    assert command["task_id"] == "t-1"
    assert (command["question"], command["capability"]) == ("Why?", "qwen2.5-coder:7b")
    context = command["context"]
    assert (context["repo"], context["number"], context["title"]) == (
        "lab/hello",
        7,
        "Add farewell()",
    )
    assert len(context["body"]) == len(context["diff"]) == 4000
    assert [s["command"] for s in context["steps"]] == [f"cmd {n}" for n in range(2, 10)]
    assert context["steps"][-1]["exit_code"] == 1
    assert all(len(s["output"]) == 600 for s in context["steps"])
    assert context["steps"][-1]["output"].endswith("x")  # the end, where errors are

    def refuse(path: Path, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise ControlError("unknown command 'help'")  # what request() makes of {"error"}

    refused = node_help(socket, send=refuse).ask("Why?", "", [], "")
    assert refused == HelpAnswer(
        False, reason="the node could not ask its peers: unknown command 'help'"
    )


def test_the_command_fits_the_control_socket_however_it_is_escaped() -> None:
    escaped = "\x1b" * 20_000  # six bytes each in JSON
    steps = [Step(escaped, 1, escaped, False)] * 8
    command = help_command(
        "t", "q", "", repo="r/s", number=1, title="T", body=escaped, steps=steps, diff=escaped
    )
    assert len(json.dumps(command)) <= 48 * 1024
    assert command["context"]["diff"]  # less of it, but some


def test_an_empty_context_is_sent_as_such() -> None:
    command = help_command(
        "t", "q", "", repo="r/s", number=1, title="T", body="", steps=[], diff=""
    )
    assert command["context"] == {
        "repo": "r/s",
        "number": 1,
        "title": "T",
        "body": "",
        "steps": [],
        "diff": "",
    }


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            {
                "helped": True,
                "node": "c",
                "model": "lab-helper:latest",
                "advice": " Run it from the root. ",
                "asks": 1,
                "offers": ["c", "b"],
            },
            HelpAnswer(
                True,
                node="c",
                model="lab-helper:latest",
                advice="Run it from the root.",
                asks=1,
                offers=("c", "b"),
            ),
        ),
        (
            {
                "helped": False,
                "asks": 3,
                "offers": [],
                "reason": "no peer offered help after 3 asks",
            },
            HelpAnswer(False, asks=3, reason="no peer offered help after 3 asks"),
        ),
        (
            {"helped": False, "asks": 1, "offers": ["c"], "reason": "c accepted but went silent"},
            HelpAnswer(False, asks=1, offers=("c",), reason="c accepted but went silent"),
        ),
        (
            {"error": "the node failed to answer"},
            HelpAnswer(False, reason="the node failed to answer"),
        ),
        ({"helped": False}, HelpAnswer(False, reason="no peer could help")),
        # malformed
        ([1, 2], HelpAnswer(False, reason="the node's answer could not be read")),
        ({"ok": True}, HelpAnswer(False, reason="the node's answer could not be read")),
        (
            {"helped": "yes", "advice": "x"},
            HelpAnswer(False, reason="the node's answer could not be read"),
        ),
        (
            {"helped": True, "advice": "x"},
            HelpAnswer(False, reason="the node's answer named no peer"),
        ),
        ({"helped": True, "node": "c", "advice": ""}, HelpAnswer(False, reason="c sent no advice")),
        (
            {"helped": True, "node": "c", "advice": "x", "model": 5, "asks": "2", "offers": "c"},
            HelpAnswer(True, node="c", advice="x"),
        ),
        (
            {"helped": False, "asks": True, "offers": ["c", 3], "reason": "a\nb  c"},
            HelpAnswer(False, offers=("c",), reason="a b c"),
        ),
    ],
)
def test_answers_are_read_strictly(reply: object, expected: HelpAnswer) -> None:
    assert parse_answer(reply) == expected


def test_long_answers_are_cut() -> None:
    answer = parse_answer(
        {"helped": True, "node": "n" * 500, "advice": "a" * 10_000, "model": "m" * 500}
    )
    assert (len(answer.node), len(answer.model), len(answer.advice)) == (100, 100, 4000)
    assert len(parse_answer({"helped": False, "reason": "r" * 1000}).reason) == 300
