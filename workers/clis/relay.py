"""The host's end of an agent CLI's only way out of its sandbox: a unix socket, bound
into the sandbox, whose every connection is passed to the one model endpoint (the
node's gateway, or its ollama). `workers/clis/inside.py` is the other end, on the
sandbox's loopback.

    with ModelRelay("http://127.0.0.1:11435") as relay:
        ...  # bind relay.directory into the sandbox; connect to relay.socket_path
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import tempfile
import threading
import urllib.parse
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Self

from workers.clis.inside import pump
from workers.models import SERVED_BY as MODEL_SERVED_BY

SOCKET_NAME = "model.sock"
# The gateway's header naming the node whose model answered (workers.models.SERVED_BY).
SERVED_BY = re.compile(
    rb"\r\n" + re.escape(MODEL_SERVED_BY.encode()) + rb": *([\w.-]{1,64})\r\n", re.I
)
CONNECT_TIMEOUT = 10.0


def endpoint_address(url: str) -> tuple[str, int]:
    """HOST and PORT of an http:// model endpoint."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the model endpoint {url!r} is not an http:// URL")
    return parts.hostname, parts.port or 80


class ModelRelay:
    """Passes connections from `socket_path` to the model endpoint at `url`."""

    def __init__(self, url: str) -> None:
        self.address = endpoint_address(url)
        self.directory = Path(tempfile.mkdtemp(prefix="bzzz-relay-"))  # mode 0700
        self.socket_path = self.directory / SOCKET_NAME
        self.connections = 0
        self.served_by: Counter[str] = Counter()  # answers by the node whose model gave them
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        # A Docker sandbox's user is not this process's: it must reach the socket and
        # write its transcript. Sticky: nobody else can remove what is in here.
        self.directory.chmod(0o1777)
        self.socket_path.chmod(0o666)
        self._listener.listen(64)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="bzzz-model-relay", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            client, _ = self._listener.accept()
            if self._closing.is_set():
                client.close()
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self.connections += 1
            self._open |= {client, upstream}
        back = threading.Thread(target=pump, args=(upstream, client, self._heard), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        with self._lock:
            self._open -= {client, upstream}
        client.close()
        upstream.close()

    def _heard(self, data: bytes) -> None:
        """Count the answers by serving node: the gateway names it in a header of each
        response (a header split between two reads is missed: the count is a floor)."""
        for match in SERVED_BY.finditer(data):
            node = match.group(1).decode("ascii", "replace")
            with self._lock:
                self.served_by[node] += 1

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as waker:
            waker.connect(str(self.socket_path))  # ends the accept() of _serve
        self._thread.join(timeout=5.0)
        self._listener.close()
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
