"""A task's git workspace: the node account's fork, cloned, on the task's own branch.

`prepare` forks the task's repository to the node's account (forking again answers the
same fork, as on GitHub), waits until the fork can be fetched, fetches it and upstream's
default branch, and checks out the task's branch made from upstream's current base. The
sandbox then changes `Workspace.path`; the worker commits as the node and pushes.

Two rules keep the token where it belongs:
- libgit2 gets it only from a credentials callback, never in a URL, config file, log or
  error text; the callback refuses to answer twice, so a rejected token fails at once
  instead of being offered again (libgit2 would ask 15 times).
- the git directory lies beside the work tree, not in it. The sandbox may write anything
  under `path`; were `.git` there, it could rewrite the remote URL or add `url.insteadOf`
  and the next push would hand the token to another host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pygit2
from pygit2.enums import CheckoutStrategy, ConfigLevel, CredentialType, RepositoryInitFlag

from bzzz.config import Settings
from bzzz.errors import BzzzError
from bzzz.forge.api import ErrorKind, Forge, ForgeError, Repository
from bzzz.forge.token import Token
from bzzz.work import TaskSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BRANCH_PREFIX = "bzzz/task-{number}-"
FORK_TIMEOUT = 300.0  # GitHub: a new fork may take up to five minutes to become clonable
SLUG_LENGTH = 40
# GitHub ignores the user name when the password is a token; this name is the convention
# for tokens and Bzzz's local forge accepts it for any token's owner.
TOKEN_USER = "x-access-token"  # noqa: S105 - a user name, not a secret
WORK_TREE, GIT_DIR = "work", "git"


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


class WorkspaceError(BzzzError):
    """A git step failed. The message never contains the token."""


class PushRejected(WorkspaceError):
    """The forge refused the pushed ref(s) or the credentials."""


class _TokenRefused(WorkspaceError):
    """The forge asked for credentials again: it rejected the token."""


class _NotReady(Exception):
    """A new fork that cannot be fetched yet."""


def node_identity(settings: Settings, environ: Mapping[str, str] | None = None) -> GitIdentity:
    """The name and email on this node's commits: [git] in the config, else user.name and
    user.email from the node's ~/.gitconfig (or $XDG_CONFIG_HOME/git/config)."""
    name, email = settings.git.author_name.strip(), settings.git.author_email.strip()
    if not (name and email):
        found = _global_git_config(os.environ if environ is None else environ)
        name = name or found.get("user.name", "")
        email = email or found.get("user.email", "")
    if not (name and email):
        raise WorkspaceError(
            "no git identity for this node's commits. Fix: set git.author_name and"
            f" git.author_email in {settings.config_path} (or BZZZ_GIT_AUTHOR_NAME and"
            " BZZZ_GIT_AUTHOR_EMAIL), or user.name and user.email in the node's ~/.gitconfig."
        )
    return GitIdentity(name, email)


def _global_git_config(environ: Mapping[str, str]) -> dict[str, str]:
    home = Path(environ.get("HOME") or Path.home())
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "git" / "config"
    config = pygit2.Config()
    found: dict[str, str] = {}
    try:
        # read explicitly: libgit2 fixed its search path from $HOME when it was loaded
        for path, level in ((xdg, ConfigLevel.XDG), (home / ".gitconfig", ConfigLevel.GLOBAL)):
            if path.is_file():
                config.add_file(str(path), level)
        for key in ("user.name", "user.email"):
            if key in config:
                found[key] = str(config[key]).strip()
    except pygit2.GitError as exc:
        raise WorkspaceError(f"cannot read the node's git config: {exc}") from None
    return found


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


class _Callbacks(pygit2.RemoteCallbacks):
    """The token once per operation, and the forge's verdict on each pushed ref."""

    def __init__(self, token: Token) -> None:
        super().__init__()
        self._token = token
        self._asked = False
        self.accepted: set[str] = set()
        self.rejected: dict[str, str] = {}

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass:
        if self._asked:
            raise _TokenRefused("the forge rejected the token")
        if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise WorkspaceError(f"{url} wants no user and password: use an HTTP(S) forge")
        self._asked = True
        return pygit2.UserPass(TOKEN_USER, self._token.reveal())

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message is None:
            self.accepted.add(refname)
        else:
            self.rejected[refname] = message


