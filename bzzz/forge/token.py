"""The node's forge token: from the environment or a file, never printed.

Where it comes from, first found wins:
1. the environment variable BZZZ_FORGE_TOKEN;
2. the file named by forge.token_file (readable by its owner only);
3. systemd's credential `forge-token` ($CREDENTIALS_DIRECTORY/forge-token,
   from `LoadCredential=forge-token:/path`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bzzz.errors import BzzzError, ExitCode

TOKEN_ENV = "BZZZ_FORGE_TOKEN"  # noqa: S105 - the variable's name, not a token
CREDENTIAL_NAME = "forge-token"


class TokenError(BzzzError):
    exit_code = ExitCode.CONFIG


class Token:
    """A secret string that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise TokenError("a forge token must be one word without spaces")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Token(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def load_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> Token | None:
    """The configured token, or None if none is configured anywhere."""
    environ = os.environ if environ is None else environ
    if environ.get(TOKEN_ENV):
        return Token(environ[TOKEN_ENV])
    if token_file is not None:
        return Token(_read_private(token_file))
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials and (Path(credentials) / CREDENTIAL_NAME).is_file():
        # systemd makes the credential private to the service; its mode is its own.
        return Token((Path(credentials) / CREDENTIAL_NAME).read_text(encoding="utf-8"))
    return None


def load_secret(
    path: Path | None, key: str, credential: str, environ: Mapping[str, str] | None = None
) -> Token | None:
    """Another secret of the node (a webhook's header, Hive's key): the file the setting
    `key` names, else systemd's credential `credential`; None if neither is there."""
    environ = os.environ if environ is None else environ
    try:
        if path is not None:
            return Token(_read_private(path, key))
        credentials = environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / credential).is_file():
            return Token((Path(credentials) / credential).read_text(encoding="utf-8"))
    except TokenError as exc:
        if str(exc).startswith(key):
            raise
        raise TokenError(f"{key}: the secret must be one word without spaces") from None
    return None


def _read_private(path: Path, key: str = "forge.token_file") -> str:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenError(f"{key} names {path}, which does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(
            f"{key} names {path}, which cannot be read ({type(exc).__name__})"
        ) from None
    if mode & 0o077:
        raise TokenError(f"{key} {path} can be read by others (chmod 600 {path})")
    return text
