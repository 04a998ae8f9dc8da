"""The request pipeline: which part answers (REST, git, admin), then rate limits, faults,
conditional requests and the request log for the REST API.

For `/api/v3` the order is: the token (401 if unknown), the primary rate limit (403 when
spent), an injected fault, the handler, then ETag / If-None-Match (a 304 gives its request
back to the budget). Every answer carries the caller's `X-RateLimit-*` headers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import urllib.parse
import uuid
from dataclasses import dataclass, replace
from typing import Any

from bzzz.lab.forge.admin import AdminApi
from bzzz.lab.forge.faults import Fault, Faults
from bzzz.lab.forge.githttp import GitHttp
from bzzz.lab.forge.httpd import BodyTooLarge, Exchange
from bzzz.lab.forge.ratelimit import Quota
from bzzz.lab.forge.reqlog import RequestLog
from bzzz.lab.forge.rest import API_PREFIX, DOCS, ApiError, Reply, Request, Services, Urls
from bzzz.lab.forge.router import Router
from bzzz.lab.forge.store import users
from bzzz.lab.forge.store.records import User

log = logging.getLogger(__name__)

MAX_BODY = 25 * 1024 * 1024
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
ERROR_MESSAGES = {
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Outcome:
    """What the request log records of an answer."""

    status: int
    user: str | None = None
    counted: bool = False
    fault: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who asks and whose budget pays: a user's, or an anonymous client IP's."""

    user: User | None
    key: str

    @property
    def login(self) -> str | None:
        return None if self.user is None else self.user.login


class ForgeApp:
    def __init__(
        self,
        services: Services,
        router: Router,
        *,
        faults: Faults,
        requests: RequestLog,
        git: GitHttp,
        admin: AdminApi,
    ) -> None:
        self.services = services
        self.router = router
        self.faults = faults
        self.requests = requests
        self.git = git
        self.admin = admin

    def handle(self, exchange: Exchange) -> None:
        started = time.time()
        exchange.log_seq = self.requests.begin()
        split = urllib.parse.urlsplit(exchange.path)
        path = split.path
        try:
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                outcome = self._rest(exchange, path, split.query)
            elif path.startswith("/git/"):
                git_outcome = self.git.serve(exchange, path, split.query)
                outcome = Outcome(git_outcome.status, git_outcome.user)
            elif path.startswith("/_forge/"):
                outcome = Outcome(self.admin.serve(exchange, path, split.query), "(admin)")
            else:
                outcome = Outcome(_send_json(exchange, 404, {"message": "Not Found"}, {}))
        except (ConnectionError, TimeoutError) as exc:
            log.debug("client went away: %s", exc)
            exchange.close_connection = True
            outcome = Outcome(499)
        except Exception:
            log.exception("%s %s failed", exchange.command, path)
            exchange.close_connection = True
            outcome = Outcome(500)
        self.requests.record(
            exchange.log_seq,
            time=started,
            method=exchange.command,
            path=path,
            query=split.query,
            user=outcome.user,
            status=outcome.status,
            counted=outcome.counted,
            fault=outcome.fault,
            client=exchange.client_ip,
        )

    def connection_closed(self) -> None:
        self.services.store.close_thread()

    def _rest(self, exchange: Exchange, path: str, query: str) -> Outcome:
        try:
            body = exchange.read_body(MAX_BODY)
        except BodyTooLarge:
            exchange.close_connection = True
            return Outcome(_send_json(exchange, 413, {"message": "Request too large"}, {}))
        caller = self._caller(exchange)
        if caller is None:
            ip_quota = self.services.limiter.peek(f"ip:{exchange.client_ip}", anonymous=True)
            error = ApiError(401, "Bad credentials")
            return Outcome(_send_json(exchange, 401, error.body(), ip_quota.headers()))
        free = path == API_PREFIX + "/rate_limit"
        quota = self._spend(exchange, caller, free)
        if quota is None:
            return Outcome(403, caller.login)
        fault = self.faults.hit(exchange.command, path, caller.login)
        if fault is not None and fault.kind != "lost_reply":
            status, message, extra = _fault_reply(fault)
            _send_json(exchange, status, message, {**quota.headers(), **extra})
            return Outcome(status, caller.login, not free, fault.kind)
        request = Request(
            method=exchange.command,
            path=path[len(API_PREFIX) :] or "/",
            query=dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
            raw_query=query,
            params={},
            body=body,
            caller=caller.user,
            urls=Urls(_origin(exchange)),
            client=exchange.client_ip,
        )
        reply = self._route(request)
        if fault is not None:
            return self._lose(exchange, fault, reply, quota, caller.login)
        return self._answer(exchange, caller, reply, quota, counted=not free)

    def _caller(self, exchange: Exchange) -> Caller | None:
        """The caller of a token, or anonymous without one; None for an unknown token."""
        token = _token(exchange.headers.get("Authorization", ""))
        if token is None:
            return Caller(None, f"ip:{exchange.client_ip}")
        with self.services.store.read() as db:
            user = users.by_token(db, token)
        return None if user is None else Caller(user, f"user:{user.login}")

    def _spend(self, exchange: Exchange, caller: Caller, free: bool) -> Quota | None:
        """Count the request against the caller's budget; None once 403 has been sent."""
        limiter = self.services.limiter
        anonymous = caller.user is None
        if free:
            return limiter.peek(caller.key, anonymous=anonymous)
        allowed, quota = limiter.take(caller.key, anonymous=anonymous)
        if allowed:
            return quota
        who = exchange.client_ip if caller.user is None else f"user ID {caller.user.id}"
        error = ApiError(403, f"API rate limit exceeded for {who}.")
        _send_json(exchange, 403, error.body(), quota.headers())
        return None

    def _answer(
        self, exchange: Exchange, caller: Caller, reply: Reply, quota: Quota, *, counted: bool
    ) -> Outcome:
        """Send the reply, or 304 if the client holds its ETag (and give the request back)."""
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = {**quota.headers(), **reply.headers}
        if exchange.command in ("GET", "HEAD") and reply.status == 200:
            etag = 'W/"' + hashlib.sha256(payload).hexdigest()[:40] + '"'
            headers["ETag"] = etag
            if _etag_matches(exchange.headers.get("If-None-Match", ""), etag):
                limiter = self.services.limiter
                if counted:
                    limiter.refund(caller.key)
                headers.update(limiter.peek(caller.key, anonymous=caller.user is None).headers())
                exchange.reply(304, _common(headers), b"")
                return Outcome(304, caller.login, counted=False)
        if reply.body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        exchange.reply(reply.status, _common(headers), payload)
        return Outcome(reply.status, caller.login, counted)

    def _route(self, request: Request) -> Reply:
        try:
            handler, params = self.router.match(request.method, request.path)
            return handler(self.services, replace(request, params=params))
        except ApiError as error:
            return Reply(error.status, error.body(), error.headers)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return Reply(500, {"message": "Server Error", "documentation_url": DOCS})

    def _lose(
        self, exchange: Exchange, fault: Fault, reply: Reply, quota: Quota, login: str | None
    ) -> Outcome:
        """The write happened; its reply does not reach the client."""
        if fault.status is None:
            exchange.drop()
            return Outcome(reply.status, login, True, fault.kind)
        message = {"message": ERROR_MESSAGES[502], "documentation_url": DOCS}
        _send_json(exchange, 502, message, quota.headers())
        return Outcome(502, login, True, fault.kind)


