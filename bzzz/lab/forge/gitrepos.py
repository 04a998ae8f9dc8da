"""The forge's bare git repositories, `DIR/git/OWNER/REPO.git`: creation, forks, comparisons.

The REST view reads branches from these repositories on every request instead of keeping
copies, so a push over smart HTTP shows at once in branches, pull-request heads and the
"no commits between" check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pygit2


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Comparison:
    base_sha: str
    head_sha: str
    ahead: int  # commits on head that base lacks


def git_env() -> dict[str, str]:
    """The environment for git subprocesses: never prompt, ignore system and user config."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "LANG": "C",
    }


def _check_path(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
        raise GitError(f"bad file path {path!r}: give a relative path without '..' or '.git'")
    return "/".join(parts)


class GitRepos:
    def __init__(self, root: Path, git: str = "git") -> None:
        self.root = root
        self.git = git
        root.mkdir(parents=True, exist_ok=True)

    def path(self, owner: str, name: str) -> Path:
        return self.root / owner / f"{name}.git"

    def create(
        self,
        owner: str,
        name: str,
        *,
        branch: str,
        files: Mapping[str, str],
        author: tuple[str, str],
        message: str = "Initial commit",
    ) -> str | None:
        """A bare repository with one commit of `files` on `branch` (none if no files)."""
        paths = {_check_path(path): text for path, text in files.items()}
        target = self.path(owner, name)
        if target.exists():
            raise GitError(f"{target} exists already")
        target.parent.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(target), bare=True, initial_head=branch)
        if not paths:
            return None
        index = pygit2.Index()
        for path, text in sorted(paths.items()):
            blob = repo.create_blob(text.encode())
            index.add(pygit2.IndexEntry(path, blob, pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(repo)
        signature = pygit2.Signature(author[0], author[1])
        oid = repo.create_commit(f"refs/heads/{branch}", signature, signature, message, tree, [])
        return str(oid)

    def fork(self, source: Path, target: Path) -> None:
        """`target` becomes a bare clone of `source` with all its branches, and no remote."""
        if target.exists():
            raise GitError(f"{target} exists already")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._run("clone", "--bare", "--quiet", str(source), str(target))
        self._run("-C", str(target), "remote", "remove", "origin")

    def remove(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def branch_sha(self, path: Path, branch: str) -> str | None:
        try:
            repo = pygit2.Repository(str(path))
        except pygit2.GitError:
            return None
        ref = repo.references.get(f"refs/heads/{branch}")
        return None if ref is None else str(ref.resolve().target)

    def branches(self, path: Path) -> list[tuple[str, str]]:
        repo = pygit2.Repository(str(path))
        found = []
        for name in repo.branches.local:
            found.append((name, str(repo.branches.local[name].target)))
        return sorted(found)

    def compare(
        self, base: Path, base_branch: str, head: Path, head_branch: str
    ) -> Comparison | None:
        """How far `head_branch` of `head` is ahead of `base_branch` of `base`.

        None if either branch is missing. A head in another repository (a fork) is fetched
        into the base repository first, under a temporary ref, as GitHub keeps
        `refs/pull/N/head` in the base.
        """
        base_sha = self.branch_sha(base, base_branch)
        if base_sha is None:
            return None
        if head == base:
            head_sha = self.branch_sha(head, head_branch)
            if head_sha is None:
                return None
            return Comparison(base_sha, head_sha, self._ahead(base, head_sha, base_sha))
        if self.branch_sha(head, head_branch) is None:
            return None
        scratch = f"refs/forge/compare/{uuid.uuid4().hex}"
        try:
            self._run(
                "-C",
                str(base),
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                str(head),
                f"+refs/heads/{head_branch}:{scratch}",
            )
        except GitError:
            if self.branch_sha(head, head_branch) is None:
                return None  # deleted while we looked
            raise
        try:
            repo = pygit2.Repository(str(base))
            head_sha = str(repo.references[scratch].target)
            return Comparison(base_sha, head_sha, self._ahead(base, head_sha, base_sha))
        finally:
            self.delete_ref(base, scratch)

    def set_ref(self, path: Path, ref: str, sha: str) -> None:
        repo = pygit2.Repository(str(path))
        repo.references.create(ref, pygit2.Oid(hex=sha), force=True)

    def delete_ref(self, path: Path, ref: str) -> None:
        repo = pygit2.Repository(str(path))
        if ref in repo.references:
            repo.references.delete(ref)

    def _ahead(self, path: Path, head_sha: str, base_sha: str) -> int:
        repo = pygit2.Repository(str(path))
        ahead, _behind = repo.ahead_behind(pygit2.Oid(hex=head_sha), pygit2.Oid(hex=base_sha))
        return int(ahead)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [self.git, *args], capture_output=True, text=True, env=git_env(), check=False
        )
        if result.returncode != 0:
            raise GitError(f"git {args[-2:]} failed: {result.stderr.strip()}")
