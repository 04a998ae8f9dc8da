"""`LabWebhook`: n8n's webhook endpoint as its documentation and its answers show it, for
the lab and the tests (n8n itself is a 1.3 GB install). Loopback only.

A production webhook is `POST /webhook/<path>` of an active workflow: it answers 200
{"message": "Workflow was started"} (the "respond immediately" mode). Any other path or
method answers 404 {"code": 404, "message": "The requested webhook \\"POST <path>\\" is not
registered.", "hint": ...}, as n8n does for an inactive workflow or a /webhook-test/ URL
nobody listens on. With header auth set, a missing or wrong header answers 403
{"code": 403, "message": "Authorization data is wrong!"}. `down(True)` drops every
request without an answer, as a host that is down or restarting looks to a client.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bzzz.lab.httpserver import BackgroundServer, BaseExchange, TrackingHTTPServer

MAX_BODY = 16 * 1024 * 1024  # n8n's payload limit


@dataclass(frozen=True)
class Delivery:
    path: str
    body: dict[str, Any]


class LabWebhook(BackgroundServer):
    kind = "lab webhook"

    def __init__(
        self,
        paths: Iterable[str] = ("human-escalation",),
        *,
        header: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.paths = set(paths)
        self._header = header
        self._lock = threading.Lock()
        self._received: list[Delivery] = []
        self._down = False
        self.dropped = 0

    def hook_url(self, path: str = "human-escalation") -> str:
        """A production webhook's URL (registered or not)."""
        return f"{self.url}/webhook/{path}"

    def down(self, flag: bool) -> None:
        with self._lock:
            self._down = flag

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self._received)

    def _listen(self) -> TrackingHTTPServer:
        hook = self

        class Exchange(BaseExchange):
            server_version = "n8n-lab"

            def do_POST(self) -> None:
                hook._answer(self, "POST")

            def do_GET(self) -> None:
                hook._answer(self, "GET")

        return TrackingHTTPServer((self.host, self._port), Exchange)

    def _answer(self, exchange: BaseExchange, method: str) -> None:
        length = int(exchange.headers.get("Content-Length") or 0)
        data = exchange.rfile.read(min(length, MAX_BODY)) if length else b""
        with self._lock:
            down = self._down
        if down:
            self.dropped += 1
            exchange.drop()
            return
        path = exchange.path.split("?", 1)[0].removeprefix("/webhook/")
        if method != "POST" or not exchange.path.startswith("/webhook/") or path not in self.paths:
            name = exchange.path.split("?", 1)[0].lstrip("/")
            message = f'The requested webhook "{method} {name}" is not registered.'
            hint = "The workflow must be active for a production URL to run successfully."
            self._send(exchange, 404, {"code": 404, "message": message, "hint": hint})
            return
        if self._header is not None and exchange.headers.get(self._header[0]) != self._header[1]:
            self._send(exchange, 403, {"code": 403, "message": "Authorization data is wrong!"})
            return
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = {"raw": data.decode("utf-8", "replace")}
        with self._lock:
            self._received.append(Delivery(path, body if isinstance(body, dict) else {}))
        self._send(exchange, 200, {"message": "Workflow was started"})

    @staticmethod
    def _send(exchange: BaseExchange, status: int, answer: dict[str, Any]) -> None:
        payload = json.dumps(answer).encode()
        exchange.send_response(status)
        exchange.send_header("Content-Type", "application/json; charset=utf-8")
        exchange.send_header("Content-Length", str(len(payload)))
        exchange.end_headers()
        exchange.wfile.write(payload)
