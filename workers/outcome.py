"""What the reasoning loop is given and what it gives back: its budget, the task's text,
how it ended (and whose doing that was), its steps, model calls and asks for help."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from workers.replies import FollowUp


@dataclass(frozen=True)
class Budget:
    max_steps: int = 30
    wall_time: float = 1800.0
    max_tokens: int = 200_000
    command_timeout: float = 120.0
    max_timeouts: int = 3  # consecutive commands that timed out
    max_repeats: int = 3  # the same command with the same output
    max_bad_replies: int = 3  # consecutive replies that could not be used
    output_chars: int = 8000  # of a command's output shown to the model (head and tail)
    model_timeout: float = 300.0  # seconds one call may take (less when less time is left)
    context_window: int = 8192  # the model's context, in tokens (num_ctx)
    reply_tokens: int = 1024  # the longest reply, in tokens (num_predict)


class Cause(StrEnum):
    """Who ended the loop: what a report says, and whether the attempt counts."""

    DONE = "done"
    MODEL = "the model"  # its replies, its speed, its context: the attempt failed
    BUDGET = "the task's budget"
    NODE = "this node"  # the model server or the sandbox: not the task's fault
    CLAIM = "the claim"


class Ending(StrEnum):
    DONE = "done"
    STEPS = "step budget spent"
    WALL_TIME = "wall-time budget spent"
    TOKENS = "token budget spent"
    TIMEOUTS = "commands kept timing out"
    REPEATING = "the same command kept giving the same output"
    UNPARSABLE = "the model's replies could not be used"
    RUNAWAY = "the model's replies kept running past the reply limit"
    MODEL_SLOW = "the model did not finish a reply in time"
    CONTEXT = "the task does not fit the model's context window"
    MODEL_UNREACHABLE = "the model server did not answer"
    MODEL_FAILED = "the model server failed"
    SANDBOX_BROKE = "the sandbox failed"
    AGENT_FAILED = "the agent CLI failed"
    AGENT_BROKE = "the agent CLI could not start"
    STOPPED = "stopped: the claim is no longer held"

    @property
    def cause(self) -> Cause:
        return _CAUSES[self]


_CAUSES = {
    Ending.DONE: Cause.DONE,
    Ending.STEPS: Cause.BUDGET,
    Ending.WALL_TIME: Cause.BUDGET,
    Ending.TOKENS: Cause.BUDGET,
    Ending.TIMEOUTS: Cause.BUDGET,
    Ending.REPEATING: Cause.MODEL,
    Ending.UNPARSABLE: Cause.MODEL,
    Ending.RUNAWAY: Cause.MODEL,
    Ending.MODEL_SLOW: Cause.MODEL,
    Ending.CONTEXT: Cause.MODEL,
    Ending.MODEL_UNREACHABLE: Cause.NODE,
    Ending.MODEL_FAILED: Cause.NODE,
    Ending.SANDBOX_BROKE: Cause.NODE,
    Ending.AGENT_FAILED: Cause.MODEL,
    Ending.AGENT_BROKE: Cause.NODE,
    Ending.STOPPED: Cause.CLAIM,
}


@dataclass(frozen=True)
class Step:
    command: str
    exit_code: int
    output: str  # as shown to the model
    timed_out: bool

    def audit_entry(self, number: int) -> dict[str, object]:
        """The node's audit-log entry for the command: short fields, its output hashed."""
        return {
            "type": "command",
            "step": number,
            "command": self.command[:300],
            "exit_code": self.exit_code,
            "output_sha256": hashlib.sha256(self.output.encode("utf-8", "replace")).hexdigest(),
        }


@dataclass(frozen=True)
class Call:
    """One model call: the server's counts, and the loop's estimate of the prompt."""

    prompt_tokens: int
    reply_tokens: int
    seconds: float
    cut: bool
    estimate: int
    reply_seconds: float = 0.0  # of `seconds`, writing the reply (when the server says)


@dataclass(frozen=True)
class HelpAnswer:
    """What came back when peers were asked for help (through the node)."""

    helped: bool
    node: str = ""  # the peer whose advice it is
    model: str = ""  # the peer's model that gave it
    advice: str = ""
    asks: int = 0  # how many times the node asked its peers
    offers: tuple[str, ...] = ()  # the peers that offered to help
    reason: str = ""  # why no help came


@dataclass(frozen=True)
class HelpRecord:
    """One ask for help in a run: by the model (a help action) or by the loop, stuck."""

    question: str
    automatic: bool
    answer: HelpAnswer
    at_step: int  # commands run before it


@dataclass
class LoopResult:
    ending: Ending
    reason: str  # the ending, with details
    summary: str = ""
    issues: tuple[FollowUp, ...] = ()
    steps: list[Step] = field(default_factory=list)
    tokens: int = 0
    model_calls: int = 0
    calls: list[Call] = field(default_factory=list)
    last_reply: str = ""  # the model's last reply, as it came (cut to LAST_REPLY_CHARS)
    context_window: int = 0
    reply_tokens: int = 0
    help: list[HelpRecord] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.ending is Ending.DONE

    @property
    def cause(self) -> Cause:
        return self.ending.cause


@dataclass(frozen=True)
class TaskText:
    repo: str
    number: int
    title: str
    body: str
    branch: str
    base: str
    files: tuple[str, ...] = ()  # the repository's files, as the task starts (for the model)
    handed: str = ""  # for a task handed on by another node: whose work it continues


def head_and_tail(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}", True
