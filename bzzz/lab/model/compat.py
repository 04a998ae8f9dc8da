"""OpenAI's chat-completions API and Anthropic's messages API, as ollama serves them
(`/v1/chat/completions`, `/v1/models`, `/v1/messages`): requests read into the lab's
`ChatRequest`, and a reply (text or a tool call) written back in each API's shape,
whole or as server-sent events. Pure.

What agent CLIs send beyond what the lab answers from (images, tool results as blocks,
sampling parameters) is accepted and reduced to text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from bzzz.lab.model.chat import BadRequest, ChatRequest, Message, model_name

Api = Literal["openai", "anthropic", "responses"]  # responses: OpenAI's Responses API
ToolCalls = Sequence[Mapping[str, Any]]  # ollama's: {"function": {"name", "arguments"}}


def parse_openai(body: Any) -> ChatRequest:
    model = model_name(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list")
    options = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int):
        options["num_predict"] = limit
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    schema = (
        (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
    )
    return ChatRequest(
        model=model,
        messages=tuple(
            Message(str(m.get("role", "user")), _text(m.get("content")))
            for m in raw
            if isinstance(m, dict)
        ),
        stream=body.get("stream") is True,  # OpenAI's default is a whole answer
        format=schema if isinstance(schema, dict) else ("json" if kind == "json_object" else None),
        tools=tuple(t for t in body.get("tools") or () if isinstance(t, dict)),
        options=options,
    )


def parse_anthropic(body: Any) -> ChatRequest:
    model = model_name(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages: at least one message is required")
    if not isinstance(body.get("max_tokens"), int):
        raise BadRequest("max_tokens: Field required")
    system = _text(body.get("system"))
    messages = [Message("system", system)] if system else []
    messages += [
        Message(str(m.get("role", "user")), _text(m.get("content")))
        for m in raw
        if isinstance(m, dict)
    ]
    tools = tuple(
        function_tool(t, t.get("input_schema", {}))
        for t in body.get("tools") or ()
        if isinstance(t, dict)
    )
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=body.get("stream") is True,
        tools=tools,
        options={"num_predict": body["max_tokens"]},
    )


def function_tool(tool: Mapping[str, Any], parameters: Any) -> dict[str, Any]:
    """A tool as ollama's chat takes it, from an API that names it flat (Anthropic's
    messages, OpenAI's responses): its name, description and parameters' schema."""
    return {
        "type": "function",
        "function": {
            "name": tool.get("name", ""),
            "description": tool.get("description", ""),
            "parameters": parameters,
        },
    }


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text of its blocks (text blocks,
    tool results), each on a line."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_text(block.get("content")))
        elif block.get("type") == "tool_use":
            parts.append(json.dumps({"tool": block.get("name"), "input": block.get("input")}))
    return "\n".join(parts)


# ---- replies ----------------------------------------------------------------------------


def _calls(tool_calls: ToolCalls) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, arguments) of each call."""
    found = []
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        found.append(
            (
                f"call_{uuid.uuid4().hex[:24]}",
                str(function.get("name", "")),
                arguments if isinstance(arguments, dict) else {},
            )
        )
    return found


def openai_reply(
    model: str, content: str, tool_calls: ToolCalls, usage: tuple[int, int], stop: str
) -> dict[str, Any]:
    calls = _calls(tool_calls)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, n, a in calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_bzzz_lab",
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(calls, stop)}],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def openai_events(
    model: str, pieces: Sequence[str], tool_calls: ToolCalls, stop: str
) -> Iterator[bytes]:
    """The reply as OpenAI streams it: `data: {chunk}` per piece, then `data: [DONE]`."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_bzzz_lab",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces:
        yield chunk({"content": piece})
    calls = _calls(tool_calls)
    for index, (call_id, name, arguments) in enumerate(calls):
        function = {"name": name, "arguments": json.dumps(arguments)}
        yield chunk(
            {
                "tool_calls": [
                    {"index": index, "id": call_id, "type": "function", "function": function}
                ]
            }
        )
    yield chunk({}, _finish(calls, stop))
    yield b"data: [DONE]\n\n"


def _finish(calls: list[Any], stop: str) -> str:
    return "tool_calls" if calls else ("length" if stop == "length" else "stop")


def anthropic_reply(
    model: str, content: str, tool_calls: ToolCalls, usage: tuple[int, int], stop: str
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
    calls = _calls(tool_calls)
    blocks += [
        {"type": "tool_use", "id": i.replace("call_", "toolu_"), "name": n, "input": a}
        for i, n, a in calls
    ]
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _stop_reason(calls, stop),
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def anthropic_events(
    model: str, pieces: Sequence[str], tool_calls: ToolCalls, usage: tuple[int, int], stop: str
) -> Iterator[bytes]:
    """The reply as Anthropic streams it: message_start, a content block per text and
    tool call (its deltas), message_delta with the stop reason, message_stop."""

    def event(kind: str, body: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **body})}\n\n".encode()

    start = anthropic_reply(model, "", [], (usage[0], 0), stop)
    start.update(content=[], stop_reason=None)
    yield event("message_start", {"message": start})
    index = 0
    if pieces:
        yield event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for piece in pieces:
            yield event(
                "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
            )
        yield event("content_block_stop", {"index": 0})
        index = 1
    calls = _calls(tool_calls)
    for offset, (call_id, name, arguments) in enumerate(calls):
        block = {
            "type": "tool_use",
            "id": call_id.replace("call_", "toolu_"),
            "name": name,
            "input": {},
        }
        yield event("content_block_start", {"index": index + offset, "content_block": block})
        partial = {"type": "input_json_delta", "partial_json": json.dumps(arguments)}
        yield event("content_block_delta", {"index": index + offset, "delta": partial})
        yield event("content_block_stop", {"index": index + offset})
    delta: dict[str, Any] = {"stop_reason": _stop_reason(calls, stop), "stop_sequence": None}
    yield event("message_delta", {"delta": delta, "usage": {"output_tokens": usage[1]}})
    yield event("message_stop", {})


def _stop_reason(calls: list[Any], stop: str) -> str:
    return "tool_use" if calls else ("max_tokens" if stop == "length" else "end_turn")


def error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    """An error as each API words it."""
    kind = {400: "invalid_request_error", 404: "not_found_error", 503: "overloaded_error"}.get(
        status, "api_error"
    )
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def models_list(names: Sequence[tuple[str, float]]) -> dict[str, Any]:
    """`/v1/models`: (name, modified time) of each model."""
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": int(created), "owned_by": "library"}
            for name, created in names
        ],
    }
