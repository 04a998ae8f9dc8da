"""A small HTTP/1.1 server on trio, for the model gateway: h11 parses, trio carries.

Each request is read whole (bodies are small JSON, with a size limit) and handed to the
handler, which answers with a status, a content type and a body: bytes, or an async
iterator of chunks sent as they come (chunked transfer encoding). While a response
streams, the connection is watched: a client that goes away cancels the handler, so
whatever it was waiting for (a model, a peer) stops too. Connections are kept alive.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

import h11
import trio
from trio_typing import TaskStatus

log = logging.getLogger(__name__)

MAX_HEADERS = 16 * 1024
RECEIVE = 65536
IDLE_CONNECTION = 120.0  # seconds a kept-alive connection may wait for its next request


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes | AsyncGenerator[bytes, None]  # closed by the server when done or cut
    headers: tuple[tuple[str, str], ...] = ()  # more than the content type and length


Handler = Callable[[Request], Awaitable[Response]]


class TooLarge(Exception):
    pass


async def serve(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_body: int,
    task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `task_status.started` gets the port bound."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    task_status.started(bound)

    async def connection(stream: trio.SocketStream) -> None:
        await _Connection(stream, handler, max_body).run()

    await trio.serve_listeners(connection, listeners)


class _Connection:
    def __init__(self, stream: trio.SocketStream, handler: Handler, max_body: int) -> None:
        self._stream = stream
        self._handler = handler
        self._max_body = max_body
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADERS)

    async def run(self) -> None:
        async with self._stream:
            try:
                while True:
                    with trio.move_on_after(IDLE_CONNECTION) as idle:
                        request = await self._read_request()
                    if idle.cancelled_caught or request is None:
                        return
                    await self._answer(request)
                    if self._h11.our_state is not h11.DONE:
                        return
                    self._h11.start_next_cycle()
            except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.debug("gateway connection ended: %s", exc)

    async def _read_request(self) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._stream.receive_some(RECEIVE)
                self._h11.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    await self._simple(413, b'{"error":"request too large"}')
                    return None
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                target = head.target.decode("latin-1")
                return Request(head.method.decode("ascii"), target.split("?", 1)[0], bytes(body))

    async def _answer(self, request: Request) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_disconnect, nursery.cancel_scope)
            response = await self._handler(request)
            await self._send_head(response)
            if isinstance(response.body, bytes):
                await self._send(h11.Data(data=response.body))
            else:
                async with aclosing(response.body) as chunks:
                    async for chunk in chunks:
                        if chunk:
                            await self._send(h11.Data(data=chunk))
            await self._send(h11.EndOfMessage())
            nursery.cancel_scope.cancel()

    async def _watch_disconnect(self, scope: trio.CancelScope) -> None:
        """The client sends nothing while it waits for its answer: if it closes the
        connection, stop answering (and whatever the answer was waiting for)."""
        try:
            data = await self._stream.receive_some(RECEIVE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            self._h11.receive_data(data)  # a pipelined request: h11 keeps it for later
            return
        log.debug("gateway client went away")
        scope.cancel()

    async def _send_head(self, response: Response) -> None:
        headers = [("content-type", response.content_type), *response.headers]
        if isinstance(response.body, bytes):
            headers.append(("content-length", str(len(response.body))))
        await self._send(h11.Response(status_code=response.status, headers=headers))

    async def _simple(self, status: int, body: bytes) -> None:
        await self._send_head(Response(status, "application/json; charset=utf-8", body))
        await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            await self._stream.send_all(data)
