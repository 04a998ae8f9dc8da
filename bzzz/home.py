"""Creating a node's home directory: config.toml and the identity key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from libp2p.peer.id import ID

from bzzz.config import CONFIG_FILE, IDENTITY_FILE, ConfigError, load_settings, render_config
from bzzz.identity import create_identity, load_identity, peer_id_of
from bzzz.psk import write_psk

PSK_FILE = "swarm.key"


def init_home(
    home: Path,
    name: str,
    listen: Sequence[str] = (),
    bootstrap: Sequence[str] = (),
    *,
    private_network: bool = False,
    extra: dict[str, dict[str, Any]] | None = None,
    force: bool = False,
) -> ID:
    """Write HOME/config.toml and (once) HOME/identity.key; return the peer ID.

    An existing identity is kept: re-initialising never changes a node's peer ID.
    The written configuration is loaded back, so a bad value fails here, not at start.
    """
    config_path = home / CONFIG_FILE
    if config_path.exists() and not force:
        raise ConfigError(
            f"{config_path} exists already. Fix: edit it, or pass --force to rewrite it."
        )
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    values: dict[str, dict[str, Any]] = {"node": {"name": name}, "network": {}}
    if listen:
        values["network"]["listen"] = list(listen)
    if bootstrap:
        values["network"]["bootstrap"] = list(bootstrap)
    if private_network:
        if not (home / PSK_FILE).exists():
            write_psk(home / PSK_FILE)
        values["network"]["psk_file"] = PSK_FILE
    for section, entries in (extra or {}).items():
        values.setdefault(section, {}).update(entries)
    previous = config_path.read_text(encoding="utf-8") if config_path.exists() else None
    config_path.write_text(render_config(values), encoding="utf-8")
    try:
        load_settings(home, environ={})
    except ConfigError:
        if previous is None:
            config_path.unlink()
        else:
            config_path.write_text(previous, encoding="utf-8")
        raise
    identity_path = home / IDENTITY_FILE
    key_pair = (
        load_identity(identity_path) if identity_path.exists() else create_identity(identity_path)
    )
    return peer_id_of(key_pair)
