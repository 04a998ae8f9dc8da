"""Who may do what: owners and push collaborators write; everyone reads (repos are public)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bzzz.lab.forge.rest import ApiError, Request, not_found
from bzzz.lab.forge.store import repos
from bzzz.lab.forge.store.records import Repo, User


@dataclass(frozen=True)
class Access:
    admin: bool
    push: bool
    pull: bool

    def as_json(self) -> dict[str, bool]:
        return {
            "admin": self.admin,
            "maintain": self.admin,
            "push": self.push,
            "triage": self.push,
            "pull": self.pull,
        }


READ_ONLY = Access(admin=False, push=False, pull=True)


def access(db: sqlite3.Connection, repo: Repo, user: User | None) -> Access:
    if user is None:
        return READ_ONLY
    if user.id == repo.owner.id:
        return Access(admin=True, push=True, pull=True)
    permission = repos.collaborator_permission(db, repo.id, user.id)
    if permission is None:
        return READ_ONLY
    return Access(admin=permission == "admin", push=True, pull=True)


def association(db: sqlite3.Connection, repo: Repo, user_id: int) -> str:
    """GitHub's `author_association` of a user with a repository (no organisations here)."""
    if user_id == repo.owner.id:
        return "OWNER"
    if repos.collaborator_permission(db, repo.id, user_id) is not None:
        return "COLLABORATOR"
    return "NONE"


def find_repo(db: sqlite3.Connection, request: Request) -> Repo:
    repo = repos.by_name(db, request.params["owner"], request.params["repo"])
    if repo is None:
        raise not_found()
    return repo


def require_push(db: sqlite3.Connection, repo: Repo, request: Request) -> User:
    user = request.user()
    if not access(db, repo, user).push:
        raise ApiError(403, "Must have push access to this repository.")
    return user
