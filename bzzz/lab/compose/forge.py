"""The compose lab's `forge` service: seed the sample world once, then serve the forge."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bzzz.lab.compose.settings import (
    ACCOUNTS_DIR,
    FORGE_PORT,
    FORGE_ROOT,
    SEEDED,
    LabError,
    LabSettings,
    account_names,
    say,
    token_path,
    write_secret,
)
from bzzz.lab.sample import SAMPLE_OWNER, SAMPLE_REPO, sample_world


def seed_once(
    forge_root: Path, accounts_dir: Path, count: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Seed the sample world with `count` node accounts unless done already; what was
    seeded. The tokens are written first, the marker last: a seed that failed leaves
    nothing in the forge (one transaction) and is made again at the next start."""
    from bzzz.lab.forge import LocalForge, SeedError  # noqa: PLC0415 - peers need neither

    marker = accounts_dir / SEEDED
    if marker.exists():
        seeded: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
        if seeded.get("accounts") != count:
            say(
                f"the forge was seeded with {seeded.get('accounts')} node accounts, not "
                f"{count}: keeping them (docker compose down -v, then up, seeds anew)"
            )
        return seeded
    names = account_names(count)
    tokens = {name: "bzf_" + secrets.token_hex(20) for name in names}
    accounts_dir.mkdir(parents=True, exist_ok=True)
    for name, token in tokens.items():
        write_secret(token_path(accounts_dir, name), token, 0o640)  # for the group bzzz
    world = sample_world(names)
    world["users"] = [
        {**user, "token": tokens[user["login"]]} if user["login"] in tokens else user
        for user in world["users"]
    ]
    try:
        made = LocalForge(forge_root).seed(world)
    except SeedError as exc:
        raise LabError(
            f"cannot seed the forge in {forge_root}: {exc}. Fix: docker compose down -v "
            "(removes the lab's volumes), then up again."
        ) from None
    owner = next(user["token"] for user in made["users"] if user["login"] == SAMPLE_OWNER)
    write_secret(forge_root / f"{SAMPLE_OWNER}.token", owner)  # not shared with the peers
    seeded = {"accounts": count, "repository": SAMPLE_REPO, "logins": names}
    marker.write_text(json.dumps(seeded) + "\n", encoding="utf-8")
    say(f"seeded {SAMPLE_REPO} with {count} node accounts: {names[0]} .. {names[-1]}")
    return seeded


def forge_main(settings: LabSettings) -> int:
    seed_once(FORGE_ROOT, ACCOUNTS_DIR, settings.accounts, say=say)
    command = ["bzzz", "lab", "forge", "serve", "--root", str(FORGE_ROOT)]
    command += ["--host", "0.0.0.0", "--port", str(FORGE_PORT)]  # noqa: S104 - the lab network
    sys.stdout.flush()
    os.execvp(command[0], command)  # noqa: S606 - becomes the forge, signals and all
