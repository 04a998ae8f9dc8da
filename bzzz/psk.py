"""Pre-shared keys for private networks: 32 random bytes as 64 hex digits.

Files in go-libp2p's swarm.key layout (`/key/swarm/psk/1.0.0/`, `/base16/`, key)
are read too, but py-libp2p's stream cipher differs from go-libp2p's: a private
Bzzz mesh admits Bzzz (py-libp2p) peers only.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from bzzz.errors import BzzzError, ExitCode

HEADER = "/key/swarm/psk/1.0.0/"


class PskError(BzzzError, ValueError):
    exit_code = ExitCode.CONFIG


def read_psk(path: Path) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise PskError(f"names {path}, which does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PskError(f"names {path}, which cannot be read ({type(exc).__name__})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines[:2] == [HEADER, "/base16/"]:
        lines = lines[2:]
    if len(lines) != 1 or not re.fullmatch(r"[0-9a-fA-F]{64}", lines[0]):
        raise PskError(f"names {path}, which does not hold 64 hex digits")
    if path.stat().st_mode & 0o077:
        raise PskError(f"names {path}, which others can read (chmod 600 {path})")
    return lines[0].lower()


def write_psk(path: Path) -> None:
    """Write a new random key, readable by its owner only."""
    key = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(f"{HEADER}\n/base16/\n{key}\n")
