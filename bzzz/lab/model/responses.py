"""OpenAI's Responses API (`/v1/responses`), as ollama serves it and as Codex CLI speaks
it (it no longer speaks chat completions): a request read into the lab's
`ChatRequest`, and a reply (text or a function call) written back as a `response`
object, or as its stream of typed events ending in `response.completed`. Pure."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bzzz.lab.model.chat import BadRequest, ChatRequest, Message, model_name
from bzzz.lab.model.compat import function_tool

ToolCalls = Sequence[Mapping[str, Any]]  # ollama's: {"function": {"name", "arguments"}}


def parse_responses(body: Any) -> ChatRequest:
    model = model_name(body)
    raw = body.get("input")
    messages = [Message("system", body["instructions"])] if body.get("instructions") else []
    if isinstance(raw, str):
        messages.append(Message("user", raw))
    elif isinstance(raw, list):
        messages += [message for item in raw if (message := _item(item)) is not None]
    else:
        raise BadRequest("input must be a string or a list of items")
    if not any(m.role == "user" for m in messages):
        raise BadRequest("input holds no user message")
    tools = tuple(
        function_tool(t, t.get("parameters", {}))
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") == "function"
    )
    limit = body.get("max_output_tokens")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=body.get("stream") is True,
        tools=tools,
        options={"num_predict": limit} if isinstance(limit, int) else {},
    )


def _item(item: Any) -> Message | None:
    """One input item as a message: a message's text; a function call (the assistant's
    turn) or its output (the tool's answer) as JSON text."""
    if not isinstance(item, dict):
        return None
    kind = item.get("type", "message")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, list):
            content = "\n".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        return Message(str(item.get("role", "user")), str(content or ""))
    if kind == "function_call":
        return Message(
            "assistant", json.dumps({"call": item.get("name"), "arguments": item.get("arguments")})
        )
    if kind == "function_call_output":
        return Message("tool", str(item.get("output", "")))
    return None


def _output(content: str, tool_calls: ToolCalls) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if content:
        items.append(
            {
                "type": "message",
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": content, "annotations": []}],
            }
        )
    for call in tool_calls:
        function = call.get("function") or {}
        arguments = function.get("arguments")
        items.append(
            {
                "type": "function_call",
                "id": f"fc_{uuid.uuid4().hex[:24]}",
                "call_id": f"call_{uuid.uuid4().hex[:24]}",
                "name": str(function.get("name", "")),
                "arguments": json.dumps(arguments if isinstance(arguments, dict) else {}),
                "status": "completed",
            }
        )
    return items


def response(
    model: str,
    content: str,
    tool_calls: ToolCalls,
    usage: tuple[int, int],
    *,
    status: str = "completed",
) -> dict[str, Any]:
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": _output(content, tool_calls) if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": usage[0],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage[1],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": sum(usage),
        },
    }


def events(
    model: str, pieces: Sequence[str], tool_calls: ToolCalls, usage: tuple[int, int]
) -> Iterator[bytes]:
    """The reply as the Responses API streams it: typed events, numbered, each item added,
    its text or arguments in deltas, done, and `response.completed` with the whole."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **body: Any) -> bytes:
        data = {"type": kind, "sequence_number": next(sequence), **body}
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

    whole = response(model, "".join(pieces), tool_calls, usage)
    started = {**whole, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    for index, item in enumerate(whole["output"]):
        if item["type"] == "message":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **where, part=part)
            for piece in pieces:
                yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
            text = item["content"][0]["text"]
            yield event("response.output_text.done", **where, text=text, logprobs=[])
            yield event("response.content_part.done", **where, part={**part, "text": text})
        else:
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            where = {"item_id": item["id"], "output_index": index}
            yield event("response.function_call_arguments.delta", **where, delta=item["arguments"])
            yield event(
                "response.function_call_arguments.done", **where, arguments=item["arguments"]
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=whole)
