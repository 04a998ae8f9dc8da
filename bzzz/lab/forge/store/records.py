"""The forge's records as the store hands them out: plain frozen values, no database handles."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

STORED_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def stored(moment: datetime) -> str:
    """A time as the store keeps it: UTC with microseconds, so text order is time order and
    changes within one second still sort (GitHub shows whole seconds; see `shown`)."""
    return moment.astimezone(UTC).strftime(STORED_FORMAT)


def now() -> str:
    return stored(datetime.now(UTC))


def shown(stamp: str) -> str:
    """A stored time in GitHub's format, `2026-01-01T00:00:00Z`."""
    return stamp[:19] + "Z"


@dataclass(frozen=True)
class User:
    id: int
    login: str
    name: str
    email: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> User:
        return cls(
            row["id"], row["login"], row["name"], row["email"], row["created_at"], row["updated_at"]
        )


@dataclass(frozen=True)
class Repo:
    id: int
    owner: User
    name: str
    description: str
    default_branch: str
    parent_id: int | None
    source_id: int | None
    created_at: str
    updated_at: str
    pushed_at: str

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    @property
    def network_id(self) -> int:
        """The repository at the root of this one's fork network (itself if it is no fork)."""
        return self.source_id if self.source_id is not None else self.id


@dataclass(frozen=True)
class Label:
    id: int
    repo_id: int
    name: str
    color: str
    description: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Label:
        return cls(row["id"], row["repo_id"], row["name"], row["color"], row["description"])


@dataclass(frozen=True)
class Issue:
    """An issue or, when `is_pull`, the issue half of a pull request (they share numbers)."""

    id: int
    repo_id: int
    number: int
    title: str
    body: str
    state: str
    state_reason: str | None
    user_id: int
    locked: bool
    lock_reason: str | None
    is_pull: bool
    created_at: str
    updated_at: str
    closed_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Issue:
        return cls(
            row["id"],
            row["repo_id"],
            row["number"],
            row["title"],
            row["body"],
            row["state"],
            row["state_reason"],
            row["user_id"],
            bool(row["locked"]),
            row["lock_reason"],
            bool(row["is_pull"]),
            row["created_at"],
            row["updated_at"],
            row["closed_at"],
        )


@dataclass(frozen=True)
class Comment:
    id: int
    issue_id: int
    user_id: int
    body: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Comment:
        return cls(
            row["id"],
            row["issue_id"],
            row["user_id"],
            row["body"],
            row["created_at"],
            row["updated_at"],
        )


@dataclass(frozen=True)
class Pull:
    """The pull-request half: where it comes from and where it goes."""

    issue_id: int
    head_repo_id: int
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    draft: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Pull:
        return cls(
            row["issue_id"],
            row["head_repo_id"],
            row["head_ref"],
            row["head_sha"],
            row["base_ref"],
            row["base_sha"],
            bool(row["draft"]),
        )
