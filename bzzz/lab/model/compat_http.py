"""The lab model server's OpenAI and Anthropic endpoints (as ollama serves them):
`/v1/chat/completions`, `/v1/responses`, `/v1/messages` and `/v1/models`, answered from
the same scripts as `/api/chat` (bzzz.lab.model.compat and .responses translate).
Scripted models only: the GGUF models answer ollama's own API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from bzzz.lab.model import compat, responses
from bzzz.lab.model.agentic import for_agent
from bzzz.lab.model.answers import counts, kind_of, status_of, within_num_predict
from bzzz.lab.model.chat import BadRequest, ChatRequest
from bzzz.lab.model.generative import Generative
from bzzz.lab.model.httpd import BadBody, Exchange
from bzzz.lab.model.steps import HttpError, StreamError, Text, ToolCall
from bzzz.lab.model.wire import pieces

if TYPE_CHECKING:
    from bzzz.lab.model.app import LabModelApp

log = logging.getLogger(__name__)

SSE = "text/event-stream"


def compat_routes(app: LabModelApp) -> dict[str, tuple[str, Callable[[Exchange], None]]]:
    return {
        "/v1/models": ("GET", lambda exchange: _models(app, exchange)),
        "/v1/chat/completions": ("POST", lambda exchange: _reply(app, exchange, "openai")),
        "/v1/messages": ("POST", lambda exchange: _reply(app, exchange, "anthropic")),
        "/v1/responses": ("POST", lambda exchange: _reply(app, exchange, "responses")),
    }


def _models(app: LabModelApp, exchange: Exchange) -> None:
    names = [(i.name, i.modified_at.timestamp()) for i in app.models.infos() if i.chats]
    exchange.send_json(200, compat.models_list(names))


def _reply(app: LabModelApp, exchange: Exchange, api: compat.Api) -> None:
    parse = {
        "openai": compat.parse_openai,
        "anthropic": compat.parse_anthropic,
        "responses": responses.parse_responses,
    }[api]
    try:
        request = parse(exchange.read_json())
    except (BadBody, BadRequest) as exc:
        exchange.send_json(400, compat.error_body(api, 400, str(exc)))
        return
    found = app.models.get(request.model)
    responder, info = found if found is not None else (None, None)
    if responder is None or info is None or not info.chats or isinstance(responder, Generative):
        app.log_request(exchange, 404, request, "error")
        why = f"model '{request.model}' not found"
        exchange.send_json(404, compat.error_body(api, 404, why))
        return
    app.models.mark_used(info)
    try:
        reply = for_agent(request, responder(request))
    except Exception as exc:
        log.exception("lab model %r failed", request.model)
        app.log_request(exchange, 500, request, "error")
        exchange.send_json(500, compat.error_body(api, 500, f"lab model failed: {exc}"))
        return
    reply, reason = within_num_predict(request, reply)
    app.log_request(exchange, status_of(reply, request), request, kind_of(reply))
    if reply.delay and app.stopping.wait(reply.delay):
        exchange.drop()
        return
    if isinstance(reply, HttpError):
        exchange.send_json(reply.status, compat.error_body(api, reply.status, reply.message))
    elif isinstance(reply, StreamError):
        exchange.send_json(500, compat.error_body(api, 500, reply.message))
    elif isinstance(reply, Text | ToolCall):
        _answer(exchange, api, request, reply, reason)


def _answer(
    exchange: Exchange, api: compat.Api, request: ChatRequest, reply: Text | ToolCall, reason: str
) -> None:
    content, tool_calls = message_of(reply)
    model, usage = request.model, counts(request, reply)
    if not request.stream:
        if api == "responses":
            exchange.send_json(200, responses.response(model, content, tool_calls, usage))
            return
        whole = compat.openai_reply if api == "openai" else compat.anthropic_reply
        exchange.send_json(200, whole(model, content, tool_calls, usage, reason))
        return
    exchange.start_stream(SSE)
    if api == "responses":
        events = responses.events(model, pieces(content), tool_calls, usage)
    elif api == "openai":
        events = compat.openai_events(model, pieces(content), tool_calls, reason)
    else:
        events = compat.anthropic_events(model, pieces(content), tool_calls, usage, reason)
    for event in events:
        exchange.stream_bytes(event)
    exchange.end_stream()


def message_of(reply: Text | ToolCall) -> tuple[str, list[dict[str, object]]]:
    if isinstance(reply, Text):
        return reply.content, []
    return "", [{"function": {"name": reply.name, "arguments": dict(reply.arguments)}}]
