"""What the lab model server answers: ollama's API, plus `/_lab/` for tests.

    GET  /                 a plain-text "running" line
    GET  /api/version      {"version": ...}
    GET  /api/tags         the registered models, newest first (as ollama lists them)
    GET  /api/ps           the models used within the last five minutes
    POST /api/show         one model's details, with its capabilities
    POST /api/chat         the responder's reply, streamed as NDJSON unless "stream": false;
                           400 for an embedding model, as ollama answers
    POST /api/generate     the same, as `response` text
    POST /_lab/models      register scripted models: a script (see `steps`), from loopback only
    GET  /_lab/requests?after=SEQ   the request log (entries after SEQ), from loopback only

Every request except those to `/_lab/` is logged, once its reply is decided.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bzzz.lab.model.chat import (
    BadRequest,
    ChatRequest,
    Endpoint,
    model_name,
    parse_chat,
    parse_generate,
)
from bzzz.lab.model.generated import answer_generated
from bzzz.lab.model.generative import Generative
from bzzz.lab.model.httpd import BadBody, Exchange
from bzzz.lab.model.registry import LoggedRequest, ModelRegistry, RequestLog
from bzzz.lab.model.responders import Responder, Scripted
from bzzz.lab.model.steps import (
    HttpError,
    Reply,
    ScriptError,
    StreamError,
    Text,
    ToolCall,
    parse_script,
)
from bzzz.lab.model.wire import (
    SERVER_VERSION,
    Usage,
    chat_chunk,
    chat_stream,
    count_tokens,
    final,
    generate_chunk,
    generate_stream,
    pieces,
    prompt_tokens,
    ps_entry,
    show_body,
    tags_entry,
    tool_calls_json,
)

log = logging.getLogger(__name__)

RUNNING = b"Bzzz lab model server is running (a scripted stand-in for ollama, not an LLM)"


@dataclass(frozen=True)
class _Clock:
    """Nanosecond marks of one model request, for the durations in its final chunk."""

    received: int
    decided: int
    answering: int

    def usage(self, prompt: int, generated: int) -> Usage:
        done = time.monotonic_ns()
        return Usage(
            prompt_eval_count=prompt,
            eval_count=generated,
            total_duration=done - self.received,
            load_duration=self.decided - self.received,
            prompt_eval_duration=self.answering - self.decided,  # the scripted delay
            eval_duration=done - self.answering,
        )


class LabModelApp:
    def __init__(
        self, models: ModelRegistry, requests: RequestLog, stopping: threading.Event
    ) -> None:
        self.models = models
        self.requests = requests
        self.stopping = stopping
        self._routes: dict[str, tuple[str, Callable[[Exchange], None]]] = {
            "/": ("GET", self._root),
            "/api/version": ("GET", self._version),
            "/api/tags": ("GET", self._tags),
            "/api/ps": ("GET", self._ps),
            "/api/show": ("POST", self._show),
            "/api/chat": ("POST", lambda exchange: self._model_reply(exchange, "chat")),
            "/api/generate": ("POST", lambda exchange: self._model_reply(exchange, "generate")),
            "/_lab/models": ("POST", self._register),
            "/_lab/requests": ("GET", self._logged),
        }

    def handle(self, exchange: Exchange) -> None:
        path = exchange.path_only
        route = self._routes.get(path)
        if route is None:
            self._plain(exchange, 404, b"404 page not found")
            return
        method, answer = route
        if exchange.command not in ((method, "HEAD") if method == "GET" else (method,)):
            self._plain(exchange, 405, b"405 method not allowed")
            return
        if path.startswith("/_lab/") and not _loopback(exchange.client_ip):
            exchange.send_json(403, {"error": "the lab endpoints answer loopback clients only"})
            return
        answer(exchange)

    # ollama's API

    def _root(self, exchange: Exchange) -> None:
        self._plain(exchange, 200, RUNNING)

    def _version(self, exchange: Exchange) -> None:
        self._json(exchange, 200, {"version": SERVER_VERSION})

    def _tags(self, exchange: Exchange) -> None:
        self._json(exchange, 200, {"models": [tags_entry(i) for i in self.models.infos()]})

    def _ps(self, exchange: Exchange) -> None:
        loaded = [ps_entry(info, used) for info, used in self.models.loaded()]
        self._json(exchange, 200, {"models": loaded})

    def _show(self, exchange: Exchange) -> None:
        try:
            name = model_name(exchange.read_json())
        except (BadBody, BadRequest) as exc:
            self._json(exchange, _bad_status(exc), {"error": str(exc)})
            return
        found = self.models.get(name)
        if found is None:
            self._json(exchange, 404, {"error": f"model '{name}' not found"}, model=name)
        else:
            self._json(exchange, 200, show_body(found[1]), model=name)

    def _model_reply(self, exchange: Exchange, endpoint: Endpoint) -> None:
        received = time.monotonic_ns()
        try:
            body = exchange.read_json()
            request = parse_chat(body) if endpoint == "chat" else parse_generate(body)
        except (BadBody, BadRequest) as exc:
            self._json(exchange, _bad_status(exc), {"error": str(exc)})
            return
        found = self.models.get(request.model)
        if found is None:
            self._log(exchange, 404, request, "error")
            exchange.send_json(404, {"error": f"model '{request.model}' not found"})
            return
        responder, info = found
        if not info.chats:  # ollama: 400 before the model is loaded
            self._log(exchange, 400, request, "error")
            message = f'"{request.model}" does not support {endpoint}'
            exchange.send_json(400, {"error": message})
            return
        self.models.mark_used(info)
        if _only_loads(request):  # ollama loads the model and answers nothing
            self._log(exchange, 200, request, "load")
            self._send(exchange, request, [_final(request, "", [], None, "load")])
            return
        if isinstance(responder, Generative):  # a real model: logged once it has answered
            answer_generated(
                exchange,
                request,
                responder,
                received,
                lambda status, kind, ending: self._log(exchange, status, request, kind, ending),
            )
            return
        self._scripted(exchange, request, responder, received)

    def _scripted(
        self, exchange: Exchange, request: ChatRequest, responder: Responder, received: int
    ) -> None:
        try:
            reply = responder(request)
        except Exception as exc:
            log.exception("lab model %r failed", request.model)
            self._log(exchange, 500, request, "error")
            exchange.send_json(500, {"error": f"lab model '{request.model}' failed: {exc}"})
            return
        reply, reason = _within_num_predict(request, reply)
        counted = None
        if isinstance(reply, Text | ToolCall):
            prompt, generated = _counts(request, reply)
            counted = {"prompt_eval_count": prompt, "eval_count": generated, "done_reason": reason}
        self._log(exchange, _status(reply, request), request, _kind(reply), counted)
        decided = time.monotonic_ns()
        if reply.delay and self.stopping.wait(reply.delay):
            exchange.drop()  # the server is stopping: a hung model never answers
            return
        clock = _Clock(received, decided, time.monotonic_ns())
        self._answer(exchange, request, reply, clock, reason)

    def _answer(
        self, exchange: Exchange, request: ChatRequest, reply: Reply, clock: _Clock, reason: str
    ) -> None:
        if isinstance(reply, HttpError):
            exchange.send_json(reply.status, {"error": reply.message})
        elif isinstance(reply, StreamError) and not request.stream:
            exchange.send_json(500, {"error": reply.message})  # as ollama fails mid-reply
        elif isinstance(reply, StreamError):
            exchange.start_stream()
            for chunk in _chunks(request, reply.partial, []):
                exchange.stream_line(chunk)
            exchange.stream_line({"error": reply.message})
            exchange.end_stream()
        else:
            content, tool_calls = _message(request, reply)
            usage = clock.usage(*_counts(request, reply))
            if request.stream:
                exchange.start_stream()
                for chunk in _chunks(request, content, tool_calls):
                    exchange.stream_line(chunk)
                exchange.stream_line(_final(request, "", [], usage, reason))
                exchange.end_stream()
            else:
                exchange.send_json(200, _final(request, content, tool_calls, usage, reason))

    def _send(self, exchange: Exchange, request: ChatRequest, chunks: list[dict[str, Any]]) -> None:
        if not request.stream:
            exchange.send_json(200, chunks[-1])
            return
        exchange.start_stream()
        for chunk in chunks:
            exchange.stream_line(chunk)
        exchange.end_stream()

    # the lab's own endpoints

    def _register(self, exchange: Exchange) -> None:
        try:
            script = parse_script(exchange.read_json())
        except (BadBody, ScriptError) as exc:
            exchange.send_json(_bad_status(exc), {"error": str(exc)})
            return
        infos = [self.models.register(name, Scripted(steps)) for name, steps in script.items()]
        exchange.send_json(200, {"registered": [info.name for info in infos]})

    def _logged(self, exchange: Exchange) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(exchange.path).query)
        try:
            after = int(query.get("after", ["0"])[0])
        except ValueError:
            exchange.send_json(400, {"error": "after must be an integer"})
            return
        entries = [entry.as_json() for entry in self.requests.entries(after)]
        exchange.send_json(200, {"requests": entries})

    # replies and the log

    def _json(
        self, exchange: Exchange, status: int, body: object, model: str | None = None
    ) -> None:
        self.requests.add(
            LoggedRequest(
                exchange.command, exchange.path_only, status, exchange.client_ip, model=model
            )
        )
        exchange.send_json(status, body)

    def _plain(self, exchange: Exchange, status: int, text: bytes) -> None:
        self.requests.add(
            LoggedRequest(exchange.command, exchange.path_only, status, exchange.client_ip)
        )
        exchange.send_bytes(status, "text/plain; charset=utf-8", text)

    def _log(
        self,
        exchange: Exchange,
        status: int,
        request: ChatRequest,
        reply: str,
        ending: Mapping[str, Any] | None = None,
    ) -> None:
        ending = ending or {}
        self.requests.add(
            LoggedRequest(
                exchange.command,
                exchange.path_only,
                status,
                exchange.client_ip,
                model=request.model,
                messages=len(request.messages),
                assistant_turns=request.assistant_turns,
                stream=request.stream,
                format=request.format_kind,
                tools=len(request.tools),
                reply=reply,
                prompt_eval_count=ending.get("prompt_eval_count"),
                eval_count=ending.get("eval_count"),
                done_reason=ending.get("done_reason"),
            )
        )


def _message(request: ChatRequest, reply: Text | ToolCall) -> tuple[str, list[dict[str, Any]]]:
    """The content and tool calls the reply becomes on this endpoint."""
    if isinstance(reply, Text):
        return reply.content, []
    if request.endpoint == "chat":
        return "", tool_calls_json(reply)
    # /api/generate has no tool calls: the call comes as the text a model would write
    return json.dumps({"name": reply.name, "arguments": dict(reply.arguments)}), []


def _counts(request: ChatRequest, reply: Text | ToolCall) -> tuple[int, int]:
    """The crude counts: prompt and reply words (a tool call counts as its JSON)."""
    content, tool_calls = _message(request, reply)
    generated = count_tokens(content) + sum(count_tokens(json.dumps(c)) for c in tool_calls)
    return prompt_tokens(request), generated


def _within_num_predict(request: ChatRequest, reply: Reply) -> tuple[Reply, str]:
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


def _chunks(
    request: ChatRequest, content: str, tool_calls: Sequence[Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    if request.endpoint == "chat":
        return chat_stream(request.model, content, tool_calls)
    return generate_stream(request.model, content)


def _final(
    request: ChatRequest,
    content: str,
    tool_calls: Sequence[Mapping[str, Any]],
    usage: Usage | None,
    reason: str = "stop",
) -> dict[str, Any]:
    if request.endpoint == "chat":
        return final(chat_chunk(request.model, content, tool_calls), usage, reason)
    return final(generate_chunk(request.model, content), usage, reason)


def _only_loads(request: ChatRequest) -> bool:
    """ollama answers a chat without messages, or a generate without a prompt, by loading."""
    if request.endpoint == "chat":
        return not request.messages
    return not any(message.role == "user" for message in request.messages)


def _status(reply: Reply, request: ChatRequest) -> int:
    if isinstance(reply, HttpError):
        return reply.status
    return 500 if isinstance(reply, StreamError) and not request.stream else 200


def _kind(reply: Reply) -> str:
    return {Text: "text", ToolCall: "tool_call", HttpError: "http_error"}.get(
        type(reply), "stream_error"
    )


def _bad_status(exc: Exception) -> int:
    return exc.status if isinstance(exc, BadBody) else 400


def _loopback(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
