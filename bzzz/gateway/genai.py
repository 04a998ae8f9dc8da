"""Google's genai API (what Gemini CLI speaks, at `GOOGLE_GEMINI_BASE_URL`), carried by
the gateway as ollama's chat: ollama does not serve it, so a `generateContent` or
`streamGenerateContent` call is translated to `/api/chat` for the model named in its
path, routed like any chat, and its answer translated back (whole, or as server-sent
events of `GenerateContentResponse`). `countTokens` is answered here, by estimate. Pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# The model may have a tag (`coder:latest`): the method is after the last colon.
PATH = re.compile(r"^/v1(?:beta|alpha)?/models/([^/]{1,200}):([A-Za-z]+)$")
METHODS = ("generateContent", "streamGenerateContent", "countTokens")
SSE = "text/event-stream"
STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 503: "UNAVAILABLE"}


class BadCall(ValueError):
    """A genai request that cannot be carried: said in its words (400)."""


@dataclass(frozen=True)
class Call:
    model: str
    method: str  # one of METHODS

    @property
    def stream(self) -> bool:
        return self.method == "streamGenerateContent"


def call_of(method: str, path: str) -> Call | None:
    """The genai call a request is (None: it is none)."""
    found = PATH.match(path)
    if method != "POST" or found is None or found.group(2) not in METHODS:
        return None
    return Call(found.group(1), found.group(2))


def to_chat(call: Call, body: bytes) -> bytes:
    """The genai request as ollama's /api/chat request."""
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise BadCall(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("contents"), list):
        raise BadCall("contents must be a list")
    messages = []
    system = _texts((data.get("systemInstruction") or {}).get("parts"))
    if system:
        messages.append({"role": "system", "content": system})
    for content in data["contents"]:
        if isinstance(content, dict):
            messages += _messages(content)
    chat: dict[str, Any] = {"model": call.model, "messages": messages, "stream": call.stream}
    tools = [
        {
            "type": "function",
            "function": {
                "name": str(d.get("name", "")),
                "description": str(d.get("description", "")),
                "parameters": d.get("parametersJsonSchema") or d.get("parameters") or {},
            },
        }
        for tool in data.get("tools") or ()
        if isinstance(tool, dict)
        for d in tool.get("functionDeclarations") or ()
        if isinstance(d, dict)
    ]
    if tools:
        chat["tools"] = tools
    limit = (data.get("generationConfig") or {}).get("maxOutputTokens")
    if isinstance(limit, int):
        chat["options"] = {"num_predict": limit}
    return json.dumps(chat).encode()


def from_chat(chunk: dict[str, Any], model: str) -> dict[str, Any]:
    """One ollama chat answer (or streamed chunk) as a GenerateContentResponse."""
    message = chunk.get("message")
    message = message if isinstance(message, dict) else {}  # a peer's answer: untrusted
    parts: list[dict[str, Any]] = []
    if message.get("content"):
        parts.append({"text": str(message["content"])})
    calls = message.get("tool_calls")
    for tool_call in calls if isinstance(calls, list) else ():
        function = tool_call.get("function") if isinstance(tool_call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {}
        parts.append({"functionCall": {"name": function.get("name", ""), "args": arguments or {}}})
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if chunk.get("done"):
        candidate["finishReason"] = "MAX_TOKENS" if chunk.get("done_reason") == "length" else "STOP"
    answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if chunk.get("done"):
        prompt, reply = _count(chunk.get("prompt_eval_count")), _count(chunk.get("eval_count"))
        answer["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": reply,
            "totalTokenCount": prompt + reply,
        }
    return answer


def event(answer: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(answer)}\r\n\r\n".encode()


def count_tokens(body: bytes) -> bytes:
    """`countTokens`, estimated (about four characters a token), as genai answers it."""
    return json.dumps({"totalTokens": max(1, len(body) // 4)}).encode()


def error(status: int, message: str) -> bytes:
    """An error in genai's shape."""
    return json.dumps(
        {"error": {"code": status, "message": message, "status": STATUS.get(status, "INTERNAL")}}
    ).encode()


def ollama_error(body: bytes) -> str:
    """The message of an ollama error body ({"error": message})."""
    try:
        return str(json.loads(body).get("error", "failed"))
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:500] or "failed"


def _messages(content: dict[str, Any]) -> list[dict[str, Any]]:
    """A genai content (a turn of parts) as ollama chat messages: text, the model's
    function calls, and function responses (each a `tool` message)."""
    role = "assistant" if content.get("role") == "model" else "user"
    parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
    text = _texts(parts)
    calls = [
        {
            "function": {
                "name": p["functionCall"].get("name", ""),
                "arguments": p["functionCall"].get("args") or {},
            }
        }
        for p in parts
        if isinstance(p.get("functionCall"), dict)
    ]
    messages: list[dict[str, Any]] = []
    if text or calls:
        message: dict[str, Any] = {"role": role, "content": text}
        if calls:
            message["tool_calls"] = calls
        messages.append(message)
    for part in parts:
        answer = part.get("functionResponse")
        if isinstance(answer, dict):
            output = answer.get("response")
            messages.append(
                {
                    "role": "tool",
                    "tool_name": str(answer.get("name", "")),
                    "content": output if isinstance(output, str) else json.dumps(output),
                }
            )
    return messages


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _texts(parts: Any) -> str:
    if not isinstance(parts, list):
        return ""
    return "\n".join(
        str(p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )
