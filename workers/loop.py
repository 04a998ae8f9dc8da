"""The reasoning loop: a model proposes one shell command at a time, a sandbox runs it,
the output goes back, until the model says it is done or a budget runs out.

It knows nothing of git, forges or ollama: the model and the sandbox are passed in
(`ChatModel`, `CommandRunner`), so the loop is tested against scripted ones and run
against `OllamaChat` and a real sandbox.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from typing import Any, Protocol

from bzzz.errors import BzzzError

MAX_COMMAND_CHARS = 4000

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "thought": {"type": "string"},
        "action": {"type": "string", "enum": ["run", "done"]},
        "command": {"type": "string"},
        "summary": {"type": "string"},
        "issues": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
                "required": ["title"],
            },
        },
    },
    "required": ["action"],
}


def prompt(name: str) -> str:
    """A prompt template shipped in workers/prompts/."""
    return resources.files("workers").joinpath("prompts", f"{name}.md").read_text("utf-8")


# ---- what the model says -----------------------------------------------------------------


@dataclass(frozen=True)
class FollowUp:
    title: str
    body: str


@dataclass(frozen=True)
class Run:
    command: str
    thought: str = ""


@dataclass(frozen=True)
class Done:
    summary: str
    issues: tuple[FollowUp, ...] = ()


class BadReply(ValueError):
    """A reply the loop cannot act on; the message is shown to the model."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def parse_reply(text: str) -> Run | Done:
    fenced = _FENCE.match(text)
    try:
        reply = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        raise BadReply("it is not JSON") from None
    if not isinstance(reply, dict):
        raise BadReply("it is not a JSON object")
    action = reply.get("action")
    thought = reply.get("thought") if isinstance(reply.get("thought"), str) else ""
    if action == "run":
        command = reply.get("command")
        if not isinstance(command, str) or not command.strip():
            raise BadReply('"run" needs a non-empty "command" string')
        if len(command) > MAX_COMMAND_CHARS:
            raise BadReply(f"the command is longer than {MAX_COMMAND_CHARS} characters")
        return Run(command, str(thought))
    if action == "done":
        summary = reply.get("summary", "")
        issues = reply.get("issues") or []
        if not isinstance(summary, str) or not isinstance(issues, list):
            raise BadReply('"summary" must be a string and "issues" a list')
        follow_ups = []
        for issue in issues:
            if not isinstance(issue, dict) or not isinstance(issue.get("title"), str):
                raise BadReply('each of "issues" needs a "title" string')
            body = issue.get("body", "")
            follow_ups.append(FollowUp(issue["title"][:200], body if isinstance(body, str) else ""))
        return Done(summary, tuple(follow_ups))
    raise BadReply('"action" must be "run" or "done"')


# ---- the parts passed in -------------------------------------------------------------------


@dataclass(frozen=True)
class ModelReply:
    content: str
    tokens: int  # prompt and reply tokens this call used


class ModelError(BzzzError):
    """Asking the model failed."""


class ModelUnreachable(ModelError):
    """The model server did not answer (refused, timed out)."""


class ModelFailed(ModelError):
    """The model server answered with an error (unknown model, server error)."""


class ChatModel(Protocol):
    name: str

    def chat(self, messages: Sequence[Mapping[str, str]]) -> ModelReply: ...


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str
    timed_out: bool
    truncated: bool


class CommandRunner(Protocol):
    def run(self, command: str, timeout: float) -> CommandResult: ...


class RunnerBroke(BzzzError):
    """The sandbox itself failed (not the command): the loop cannot go on."""


# ---- the loop ---------------------------------------------------------------------------------


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


class Ending(StrEnum):
    DONE = "done"
    STEPS = "step budget spent"
    WALL_TIME = "wall-time budget spent"
    TOKENS = "token budget spent"
    TIMEOUTS = "commands kept timing out"
    REPEATING = "the same command kept giving the same output"
    UNPARSABLE = "the model's replies could not be used"
    MODEL_UNREACHABLE = "the model server did not answer"
    MODEL_FAILED = "the model server failed"
    SANDBOX_BROKE = "the sandbox failed"
    STOPPED = "stopped: the claim is no longer held"


@dataclass(frozen=True)
class Step:
    command: str
    exit_code: int
    output: str  # as shown to the model
    timed_out: bool


@dataclass
class LoopResult:
    ending: Ending
    reason: str  # the ending, with details
    summary: str = ""
    issues: tuple[FollowUp, ...] = ()
    steps: list[Step] = field(default_factory=list)
    tokens: int = 0
    model_calls: int = 0

    @property
    def done(self) -> bool:
        return self.ending is Ending.DONE


@dataclass(frozen=True)
class TaskText:
    repo: str
    number: int
    title: str
    body: str
    branch: str
    base: str


def head_and_tail(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}", True


