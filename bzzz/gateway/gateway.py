"""The model gateway: ollama's API on loopback, answered by whichever node of the mesh has
the model. Trio-owned.

A call for a model this machine's server has goes there; otherwise to the best live peer
that advertises it (`routing.candidates`), over `/bzzz/ollama/1.0.0`. A peer that is busy,
unreachable or failing before its first byte sends the call to the next one; once bytes
flow, nothing is replayed: a peer that goes silent or away ends the stream with an error
line. `/api/tags` and `/api/ps` merge this machine's answer with its peers'.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from bzzz.gateway import api, genai, mesh
from bzzz.gateway.api import JSON, Route
from bzzz.gateway.httpd import Request, Response
from bzzz.gateway.routing import ModelPeer, candidates, has_model, known_anywhere
from bzzz.gateway.streams import Streams
from bzzz.gateway.upstream import Unreachable, Upstream

log = logging.getLogger(__name__)

MERGE_TIMEOUT = 3.0  # seconds a peer's model list may take
LATENCY_WEIGHT = 0.3  # of each new measure in the running latency
SERVED_BY = "x-bzzz-node"  # the response header naming the node whose model answered


def served_by(node_id: str) -> tuple[tuple[str, str], ...]:
    return ((SERVED_BY, node_id),)


@dataclass
class GatewayCounts:
    local: int = 0
    remote: int = 0
    failovers: int = 0  # a peer busy or failing before its first byte: the next one tried
    unavailable: int = 0  # no node had the model, or none had a slot


class Gateway:
    def __init__(
        self,
        *,
        name: str,
        host: IHost,
        upstream: Upstream,
        local_models: Callable[[], tuple[str, ...]],
        peers: Callable[[], list[ModelPeer]],
        connected: Callable[[ID], bool],
        first_byte: float,
        idle: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self.streams = Streams(host)
        self._upstream = upstream
        self._local_models = local_models
        self._peers = peers
        self._connected = connected
        self._first_byte = first_byte
        self._idle = idle
        self._clock = clock
        self.calls: Counter[str] = Counter()  # this node's calls in flight, per peer
        self.latency_ms: dict[str, float] = {}
        self.counts = GatewayCounts()

    async def handle(self, request: Request) -> Response:
        call = genai.call_of(request.method, request.path)
        if call is not None:
            return await self._genai(call, request)
        match api.route(request.method, request.path):
            case Route.HERE:
                return self._here(request)
            case Route.MODEL:
                response = await self._model_call(request)
            case Route.MERGED if request.path == api.OPENAI_MODELS:
                merged = await self._merged(Request("GET", "/api/tags", b""))
                assert isinstance(merged.body, bytes)  # noqa: S101 - _merged answers whole
                return Response(200, JSON, api.openai_models(merged.body))
            case Route.MERGED:
                return await self._merged(request)
            case Route.REFUSED:
                response = Response(403, JSON, api.REFUSED)
            case _:
                response = Response(404, JSON, api.unknown(request.method, request.path))
        own = not response.headers  # a model server's answer names the node that gave it
        if own and response.status >= 400 and isinstance(response.body, bytes):
            # The gateway's own error, in the words of the API the caller speaks.
            body = api.shaped(request.path, response.status, response.body)
            return Response(response.status, response.content_type, body)
        return response

    async def _genai(self, call: genai.Call, request: Request) -> Response:
        """Google's genai API (Gemini CLI's), carried as ollama's chat."""
        if call.method == "countTokens":
            return Response(200, JSON, genai.count_tokens(request.body))
        try:
            body = genai.to_chat(call, request.body)
        except genai.BadCall as exc:
            return Response(400, JSON, genai.error(400, str(exc)))
        answer = await self._model_call(Request("POST", "/api/chat", body))
        if answer.status != 200 or not call.stream:
            whole = await _whole(answer.body)
            if answer.status != 200:
                said = genai.error(answer.status, genai.ollama_error(whole))
                return Response(answer.status, JSON, said, answer.headers)
            try:
                chunk = json.loads(whole)
            except ValueError:
                chunk = None
            if not isinstance(chunk, dict):  # a node's model server answered garbage
                said = genai.error(502, "the model server's answer was not JSON")
                return Response(502, JSON, said, answer.headers)
            translated = genai.from_chat(chunk, call.model)
            return Response(200, JSON, json.dumps(translated).encode(), answer.headers)
        events = _genai_events(answer.body, call.model)
        return Response(200, genai.SSE, events, answer.headers)

    def _here(self, request: Request) -> Response:
        if request.path == "/":
            return Response(200, "text/plain; charset=utf-8", b"Ollama is running")
        return Response(200, JSON, json.dumps({"version": api.VERSION}).encode())

    async def _model_call(self, request: Request) -> Response:
        model = api.model_of(request.body)
        if not model:
            return Response(400, JSON, api.error("model is required"))
        if has_model(self._local_models(), model):
            try:
                reply = await self._upstream.call(
                    request.method, request.path, request.body, first_byte=self._first_byte
                )
            except Unreachable as exc:
                log.warning("this machine's model server failed; trying the mesh: %s", exc)
            else:
                self.counts.local += 1
                return Response(
                    reply.status, reply.content_type, reply.chunks, served_by(self._name)
                )
        peers = self._known_peers()
        for peer in candidates(model, peers, self.calls):
            response = await self._ask(peer, request)
            if response is not None:
                return response
            self.counts.failovers += 1
        self.counts.unavailable += 1
        if known_anywhere(model, peers):
            return Response(503, JSON, api.BUSY)
        return Response(404, JSON, api.not_found(model))

    async def _ask(self, peer: ModelPeer, request: Request) -> Response | None:
        started = self._clock()
        self.calls[peer.peer_id] += 1
        try:
            peer_id = ID.from_base58(peer.peer_id)
            reply = await mesh.ask(
                partial(self.streams.open, peer_id),
                peer.node_id,
                request.method,
                request.path,
                request.body,
                first_byte=self._first_byte,
                idle=self._idle,
                spare=self.streams.spare(peer_id),
            )
        except (mesh.PeerBusy, mesh.PeerFailed) as exc:
            self._done(peer.peer_id)
            log.info("model call to %s not taken (%s); trying the next node", peer.node_id, exc)
            return None
        self._measured(peer.peer_id, (self._clock() - started) * 1000)
        self.streams.refill(peer_id)  # while the answer streams: the next call starts at once
        self.counts.remote += 1
        chunks = self._counted(peer.peer_id, reply.chunks)
        return Response(reply.status, reply.content_type, chunks, served_by(peer.node_id))

    async def _counted(
        self, peer_id: str, chunks: AsyncGenerator[bytes, None]
    ) -> AsyncGenerator[bytes, None]:
        try:
            async with aclosing(chunks) as relayed:
                async for chunk in relayed:
                    yield chunk
        finally:
            self._done(peer_id)

    def _done(self, peer_id: str) -> None:
        self.calls[peer_id] -= 1
        if self.calls[peer_id] <= 0:
            del self.calls[peer_id]

    def _measured(self, peer_id: str, ms: float) -> None:
        before = self.latency_ms.get(peer_id)
        self.latency_ms[peer_id] = ms if before is None else before + LATENCY_WEIGHT * (ms - before)

    def _known_peers(self) -> list[ModelPeer]:
        """Peers as gossiped, with the latency measured here and whether connected."""
        return [
            ModelPeer(
                p.peer_id, p.node_id, p.models, p.slots, p.in_flight, self.latency_ms.get(p.peer_id)
            )
            for p in self._peers()
        ]

    async def _merged(self, request: Request) -> Response:
        key = "models"
        lists: list[tuple[str, list[dict[str, object]]]] = []

        async def local() -> None:
            lists.append((self._name, await self._list(self._upstream_list(request))))

        async def remote(peer: ModelPeer) -> None:
            lists.append((peer.node_id, await self._list(self._peer_list(peer, request))))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(local)
            for peer in self._known_peers():
                if peer.slots > 0:
                    nursery.start_soon(remote, peer)
        # This machine's models first, then its peers', by node name.
        lists.sort(key=lambda entry: (entry[0] != self._name, entry[0]))
        return Response(200, JSON, api.merge_models(lists, key))

    async def _list(self, fetch: AsyncGenerator[bytes, None]) -> list[dict[str, object]]:
        body = bytearray()
        async with aclosing(fetch) as chunks:
            with trio.move_on_after(MERGE_TIMEOUT):
                async for chunk in chunks:
                    body += chunk
        try:
            models = json.loads(body).get("models", [])
        except (ValueError, AttributeError):
            return []
        return [m for m in models if isinstance(m, dict)]

    async def _upstream_list(self, request: Request) -> AsyncGenerator[bytes, None]:
        try:
            reply = await self._upstream.call("GET", request.path, b"", first_byte=MERGE_TIMEOUT)
        except Unreachable:
            return
        async with aclosing(reply.chunks) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _peer_list(self, peer: ModelPeer, request: Request) -> AsyncGenerator[bytes, None]:
        try:
            reply = await mesh.ask(
                partial(self.streams.open, ID.from_base58(peer.peer_id)),
                peer.node_id,
                "GET",
                request.path,
                b"",
                first_byte=MERGE_TIMEOUT,
                idle=MERGE_TIMEOUT,
            )
        except (mesh.PeerBusy, mesh.PeerFailed):
            return
        async with aclosing(reply.chunks) as chunks:
            async for chunk in chunks:
                yield chunk


