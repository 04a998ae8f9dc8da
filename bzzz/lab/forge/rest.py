"""What REST handlers see and return: the request, the reply, errors in GitHub's shape, pages."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bzzz.lab.forge.gitrepos import GitRepos
from bzzz.lab.forge.ratelimit import RateLimiter
from bzzz.lab.forge.store import Store
from bzzz.lab.forge.store.records import User

API_PREFIX = "/api/v3"
DOCS = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Urls:
    """Absolute URLs as the client addressed the forge (its Host header), so PyGithub can
    follow every `url` it is given back to the same server."""

    web: str  # http://HOST:PORT

    @property
    def api(self) -> str:
        return self.web + API_PREFIX

    def repo_api(self, full_name: str) -> str:
        return f"{self.api}/repos/{full_name}"

    def repo_web(self, full_name: str) -> str:
        return f"{self.web}/{full_name}"

    def git(self, full_name: str) -> str:
        return f"{self.web}/git/{full_name}.git"


class ApiError(Exception):
    """An error answer: GitHub's `{"message", "errors", "documentation_url"}`."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = DOCS
        return body


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def invalid(resource: str, field_name: str, code: str = "invalid", **extra: Any) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        [{"resource": resource, "field": field_name, "code": code, **extra}],
    )


def custom_invalid(resource: str, message: str) -> ApiError:
    return ApiError(
        422, "Validation Failed", [{"resource": resource, "code": "custom", "message": message}]
    )


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below API_PREFIX
    query: Mapping[str, str]
    raw_query: str
    params: Mapping[str, str]  # from the route
    body: bytes
    caller: User | None
    urls: Urls
    client: str  # the client's IP address

    @property
    def quota_key(self) -> str:
        """Whose rate-limit budget this request spends: the user's, else the client IP's."""
        return f"ip:{self.client}" if self.caller is None else f"user:{self.caller.login}"

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(400, "Problems parsing JSON") from None

    def fields(self) -> dict[str, Any]:
        """The JSON object of the body ({} when there is none)."""
        data = self.json()
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ApiError(400, "Problems parsing JSON")
        return data

    def number(self, name: str = "number") -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise not_found() from None

    def user(self) -> User:
        """The authenticated caller; anonymous writes get GitHub's 401."""
        if self.caller is None:
            raise ApiError(401, "Requires authentication")
        return self.caller


@dataclass
class Services:
    """What handlers work with. `fork_lock` keeps two forks of one repository from racing."""

    store: Store
    repos: GitRepos
    limiter: RateLimiter
    fork_lock: threading.Lock = field(default_factory=threading.Lock)


Handler = Callable[[Services, Request], Reply]


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page_of(request: Request) -> Page:
    """`page` and `per_page` as GitHub reads them: junk means the default, sizes cap at 100."""

    def read(name: str, default: int) -> int:
        try:
            value = int(request.query.get(name, default))
        except ValueError:
            return default
        return value if value >= 1 else default

    return Page(read("page", 1), min(read("per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE))


def paged(request: Request, page: Page, total: int, items: list[Any]) -> Reply:
    """A list reply with GitHub's `Link` header: prev, next, last, first where they apply."""
    reply = Reply(200, items)
    last = max(1, -(-total // page.size))
    if last == 1 and page.number == 1:
        return reply
    base = request.urls.api + request.path
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(request.raw_query) if k != "page"]

    def link(number: int, rel: str) -> str:
        query = urllib.parse.urlencode([*pairs, ("page", str(number))])
        return f'<{base}?{query}>; rel="{rel}"'

    links = []
    if page.number > 1:
        links.append(link(min(page.number - 1, last), "prev"))
    if page.number < last:
        links.append(link(page.number + 1, "next"))
        links.append(link(last, "last"))
    if page.number > 1:
        links.append(link(1, "first"))
    reply.headers["Link"] = ", ".join(links)
    return reply