def run_loop(
    task: TaskText,
    model: ChatModel,
    runner: CommandRunner,
    budget: Budget,
    *,
    clock: Callable[[], float] = time.monotonic,
    keep_going: Callable[[], bool] = lambda: True,
    on_step: Callable[[Step], None] = lambda step: None,
) -> LoopResult:
    """Ask, run, show, until done or a budget runs out. `keep_going` is asked before each
    command (the claim may have been lost)."""
    return _Loop(
        task, model, runner, budget, clock=clock, keep_going=keep_going, on_step=on_step
    ).run()


Stop = tuple[Ending, str] | None  # why the loop ends (with details), or None: go on


class _Loop:
    def __init__(
        self,
        task: TaskText,
        model: ChatModel,
        runner: CommandRunner,
        budget: Budget,
        *,
        clock: Callable[[], float],
        keep_going: Callable[[], bool],
        on_step: Callable[[Step], None],
    ) -> None:
        self.model, self.runner, self.budget = model, runner, budget
        self.clock, self.keep_going, self.on_step = clock, keep_going, on_step
        self.started = clock()
        self.result = LoopResult(Ending.DONE, "")
        self.bad_replies = 0
        self.timeouts = 0
        self.seen: Counter[tuple[str, int, str]] = Counter()
        self.messages: list[dict[str, str]] = [
            {"role": "system", "content": prompt("system")},
            {
                "role": "user",
                "content": prompt("task").format(
                    repo=task.repo,
                    number=task.number,
                    title=task.title,
                    body=task.body or "(no description)",
                    branch=task.branch,
                    base=task.base,
                ),
            },
        ]

    def run(self) -> LoopResult:
        while True:
            stop = self._budget_spent() or self._step()
            if stop is not None:
                ending, detail = stop
                self.result.ending = ending
                self.result.reason = f"{ending.value}: {detail}" if detail else ending.value
                return self.result

    def _budget_spent(self) -> Stop:
        budget, result = self.budget, self.result
        if len(result.steps) >= budget.max_steps:
            return Ending.STEPS, f"{budget.max_steps} commands"
        if self.clock() - self.started >= budget.wall_time:
            return Ending.WALL_TIME, f"{budget.wall_time:.0f} s"
        if result.tokens >= budget.max_tokens:
            return Ending.TOKENS, f"{result.tokens} of {budget.max_tokens} tokens"
        return None

    def _ask(self) -> ModelReply | Stop:
        try:
            return self.model.chat(self.messages)
        except ModelUnreachable as exc:
            return Ending.MODEL_UNREACHABLE, str(exc)
        except ModelFailed as exc:
            return Ending.MODEL_FAILED, str(exc)

    def _step(self) -> Stop:
        reply = self._ask()
        if not isinstance(reply, ModelReply):
            return reply
        self.result.model_calls += 1
        self.result.tokens += reply.tokens
        self.messages.append({"role": "assistant", "content": reply.content})
        try:
            action = parse_reply(reply.content)
        except BadReply as exc:
            self.bad_replies += 1
            if self.bad_replies > self.budget.max_bad_replies:
                return Ending.UNPARSABLE, f"{self.bad_replies} in a row; the last: {exc}"
            self.messages.append({"role": "user", "content": prompt("bad_reply").format(error=exc)})
            return None
        self.bad_replies = 0
        if isinstance(action, Done):
            self.result.summary, self.result.issues = action.summary, action.issues
            return Ending.DONE, ""
        if not self.keep_going():
            return Ending.STOPPED, ""
        return self._run(action.command)

    def _run(self, command: str) -> Stop:
        budget = self.budget
        left = budget.wall_time - (self.clock() - self.started)
        try:
            ran = self.runner.run(command, max(1.0, min(budget.command_timeout, left)))
        except RunnerBroke as exc:
            return Ending.SANDBOX_BROKE, str(exc)
        shown, cut = head_and_tail(ran.output, budget.output_chars)
        step = Step(command, ran.exit_code, shown, ran.timed_out)
        self.result.steps.append(step)
        self.on_step(step)
        self.timeouts = self.timeouts + 1 if ran.timed_out else 0
        if self.timeouts >= budget.max_timeouts:
            return Ending.TIMEOUTS, f"{self.timeouts} in a row; the last: {command}"
        key = (command, ran.exit_code, ran.output)
        self.seen[key] += 1
        if self.seen[key] >= budget.max_repeats:
            return Ending.REPEATING, command
        self.messages.append(
            {
                "role": "user",
                "content": prompt("observation").format(
                    command=command,
                    exit_code=ran.exit_code,
                    timed_out=" (timed out)" if ran.timed_out else "",
                    truncated=" (output cut)" if cut or ran.truncated else "",
                    output=shown or "(no output)",
                    steps_left=budget.max_steps - len(self.result.steps),
                ),
            }
        )
        return None
