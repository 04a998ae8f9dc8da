"""The HTTP transport: one thread per connection, HTTP/1.1 keep-alive, JSON both ways.

Bodies come with a Content-Length (httpx and the Go client send one); a chunked body is
refused with 411 rather than read, which keeps this small.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping

from bzzz.lab.httpserver import BaseExchange, TrackingHTTPServer

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # Hive's bodies are a few hundred bytes


class BadBody(Exception):
    """A request refused for its body: `detail` is the reply's {"detail"}."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail


class HiveHTTPServer(TrackingHTTPServer):
    def __init__(self, address: tuple[str, int], handle: Callable[[Exchange], None]) -> None:
        self.handle = handle
        super().__init__(address, Exchange)


class Exchange(BaseExchange):
    """One connection's requests, in turn."""

    server_version = "bzzz-lab-hive"
    server: HiveHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without this, Nagle's algorithm holds
        # the body until the client's delayed ACK (~40 ms a request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        try:
            self.server.handle(self)
        except OSError as exc:  # the client went away, or the server dropped it
            log.debug("lab hive: connection lost: %s", exc)
            self.close_connection = True

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    def read_body(self) -> bytes:
        """The request body; BadBody (and the connection closes) when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise BadBody(411, "send the body with a Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise BadBody(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise BadBody(413, "request body too large")
        return self.rfile.read(length) if length else b""

    def send_json(
        self, status: int, body: object, headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()
