"""The node's Ed25519 identity key: created once, kept 0600, the same peer ID forever."""

from __future__ import annotations

import os
from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.crypto.serialization import deserialize_private_key
from libp2p.peer.id import ID

from bzzz.errors import BzzzError, ExitCode


class IdentityError(BzzzError):
    exit_code = ExitCode.CONFIG


def create_identity(path: Path) -> KeyPair:
    """Write a new key to `path` (which must not exist) with mode 0600."""
    key_pair = create_new_key_pair()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise IdentityError(f"{path} exists already; refusing to replace an identity") from None
    with os.fdopen(fd, "wb") as out:
        out.write(key_pair.private_key.serialize())
    return key_pair


def load_identity(path: Path) -> KeyPair:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(
            f"no identity key at {path}."
            f" Fix: run `bzzz init --home {path.parent} --name NODE_NAME`."
        ) from None
    if mode & 0o077:
        raise IdentityError(f"{path} can be read by others. Fix: chmod 600 {path}.")
    try:
        private_key = deserialize_private_key(data)
    except Exception:
        raise IdentityError(f"{path} does not hold a libp2p private key.") from None
    if private_key.get_type() is not KeyType.Ed25519:
        raise IdentityError(f"{path} holds a {private_key.get_type().name} key; Bzzz uses Ed25519.")
    return KeyPair(private_key, private_key.get_public_key())


def peer_id_of(key_pair: KeyPair) -> ID:
    return ID.from_pubkey(key_pair.public_key)