def _fault_reply(fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    extra = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
    if fault.kind == "secondary_rate_limit":
        return 403, {"message": SECONDARY_MESSAGE, "documentation_url": DOCS}, extra
    if fault.kind == "too_many_requests":
        return 429, {"message": SECONDARY_MESSAGE, "documentation_url": DOCS}, extra
    status = fault.status or 500
    return status, {"message": ERROR_MESSAGES[status], "documentation_url": DOCS}, {}


def _token(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def _origin(exchange: Exchange) -> str:
    """`http://HOST:PORT` as the client addressed us, so the URLs we hand out lead back here."""
    host = exchange.headers.get("Host", "")
    if not host or not _HOST.match(host):
        address, port = exchange.server.server_address[:2]
        name = address.decode() if isinstance(address, bytes) else address
        host = f"{name}:{port}"
    return f"http://{host}"


def _etag_matches(header: str, etag: str) -> bool:
    def strip_weak(tag: str) -> str:
        return tag.strip().removeprefix("W/")

    wanted = strip_weak(etag)
    return any(t.strip() == "*" or strip_weak(t) == wanted for t in header.split(",") if t.strip())


def _common(headers: dict[str, str]) -> dict[str, str]:
    return {
        "X-GitHub-Media-Type": "github.v3; format=json",
        "X-GitHub-Request-Id": uuid.uuid4().hex[:16].upper(),
        "Cache-Control": "private, max-age=60, s-maxage=60",
        "Vary": "Accept, Authorization, Cookie",
        **headers,
    }


def _send_json(
    exchange: Exchange, status: int, payload: dict[str, Any], headers: dict[str, str]
) -> int:
    body = json.dumps(payload).encode()
    exchange.reply(
        status, _common({**headers, "Content-Type": "application/json; charset=utf-8"}), body
    )
    return status
