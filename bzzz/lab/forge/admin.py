"""Test control of a running forge: faults and the request log, in Python and over HTTP.

Over HTTP (`/_forge/...`) every call needs the admin token given at start, as
`Authorization: token ADMIN` or `Bearer ADMIN`; without an admin token the endpoints do
not exist. `GET /_forge/health` needs nothing: scripts wait on it.

    GET    /_forge/faults          the faults in force
    POST   /_forge/faults          add one (a JSON object, see `faults.Fault`) or a list
    DELETE /_forge/faults          remove them all, and end forced rate-limit exhaustion
    DELETE /_forge/faults/{id}     remove one
    GET    /_forge/requests?after=SEQ   the request log after entry SEQ
"""

from __future__ import annotations

import hmac
import json
import urllib.parse
from typing import Any

from bzzz.lab.forge.faults import Fault, FaultError, Faults
from bzzz.lab.forge.httpd import BodyTooLarge, Exchange
from bzzz.lab.forge.ratelimit import RateLimiter
from bzzz.lab.forge.reqlog import LoggedRequest, RequestLog

MAX_BODY = 1024 * 1024


class Control:
    """What tests switch: faults (a `rate_limit` fault spends budgets now) and the log."""

    def __init__(self, faults: Faults, limiter: RateLimiter, requests: RequestLog | None) -> None:
        self.faults = faults
        self.limiter = limiter
        self.requests = requests

    def add(self, fault: Fault) -> Fault:
        if fault.kind == "rate_limit":
            key = None if fault.user is None else f"user:{fault.user}"
            self.limiter.exhaust(key, fault.reset_in)
            return fault
        return self.faults.add(fault)

    def clear(self) -> None:
        self.faults.clear()
        self.limiter.clear()

    def logged(self, after: int = 0, ignore: int | None = None) -> list[LoggedRequest]:
        return [] if self.requests is None else self.requests.entries(after, ignore=ignore)


class AdminApi:
    def __init__(self, control: Control, admin_token: str | None) -> None:
        self.control = control
        self.admin_token = admin_token

    def serve(self, exchange: Exchange, path: str, query: str) -> int:
        """Answer one `/_forge/` request; the status sent."""
        method = exchange.command
        if path == "/_forge/health" and method == "GET":
            return _send(exchange, 200, {"ok": True})
        if self.admin_token is None:
            return _send(exchange, 404, {"message": "Not Found"})
        scheme, _, given = exchange.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not hmac.compare_digest(
            given.strip().encode(), self.admin_token.encode()
        ):
            return _send(exchange, 401, {"message": "Bad credentials"})
        try:
            body = exchange.read_body(MAX_BODY)
        except BodyTooLarge:
            exchange.close_connection = True
            return _send(exchange, 413, {"message": "Request too large"})
        try:
            return self._route(exchange, method, path, query, body)
        except (FaultError, ValueError) as exc:
            return _send(exchange, 422, {"message": str(exc)})

    def _route(self, exchange: Exchange, method: str, path: str, query: str, body: bytes) -> int:
        control = self.control
        if path == "/_forge/faults":
            return self._faults(exchange, method, body)
        if path.startswith("/_forge/faults/") and method == "DELETE":
            if control.faults.remove(int(path.rsplit("/", 1)[1])):
                return _send(exchange, 204, None)
            return _send(exchange, 404, {"message": "Not Found"})
        if path == "/_forge/requests" and method == "GET":
            after = int(dict(urllib.parse.parse_qsl(query)).get("after", "0"))
            entries = control.logged(after, ignore=exchange.log_seq)
            return _send(exchange, 200, [e.as_json() for e in entries])
        return _send(exchange, 404, {"message": "Not Found"})

    def _faults(self, exchange: Exchange, method: str, body: bytes) -> int:
        control = self.control
        if method == "GET":
            return _send(exchange, 200, [f.as_json() for f in control.faults.active()])
        if method == "POST":
            data = json.loads(body or b"null")
            specs = data if isinstance(data, list) else [data]
            added = [control.add(Fault.from_json(spec)).as_json() for spec in specs]
            return _send(exchange, 201, added if isinstance(data, list) else added[0])
        if method == "DELETE":
            control.clear()
            return _send(exchange, 204, None)
        return _send(exchange, 404, {"message": "Not Found"})


def _send(exchange: Exchange, status: int, payload: Any) -> int:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = {} if payload is None else {"Content-Type": "application/json; charset=utf-8"}
    exchange.reply(status, headers, body)
    return status
