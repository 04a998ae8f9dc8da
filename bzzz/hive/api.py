"""Hive's REST contract as plain data: what its listing means and what its bodies hold.

Pure: no I/O. `client.py` carries these over HTTP. The contract is the real Hive's
(FastAPI, `anthonyrawlins/hive`), which differs from what the Go Bzzz client assumed;
docs/hive.md has both and why the bodies here are the union of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bzzz.errors import BzzzError

# The statuses Bzzz reports. The real Hive accepts any string; these are the ones the Go
# client sent (completed, escalated) and the ones a claim's life passes through.
STATUSES = ("claimed", "in_progress", "completed", "failed", "escalated")

MAX_REPOS = 10_000  # entries of one listing looked at; a larger one is not a real Hive's
MAX_TEXT = 2048  # characters of any string field (Hive's columns are VARCHAR(500) or less)
MAX_PROJECT_ID = 2**63 - 1  # PostgreSQL's bigint

# GitHub's rules, as the lab's forge applies them: an owner is 1-39 letters, digits and
# inner hyphens; a repository name 1-100 letters, digits, '.', '_' and '-', but not '.'
# or '..' (path segments) and not ending in '.git' (it would name the git URL instead).
_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?")
_REPOSITORY = re.compile(r"[A-Za-z0-9._-]{1,100}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_TEXT_FIELDS = ("name", "git_url", "owner", "repository", "branch")
_FLAG_FIELDS = ("bzzz_enabled", "ready_to_claim", "private_repo", "github_token_required")


class HiveError(BzzzError):
    """A Hive request failed, or Hive answered something that is not its contract.

    `retry` says whether the same request may succeed later (Hive down or overloaded)
    or not (the request or the configuration is wrong: trying again only repeats it).
    `status` is the HTTP status, when there was a reply. The message never holds the
    API key.
    """

    def __init__(self, message: str, *, retry: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status


@dataclass(frozen=True)
class HiveRepo:
    """One entry of `GET /api/bzzz/active-repos`: a Hive project and its git repository."""

    project_id: int
    name: str
    git_url: str
    owner: str
    repository: str
    branch: str
    bzzz_enabled: bool
    ready_to_claim: bool  # Hive saw open bzzz-task issues in it (advisory; we look ourselves)
    private_repo: bool
    github_token_required: bool

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repository}"


def parse_active_repos(data: object) -> list[HiveRepo]:
    """The entries of an active-repos reply, in Hive's order, skipping malformed ones.

    Only a reply that is not `{"repositories": [...]}` at all raises (HiveError, not
    retryable: that server does not speak this contract). One bad entry is dropped so
    that a single broken project in Hive does not hide the others.
    """
    if not isinstance(data, dict) or not isinstance(data.get("repositories"), list):
        raise HiveError(
            "Hive's active-repos reply is not {\"repositories\": [...]}; is the URL Hive's?",
            retry=False,
        )
    entries: list[object] = data["repositories"]
    return [repo for entry in entries[:MAX_REPOS] if (repo := _repo(entry)) is not None]


def _repo(entry: object) -> HiveRepo | None:
    if not isinstance(entry, dict):
        return None
    project_id = entry.get("project_id")
    if type(project_id) is not int or not 0 <= project_id <= MAX_PROJECT_ID:
        return None
    texts = {field: entry.get(field) for field in _TEXT_FIELDS}
    if not all(_is_text(value) for value in texts.values()):
        return None
    flags = {field: entry.get(field) for field in _FLAG_FIELDS}
    # The real Hive passes its database's columns through, and a NULL flag is false
    # there; anything else that is not a boolean makes the entry suspect.
    if not all(value is None or isinstance(value, bool) for value in flags.values()):
        return None
    return HiveRepo(
        project_id=project_id,
        name=str(texts["name"]),
        git_url=str(texts["git_url"]),
        owner=str(texts["owner"]),
        repository=str(texts["repository"]),
        branch=str(texts["branch"]),
        bzzz_enabled=flags["bzzz_enabled"] is True,
        ready_to_claim=flags["ready_to_claim"] is True,
        private_repo=flags["private_repo"] is True,
        github_token_required=flags["github_token_required"] is True,
    )


def _is_text(value: object) -> bool:
    """A string fit for logs and messages: bounded, without control characters."""
    return isinstance(value, str) and len(value) <= MAX_TEXT and not _CONTROL.search(value)


def is_repo_name(full_name: str) -> bool:
    """Whether `full_name` is a GitHub "owner/repository" that is safe in an API path."""
    owner, slash, repository = full_name.partition("/")
    return bool(slash) and _valid_owner(owner) and _valid_repository(repository)


def _valid_owner(owner: str) -> bool:
    return _OWNER.fullmatch(owner) is not None


def _valid_repository(repository: str) -> bool:
    return (
        _REPOSITORY.fullmatch(repository) is not None
        and repository not in (".", "..")
        and not repository.lower().endswith(".git")
    )


def enabled_repositories(repos: Iterable[HiveRepo]) -> dict[str, int]:
    """ "owner/repository" → project_id for the repositories Bzzz may take tasks from.

    Only entries with `bzzz_enabled` and GitHub-valid names count. GitHub's names are
    case-insensitive, so a second entry for the same repository in another case is the
    same repository: the first one listed keeps it.
    """
    enabled: dict[str, int] = {}
    seen: set[str] = set()
    for repo in repos:
        if not repo.bzzz_enabled or not is_repo_name(repo.full_name):
            continue
        if (key := repo.full_name.casefold()) in seen:
            continue
        seen.add(key)
        enabled[repo.full_name] = repo.project_id
    return enabled


def claim_body(task_number: int, agent_id: str, claimed_at: float) -> dict[str, object]:
    """The body of `POST /api/bzzz/projects/{id}/claim`; `claimed_at` in unix seconds.

    Raises ValueError for what the real Hive refuses: it treats a falsy task number or
    agent id as missing.
    """
    _check_task_number(task_number)
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise ValueError("agent_id must be a non-empty string")
    return {"task_number": task_number, "agent_id": agent_id, "claimed_at": int(claimed_at)}


def status_body(
    task_number: int,
    status: str,
    results: Mapping[str, object],
    metadata: Mapping[str, object],
    updated_at: datetime,
) -> dict[str, object]:
    """The body of `PUT /api/bzzz/projects/{id}/status`, in the shape both sides accept.

    The real Hive needs `task_number` and `status` and reads `metadata`; the Go client's
    shape had `updated_at` and `results`. Sending the union works with either. Raises
    ValueError for an unknown status, a naive `updated_at` (its zone would be a guess) or
    results and metadata that are not JSON.
    """
    _check_task_number(task_number)
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if updated_at.tzinfo is None or updated_at.utcoffset() is None:
        raise ValueError("updated_at must be timezone-aware")
    return {
        "task_number": task_number,
        "status": status,
        "updated_at": _iso_utc(updated_at),
        "results": _json_object("results", results),
        "metadata": _json_object("metadata", metadata),
    }


def _check_task_number(task_number: int) -> None:
    if type(task_number) is not int or task_number < 1:
        raise ValueError(f"task_number must be a positive integer, not {task_number!r}")


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_object(name: str, value: Mapping[str, object]) -> dict[str, object]:
    """A deep copy through JSON: what Hive will read, and proof that it can be sent."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{name} must be a mapping with string keys")
    try:
        copied: dict[str, object] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{name} is not JSON: {exc}") from None
    return copied
