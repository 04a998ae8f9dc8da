"""A seeded forge per test, on loopback, always stopped and removed; PyGithub and pygit2 helpers."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import github
import pygit2
import pytest

from bzzz.lab.forge import LocalForge

ADMIN = "admin-secret-token"
TOKENS = {
    "alice": "tok-alice-0123456789",  # owns alice/demo
    "bob": "tok-bob-0123456789",  # collaborator with push access
    "carol": "tok-carol-0123456789",  # no access
    "dave": "tok-dave-0123456789",  # no access
}

WORLD: dict[str, Any] = {
    "users": [
        {"login": login, "name": login.title(), "email": f"{login}@example.org", "token": token}
        for login, token in TOKENS.items()
    ],
    "repos": [
        {
            "owner": "alice",
            "name": "demo",
            "description": "a repository for the tests",
            "files": {"README.md": "# demo\n", "src/app.py": "print('hello')\n"},
            "collaborators": ["bob"],
            "labels": [
                {"name": "bzzz-task", "color": "0e8a16", "description": "for Bzzz"},
                "bug",
                "help-wanted",
            ],
            "issues": [
                {"number": 1, "title": "Add a greeting", "labels": ["bzzz-task"]},
                {
                    "number": 2,
                    "title": "Fix a crash",
                    "labels": ["bzzz-task", "bug"],
                    "author": "bob",
                },
                {"number": 3, "title": "Write docs", "labels": ["help-wanted"], "author": "carol"},
                {"number": 4, "title": "Done already", "labels": ["bzzz-task"], "state": "closed"},
                {"number": 5, "title": "Refactor", "labels": ["bug"], "body": "Split app.py"},
            ],
        }
    ],
}


@pytest.fixture
def tmp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bzzz-forge-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


ForgeFactory = Callable[..., LocalForge]


@pytest.fixture
def make_forge(tmp_dir: Path) -> Iterator[ForgeFactory]:
    """Start forges (root: `tmp_dir/name`); every one is stopped at the end, pass or fail."""
    started: list[LocalForge] = []

    def factory(name: str = "forge", **options: Any) -> LocalForge:
        options.setdefault("admin_token", ADMIN)
        forge = LocalForge(tmp_dir / name, **options).start()
        started.append(forge)
        return forge

    yield factory
    for forge in started:
        forge.stop()


@pytest.fixture
def forge(make_forge: ForgeFactory) -> LocalForge:
    forge = make_forge()
    forge.seed(WORLD)
    return forge


def gh(forge: LocalForge, login: str | None, **options: Any) -> github.Github:
    """PyGithub as Bzzz uses it: no client-side throttling; `login` None is anonymous."""
    auth = None if login is None else github.Auth.Token(TOKENS[login])
    options.setdefault("seconds_between_requests", 0)
    options.setdefault("seconds_between_writes", 0)
    options.setdefault("timeout", 15)
    return github.Github(base_url=forge.api_url, auth=auth, **options)


def headers(login: str | None) -> dict[str, str]:
    return {} if login is None else {"Authorization": f"token {TOKENS[login]}"}


class Pushes(pygit2.RemoteCallbacks):
    """Credentials for one user, refusing to retry them, and the server's verdict per ref."""

    def __init__(self, login: str | None, token: str | None = None) -> None:
        super().__init__()
        self.login = login
        self.token = token
        self.asked = 0
        self.results: dict[str, str | None] = {}

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self.asked += 1
        if self.login is None or self.asked > 1:
            raise pygit2.GitError("refusing to send credentials again")
        return pygit2.UserPass(self.login, self.token or TOKENS[self.login])

    def push_update_reference(self, refname: str, message: str | None) -> None:
        self.results[refname] = message


def clone(url: str, path: Path) -> pygit2.Repository:
    return pygit2.clone_repository(url, str(path))


def commit_file(repo: pygit2.Repository, branch: str, path: str, text: str) -> str:
    """Commit `path` on `branch` (made from HEAD if new); the commit's sha."""
    existing = repo.branches.local.get(branch)
    parent = repo.head.peel(pygit2.Commit) if existing is None else existing.peel(pygit2.Commit)
    workdir = Path(repo.workdir)
    (workdir / path).parent.mkdir(parents=True, exist_ok=True)
    (workdir / path).write_text(text)
    repo.index.read_tree(parent.tree)
    repo.index.add(path)
    repo.index.write()
    tree = repo.index.write_tree()
    author = pygit2.Signature("Test", "test@example.org")
    oid = repo.create_commit(
        f"refs/heads/{branch}", author, author, f"change {path}", tree, [parent.id]
    )
    return str(oid)


def push(
    repo: pygit2.Repository,
    login: str | None,
    branch: str,
    url: str | None = None,
    token: str | None = None,
) -> Pushes:
    callbacks = Pushes(login, token)
    remote = repo.remotes.create_anonymous(url) if url else repo.remotes["origin"]
    remote.push([f"refs/heads/{branch}:refs/heads/{branch}"], callbacks=callbacks)
    return callbacks
