"""A threaded HTTP/1.1 server that knows its connections, for Bzzz's local servers (the
forge, the lab model server): stopping it can close kept-alive connections and wait for
their threads, so no old thread serves a client after `stop()`."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
