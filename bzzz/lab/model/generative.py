"""Models that generate their replies, token by token, rather than answer from a script:
a real model behind the lab model server (bzzz/lab/model/llama.py runs GGUF files
through llama.cpp).

The server streams what `generate` yields as it comes, and ends the reply with the
`Finished` it yields last: why it stopped (`done_reason`: "stop", or "length" at
num_predict or a full context) and its true token counts and times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.wire import ModelCard


@dataclass(frozen=True)
class Finished:
    done_reason: str  # "stop" or "length"
    prompt_tokens: int  # prompt_eval_count: the whole prompt, as ollama counts it
    reply_tokens: int  # eval_count
    prompt_ns: int  # prompt_eval_duration
    reply_ns: int  # eval_duration


class Generative(ABC):
    """A model that writes its reply. `generate` checks the request and raises
    `chat.BadRequest` at once when it cannot be served (a schema llama.cpp cannot turn
    into a grammar); the iterator it returns then yields the reply's pieces (str) and,
    last, one `Finished`. Closing the iterator early (the client went away) stops the
    generation."""

    capabilities: tuple[str, ...] = ("completion",)
    card: ModelCard = ModelCard()

    @abstractmethod
    def generate(self, request: ChatRequest) -> Iterator[str | Finished]: ...
