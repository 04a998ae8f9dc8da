"""The parts the reasoning loop is given: a model to ask, a runner for commands and
peers to ask for help, with what they answer and how they fail. `workers.models.OllamaChat`,
the agent's `SandboxRunner` and `workers.asking.NodeHelp` are the real ones; the tests
pass scripted ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bzzz.errors import BzzzError
from workers.outcome import HelpAnswer, Step


@dataclass(frozen=True)
class ModelReply:
    content: str
    prompt_tokens: int = 0  # the server's prompt_eval_count
    reply_tokens: int = 0  # its eval_count
    cut: bool = False  # the reply hit the reply limit (done_reason "length")
    seconds: float = 0.0  # the whole call
    reply_seconds: float = 0.0  # writing the reply (the server's eval_duration)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.reply_tokens


class ModelError(BzzzError):
    """Asking the model failed."""


class ModelUnreachable(ModelError):
    """The model server did not answer: refused, or no connection in time. A problem of
    the node, not of the task."""


class ModelSlow(ModelError):
    """The server took the request but the reply did not come within the call's time: a
    slow or runaway model (or one whose queue is long)."""


class ModelFailed(ModelError):
    """The model server answered with an error (unknown model, server error)."""


class ContextExceeded(ModelFailed):
    """The server refused the prompt as longer than the model's context."""


class ChatModel(Protocol):
    name: str

    def chat(self, messages: Sequence[Mapping[str, str]], timeout: float) -> ModelReply:
        """One reply to `messages`, within `timeout` seconds (else ModelSlow)."""
        ...


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


class Helper(Protocol):
    def ask(self, question: str, capability: str, steps: Sequence[Step], diff: str) -> HelpAnswer:
        """Peers' advice on `question` (`capability`: what the asker lacks, e.g. a model
        name, or ""), given the task's last `steps` and its `diff` so far. Never raises:
        no help is an answer that says why."""
        ...
