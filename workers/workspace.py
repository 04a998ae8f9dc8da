"""A task's git workspace: the repository the branch goes to, cloned, on the task's branch.

`prepare` picks where the branch is pushed (`git.push_to`): the node account's fork
(forking again answers the same fork, as on GitHub, and forking a repository the account
owns answers the repository itself), or the task's repository itself where the account may
push to it. It waits until a new fork can be fetched, fetches it and upstream's default
branch, and checks out the task's branch made from upstream's current base. The sandbox
then changes `Workspace.path`; the worker commits as the node and pushes.

Two rules keep the token where it belongs:
- libgit2 gets it only from a credentials callback, never in a URL, config file, log or
  error text; the callback refuses to answer twice, so a rejected token fails at once
  instead of being offered again (libgit2 would ask 15 times).
- the git directory lies beside the work tree, not in it. The sandbox may write anything
  under `path`; were `.git` there, it could rewrite the remote URL or add `url.insteadOf`
  and the next push would hand the token to another host.

`workers.git_access` holds the node's identity, the token's callback and the errors;
`workers.git_clone` makes, fetches and removes the clone.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pygit2
from pygit2.enums import CheckoutStrategy

from bzzz.forge.api import ErrorKind, Forge, ForgeError, Repository
from bzzz.forge.token import Token
from bzzz.work import TaskSpec
from workers.git_access import (
    GitIdentity,
    TokenCallbacks,
    TokenRefused,
    WorkspaceError,
    refused,
    scrub,
)
from workers.git_clone import (
    GIT_DIR,
    WORK_TREE,
    fetch_base,
    fetch_branch,
    fetch_fork,
    init_repository,
    remove,
    wait_for_fork,
)

log = logging.getLogger(__name__)

DEFAULT_BRANCH_PREFIX = "bzzz/task-{number}-"
FORK_TIMEOUT = 300.0  # GitHub: a new fork may take up to five minutes to become clonable
SLUG_LENGTH = 40


class PushRejected(WorkspaceError):
    """The forge refused the pushed ref(s) or the credentials."""


def branch_name(spec: TaskSpec) -> str:
    """The task's branch: its prefix (default bzzz/task-NUMBER-) and a slug of its title.
    The same task always gets the same branch, so a retry replaces its earlier attempt."""
    prefix = (spec.branch_prefix or DEFAULT_BRANCH_PREFIX).replace("{number}", str(spec.number))
    ascii_title = unicodedata.normalize("NFKD", spec.input).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    slug = slug[:SLUG_LENGTH].rstrip("-") or "change"
    name = prefix + slug
    if not pygit2.reference_is_valid_name(f"refs/heads/{name}"):
        raise WorkspaceError(f"{name!r} is not a valid branch name: check tasks.branch_prefix")
    return name


class Workspace:
    """A clone at `path` on `branch` of `fork`, the repository the branch is pushed to: the
    node account's fork, or the task's repository `repo` itself. Its git directory lies
    outside `path`."""

    def __init__(
        self,
        *,
        home: Path,
        git: pygit2.Repository,
        repo: str,
        fork: str,
        base: str,
        branch: str,
        base_commit: pygit2.Oid,
        token: Token,
        identity: GitIdentity,
        start: pygit2.Oid | None = None,
    ) -> None:
        """`start`: the commit the branch starts from, when it continues another node's
        work (handed on); else the base."""
        self.path = home / WORK_TREE
        self.repo = repo
        self.fork = fork
        self.base = base
        self.branch = branch
        self._home = home
        self._git = git
        self._base_commit = base_commit
        self._head = start or base_commit  # the last commit on the branch
        self.continued = start is not None and start != base_commit
        self._token = token
        self._identity = identity

    def __repr__(self) -> str:
        return f"Workspace({self.fork}:{self.branch} at {self.path})"

    @property
    def in_repository(self) -> bool:
        """Whether the branch goes to the task's repository itself, not to a fork."""
        return self.fork.lower() == self.repo.lower()

    @property
    def head_label(self) -> str:
        """The branch as "owner:branch", as the forge labels a pull request's head and
        filters pull requests by it."""
        return f"{self.fork.partition('/')[0]}:{self.branch}"

    @property
    def pull_head(self) -> str:
        """The head of this branch's pull request: the branch itself when it lives in the
        task's repository, else "owner:branch" of the fork."""
        return self.branch if self.in_repository else self.head_label

    def changed(self) -> bool:
        """Whether the work tree (untracked files included, ignored ones not) differs from
        the base."""
        return self._snapshot() != self._tree_of(self._base_commit)

    def diff(self) -> str:
        """The unified diff from the base to the work tree, untracked files included."""
        patch = self._git.diff(self._tree_of(self._base_commit), self._snapshot()).patch
        return patch or ""

    def commit(self, message: str) -> str | None:
        """Commit everything in the work tree as the node; the commit's sha, or None if
        nothing changed since the last commit (or the base)."""
        if not message.strip():
            raise WorkspaceError("a commit needs a message")
        tree = self._snapshot()
        if tree == self._tree_of(self._head):
            return None
        signature = pygit2.Signature(self._identity.name, self._identity.email)
        with self._git_step("commit"):
            self._head = self._git.create_commit(
                f"refs/heads/{self.branch}",
                signature,
                signature,
                message.strip() + "\n",
                tree,
                [self._head],
            )
        return str(self._head)

    def push(self) -> None:
        """Force-push the branch to `fork`, replacing an earlier attempt's."""
        if self._head == self._base_commit:
            raise WorkspaceError(f"nothing committed on {self.branch} to push")
        ref = f"refs/heads/{self.branch}"
        callbacks = TokenCallbacks(self._token)
        try:
            self._git.remotes["origin"].push([f"+{ref}:{ref}"], callbacks=callbacks)
        except TokenRefused:
            raise PushRejected(f"{self.fork} rejected this node's token") from None
        except pygit2.GitError as exc:
            text = scrub(str(exc), self._token)
            kind = PushRejected if refused(text) else WorkspaceError
            raise kind(f"push of {self.branch} to {self.fork} failed: {text}") from None
        if ref in callbacks.rejected:
            reason = scrub(callbacks.rejected[ref], self._token)
            raise PushRejected(f"{self.fork} rejected {self.branch}: {reason}")
        if ref not in callbacks.accepted:
            raise PushRejected(f"{self.fork} did not confirm {self.branch}")

    def close(self) -> None:
        """Remove the clone, work tree and git directory alike. Safe to call twice."""
        self._git.free()
        remove(self._home)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _snapshot(self) -> pygit2.Oid:
        """The work tree as a tree object: add_all stages new, changed and deleted files."""
        with self._git_step("reading the work tree"):
            index = self._git.index
            index.add_all()
            index.write()
            tree: pygit2.Oid = index.write_tree()
        return tree

    def _tree_of(self, commit: pygit2.Oid) -> pygit2.Oid:
        tree: pygit2.Oid = self._git[commit].peel(pygit2.Commit).tree_id
        return tree

    @contextlib.contextmanager
    def _git_step(self, step: str) -> Iterator[None]:
        try:
            yield
        except pygit2.GitError as exc:
            raise WorkspaceError(f"{step} in {self.path}: {scrub(str(exc), self._token)}") from None


