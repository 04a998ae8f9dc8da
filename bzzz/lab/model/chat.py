"""What a responder sees: one `/api/chat` or `/api/generate` request, parsed and checked.

Parsing is pure. Malformed requests raise `BadRequest`, which the server answers with
HTTP 400 `{"error": ...}` as ollama does. Fields Bzzz does not rely on (`images`,
`keep_alive`, `think`, `context`, ...) are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Endpoint = Literal["chat", "generate"]


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    stream: bool = True  # ollama streams unless told not to
    format: str | Mapping[str, Any] | None = None  # "json" or a JSON schema
    tools: tuple[Mapping[str, Any], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    endpoint: Endpoint = "chat"

    @property
    def assistant_turns(self) -> int:
        """How many assistant messages the conversation holds: a script's position."""
        return sum(1 for message in self.messages if message.role == "assistant")

    def first_user_message(self) -> str:
        return next((m.content for m in self.messages if m.role == "user"), "")

    @property
    def format_kind(self) -> str | None:
        """The structured output asked for: "json", "schema", or None."""
        if not self.format:
            return None
        return "json" if self.format == "json" else "schema"


def model_name(body: Any) -> str:
    """The model a request names (`/api/show` also accepts the older `name`)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("model is required")
    return name


def parse_chat(body: Any) -> ChatRequest:
    model = model_name(body)
    raw_messages = body.get("messages") or []
    if not isinstance(raw_messages, list):
        raise BadRequest("messages must be a list")
    return ChatRequest(
        model=model,
        messages=tuple(_message(raw) for raw in raw_messages),
        stream=_stream(body),
        format=_format(body),
        tools=_tools(body),
        options=_options(body),
        endpoint="chat",
    )


def parse_generate(body: Any) -> ChatRequest:
    """A generate request as a conversation: the system text, then the prompt as a user."""
    model = model_name(body)
    messages = []
    for role, key in (("system", "system"), ("user", "prompt")):
        text = body.get(key)
        if text is not None and not isinstance(text, str):
            raise BadRequest(f"{key} must be a string")
        if text:
            messages.append(Message(role, text))
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=_stream(body),
        format=_format(body),
        options=_options(body),
        endpoint="generate",
    )


def _message(raw: Any) -> Message:
    if not isinstance(raw, dict) or not isinstance(raw.get("role"), str):
        raise BadRequest(f"each message needs a role: {raw!r}")
    content = raw.get("content") or ""
    if not isinstance(content, str):
        raise BadRequest(f"message content must be a string: {raw!r}")
    return Message(raw["role"], content)


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", True)
    if stream is None:
        return True
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false")
    return stream


def _format(body: dict[str, Any]) -> str | Mapping[str, Any] | None:
    value = body.get("format")
    if value is None or value == "":
        return None
    if value == "json" or isinstance(value, dict):
        return value  # type: ignore[no-any-return]
    raise BadRequest(f'format must be "json" or a JSON schema, not {value!r}')


def _tools(body: dict[str, Any]) -> tuple[Mapping[str, Any], ...]:
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise BadRequest("tools must be a list of objects")
    return tuple(tools)


def _options(body: dict[str, Any]) -> Mapping[str, Any]:
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise BadRequest("options must be an object")
    return options
