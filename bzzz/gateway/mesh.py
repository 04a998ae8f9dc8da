"""Model calls between nodes: a libp2p stream protocol, `/bzzz/ollama/1.0.0`.

Only peers of the mesh can open one (the connection gate, the pre-shared key and the
allowlist apply to every stream). On a stream, frames of a type byte and a 4-byte
length: the caller sends REQUEST ({"method", "path"}) and BODY; the serving node answers
BUSY (no slot free: try another node) or HEAD ({"status", "content_type"}), then DATA
frames as its model server streams, then END, or ERROR ({"error"}) at any point. The
caller closing or resetting the stream stops the call at the serving node's model server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from enum import IntEnum

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol

from bzzz.gateway.api import MESH_ENDPOINTS, NDJSON, error, error_line
from bzzz.gateway.upstream import Unreachable, Upstream
from bzzz.network.framing import close, reset

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/ollama/1.0.0")
MAX_FRAME = 1 << 20
CHUNK = 65536
MAX_BATCH = 256 * 1024  # bytes of model output one DATA frame carries at most
BATCH_QUEUE = 1024  # chunks read ahead of the stream
# The calls that make a model generate: they take one of a node's mesh slots.
GENERATING = frozenset({"/api/chat", "/api/generate", "/api/embed", "/api/embeddings"})
DESCRIBING_AT_ONCE = 16  # peers' list and show calls answered at once
REQUEST_WITHIN = 30.0  # seconds a peer's stream may stay open before its request is in


class Kind(IntEnum):
    REQUEST = 1
    BODY = 2
    HEAD = 3
    DATA = 4
    END = 5
    ERROR = 6
    BUSY = 7


class PeerBusy(Exception):
    """The peer has no slot free for a mesh call."""


class PeerFailed(Exception):
    """The peer could not be asked, or failed before answering."""


class StreamBroke(PeerFailed):
    """The stream ended, or could not be written: its connection is gone."""


@dataclass
class PeerReply:
    status: int
    content_type: str
    chunks: AsyncGenerator[bytes, None]


def frame(kind: Kind, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(4, "big") + payload


async def send_frame(stream: INetStream, kind: Kind, payload: bytes = b"") -> None:
    await stream.write(frame(kind, payload))


async def read_frame(stream: INetStream, limit: int = MAX_FRAME) -> tuple[Kind, bytes]:
    head = await _exactly(stream, 5)
    size = int.from_bytes(head[1:], "big")
    if size > limit:
        raise PeerFailed(f"a frame of {size} bytes, over the limit of {limit}")
    try:
        kind = Kind(head[0])
    except ValueError:
        raise PeerFailed(f"an unknown frame type {head[0]}") from None
    return kind, await _exactly(stream, size)


async def _exactly(stream: INetStream, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        try:
            chunk = await stream.read(min(CHUNK, size - len(buffer)))
        except Exception as exc:  # EOF, reset: py-libp2p raises several kinds
            raise StreamBroke(f"the stream ended: {type(exc).__name__}") from None
        if not chunk:
            raise StreamBroke("the stream ended")
        buffer += chunk
    return bytes(buffer)


async def ask(
    open_stream: Callable[[], Awaitable[INetStream]],
    peer: str,
    method: str,
    path: str,
    body: bytes,
    *,
    first_byte: float,
    idle: float,
    spare: INetStream | None = None,
) -> PeerReply:
    """Make a call to a peer, on `spare` (a stream opened beforehand) if given, else on a
    stream `open_stream` opens; returns once its answer's head is in. Raises PeerBusy or
    PeerFailed before anything is relayed (so the caller may try another node)."""
    try:
        with trio.fail_after(first_byte):
            stream, kind, payload = await _request(open_stream, spare, method, path, body)
    except trio.TooSlowError:
        raise PeerFailed(f"no answer within {first_byte:g} s") from None
    except (PeerFailed, PeerBusy):
        raise
    except Exception as exc:
        raise PeerFailed(f"{type(exc).__name__}: {exc}") from None
    if kind is Kind.BUSY:
        await reset(stream)
        raise PeerBusy(peer)
    if kind is Kind.ERROR:
        await reset(stream)
        raise PeerFailed(json.loads(payload).get("error", "failed"))
    if kind is not Kind.HEAD:
        await reset(stream)
        raise PeerFailed(f"a {kind.name} frame where the head was due")
    head = json.loads(payload)
    return PeerReply(
        int(head["status"]), str(head["content_type"]), _relay(stream, idle, peer, path)
    )


async def _request(
    open_stream: Callable[[], Awaitable[INetStream]],
    spare: INetStream | None,
    method: str,
    path: str,
    body: bytes,
) -> tuple[INetStream, Kind, bytes]:
    if spare is not None:
        try:
            return await _send_request(spare, method, path, body)
        except StreamBroke as exc:  # its connection went away since: a fresh one
            log.debug("a spare mesh stream had ended (%s); opening another", exc)
    return await _send_request(await open_stream(), method, path, body)


async def _send_request(
    stream: INetStream, method: str, path: str, body: bytes
) -> tuple[INetStream, Kind, bytes]:
    request = json.dumps({"method": method, "path": path}).encode()
    try:
        try:
            await stream.write(frame(Kind.REQUEST, request) + frame(Kind.BODY, body))
        except Exception as exc:  # closed, reset: py-libp2p raises several kinds
            raise StreamBroke(f"writing failed: {type(exc).__name__}") from None
        kind, payload = await read_frame(stream)
    except BaseException:
        with trio.CancelScope(shield=True):
            await reset(stream)
        raise
    return stream, kind, payload


async def _relay(
    stream: INetStream, idle: float, peer: str, path: str
) -> AsyncGenerator[bytes, None]:
    finished = False
    try:
        while True:
            try:
                with trio.fail_after(idle):
                    kind, payload = await read_frame(stream)
            except trio.TooSlowError:
                yield error_line(f"the model on peer {peer} went silent for {idle:g} s", path)
                return
            except PeerFailed as exc:
                yield error_line(f"the call to peer {peer} broke off: {exc}", path)
                return
            if kind is Kind.DATA:
                yield payload
            elif kind is Kind.END:
                finished = True
                return
            else:  # ERROR mid-stream
                message = json.loads(payload).get("error", "failed") if payload else "failed"
                yield error_line(str(message), path)
                return
    finally:
        with trio.CancelScope(shield=True):
            if finished:
                await close(stream)
            else:  # cut short: the serving node stops its model server
                await reset(stream)


class MeshServer:
    """Serves peers' model calls from this machine's model server, a few at a time."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        slots: int,
        max_body: int,
        first_byte: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._upstream = upstream
        self.slots = slots
        self._max_body = max_body
        self._first_byte = first_byte
        self._on_change = on_change
        self.in_flight = 0
        self.describing = 0  # peers' model lists and descriptions being answered
        self.served = 0
        self.refused = 0

    def start(self, host: IHost) -> None:
        host.set_stream_handler(PROTOCOL, self.handle)

    async def handle(self, stream: INetStream) -> None:
        try:
            await self._serve(stream)
        except Exception as exc:  # the caller went away, or spoke nonsense
            log.debug("a mesh model call ended: %s", exc)
            with trio.CancelScope(shield=True):
                await reset(stream)

    async def _serve(self, stream: INetStream) -> None:
        with trio.fail_after(REQUEST_WITHIN):  # a peer may not hold streams that ask nothing
            kind, head = await read_frame(stream, 4096)
            request = json.loads(head) if kind is Kind.REQUEST else {}
            method, path = str(request.get("method", "")), str(request.get("path", ""))
            kind, body = await read_frame(stream, self._max_body)
        if MESH_ENDPOINTS.get(path) != method or kind is not Kind.BODY:
            self.refused += 1
            await send_frame(
                stream, Kind.ERROR, error(f"not carried over the mesh: {method} {path}")
            )
            await close(stream)
            return
        if path not in GENERATING:  # listing and describing models take no mesh slot
            await self._describe(stream, method, path, body)
            return
        if self.in_flight >= self.slots:
            self.refused += 1
            await send_frame(stream, Kind.BUSY)
            await close(stream)
            return
        self.in_flight += 1
        self._on_change()
        try:
            await self._relay(stream, method, path, body)
        finally:
            self.in_flight -= 1
            self.served += 1
            self._on_change()

    async def _describe(self, stream: INetStream, method: str, path: str, body: bytes) -> None:
        if self.describing >= DESCRIBING_AT_ONCE:
            self.refused += 1
            await send_frame(stream, Kind.BUSY)
            await close(stream)
            return
        self.describing += 1
        try:
            await self._relay(stream, method, path, body)
        finally:
            self.describing -= 1

    async def _relay(self, stream: INetStream, method: str, path: str, body: bytes) -> None:
        try:
            reply = await self._upstream.call(method, path, body, first_byte=self._first_byte)
        except Unreachable as exc:
            await send_frame(stream, Kind.ERROR, error(f"the model server did not answer: {exc}"))
            await close(stream)
            return
        head = {"status": reply.status, "content_type": reply.content_type or NDJSON}
        await _send_batched(stream, reply.chunks, frame(Kind.HEAD, json.dumps(head).encode()))
        await close(stream)