async def _whole(body: bytes | AsyncGenerator[bytes, None]) -> bytes:
    if isinstance(body, bytes):
        return body
    whole = bytearray()
    async with aclosing(body) as chunks:
        async for chunk in chunks:
            whole += chunk
    return bytes(whole)


async def _genai_events(
    body: bytes | AsyncGenerator[bytes, None], model: str
) -> AsyncGenerator[bytes, None]:
    """ollama's streamed chat (NDJSON lines) as genai's server-sent events."""
    pending = b""
    chunks = body if not isinstance(body, bytes) else _once(body)
    async with aclosing(chunks) as lines:
        async for chunk in lines:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line.strip():
                    yield _genai_event(line, model)
    if pending.strip():
        yield _genai_event(pending, model)


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


def _genai_event(line: bytes, model: str) -> bytes:
    try:
        chunk = json.loads(line)
    except ValueError:
        return genai.event(
            {"error": {"code": 502, "message": "a malformed answer", "status": "INTERNAL"}}
        )
    if isinstance(chunk, dict) and "error" in chunk:  # ollama's error line, mid-stream
        return genai.event(
            {"error": {"code": 500, "message": str(chunk["error"]), "status": "INTERNAL"}}
        )
    return genai.event(genai.from_chat(chunk if isinstance(chunk, dict) else {}, model))
