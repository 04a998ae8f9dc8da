"""How a node meets git: the identity on its commits, and the token it fetches and pushes with.

libgit2 gets the token only from `TokenCallbacks`, never in a URL, config file, log or
error text (`scrub` takes it out of libgit2's messages); the callback refuses to answer
twice, so a rejected token fails at once instead of being offered again (libgit2 would
ask 15 times). `WorkspaceError` is the error of every git step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import ConfigLevel, CredentialType

from bzzz.config import Settings
from bzzz.errors import BzzzError
from bzzz.forge.token import Token

# GitHub ignores the user name when the password is a token; this name is the convention
# for tokens and Bzzz's local forge accepts it for any token's owner.
TOKEN_USER = "x-access-token"  # noqa: S105 - a user name, not a secret


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


class WorkspaceError(BzzzError):
    """A git step failed. The message never contains the token."""


class TokenRefused(WorkspaceError):
    """The forge asked for credentials again: it rejected the token."""


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


class TokenCallbacks(pygit2.RemoteCallbacks):
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
            raise TokenRefused("the forge rejected the token")
        if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise WorkspaceError(f"{url} wants no user and password: use an HTTP(S) forge")
        self._asked = True
        return pygit2.UserPass(TOKEN_USER, self._token.reveal())

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message is None:
            self.accepted.add(refname)
        else:
            self.rejected[refname] = message


def refused(git_error: str) -> bool:
    """Whether libgit2's error is the forge saying no: 401 or 403."""
    return re.search(r"\b40[13]\b", git_error) is not None


def scrub(text: str, token: Token) -> str:
    return text.replace(token.reveal(), "***")
