"""What Bzzz needs of a forge, as plain data and one small interface.

Everything here is pure: the GitHub implementation (`github.py`) turns HTTP into
these types and every failure into a ForgeError.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from bzzz.errors import BzzzError


class ErrorKind(StrEnum):
    AUTH = "auth"  # bad or missing token (401)
    FORBIDDEN = "forbidden"  # no permission (403 that is not a rate limit)
    NOT_FOUND = "not_found"  # no such repository or issue (404)
    RATE_LIMITED = "rate_limited"  # primary or secondary limit (403/429)
    INVALID = "invalid"  # the forge refused the request's content (422)
    UNAVAILABLE = "unavailable"  # 5xx, timeout, connection refused


class ForgeError(BzzzError):
    """A forge request failed. The message names the repository and the cause; the
    original exception is kept as __cause__. No token ever appears in it."""

    def __init__(
        self,
        kind: ErrorKind,
        repo: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        reset_at: float | None = None,
    ) -> None:
        super().__init__(f"{repo}: {message}")
        self.kind = kind
        self.repo = repo
        self.status = status
        self.retry_after = retry_after  # seconds the forge asked us to wait (Retry-After)
        self.reset_at = reset_at  # epoch seconds when an exhausted quota refills


@dataclass(frozen=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    reset_at: float | None  # epoch seconds


@dataclass(frozen=True)
class Issue:
    repo: str
    number: int
    title: str
    body: str
    state: str  # open / closed
    labels: tuple[str, ...]
    author: str
    author_association: str  # OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, ...
    html_url: str
    is_pull_request: bool
    locked: bool = False
    comments: int = 0  # how many comments it has (claims are comments)


@dataclass(frozen=True)
class IssuePage:
    """The result of a conditional listing: `issues` is None when nothing changed (304)."""

    issues: tuple[Issue, ...] | None
    etag: str | None
    rate: RateLimit
    requests: int  # HTTP requests it took (pages)


@dataclass(frozen=True)
class Comment:
    id: int  # ids only grow: a later comment has a larger id
    author: str
    body: str
    html_url: str
    created_at: datetime  # the forge's clock, UTC
    updated_at: datetime
    author_association: str = "NONE"


@dataclass(frozen=True)
class Repository:
    full_name: str  # "owner/name"
    owner: str
    clone_url: str  # git over HTTP(S); credentials never go in it
    default_branch: str
    fork: bool
    parent: str | None  # the full name of the repository this one was forked from
    can_push: bool  # this account may push to it


@dataclass(frozen=True)
class PullRequest:
    number: int
    html_url: str
    head: str  # "owner:branch"
    base: str
    state: str
    draft: bool
    body: str = ""


class Forge(Protocol):
    """A forge account: what one Bzzz node may read and write."""

    def login(self) -> str:
        """The account's login (checks the token)."""
        ...

    def list_open_issues(self, repo: str, label: str, etag: str | None = None) -> IssuePage: ...

    def get_issue(self, repo: str, number: int) -> Issue: ...

    def get_comments(self, repo: str, number: int) -> list[Comment]: ...

    def comment(self, repo: str, number: int, body: str) -> Comment: ...

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment: ...

    def delete_comment(self, repo: str, comment_id: int) -> None: ...

    def add_labels(self, repo: str, number: int, labels: list[str]) -> None: ...

    def remove_label(self, repo: str, number: int, label: str) -> None: ...

    def create_issue(self, repo: str, title: str, body: str, labels: list[str]) -> Issue: ...

    def get_repository(self, repo: str) -> Repository: ...

    def fork(self, repo: str) -> str:
        """Fork `repo` to this account (once); returns the fork's full name."""
        ...

    def find_pull_request(self, repo: str, head: str, base: str) -> PullRequest | None: ...

    def list_pull_requests(self, repo: str) -> list[PullRequest]:
        """The repository's open pull requests."""
        ...

    def create_pull_request(
        self, repo: str, *, title: str, body: str, head: str, base: str, draft: bool
    ) -> PullRequest: ...
