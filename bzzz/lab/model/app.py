"""What the lab model server answers: ollama's API, plus `/_lab/` for tests.

    GET  /                 a plain-text "running" line
    GET  /api/version      {"version": ...}
    GET  /api/tags         the registered models, newest first (as ollama lists them)
    GET  /api/ps           the models used within the last five minutes
    POST /api/show         one model's details, with its capabilities
    POST /api/chat         the responder's reply, streamed as NDJSON unless "stream": false;
                           400 for an embedding model, as ollama answers
    POST /api/generate     the same, as `response` text
    POST /api/embed        vectors for `input` (bzzz.lab.model.embed), from any model
    POST /api/embeddings   the older form: one vector for `prompt`
    POST /_lab/models      register scripted models: a script (see `steps`), from loopback only
    GET  /_lab/requests?after=SEQ   the request log (entries after SEQ), from loopback only

Every request except those to `/_lab/` is logged, once its reply is decided.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bzzz.lab.model.agentic import for_agent
from bzzz.lab.model.answers import (
    chunks,
    counts,
    final_chunk,
    kind_of,
    message,
    only_loads,
    status_of,
    within_num_predict,
)
from bzzz.lab.model.chat import (
    BadRequest,
    ChatRequest,
    Endpoint,
    model_name,
    parse_chat,
    parse_generate,
)
from bzzz.lab.model.compat_http import compat_routes
from bzzz.lab.model.embed import embed_body, embeddings_body, parse_embed, parse_embeddings
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
    ps_entry,
    show_body,
    tags_entry,
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
            "/api/embed": ("POST", lambda exchange: self._embed(exchange, legacy=False)),
            "/api/embeddings": ("POST", lambda exchange: self._embed(exchange, legacy=True)),
            **compat_routes(self),
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

    def _embed(self, exchange: Exchange, *, legacy: bool) -> None:
        received = time.monotonic_ns()
        try:
            body = exchange.read_json()
            request = parse_embeddings(body) if legacy else parse_embed(body)
        except (BadBody, BadRequest) as exc:
            self._json(exchange, _bad_status(exc), {"error": str(exc)})
            return
        found = self.models.get(request.model)
        if found is None:
            self._json(exchange, 404, {"error": f"model '{request.model}' not found"})
            return
        self.models.mark_used(found[1])
        answer = (
            embeddings_body(request)
            if legacy
            else embed_body(request, time.monotonic_ns() - received)
        )
        self._json(exchange, 200, answer, model=request.model)

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
            self.log_request(exchange, 404, request, "error")
            exchange.send_json(404, {"error": f"model '{request.model}' not found"})
            return
        responder, info = found
        if not info.chats:  # ollama: 400 before the model is loaded
            self.log_request(exchange, 400, request, "error")
            refused = f'"{request.model}" does not support {endpoint}'
            exchange.send_json(400, {"error": refused})
            return
        self.models.mark_used(info)
        if only_loads(request):  # ollama loads the model and answers nothing
            self.log_request(exchange, 200, request, "load")
            self._send(exchange, request, [final_chunk(request, "", [], None, "load")])
            return
        if isinstance(responder, Generative):  # a real model: logged once it has answered
            answer_generated(
                exchange,
                request,
                responder,
                received,
                lambda status, kind, ending: self.log_request(
                    exchange, status, request, kind, ending
                ),
            )
            return
        self._scripted(exchange, request, responder, received)

    def _scripted(
        self, exchange: Exchange, request: ChatRequest, responder: Responder, received: int
    ) -> None:
        try:
            reply = for_agent(request, responder(request))
        except Exception as exc:
            log.exception("lab model %r failed", request.model)
            self.log_request(exchange, 500, request, "error")
            exchange.send_json(500, {"error": f"lab model '{request.model}' failed: {exc}"})
            return
        reply, reason = within_num_predict(request, reply)
        counted = None
        if isinstance(reply, Text | ToolCall):
            prompt, generated = counts(request, reply)
            counted = {"prompt_eval_count": prompt, "eval_count": generated, "done_reason": reason}
        self.log_request(exchange, status_of(reply, request), request, kind_of(reply), counted)
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
            for chunk in chunks(request, reply.partial, []):
                exchange.stream_line(chunk)
            exchange.stream_line({"error": reply.message})
            exchange.end_stream()
        else:
            content, tool_calls = message(request, reply)
            usage = clock.usage(*counts(request, reply))
            if request.stream:
                exchange.start_stream()
                for chunk in chunks(request, content, tool_calls):
                    exchange.stream_line(chunk)
                exchange.stream_line(final_chunk(request, "", [], usage, reason))
                exchange.end_stream()
            else:
                exchange.send_json(200, final_chunk(request, content, tool_calls, usage, reason))

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

    def log_request(
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
