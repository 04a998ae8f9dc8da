"""Asking peers for help, through the node: the worker sends its node the control
command `help` with the question and the task's context (bounded), and the node asks
its peers and answers with one peer's advice, or with why none came.

`NodeHelp` is the reasoning loop's `Helper` (workers/ports.py) under a node. It never
raises: a node that does not answer, or answers with something unreadable, gives a
`HelpAnswer` that was not helped, with the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bzzz.control import ControlError, request
from workers.outcome import HelpAnswer, Step
from workers.replies import CAPABILITY_CHARS, QUESTION_CHARS

log = logging.getLogger(__name__)

CONTROL_TIMEOUT = 180.0  # the node answers within about 150 s
BODY_CHARS = 4000
DIFF_CHARS = 4000
LAST_STEPS = 8
OUTPUT_CHARS = 600  # of each step's output, its end (where errors are)
COMMAND_CHARS = 300  # of each step's command
REQUEST_BYTES = 48 * 1024  # the control socket takes 64 KiB
ADVICE_CHARS = 4000
NAME_CHARS = 100
REASON_CHARS = 300
UNREADABLE = "the node's answer could not be read"

Send = Callable[[Path, dict[str, Any], float], dict[str, Any]]

__all__ = ["CONTROL_TIMEOUT", "HelpAnswer", "NodeHelp", "help_command", "parse_answer"]


class NodeHelp:
    """Asks the node whose control socket is `socket_path` for help with one task."""

    def __init__(
        self,
        socket_path: Path,
        task_id: str,
        *,
        repo: str,
        number: int,
        title: str,
        body: str,
        timeout: float = CONTROL_TIMEOUT,
        send: Send = request,
    ) -> None:
        self.socket_path, self.task_id = socket_path, task_id
        self.repo, self.number, self.title, self.body = repo, number, title, body
        self.timeout, self._send = timeout, send

    def ask(self, question: str, capability: str, steps: Sequence[Step], diff: str) -> HelpAnswer:
        command = help_command(
            self.task_id,
            question,
            capability,
            repo=self.repo,
            number=self.number,
            title=self.title,
            body=self.body,
            steps=steps,
            diff=diff,
        )
        log.info("%s: asking peers for help: %s", self.task_id, command["question"][:200])
        try:
            reply = self._send(self.socket_path, command, self.timeout)
        except (ControlError, OSError, ValueError) as exc:
            log.warning("%s: asking the node for help failed: %s", self.task_id, exc)
            # the reason reaches the forge's failure report: not the node's home directory
            why = str(exc).replace(str(self.socket_path.parent), "[home]")
            answer = HelpAnswer(False, reason=f"the node could not ask its peers: {why}")
        else:
            answer = parse_answer(reply)
        if answer.helped:
            log.info("%s: advice from %s (%s)", self.task_id, answer.node, answer.model)
        else:
            log.info("%s: no help: %s", self.task_id, answer.reason)
        return answer


def help_command(
    task_id: str,
    question: str,
    capability: str,
    *,
    repo: str,
    number: int,
    title: str,
    body: str,
    steps: Sequence[Step],
    diff: str,
) -> dict[str, Any]:
    """The control command `help`, every part bounded, and the whole within what the
    control socket takes, however much JSON's escapes add (less context if need be)."""
    for share in (1, 4, 16):
        command = {
            "cmd": "help",
            "task_id": task_id,
            "question": question[:QUESTION_CHARS],
            "capability": capability[:CAPABILITY_CHARS],
            "context": {
                "repo": repo,
                "number": number,
                "title": title[:300],
                "body": body[: BODY_CHARS // share],
                "steps": [
                    {
                        "command": s.command[: COMMAND_CHARS // share],
                        "exit_code": s.exit_code,
                        "output": s.output[-(OUTPUT_CHARS // share) :],
                    }
                    for s in steps[-LAST_STEPS:]
                ],
                "diff": diff[: DIFF_CHARS // share],
            },
        }
        if len(json.dumps(command)) <= REQUEST_BYTES:
            break
    return command


def parse_answer(reply: object) -> HelpAnswer:
    """The node's answer to `help`, read strictly: advice needs a peer's name and a text;
    anything else is no help, with the reason."""
    if not isinstance(reply, dict):
        return HelpAnswer(False, reason=UNREADABLE)
    asks = reply.get("asks")
    offers = reply.get("offers")
    counts = HelpAnswer(
        False,
        asks=asks if isinstance(asks, int) and not isinstance(asks, bool) and asks >= 0 else 0,
        offers=tuple(o[:NAME_CHARS] for o in offers if isinstance(o, str))
        if isinstance(offers, list)
        else (),
    )
    if why := _why_not(reply):
        return replace(counts, reason=why)
    model = reply.get("model")
    return replace(
        counts,
        helped=True,
        node=str(reply["node"]).strip()[:NAME_CHARS],
        model=model.strip()[:NAME_CHARS] if isinstance(model, str) else "",
        advice=str(reply["advice"]).strip()[:ADVICE_CHARS],
    )


def _why_not(reply: dict[str, Any]) -> str:
    """Why `reply` brings no advice, or "" when it does."""
    helped, node, advice = reply.get("helped"), reply.get("node"), reply.get("advice")
    if "error" in reply:
        return _text(reply["error"])
    if helped is False:
        return _text(reply.get("reason") or "no peer could help")
    if helped is not True:
        return UNREADABLE
    if not isinstance(node, str) or not node.strip():
        return "the node's answer named no peer"
    if not isinstance(advice, str) or not advice.strip():
        return f"{node.strip()[:NAME_CHARS]} sent no advice"
    return ""


def _text(value: object) -> str:
    return " ".join(str(value).split())[:REASON_CHARS] or "no reason given"