class Workspace:
    """A clone of the fork at `path` on `branch`; its git directory lies outside `path`."""

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
    ) -> None:
        self.path = home / WORK_TREE
        self.repo = repo
        self.fork = fork
        self.base = base
        self.branch = branch
        self._home = home
        self._git = git
        self._base_commit = base_commit
        self._head = base_commit  # the last commit made here; the base until then
        self._token = token
        self._identity = identity

    def __repr__(self) -> str:
        return f"Workspace({self.fork}:{self.branch} at {self.path})"

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
        """Force-push the branch to the fork, replacing an earlier attempt's."""
        if self._head == self._base_commit:
            raise WorkspaceError(f"nothing committed on {self.branch} to push")
        ref = f"refs/heads/{self.branch}"
        callbacks = _Callbacks(self._token)
        try:
            self._git.remotes["origin"].push([f"+{ref}:{ref}"], callbacks=callbacks)
        except _TokenRefused:
            raise PushRejected(f"{self.fork} rejected this node's token") from None
        except pygit2.GitError as exc:
            text = _scrub(str(exc), self._token)
            kind = PushRejected if _refused(text) else WorkspaceError
            raise kind(f"push of {self.branch} to {self.fork} failed: {text}") from None
        if ref in callbacks.rejected:
            reason = _scrub(callbacks.rejected[ref], self._token)
            raise PushRejected(f"{self.fork} rejected {self.branch}: {reason}")
        if ref not in callbacks.accepted:
            raise PushRejected(f"{self.fork} did not confirm {self.branch}")

    def close(self) -> None:
        """Remove the clone, work tree and git directory alike. Safe to call twice."""
        self._git.free()
        _remove(self._home)

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
            raise WorkspaceError(
                f"{step} in {self.path}: {_scrub(str(exc), self._token)}"
            ) from None


def prepare(
    forge: Forge,
    token: Token,
    spec: TaskSpec,
    identity: GitIdentity,
    root: Path,
    *,
    fork_timeout: float = FORK_TIMEOUT,
) -> Workspace:
    """Fork `spec.repo` to the node's account (once), clone the fork under `root`, and
    check out the task's branch from upstream's default branch as it is now.

    Raises ForgeError when the forge's API fails, WorkspaceError when git does (or the
    fork is not clonable within `fork_timeout` seconds).
    """
    deadline = time.monotonic() + fork_timeout
    upstream = forge.get_repository(spec.repo)
    fork = _wait_for_fork(forge, forge.fork(spec.repo), deadline)
    branch = branch_name(spec)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = f"{spec.repo.replace('/', '-')}-{spec.number}-"
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        git = _init(home, upstream.clone_url, fork.clone_url)
        try:
            _fetch_fork(git, token, fork.full_name, deadline, fork_timeout)
            base_commit = _fetch_base(git, token, upstream)
            git.branches.local.create(branch, git[base_commit].peel(pygit2.Commit), force=True)
            git.checkout(f"refs/heads/{branch}", strategy=CheckoutStrategy.FORCE)
        except pygit2.GitError as exc:
            cause = _scrub(str(exc), token)
            raise WorkspaceError(f"cloning {fork.full_name}: {cause}") from None
        finally:
            git.free()  # the Workspace opens its own handle
    except BaseException:
        _remove(home)
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
    )


def _wait_for_fork(forge: Forge, name: str, deadline: float) -> Repository:
    """The fork as the forge describes it; GitHub may not know a new fork for a moment."""
    return _retry_until(deadline, lambda: forge.get_repository(name), _missing_repository)


def _missing_repository(exc: Exception) -> bool:
    return isinstance(exc, ForgeError) and exc.kind is ErrorKind.NOT_FOUND


def _init(home: Path, upstream_url: str, fork_url: str) -> pygit2.Repository:
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


def _fetch_fork(
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
            isinstance(exc, pygit2.GitError) and not _refused(str(exc))
        )

    try:
        _retry_until(deadline, fetch, not_ready)
    except _TokenRefused:
        raise WorkspaceError(f"{fork} rejected this node's token") from None
    except (_NotReady, pygit2.GitError) as exc:
        cause = _scrub(str(exc), token)
        raise WorkspaceError(f"{fork} is not clonable after {timeout:g} s: {cause}") from None


def _fetch_base(git: pygit2.Repository, token: Token, upstream: Repository) -> pygit2.Oid:
    branch = upstream.default_branch
    tracking = f"refs/remotes/upstream/{branch}"
    try:
        _fetch(git, "upstream", token, [f"+refs/heads/{branch}:{tracking}"])
    except _TokenRefused:
        raise WorkspaceError(f"{upstream.full_name} rejected this node's token") from None
    if tracking not in git.references:
        raise WorkspaceError(f"{upstream.full_name} has no branch {branch} to start from")
    return git.references[tracking].peel(pygit2.Commit).id


def _fetch(git: pygit2.Repository, remote: str, token: Token, refspecs: list[str] | None) -> None:
    # public repositories need no token; private ones (and forks of them) ask for it
    git.remotes[remote].fetch(refspecs, callbacks=_Callbacks(token))


def _refused(git_error: str) -> bool:
    """Whether libgit2's error is the forge saying no: 401 or 403."""
    return re.search(r"\b40[13]\b", git_error) is not None


def _scrub(text: str, token: Token) -> str:
    return text.replace(token.reveal(), "***")


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


def _remove(path: Path) -> None:
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
