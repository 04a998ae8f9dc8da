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
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from enum import IntEnum

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from bzzz.gateway.api import MESH_ENDPOINTS, NDJSON, error, error_line
from bzzz.gateway.upstream import Unreachable, Upstream

log = logging.getLogger(__name__)

PROTOCOL = TProtocol("/bzzz/ollama/1.0.0")
MAX_FRAME = 1 << 20
CHUNK = 65536
MAX_BATCH = 256 * 1024  # bytes of model output one DATA frame carries at most
BATCH_QUEUE = 1024  # chunks read ahead of the stream


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


@dataclass
class PeerReply:
    status: int
    content_type: str
    chunks: AsyncGenerator[bytes, None]


async def send_frame(stream: INetStream, kind: Kind, payload: bytes = b"") -> None:
    await stream.write(bytes([kind]) + len(payload).to_bytes(4, "big") + payload)


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
            raise PeerFailed(f"the stream ended: {type(exc).__name__}") from None
        if not chunk:
            raise PeerFailed("the stream ended")
        buffer += chunk
    return bytes(buffer)


async def ask(
    host: IHost, peer: ID, method: str, path: str, body: bytes, *, first_byte: float, idle: float
) -> PeerReply:
    """Open a call to a peer; returns once its answer's head is in. Raises PeerBusy or
    PeerFailed before anything is relayed (so the caller may try another node)."""
    try:
        with trio.fail_after(first_byte):
            stream = await host.new_stream(peer, [PROTOCOL])
            try:
                await send_frame(
                    stream, Kind.REQUEST, json.dumps({"method": method, "path": path}).encode()
                )
                await send_frame(stream, Kind.BODY, body)
                kind, payload = await read_frame(stream)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await _reset(stream)
                raise
    except trio.TooSlowError:
        raise PeerFailed(f"no answer within {first_byte:g} s") from None
    except (PeerFailed, PeerBusy):
        raise
    except Exception as exc:
        raise PeerFailed(f"{type(exc).__name__}: {exc}") from None
    if kind is Kind.BUSY:
        await _reset(stream)
        raise PeerBusy(str(peer))
    if kind is Kind.ERROR:
        await _reset(stream)
        raise PeerFailed(json.loads(payload).get("error", "failed"))
    if kind is not Kind.HEAD:
        await _reset(stream)
        raise PeerFailed(f"a {kind.name} frame where the head was due")
    head = json.loads(payload)
    return PeerReply(
        int(head["status"]), str(head["content_type"]), _relay(stream, idle, str(peer))
    )


async def _relay(stream: INetStream, idle: float, peer: str) -> AsyncGenerator[bytes, None]:
    finished = False
    try:
        while True:
            try:
                with trio.fail_after(idle):
                    kind, payload = await read_frame(stream)
            except trio.TooSlowError:
                yield error_line(f"the model on peer {peer} went silent for {idle:g} s")
                return
            except PeerFailed as exc:
                yield error_line(f"the call to peer {peer} broke off: {exc}")
                return
            if kind is Kind.DATA:
                yield payload
            elif kind is Kind.END:
                finished = True
                return
            else:  # ERROR mid-stream
                message = json.loads(payload).get("error", "failed") if payload else "failed"
                yield error_line(str(message))
                return
    finally:
        with trio.CancelScope(shield=True):
            if finished:
                await _close(stream)
            else:  # cut short: the serving node stops its model server
                await _reset(stream)


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
                await _reset(stream)

    async def _serve(self, stream: INetStream) -> None:
        kind, head = await read_frame(stream, 4096)
        request = json.loads(head) if kind is Kind.REQUEST else {}
        method, path = str(request.get("method", "")), str(request.get("path", ""))
        kind, body = await read_frame(stream, self._max_body)
        if MESH_ENDPOINTS.get(path) != method or kind is not Kind.BODY:
            self.refused += 1
            await send_frame(
                stream, Kind.ERROR, error(f"not carried over the mesh: {method} {path}")
            )
            await _close(stream)
            return
        if self.in_flight >= self.slots:
            self.refused += 1
            await send_frame(stream, Kind.BUSY)
            await _close(stream)
            return
        self.in_flight += 1
        self._on_change()
        try:
            await self._relay(stream, method, path, body)
        finally:
            self.in_flight -= 1
            self.served += 1
            self._on_change()

    async def _relay(self, stream: INetStream, method: str, path: str, body: bytes) -> None:
        try:
            reply = await self._upstream.call(method, path, body, first_byte=self._first_byte)
        except Unreachable as exc:
            await send_frame(stream, Kind.ERROR, error(f"the model server did not answer: {exc}"))
            await _close(stream)
            return
        await send_frame(
            stream,
            Kind.HEAD,
            json.dumps(
                {"status": reply.status, "content_type": reply.content_type or NDJSON}
            ).encode(),
        )
        await _send_batched(stream, reply.chunks)
        await send_frame(stream, Kind.END)
        await _close(stream)


async def _send_batched(stream: INetStream, chunks: AsyncGenerator[bytes, None]) -> None:
    """Relay the model server's chunks as DATA frames. A reader task takes them as they
    come; each frame carries whatever arrived while the last one was being sent: one
    chunk when the stream is slow (no delay added), many when it is fast (each frame
    costs py-libp2p more than its bytes do)."""
    arrived, pending = trio.open_memory_channel[bytes](BATCH_QUEUE)

    async def read() -> None:
        async with arrived, aclosing(chunks) as relayed:
            async for chunk in relayed:
                await arrived.send(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        async with pending:
            async for chunk in pending:
                batch = bytearray(chunk)
                while len(batch) < MAX_BATCH:
                    try:
                        batch += pending.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await send_frame(stream, Kind.DATA, bytes(batch))


async def _close(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception:  # already gone
        log.debug("closing a mesh stream failed", exc_info=True)


async def _reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:  # already gone
        log.debug("resetting a mesh stream failed", exc_info=True)
