"""The HTTP transport: `ThreadingHTTPServer`, one thread per connection, HTTP/1.1 keep-alive.

Bodies come with a Content-Length (the ollama client always sends one); replies are JSON
with a length, or NDJSON sent chunked while it streams, as ollama sends it. Stopping the
server also closes connections still open, so no old thread serves a kept-alive client.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from bzzz.lab.httpserver import BaseExchange, TrackingHTTPServer
from bzzz.lab.model.wire import ndjson

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024


class BadBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LabHTTPServer(TrackingHTTPServer):
    def __init__(self, address: tuple[str, int], handle: Callable[[Exchange], None]) -> None:
        self.handle = handle
        super().__init__(address, Exchange)


class Exchange(BaseExchange):
    """One connection's requests, in turn."""

    server_version = "bzzz-labmodel"
    server: LabHTTPServer

    def setup(self) -> None:
        super().setup()
        # Replies go out as headers, then body or chunks; without this, Nagle's algorithm
        # holds each small write until the client's delayed ACK (~40 ms a request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        try:
            self.server.handle(self)
        except OSError as exc:  # the client went away, e.g. after its own timeout
            log.debug("lab model: connection lost: %s", exc)
            self.close_connection = True

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    def read_json(self) -> Any:
        """The request body as JSON; `None` when there is none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise BadBody(411, "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise BadBody(400, "bad Content-Length") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise BadBody(413, "request body too large")
        body = self.rfile.read(length) if length > 0 else b""
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BadBody(400, f"invalid JSON: {exc}") from None

    def send_json(self, status: int, body: Any) -> None:
        self.send_bytes(status, "application/json; charset=utf-8", json.dumps(body).encode())

    def send_bytes(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def start_stream(self, content_type: str = "application/x-ndjson") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def stream_line(self, body: Mapping[str, Any]) -> None:
        self.stream_bytes(ndjson(body))

    def stream_bytes(self, data: bytes) -> None:
        """One chunk of a stream as it is (an NDJSON line, a server-sent event)."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
