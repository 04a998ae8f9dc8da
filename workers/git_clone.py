"""A workspace's clone: made with its git directory beside the work tree, fetched, removed.

The git directory lies beside the work tree, not in it: the sandbox may write anything
in the work tree, and were `.git` there, it could rewrite the remote URL or add
`url.insteadOf` and the next push would hand the token to another host. A new fork on
GitHub may be unknown for a moment, then missing or empty until its copy completes:
`wait_for_fork` and `fetch_fork` retry, with growing pauses, until a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pygit2
from pygit2.enums import RepositoryInitFlag

from bzzz.forge.api import ErrorKind, Forge, ForgeError, Repository
from bzzz.forge.token import Token
from workers.git_access import TokenCallbacks, TokenRefused, WorkspaceError, refused, scrub

log = logging.getLogger(__name__)
T = TypeVar("T")

WORK_TREE, GIT_DIR = "work", "git"


class _NotReady(Exception):
    """A new fork that cannot be fetched yet."""


def wait_for_fork(forge: Forge, name: str, deadline: float) -> Repository:
    """The fork as the forge describes it; GitHub may not know a new fork for a moment."""
    return _retry_until(deadline, lambda: forge.get_repository(name), _missing_repository)


def _missing_repository(exc: Exception) -> bool:
    return isinstance(exc, ForgeError) and exc.kind is ErrorKind.NOT_FOUND


def init_repository(home: Path, upstream_url: str, fork_url: str) -> pygit2.Repository:
    """A repository in `home`: the work tree in WORK_TREE, its git directory in GIT_DIR;
    remote `origin` is the fork, `upstream` the task's repository."""
    git = pygit2.init_repository(
        str(home / GIT_DIR),
        workdir_path=str(home / WORK_TREE),
        flags=RepositoryInitFlag.MKPATH | RepositoryInitFlag.NO_DOTGIT_DIR,
    )
    # libgit2 leaves a `.git` file naming the git directory; the sandbox need not see it
    (home / WORK_TREE / ".git").unlink(missing_ok=True)
    git.remotes.create("origin", fork_url)
    git.remotes.create("upstream", upstream_url)
    return git


def fetch_fork(
    git: pygit2.Repository, token: Token, fork: str, deadline: float, timeout: float
) -> None:
    """Fetch the fork's branches, waiting until it has some (a new fork on GitHub is
    missing, then empty, until its copy completes)."""

    def fetch() -> None:
        _fetch(git, "origin", token, None)
        if not any(ref.startswith("refs/remotes/origin/") for ref in git.references):
            raise _NotReady(f"{fork} has no branches yet")

    def not_ready(exc: Exception) -> bool:
        # missing (404), empty or unreachable may pass; refused credentials will not
        return isinstance(exc, _NotReady) or (
            isinstance(exc, pygit2.GitError) and not refused(str(exc))
        )

    try:
        _retry_until(deadline, fetch, not_ready)
    except TokenRefused:
        raise WorkspaceError(f"{fork} rejected this node's token") from None
    except (_NotReady, pygit2.GitError) as exc:
        cause = scrub(str(exc), token)
        raise WorkspaceError(f"{fork} is not clonable after {timeout:g} s: {cause}") from None


def fetch_base(git: pygit2.Repository, token: Token, upstream: Repository) -> pygit2.Oid:
    """Fetch upstream's default branch; its head commit."""
    branch = upstream.default_branch
    tracking = f"refs/remotes/upstream/{branch}"
    try:
        _fetch(git, "upstream", token, [f"+refs/heads/{branch}:{tracking}"])
    except TokenRefused:
        raise WorkspaceError(f"{upstream.full_name} rejected this node's token") from None
    if tracking not in git.references:
        raise WorkspaceError(f"{upstream.full_name} has no branch {branch} to start from")
    return git.references[tracking].peel(pygit2.Commit).id


def fetch_branch(
    git: pygit2.Repository, token: Token, repository: Repository, branch: str
) -> pygit2.Oid | None:
    """Fetch `branch` of `repository` (another node's work, handed on); its head commit,
    or None when it cannot be had (the task then starts afresh)."""
    tracking = f"refs/remotes/handed/{branch}"
    try:
        if "handed" not in git.remotes.names():
            git.remotes.create("handed", repository.clone_url)
        _fetch(git, "handed", token, [f"+refs/heads/{branch}:{tracking}"])
        return git.references[tracking].peel(pygit2.Commit).id
    except (TokenRefused, pygit2.GitError, KeyError) as exc:
        cause = scrub(str(exc), token)
        log.warning("cannot fetch %s of %s: %s", branch, repository.full_name, cause)
        return None


def _fetch(git: pygit2.Repository, remote: str, token: Token, refspecs: list[str] | None) -> None:
    # public repositories need no token; private ones (and forks of them) ask for it
    git.remotes[remote].fetch(refspecs, callbacks=TokenCallbacks(token))


def _retry_until(
    deadline: float, attempt: Callable[[], T], retryable: Callable[[Exception], bool]
) -> T:
    """`attempt()` until it succeeds or the deadline passes, waiting longer each time."""
    pause = 0.1
    while True:
        try:
            return attempt()
        except Exception as exc:
            left = deadline - time.monotonic()
            if not retryable(exc) or left <= 0:
                raise
        time.sleep(min(pause, left))
        pause = min(pause * 2, 5.0)


def remove(path: Path) -> None:
    """Remove `path` even where the sandbox left directories without write permission."""

    def make_writable(function: Callable[..., Any], name: str, _: Any) -> None:
        parent = os.path.dirname(name)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        with contextlib.suppress(FileNotFoundError):
            function(name)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable)
    if path.exists():
        log.warning("could not remove the workspace %s entirely", path)
