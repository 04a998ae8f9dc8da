"""The Forge interface on PyGithub: github.com, GitHub Enterprise, or Bzzz's local forge.

Deliberate settings (PyGithub's defaults are wrong for us, see
../shared/notes/github-pygithub-pygit2.md):
- No automatic retries: a POST retried after a lost reply posts twice, and a
  secondary rate limit without Retry-After would block a scheduler thread for a
  minute. Callers decide: the poller backs off, writers look before writing again.
- No throttle on reads (the poller paces itself); `seconds_between_writes` between
  mutations, as GitHub asks, configurable for labs and tests.
- Every listing (issues, comments, pull requests) goes through `_list`: the requester's
  JSON requests and GitHub's `Link` header, one request per page. PyGithub's
  PaginatedList would cost one more request per item (reading `raw_data` on a listed
  object completes it with a GET of its own) and reads a 304 as an empty list; issue
  listings are conditional (If-None-Match), so an unchanged one is a 304 that costs no
  quota.
"""

from __future__ import annotations

import contextlib
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException

from bzzz.forge.api import (
    Comment,
    ErrorKind,
    ForgeError,
    Issue,
    IssuePage,
    PullRequest,
    RateLimit,
    Repository,
)
from bzzz.forge.token import Token

T = TypeVar("T")
log = logging.getLogger(__name__)

GITHUB_API = "https://api.github.com"
PER_PAGE = 100
MAX_PAGES = 20  # 2,000 items (open task issues, comments of one issue) at 100 a page


@dataclass(frozen=True)
class _Listing:
    """What `_list` read: the items of every page (None: 304, unchanged), the first page's
    ETag, the last page's rate limit, and the requests it took (one per page)."""

    items: list[dict[str, Any]] | None
    etag: str | None
    rate: RateLimit
    requests: int


