#!/usr/bin/env python3
"""Check a `bzzz audit export` offline, knowing nothing of Bzzz but docs/audit.md.

Usage: python3 audit_verify.py EXPORT.json [PEER_ID]

It needs only Python's standard library and an Ed25519 implementation (`cryptography`).
It checks that the checkpoint is signed by the key in its origin's peer ID (and that the
origin is PEER_ID, when given), and that every exported entry is in the checkpoint's
RFC 6962 tree by its inclusion proof. Exit 0 if all of that holds; 1, naming what does
not, otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# A libp2p Ed25519 peer ID: identity multihash (0x00, 36 bytes) of the protobuf
# PublicKey {Type: Ed25519 (1), Data: 32 bytes}.
PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + BASE58.index(char)
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")


def public_key_of(peer_id: str) -> bytes:
    raw = base58_decode(peer_id)
    if not raw.startswith(PEER_ID_PREFIX) or len(raw) != len(PEER_ID_PREFIX) + 32:
        raise ValueError(f"{peer_id} is not an Ed25519 peer ID")
    return raw[len(PEER_ID_PREFIX) :]


def read_checkpoint(text: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a checkpoint whose signature holds; ValueError if not."""
    body, separator, signature_line = text.partition("\n\n")
    lines = body.split("\n")
    if not separator or len(lines) != 4:
        raise ValueError("not a checkpoint: four lines, a blank line, a signature")
    origin, size, root, _timestamp = lines
    dash, name, blob = signature_line.rstrip("\n").split(" ")
    if dash != "\u2014" or name != origin:
        raise ValueError("the signature line does not name the origin")
    key = public_key_of(origin)
    signed = base64.b64decode(blob, validate=True)
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + key).digest()[:4]
    if signed[:4] != key_id or len(signed) != 68:
        raise ValueError("the signature is not by the origin's key")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signed[4:], (body + "\n").encode())
    except InvalidSignature:
        raise ValueError("the checkpoint's signature does not hold") from None
    return origin, int(size), base64.b64decode(root, validate=True)


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def in_tree(entry: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: verifying an inclusion proof."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    result = hashlib.sha256(b"\x00" + entry).digest()
    for sibling in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            result = node(sibling, result)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            result = node(result, sibling)
        fn, sn = fn // 2, sn // 2
    return sn == 0 and result == root


def problems(exported: dict[str, object], peer_id: str = "") -> list[str]:
    text = exported.get("checkpoint")
    if exported.get("format") != "bzzz-audit-export/1" or not isinstance(text, str):
        return ["not a bzzz audit export with a checkpoint"]
    try:
        origin, size, root = read_checkpoint(text)
    except ValueError as exc:
        return [str(exc)]
    found = [f"the log is {origin}'s, not {peer_id}'s"] if peer_id and origin != peer_id else []
    entries = exported.get("entries")
    for item in entries if isinstance(entries, list) else []:
        proof = [base64.b64decode(h, validate=True) for h in item["proof"]]
        if not in_tree(item["entry"].encode(), item["index"], size, proof, root):
            found.append(f"entry {item['index']} is not in the checkpoint's tree")
    return found


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as file:
        exported = json.load(file)
    found = problems(exported, argv[2] if len(argv) > 2 else "")
    for problem in found:
        print(f"FAIL  {problem}")
    if not found:
        print(f"ok    {len(exported['entries'])} entries in the signed checkpoint's tree")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
