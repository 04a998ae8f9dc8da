"""How the lab model server's replies become ollama's answers: the message and tool
calls, the token counts, a reply cut at `num_predict`, and the chunks. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import HttpError, Reply, StreamError, Text, ToolCall
from bzzz.lab.model.wire import (
    Usage,
    chat_chunk,
    chat_stream,
    count_tokens,
    final,
    generate_chunk,
    generate_stream,
    pieces,
    prompt_tokens,
    tool_calls_json,
)


def message(request: ChatRequest, reply: Text | ToolCall) -> tuple[str, list[dict[str, Any]]]:
    """The content and tool calls the reply becomes on this endpoint."""
    if isinstance(reply, Text):
        return reply.content, []
    if request.endpoint == "chat":
        return "", tool_calls_json(reply)
    # /api/generate has no tool calls: the call comes as the text a model would write
    return json.dumps({"name": reply.name, "arguments": dict(reply.arguments)}), []


def counts(request: ChatRequest, reply: Text | ToolCall) -> tuple[int, int]:
    """The crude counts: prompt and reply words (a tool call counts as its JSON)."""
    content, tool_calls = message(request, reply)
    generated = count_tokens(content) + sum(count_tokens(json.dumps(c)) for c in tool_calls)
    return prompt_tokens(request), generated


def within_num_predict(request: ChatRequest, reply: Reply) -> tuple[Reply, str]:
    """A text longer than the request's `num_predict` (in words, the lab's tokens) is cut
    there, and its `done_reason` is "length", as ollama answers."""
    limit = request.options.get("num_predict")
    if not isinstance(reply, Text) or not isinstance(limit, int) or limit <= 0:
        return reply, "stop"
    kept: list[str] = []
    words = 0
    for piece in pieces(reply.content):
        words += bool(piece.strip())
        if words > limit:
            return Text("".join(kept), reply.delay), "length"
        kept.append(piece)
    return reply, "stop"


def chunks(
    request: ChatRequest, content: str, tool_calls: Sequence[Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    if request.endpoint == "chat":
        return chat_stream(request.model, content, tool_calls)
    return generate_stream(request.model, content)


def final_chunk(
    request: ChatRequest,
    content: str,
    tool_calls: Sequence[Mapping[str, Any]],
    usage: Usage | None,
    reason: str = "stop",
) -> dict[str, Any]:
    if request.endpoint == "chat":
        return final(chat_chunk(request.model, content, tool_calls), usage, reason)
    return final(generate_chunk(request.model, content), usage, reason)


def only_loads(request: ChatRequest) -> bool:
    """ollama answers a chat without messages, or a generate without a prompt, by loading."""
    if request.endpoint == "chat":
        return not request.messages
    return not any(message.role == "user" for message in request.messages)


def status_of(reply: Reply, request: ChatRequest) -> int:
    if isinstance(reply, HttpError):
        return reply.status
    return 500 if isinstance(reply, StreamError) and not request.stream else 200


def kind_of(reply: Reply) -> str:
    return {Text: "text", ToolCall: "tool_call", HttpError: "http_error"}.get(
        type(reply), "stream_error"
    )