class GitHubForge:
    def __init__(
        self,
        api_url: str = GITHUB_API,
        token: Token | None = None,
        timeout: float = 15.0,
        seconds_between_writes: float = 1.0,
        per_page: int = PER_PAGE,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._per_page = per_page
        self._github = Github(
            base_url=self.api_url,
            auth=Auth.Token(token.reveal()) if token is not None else None,
            timeout=int(max(1, timeout)),
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=seconds_between_writes or None,
            per_page=per_page,
        )
        self._requester = self._github.requester

    # ---- reading ----------------------------------------------------------------------

    def login(self) -> str:
        with _mapped("(account)"):
            return str(self._github.get_user().login)

    def list_open_issues(self, repo: str, label: str, etag: str | None = None) -> IssuePage:
        """Open issues (pull requests included, as GitHub lists them) carrying `label`.

        With `etag`, an unchanged listing answers 304: `issues` is None and no quota is used.
        """
        query = {"state": "open", "labels": label, "sort": "created", "direction": "asc"}
        listing = self._list(repo, f"/repos/{repo}/issues", query, etag=etag)
        issues = None if listing.items is None else tuple(_issue(repo, i) for i in listing.items)
        return IssuePage(
            issues=issues, etag=listing.etag, rate=listing.rate, requests=listing.requests
        )

    def get_issue(self, repo: str, number: int) -> Issue:
        with _mapped(repo):
            return _issue(repo, self._repo(repo).get_issue(number).raw_data)

    def get_comments(self, repo: str, number: int) -> list[Comment]:
        """The issue's comments, oldest first: one request per page."""
        listing = self._list(repo, f"/repos/{repo}/issues/{number}/comments", {})
        return [_comment(raw) for raw in listing.items or ()]

    def get_repository(self, repo: str) -> Repository:
        with _mapped(repo):
            return _repository(self._github.get_repo(repo).raw_data)

    def find_pull_request(self, repo: str, head: str, base: str) -> PullRequest | None:
        """The open pull request from `head` ("owner:branch", as GitHub filters) into `base`."""
        query = {"state": "open", "head": head, "base": base}
        listing = self._list(repo, f"/repos/{repo}/pulls", query, enough=1)
        return next((_pull(raw) for raw in listing.items or ()), None)

    def list_pull_requests(self, repo: str) -> list[PullRequest]:
        """The open pull requests: one request per page."""
        listing = self._list(repo, f"/repos/{repo}/pulls", {"state": "open"})
        return [_pull(raw) for raw in listing.items or ()]

    # ---- writing ----------------------------------------------------------------------

    def comment(self, repo: str, number: int, body: str) -> Comment:
        with _mapped(repo):
            issue = self._repo(repo).get_issue(number)
            return _comment(issue.create_comment(body).raw_data)

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        with _mapped(repo):
            _, data = self._requester.requestJsonAndCheck(
                "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", input={"body": body}
            )
            return _comment(data)

    def delete_comment(self, repo: str, comment_id: int) -> None:
        with _mapped(repo):
            self._requester.requestJsonAndCheck(
                "DELETE", f"/repos/{repo}/issues/comments/{comment_id}"
            )

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None:
        with _mapped(repo):
            self._repo(repo).get_issue(number).add_to_labels(*labels)

    def remove_label(self, repo: str, number: int, label: str) -> None:
        with _mapped(repo):
            self._repo(repo).get_issue(number).remove_from_labels(label)

    def create_issue(self, repo: str, title: str, body: str, labels: list[str]) -> Issue:
        with _mapped(repo):
            return _issue(
                repo, self._repo(repo).create_issue(title=title, body=body, labels=labels).raw_data
            )

    def fork(self, repo: str) -> str:
        with _mapped(repo):
            return str(self._repo(repo).create_fork().full_name)

    def create_pull_request(
        self, repo: str, *, title: str, body: str, head: str, base: str, draft: bool
    ) -> PullRequest:
        with _mapped(repo):
            pull = self._repo(repo).create_pull(
                base=base, head=head, title=title, body=body, draft=draft
            )
            return _pull(pull.raw_data)

    # ---- plumbing ---------------------------------------------------------------------

    def _repo(self, repo: str) -> Any:
        return self._github.get_repo(repo, lazy=True)

    def _list(
        self,
        repo: str,
        path: str,
        query: Mapping[str, str],
        *,
        etag: str | None = None,
        enough: int | None = None,
    ) -> _Listing:
        """GET `path` page by page, `per_page` at a time, following the `Link` header's
        next page: one request per page, never one per item. With `etag` a 304 answers
        "unchanged" (items None); `enough` stops once that many items are read."""
        params = urllib.parse.urlencode({**query, "per_page": self._per_page})
        url: str | None = f"{self.api_url}{path}?{params}"
        headers = {"If-None-Match": etag} if etag else {}
        items: list[dict[str, Any]] = []
        first_etag: str | None = None
        rate = RateLimit(None, None, None)
        pages = 0
        while url is not None:
            if pages == MAX_PAGES:
                log.warning("%s: %s has more than %d pages; read the first", repo, path, pages)
                break
            status, response_headers, body = self._get(repo, url, headers)
            pages += 1
            rate = _rate(response_headers)
            if status == 304:
                return _Listing(None, etag, rate, pages)
            if status >= 400:
                raise _error(repo, status, response_headers, _json(body))
            data = _json(body)
            if not isinstance(data, list):
                raise ForgeError(
                    ErrorKind.UNAVAILABLE, repo, f"the forge answered {path} with no list"
                )
            items.extend(raw for raw in data if isinstance(raw, dict))
            if first_etag is None:
                first_etag = response_headers.get("etag")
            if enough is not None and len(items) >= enough:
                break
            url = _next_link(response_headers.get("link", ""))
            headers = {}
        return _Listing(items, first_etag, rate, pages)

    def _get(self, repo: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
        try:
            return self._requester.requestJson("GET", url, headers=headers)
        except requests.RequestException as exc:
            raise ForgeError(
                ErrorKind.UNAVAILABLE, repo, f"forge unreachable ({type(exc).__name__})"
            ) from exc


@contextlib.contextmanager
def _mapped(repo: str) -> Iterator[None]:
    """Turn PyGithub's and requests' exceptions into ForgeError, keeping the cause."""
    try:
        yield
    except GithubException as exc:
        raise _error(repo, exc.status, exc.headers or {}, exc.data) from exc
    except requests.RequestException as exc:
        raise ForgeError(
            ErrorKind.UNAVAILABLE, repo, f"forge unreachable ({type(exc).__name__})"
        ) from exc


def _error(repo: str, status: int, headers: dict[str, Any], data: Any) -> ForgeError:
    message = data.get("message") if isinstance(data, dict) else None
    text = str(message or "no message")[:300]
    retry_after = _float(headers.get("retry-after"))
    reset_at = None
    lowered = text.lower()
    if status == 401:
        kind = ErrorKind.AUTH
    elif status == 429 or (status == 403 and ("rate limit" in lowered or retry_after is not None)):
        kind = ErrorKind.RATE_LIMITED
        if headers.get("x-ratelimit-remaining") == "0":
            reset_at = _float(headers.get("x-ratelimit-reset"))
    elif status == 403:
        kind = ErrorKind.FORBIDDEN
    elif status == 404:
        kind = ErrorKind.NOT_FOUND
    elif status == 422:
        kind = ErrorKind.INVALID
    else:
        kind = ErrorKind.UNAVAILABLE
    return ForgeError(
        kind,
        repo,
        f"HTTP {status}: {text}",
        status=status,
        retry_after=retry_after,
        reset_at=reset_at,
    )


def _rate(headers: dict[str, Any]) -> RateLimit:
    return RateLimit(
        limit=_int(headers.get("x-ratelimit-limit")),
        remaining=_int(headers.get("x-ratelimit-remaining")),
        reset_at=_float(headers.get("x-ratelimit-reset")),
    )


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        target, _, rel = part.partition(";")
        if 'rel="next"' in rel:
            return target.strip().strip("<>")
    return None


def _issue(repo: str, raw: dict[str, Any]) -> Issue:
    return Issue(
        repo=repo,
        number=int(raw["number"]),
        title=str(raw.get("title") or ""),
        body=str(raw.get("body") or ""),
        state=str(raw.get("state") or ""),
        labels=tuple(
            str(label["name"]) for label in raw.get("labels") or () if isinstance(label, dict)
        ),
        author=str((raw.get("user") or {}).get("login") or ""),
        author_association=str(raw.get("author_association") or "NONE"),
        html_url=str(raw.get("html_url") or ""),
        is_pull_request="pull_request" in raw,
        locked=bool(raw.get("locked")),
        comments=int(raw.get("comments") or 0),
    )


def _comment(raw: dict[str, Any]) -> Comment:
    return Comment(
        id=int(raw["id"]),
        author=str((raw.get("user") or {}).get("login") or ""),
        body=str(raw.get("body") or ""),
        html_url=str(raw.get("html_url") or ""),
        created_at=_time(raw.get("created_at")),
        updated_at=_time(raw.get("updated_at") or raw.get("created_at")),
        author_association=str(raw.get("author_association") or "NONE"),
    )


def _time(value: object) -> datetime:
    """GitHub's ISO 8601 UTC time ('2026-11-21T10:00:00Z'); PyGithub may give a datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a forge time: {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _repository(raw: dict[str, Any]) -> Repository:
    parent = raw.get("parent") or {}
    return Repository(
        full_name=str(raw["full_name"]),
        owner=str((raw.get("owner") or {}).get("login") or ""),
        clone_url=str(raw.get("clone_url") or ""),
        default_branch=str(raw.get("default_branch") or "main"),
        fork=bool(raw.get("fork")),
        parent=str(parent["full_name"]) if parent.get("full_name") else None,
        can_push=bool((raw.get("permissions") or {}).get("push")),
    )


def _pull(raw: dict[str, Any]) -> PullRequest:
    head, base = raw.get("head") or {}, raw.get("base") or {}
    return PullRequest(
        number=int(raw["number"]),
        html_url=str(raw.get("html_url") or ""),
        head=str(head.get("label") or head.get("ref") or ""),
        base=str(base.get("ref") or ""),
        state=str(raw.get("state") or ""),
        draft=bool(raw.get("draft")),
        body=str(raw.get("body") or ""),
    )


def _json(body: str) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _int(value: object) -> int | None:
    return _convert(value, int)


def _float(value: object) -> float | None:
    return _convert(value, float)


def _convert(value: object, kind: Callable[[str], T]) -> T | None:
    if value is None:
        return None
    try:
        return kind(str(value))
    except ValueError:
        return None
