"""What the lab's HTTP servers (the local forge, the lab model server) share.

`TrackingHTTPServer`: a threaded HTTP/1.1 server that knows its connections; stopping it
closes kept-alive connections and waits for their threads, so no old thread serves a
client after `stop()`. `BaseExchange`: the per-connection handler's common part.
`BackgroundServer`: the lifecycle, serving from a thread: start, stop, `with`, port, URL.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 60.0


class TrackingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._open_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        with self._open_lock:
            self._workers.add(me)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._workers.discard(me)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its kept-alive connection is normal (git does); anything
        else still gets the standard report."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection; their threads see EOF and finish."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def join_workers(self, timeout: float) -> bool:
        """Wait for the connection threads to end; whether they all did in time."""
        deadline = time.monotonic() + timeout
        with self._open_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(worker.is_alive() for worker in workers)

    def serve_in_background(self, name: str) -> threading.Thread:
        """Serve from a daemon thread; the socket already accepts."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        thread.start()
        return thread

    def stop_serving(self, thread: threading.Thread | None, timeout: float = 10.0) -> bool:
        """Stop, close every connection, wait for the threads; whether they all ended."""
        self.shutdown()
        self.close_connections()
        self.server_close()
        if thread is not None:
            thread.join(timeout)
        return self.join_workers(timeout)


class BaseExchange(BaseHTTPRequestHandler):
    """One connection's requests, in turn, over HTTP/1.1 keep-alive; idle connections
    end after IDLE_TIMEOUT."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def client_ip(self) -> str:
        return str(self.client_address[0])

    def drop(self) -> None:
        """Close the connection without any reply, as a lost reply looks to the client."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class BackgroundServer:
    """An HTTP server on `host:port` (0: a free port) that serves from background threads.

    A subclass says what to serve (`_listen`) and what to tidy once stopped (`_stopped`);
    this class starts and stops it, as a context manager too, and knows its port and URL.
    """

    kind = "server"  # what it is, in messages

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._server: TrackingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _listen(self) -> TrackingHTTPServer:
        """A server bound to `(self.host, self._port)`, ready to serve."""
        raise NotImplementedError

    def _stopping(self) -> None:
        """Before the server stops: end what keeps its connections busy."""

    def _stopped(self) -> None:
        """After the server has stopped: close what it served from."""

    def start(self) -> Self:
        """Listen and serve in background threads; returns once the socket accepts."""
        if self._server is not None:
            raise RuntimeError(f"this {self.kind} is running already")
        self._server = self._listen()
        self._thread = self._server.serve_in_background(f"{self.kind}-{self.port}")
        return self

    def stop(self) -> None:
        """Stop serving and close every connection. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping()
        if not server.stop_serving(thread):
            log.warning("%s on port %s: connections still busy after stop", self.kind, self.port)
        self._stopped()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the {self.kind} is not running; start() it first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
