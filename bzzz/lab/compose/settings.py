"""What the compose lab's services share: where things live in the lab's image, the
settings its environment chooses, the node accounts and how their tokens are written."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FORGE_ROOT = Path("/lab/forge")
ACCOUNTS_DIR = Path("/lab/accounts")
PEER_HOME = Path("/var/lib/bzzz")
FORGE_PORT = 8080
MODEL_PORT = 11434
P2P_PORT = 4001
SERVICE = "peer"
SEEDED = "seeded.json"
USER_ID = GROUP_ID = (
    10000  # the image's user and group bzzz (compose/Dockerfile); peer-K: uid 10000+K
)
DEFAULT_ACCOUNTS = 8
WAIT_FOR_FORGE = 180.0
STOP_TIMEOUT = 30.0


class LabError(Exception):
    """The lab cannot start this service; the message says why and what to do."""


@dataclass(frozen=True)
class LabSettings:
    """What the compose file's environment chooses."""

    accounts: int = DEFAULT_ACCOUNTS
    forge_url: str = f"http://forge:{FORGE_PORT}"
    ollama_host: str = ""
    model: str = ""
    peer: str = ""
    bootstrap: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LabSettings:
        text = environ.get("BZZZ_LAB_ACCOUNTS", "").strip() or str(DEFAULT_ACCOUNTS)
        try:
            accounts = int(text)
        except ValueError:
            raise LabError(f"BZZZ_LAB_ACCOUNTS={text!r} is not a whole number") from None
        if not 1 <= accounts <= 1000:
            raise LabError(f"BZZZ_LAB_ACCOUNTS={accounts} is out of range: 1 to 1000")
        return cls(
            accounts=accounts,
            forge_url=(environ.get("BZZZ_LAB_FORGE_URL") or cls.forge_url).rstrip("/"),
            ollama_host=environ.get("OLLAMA_HOST", "").strip(),
            model=environ.get("BZZZ_LAB_MODEL", "").strip(),
            peer=environ.get("BZZZ_LAB_PEER", "").strip(),
            bootstrap=tuple(environ.get("BZZZ_LAB_BOOTSTRAP", "").split()),
        )

    @property
    def lab_model(self) -> bool:
        """No ollama named: the lab model server answers."""
        return not self.ollama_host

    @property
    def model_url(self) -> str:
        return self.ollama_host or f"http://model:{MODEL_PORT}"


def account_names(count: int) -> list[str]:
    return [f"{SERVICE}-{number}" for number in range(1, count + 1)]


def token_path(accounts_dir: Path, name: str) -> Path:
    return accounts_dir / f"{name}.token"


def write_secret(path: Path, text: str, mode: int = 0o600) -> None:
    """Write `text` to `path` with `mode`, atomically."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    partial.replace(path)


def say(text: str) -> None:
    print(f"bzzz-lab: {text}", flush=True)
