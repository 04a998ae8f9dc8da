"""Answering a chat or generate request from a `Generative` model, as ollama answers it:
the pieces streamed as NDJSON as they are written (or one JSON object at the end), a
final chunk with `done_reason` and the true counts; an error before the reply starts
as an HTTP error, one during a stream as a last `{"error": ...}` line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import closing
from typing import Any

from bzzz.lab.model.chat import BadRequest, ChatRequest
from bzzz.lab.model.generative import Finished, Generative
from bzzz.lab.model.httpd import Exchange
from bzzz.lab.model.wire import (
    Usage,
    chat_chunk,
    final,
    generate_chunk,
)

log = logging.getLogger(__name__)

# (status, reply kind, final chunk or None): how the request is logged once answered
Logger = Callable[[int, str, Mapping[str, Any] | None], None]


def answer_generated(
    exchange: Exchange,
    request: ChatRequest,
    model: Generative,
    received_ns: int,
    logged: Logger,
) -> None:
    try:
        pieces = model.generate(request)
    except BadRequest as exc:
        logged(400, "error", None)
        exchange.send_json(400, {"error": str(exc)})
        return
    written: list[str] = []
    status, kind, ending = 500, "error", None
    try:
        with closing(_generator(pieces)) as stream:
            if request.stream:
                exchange.start_stream()
            finished = None
            try:
                finished = _write(exchange, request, stream, written)
            except Exception as exc:  # llama.cpp failed mid-reply
                log.exception("lab model %r failed", request.model)
                message = f"lab model '{request.model}' failed: {exc}"
                if request.stream:
                    exchange.stream_line({"error": message})
                    exchange.end_stream()
                    kind = "stream_error"
                else:
                    exchange.send_json(500, {"error": message})
                return
            ending = _final(
                request, "" if request.stream else "".join(written), finished, received_ns
            )
            status, kind = 200, "text"
            if request.stream:
                exchange.stream_line(ending)
                exchange.end_stream()
            else:
                exchange.send_json(200, ending)
    finally:
        logged(status, kind, ending)


def _generator(pieces: Iterator[str | Finished]) -> Generator[str | Finished, None, None]:
    """`pieces` as a generator, so that closing it stops the model."""
    if isinstance(pieces, Generator):
        return pieces
    return (piece for piece in pieces)


def _write(
    exchange: Exchange,
    request: ChatRequest,
    stream: Iterator[str | Finished],
    written: list[str],
) -> Finished:
    for piece in stream:
        if isinstance(piece, Finished):
            return piece
        written.append(piece)
        if request.stream and piece:
            exchange.stream_line(_chunk(request, piece))
    raise RuntimeError("the model ended without saying why")


def _chunk(
    request: ChatRequest, text: str, tool_calls: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    if request.endpoint == "chat":
        return chat_chunk(request.model, text, tool_calls)
    return generate_chunk(request.model, text)


def _final(request: ChatRequest, text: str, finished: Finished, received_ns: int) -> dict[str, Any]:
    total = time.monotonic_ns() - received_ns
    usage = Usage(
        prompt_eval_count=finished.prompt_tokens,
        eval_count=finished.reply_tokens,
        total_duration=total,
        load_duration=max(0, total - finished.prompt_ns - finished.reply_ns),
        prompt_eval_duration=finished.prompt_ns,
        eval_duration=finished.reply_ns,
    )
    return final(_chunk(request, text), usage, finished.done_reason)