async def _send_batched(
    stream: INetStream, chunks: AsyncGenerator[bytes, None], head: bytes
) -> None:
    """Send `head` (the HEAD frame), the model server's chunks as DATA frames, and END.
    A reader task takes the chunks as they come; each frame carries whatever arrived
    while the last one was being sent: one chunk when the stream is slow (no delay
    added), many when it is fast (each write costs py-libp2p more than its bytes do). The
    head goes out with the first chunk and END with the last, in the same writes (as
    ollama's own head goes out with its first chunk)."""
    arrived, pending = trio.open_memory_channel[bytes](BATCH_QUEUE)

    async def read() -> None:
        async with arrived, aclosing(chunks) as relayed:
            async for chunk in relayed:
                await arrived.send(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        async with pending:
            out, ended = bytearray(head), False
            while not ended:
                batch, ended = await _next_batch(pending)
                if batch:
                    out += frame(Kind.DATA, batch)
                if ended:
                    out += frame(Kind.END)
                await stream.write(bytes(out))
                out.clear()


async def _next_batch(pending: trio.MemoryReceiveChannel[bytes]) -> tuple[bytes, bool]:
    """The chunks that have arrived (waiting for one), and whether that was the last."""
    try:
        batch = bytearray(await pending.receive())
    except trio.EndOfChannel:
        return b"", True
    while len(batch) < MAX_BATCH:
        try:
            batch += pending.receive_nowait()
        except trio.WouldBlock:
            break
        except trio.EndOfChannel:
            return bytes(batch), True
    return bytes(batch), False
