"""Seeding a forge from a description: users with tokens, repositories with files, issues.

    {"users": [{"login": "alice", "name": "Alice", "email": "alice@example.org",
                "token": "optional; generated when absent"}],
     "repos": [{"owner": "alice", "name": "demo", "description": "",
                "default_branch": "main", "files": {"README.md": "# demo\\n"},
                "collaborators": ["bob", {"login": "carol", "permission": "admin"}],
                "labels": ["bzzz-task", {"name": "bug", "color": "d73a4a"}],
                "issues": [{"number": 1, "title": "Fix it", "body": "...",
                            "labels": ["bzzz-task"], "author": "bob", "state": "open",
                            "assignees": [], "comments": [{"author": "alice", "body": "..."}]}]}]}

A seed is all or nothing (one transaction; git repositories made for a failed seed are
removed), and an existing user or repository is an error naming it: seeding twice fails
instead of duplicating. The result names what was
made, with every user's token (clients need them).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bzzz.errors import BzzzError, ExitCode
from bzzz.lab.forge.gitrepos import GitError, GitRepos
from bzzz.lab.forge.store import Store, comments, issues, repos, users
from bzzz.lab.forge.store.records import Repo, User

LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$")
REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
COLOR = re.compile(r"^[0-9a-fA-F]{6}$")


class SeedError(BzzzError, ValueError):
    """A seed file that does not describe a world the forge can make."""

    exit_code = ExitCode.CONFIG


def seed(store: Store, git: GitRepos, spec: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - {"users", "repos"}
    if unknown:
        raise SeedError(f"unknown seed keys: {', '.join(sorted(unknown))} (use users, repos)")
    user_specs = [_user_spec(u) for u in _list(spec, "users")]
    repo_specs = [_repo_spec(r) for r in _list(spec, "repos")]
    created: list[Path] = []
    try:
        with store.write() as db:
            made_users = [_make_user(db, u) for u in user_specs]
            _check_repos(db, git, repo_specs)
            made_repos = [_make_repo(db, git, r, created) for r in repo_specs]
    except BaseException:
        for path in created:
            git.remove(path)
        raise
    return {"users": made_users, "repos": made_repos}


def _list(spec: Mapping[str, Any], key: str) -> list[Any]:
    value = spec.get(key, [])
    if not isinstance(value, list):
        raise SeedError(f"{key} must be a list")
    return value


def _object(value: Any, what: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SeedError(f"each of {what} must be an object, not {value!r}")
    unknown = set(value) - allowed
    if unknown:
        raise SeedError(f"unknown keys in {what}: {', '.join(sorted(unknown))}")
    missing = required - set(value)
    if missing:
        raise SeedError(f"{what} needs {', '.join(sorted(missing))}")
    return value


def _user_spec(value: Any) -> dict[str, Any]:
    spec = _object(value, "users", {"login", "name", "email", "token"}, {"login"})
    login = spec["login"]
    if not isinstance(login, str) or not LOGIN.match(login):
        raise SeedError(f"bad login {login!r}: letters, digits and inner hyphens, up to 39")
    token = spec.get("token")
    if token is not None and (not isinstance(token, str) or len(token) < 8 or " " in token):
        raise SeedError(f"the token of {login} must be a string of 8 or more characters")
    return {
        "login": login,
        "name": str(spec.get("name") or login),
        "email": str(spec.get("email") or f"{login}@users.noreply.forge.local"),
        "token": token or "bzf_" + secrets.token_hex(20),
    }


def _repo_spec(value: Any) -> dict[str, Any]:
    allowed = {
        "owner",
        "name",
        "description",
        "default_branch",
        "files",
        "collaborators",
        "labels",
        "issues",
    }
    spec = _object(value, "repos", allowed, {"owner", "name"})
    name = spec["name"]
    if not isinstance(name, str) or not REPO_NAME.match(name) or name.endswith(".git"):
        raise SeedError(f"bad repository name {name!r}")
    if name in (".", ".."):
        raise SeedError(f"bad repository name {name!r}")
    files = spec.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise SeedError(f"files of {name} must map paths to text")
    numbers = [i.get("number") for i in spec.get("issues", []) if isinstance(i, dict)]
    given = [n for n in numbers if n is not None]
    if any(not isinstance(n, int) or n < 1 for n in given) or len(set(given)) != len(given):
        raise SeedError(f"issue numbers of {name} must be distinct positive integers")
    return spec


def _make_user(db: sqlite3.Connection, spec: dict[str, Any]) -> dict[str, Any]:
    if users.by_login(db, spec["login"]) is not None:
        raise SeedError(f"user {spec['login']} exists already")
    if users.by_token(db, spec["token"]) is not None:
        raise SeedError(f"the token given for {spec['login']} belongs to another user")
    user = users.create(db, spec["login"], spec["name"], spec["email"])
    users.add_token(db, user.id, spec["token"])
    return {"login": user.login, "id": user.id, "token": spec["token"]}


def _check_repos(db: sqlite3.Connection, git: GitRepos, specs: list[dict[str, Any]]) -> None:
    seen = set()
    for spec in specs:
        owner = _user(db, spec["owner"], f"owner of {spec['name']}")
        full = f"{owner.login}/{spec['name']}".lower()
        if full in seen:
            raise SeedError(f"repository {owner.login}/{spec['name']} is given twice")
        seen.add(full)
        if repos.by_name(db, owner.login, spec["name"]) is not None:
            raise SeedError(f"repository {owner.login}/{spec['name']} exists already")
        if git.path(owner.login, spec["name"]).exists():
            raise SeedError(
                f"{git.path(owner.login, spec['name'])} exists already though the database "
                "does not know it; remove it or seed another name"
            )


def _make_repo(
    db: sqlite3.Connection, git: GitRepos, spec: dict[str, Any], created: list[Path]
) -> dict[str, Any]:
    owner = _user(db, spec["owner"], f"owner of {spec['name']}")
    branch = str(spec.get("default_branch") or "main")
    description = str(spec.get("description") or "")
    repo = repos.create(db, owner, spec["name"], description=description, default_branch=branch)
    for item in spec.get("collaborators", []):
        login, permission = (item, "push") if isinstance(item, str) else _collaborator(item)
        user = _user(db, login, f"collaborator of {repo.full_name}")
        repos.add_collaborator(db, repo.id, user.id, permission)
    for item in spec.get("labels", []):
        _label(db, repo, item)
    numbers = [_issue(db, repo, item) for item in spec.get("issues", [])]
    created.append(git.path(owner.login, repo.name))
    try:
        sha = git.create(
            owner.login,
            repo.name,
            branch=branch,
            files=spec.get("files", {}),
            author=(owner.name, owner.email),
        )
    except GitError as exc:
        raise SeedError(f"{repo.full_name}: {exc}") from None
    return {"full_name": repo.full_name, "id": repo.id, "head": sha, "issues": numbers}


def _collaborator(item: Any) -> tuple[str, str]:
    spec = _object(item, "collaborators", {"login", "permission"}, {"login"})
    permission = spec.get("permission", "push")
    if permission not in ("push", "admin"):
        raise SeedError(f"collaborator permission must be push or admin, not {permission!r}")
    return str(spec["login"]), str(permission)


def _label(db: sqlite3.Connection, repo: Repo, item: Any) -> None:
    if isinstance(item, str):
        item = {"name": item}
    spec = _object(item, "labels", {"name", "color", "description"}, {"name"})
    color = str(spec.get("color", "ededed")).removeprefix("#")
    if not COLOR.match(color):
        raise SeedError(f"label {spec['name']!r}: color must be six hex digits")
    if repos.label(db, repo.id, str(spec["name"])) is not None:
        raise SeedError(f"label {spec['name']!r} is given twice for {repo.full_name}")
    description = str(spec.get("description", ""))
    repos.create_label(db, repo.id, str(spec["name"]), color.lower(), description)


def _issue(db: sqlite3.Connection, repo: Repo, item: Any) -> int:
    allowed = {"number", "title", "body", "labels", "author", "state", "assignees", "comments"}
    spec = _object(item, f"issues of {repo.full_name}", allowed, {"title"})
    state = spec.get("state", "open")
    if state not in ("open", "closed"):
        raise SeedError(f"issue state must be open or closed, not {state!r}")
    author = _user(db, spec.get("author", repo.owner.login), f"author in {repo.full_name}")
    number = spec.get("number")
    if number is not None and issues.by_number(db, repo.id, number) is not None:
        raise SeedError(f"issue {repo.full_name}#{number} is given twice")
    title, body = str(spec["title"]), str(spec.get("body", ""))
    issue = issues.create(db, repo.id, author.id, title, body, number=number, state=state)
    for name in spec.get("labels", []):
        issues.add_label(db, issue.id, repos.label_or_create(db, repo.id, str(name)).id)
    for login in spec.get("assignees", []):
        user = _user(db, login, f"assignee of {repo.full_name}#{issue.number}")
        issues.add_assignee(db, issue.id, user.id)
    for entry in spec.get("comments", []):
        comment = _object(entry, "comments", {"author", "body"}, {"body"})
        writer = _user(db, comment.get("author", repo.owner.login), "comment author")
        comments.create(db, issue.id, writer.id, str(comment["body"]))
    return issue.number


def _user(db: sqlite3.Connection, login: Any, role: str) -> User:
    user = users.by_login(db, str(login))
    if user is None:
        raise SeedError(f"unknown user {login!r} ({role}); list them under users first")
    return user
