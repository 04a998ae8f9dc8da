"""The HTTP transport: `ThreadingHTTPServer`, one thread per connection, HTTP/1.1 keep-alive.

It reads bodies (by Content-Length or chunked, as git sends large pushes), writes replies
with a length or chunked (CGI output of unknown length), and can drop a connection without
a reply. `ForgeApp` decides what to answer. Stopping the server also closes connections
still open, so no old thread serves a kept-alive client after `stop()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from bzzz.lab.httpserver import BaseExchange, TrackingHTTPServer

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    pass


class App(Protocol):
    def handle(self, exchange: Exchange) -> None: ...

    def connection_closed(self) -> None: ...


class ForgeHTTPServer(TrackingHTTPServer):
    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, Exchange)


class Exchange(BaseExchange):
    """One connection's requests, in turn. The app sees one request at a time through it."""

    server_version = "bzzz-forge"
    server: ForgeHTTPServer

    def setup(self) -> None:
        super().setup()
        self._body_done = True
        self.log_seq = 0  # the request log's number for the request being answered

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _dispatch(self) -> None:
        self._body_done = not self._has_body()
        self.server.app.handle(self)
        if not self._body_done:
            self.close_connection = True  # unread body bytes would poison the next request

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app.connection_closed()

    def _has_body(self) -> bool:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return True
        return int(self.headers.get("Content-Length") or 0) > 0

    @property
    def chunked_body(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives; reading it to the end marks it consumed."""
        if self.chunked_body:
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    return
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                left = size
                while left:
                    data = self.rfile.read(min(left, CHUNK))
                    if not data:
                        return
                    left -= len(data)
                    yield data
                self.rfile.readline(1024)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                data = self.rfile.read(min(left, CHUNK))
                if not data:
                    return
                left -= len(data)
                yield data
        self._body_done = True

    def read_body(self, limit: int) -> bytes:
        body = bytearray()
        for data in self.body_chunks():
            body += data
            if len(body) > limit:
                raise BodyTooLarge
        return bytes(body)

    def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status != 304 and status >= 200 and status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        self.wfile.flush()

    def start_chunked(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