def prepare(
    forge: Forge,
    token: Token,
    spec: TaskSpec,
    identity: GitIdentity,
    root: Path,
    *,
    fork_timeout: float = FORK_TIMEOUT,
    push_to: str = "fork",
) -> Workspace:
    """Pick the repository the branch goes to (`push_target`), clone it under `root`, and
    check out the task's branch from upstream's default branch as it is now.

    Raises ForgeError when the forge's API fails, WorkspaceError when git does (or the
    fork is not clonable within `fork_timeout` seconds, or `push_to` cannot be honoured).
    """
    deadline = time.monotonic() + fork_timeout
    upstream = forge.get_repository(spec.repo)
    fork = push_target(forge, upstream, push_to, deadline)
    branch = branch_name(spec)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = f"{spec.repo.replace('/', '-')}-{spec.number}-"
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        git = init_repository(home, upstream.clone_url, fork.clone_url)
        try:
            if fork.full_name.lower() != upstream.full_name.lower():  # a new fork may be empty
                fetch_fork(git, token, fork.full_name, deadline, fork_timeout)
            base_commit = fetch_base(git, token, upstream)
            start = _handed_work(forge, git, token, spec)
            head = git[start or base_commit].peel(pygit2.Commit)
            git.branches.local.create(branch, head, force=True)
            git.checkout(f"refs/heads/{branch}", strategy=CheckoutStrategy.FORCE)
        except pygit2.GitError as exc:
            cause = scrub(str(exc), token)
            raise WorkspaceError(f"cloning {fork.full_name}: {cause}") from None
        finally:
            git.free()  # the Workspace opens its own handle
    except BaseException:
        remove(home)
        raise
    log.info("workspace for %s#%d: %s on %s", spec.repo, spec.number, fork.full_name, branch)
    return Workspace(
        home=home,
        git=pygit2.Repository(str(home / GIT_DIR)),
        repo=upstream.full_name,
        fork=fork.full_name,
        base=upstream.default_branch,
        branch=branch,
        base_commit=base_commit,
        token=token,
        identity=identity,
        start=start,
    )


def _handed_work(
    forge: Forge, git: pygit2.Repository, token: Token, spec: TaskSpec
) -> pygit2.Oid | None:
    """The head of the branch another node handed this task on with, if it can be had."""
    repository, _, branch = spec.continue_from.partition(":")
    if not repository or not branch:
        return None
    try:
        source = forge.get_repository(repository)
    except ForgeError as exc:
        log.warning("%s: cannot find %s to continue from: %s", spec.task_id, repository, exc)
        return None
    return fetch_branch(git, token, source, branch)


def push_target(forge: Forge, upstream: Repository, push_to: str, deadline: float) -> Repository:
    """The repository the task's branch is pushed to, per `git.push_to`:

    - "fork": the account's fork. Forking a repository the account owns answers the
      repository itself (GitHub does), and then the branch goes there.
    - "origin": `upstream` itself; the account must be allowed to push to it.
    - "auto": `upstream` where the forge says the account may push (`permissions.push`),
      else a fork.
    """
    if push_to == "origin" and not upstream.can_push:
        raise WorkspaceError(
            f"git.push_to is origin, but this node's account may not push to"
            f" {upstream.full_name}. Fix: give the account write access, or set git.push_to"
            " to fork or auto"
        )
    if push_to == "origin" or (push_to == "auto" and upstream.can_push):
        return upstream
    try:
        name = forge.fork(upstream.full_name)
    except ForgeError as exc:
        if exc.kind is not ErrorKind.FORBIDDEN:
            raise
        fix = (
            "set git.push_to to auto: the account may push to the repository itself"
            if upstream.can_push
            else "allow forks of it, or give the account push access and set git.push_to to auto"
        )
        raise WorkspaceError(f"cannot fork {upstream.full_name}: {exc}. Fix: {fix}") from None
    if name.lower() == upstream.full_name.lower():
        return upstream  # the account owns it: its own "fork"
    return wait_for_fork(forge, name, deadline)
