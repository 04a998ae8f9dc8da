"""The JSON bodies ollama sends, built from a lab model's reply. Pure.

Token counts are crude on purpose: one token per whitespace-separated word. Durations
are the lab server's own wall time in nanoseconds (a scripted delay counts as prompt
evaluation), not the cost of running a model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import ToolCall

SERVER_VERSION = "0.0.0-bzzz-lab"
FAMILY = "bzzz-lab"
CONTEXT_LENGTH = 32768
KEEP_ALIVE = timedelta(minutes=5)  # how long ollama keeps an idle model loaded
CHAT_CAPABILITIES = ("completion", "tools")  # what /api/show reports of a model that chats


def canonical(name: str) -> str:
    """ollama's name for a model: `lab` is `lab:latest`."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def timestamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat().replace("+00:00", "Z")


def count_tokens(text: str) -> int:
    return len(text.split())


def prompt_tokens(request: ChatRequest) -> int:
    return sum(count_tokens(message.content) for message in request.messages)


def pieces(text: str) -> list[str]:
    """`text` cut the way a model streams it: word by word, whitespace kept in front."""
    return re.findall(r"\s*\S+|\s+", text)


def tool_calls_json(call: ToolCall) -> list[dict[str, Any]]:
    return [{"function": {"index": 0, "name": call.name, "arguments": dict(call.arguments)}}]


@dataclass(frozen=True)
class Usage:
    prompt_eval_count: int
    eval_count: int
    total_duration: int
    load_duration: int
    prompt_eval_duration: int
    eval_duration: int

    def as_json(self) -> dict[str, int]:
        return {
            "total_duration": self.total_duration,
            "load_duration": self.load_duration,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


def chat_chunk(
    model: str, content: str, tool_calls: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    return {"model": model, "created_at": timestamp(), "message": message, "done": False}


def generate_chunk(model: str, text: str) -> dict[str, Any]:
    return {"model": model, "created_at": timestamp(), "response": text, "done": False}


def final(chunk: dict[str, Any], usage: Usage | None, reason: str = "stop") -> dict[str, Any]:
    """The chunk that ends a reply: done, why, and the counters."""
    ended = {**chunk, "done": True, "done_reason": reason}
    return ended | usage.as_json() if usage is not None else ended


def chat_stream(
    model: str, content: str, tool_calls: Sequence[Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    """The streamed chunks before the final one."""
    for piece in pieces(content):
        yield chat_chunk(model, piece)
    if tool_calls:
        yield chat_chunk(model, "", tool_calls)


def generate_stream(model: str, text: str) -> Iterator[dict[str, Any]]:
    for piece in pieces(text):
        yield generate_chunk(model, piece)


@dataclass(frozen=True)
class ModelCard:
    """What ollama tells of a model's weights: a scripted model has none; a GGUF model
    served through llama.cpp (bzzz/lab/model/llama.py) has its own."""

    family: str = FAMILY
    format: str = "script"
    parameter_size: str = "0"
    quantization_level: str = "none"
    size: int = 0  # bytes of weights
    parameter_count: int = 0
    context_length: int = CONTEXT_LENGTH
    template: str = "{{ .Prompt }}"
    about: str = "a scripted Bzzz lab model, not an LLM"


@dataclass(frozen=True)
class ModelInfo:
    """What the server says about a registered model."""

    name: str  # canonical, e.g. "lab:latest"
    modified_at: datetime
    kind: str  # the responder's class name, shown in /api/show
    capabilities: tuple[str, ...] = CHAT_CAPABILITIES  # as /api/show reports them
    card: ModelCard = ModelCard()

    @property
    def chats(self) -> bool:
        """Whether it answers /api/chat and /api/generate (an embedding model does not)."""
        return "completion" in self.capabilities

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.name}\0{self.kind}".encode()).hexdigest()


def details(card: ModelCard) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": card.format,
        "family": card.family,
        "families": [card.family],
        "parameter_size": card.parameter_size,
        "quantization_level": card.quantization_level,
    }


def tags_entry(info: ModelInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "model": info.name,
        "modified_at": timestamp(info.modified_at),
        "size": info.card.size,
        "digest": info.digest,
        "details": details(info.card),
    }


def ps_entry(info: ModelInfo, last_used: datetime) -> dict[str, Any]:
    return {
        "name": info.name,
        "model": info.name,
        "size": info.card.size,
        "digest": info.digest,
        "details": details(info.card),
        "expires_at": timestamp(last_used + KEEP_ALIVE),
        "size_vram": 0,
        "context_length": info.card.context_length,
    }


def show_body(info: ModelInfo) -> dict[str, Any]:
    card = info.card
    return {
        "license": "",
        "modelfile": f"# {info.name}: {card.about} ({info.kind})\n",
        "parameters": "",
        "template": card.template,
        "details": details(card),
        "model_info": {
            "general.architecture": card.family,
            "general.parameter_count": card.parameter_count,
            f"{card.family}.context_length": card.context_length,
        },
        "capabilities": list(info.capabilities),
        "modified_at": timestamp(info.modified_at),
    }


def ndjson(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"
