"""Signed checkpoints (bzzz.audit.checkpoint) with real libp2p Ed25519 identities: checked
from the peer ID alone, written and read back as signed notes, equivocation caught."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path

import pytest
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import create_new_key_pair as create_secp256k1_key_pair
from libp2p.peer.id import ID

from bzzz.audit.checkpoint import (
    MAX_TEXT,
    Checkpoint,
    body,
    equivocation,
    from_text,
    key_id,
    origin_key,
    sign,
    to_text,
    verify,
)
from bzzz.audit.merkle import leaf_hashes, root_of_hashes
from bzzz.identity import create_identity, load_identity, peer_id_of

HASHES = leaf_hashes([f"entry {i}".encode() for i in range(10)])
ROOT = root_of_hashes(HASHES)
OTHER_ROOT = root_of_hashes(HASHES[:9] + HASHES[:1])
NOW = 1_767_225_600


@pytest.fixture
def node(tmp_path: Path) -> KeyPair:
    create_identity(tmp_path / "identity.key")
    return load_identity(tmp_path / "identity.key")


@pytest.fixture
def other(tmp_path: Path) -> KeyPair:
    return create_identity(tmp_path / "other.key")


def _origin(key_pair: KeyPair) -> str:
    return peer_id_of(key_pair).to_base58()


def _signed(key_pair: KeyPair, size: int = 10, root: bytes = ROOT) -> Checkpoint:
    return sign(key_pair.private_key, _origin(key_pair), size, root, NOW)


def test_a_signed_checkpoint_verifies_from_its_peer_id_alone(node: KeyPair) -> None:
    checkpoint = _signed(node)
    assert checkpoint.origin.startswith("12D3KooW")
    assert verify(checkpoint)
    # Nothing but the origin string is needed: the key comes out of the peer ID.
    key = origin_key(checkpoint.origin)
    assert key is not None
    assert key.to_bytes() == node.public_key.to_bytes()
    assert key.verify(body(checkpoint.origin, 10, ROOT, NOW), checkpoint.signature)


def test_another_keys_signature_or_origin_fails(node: KeyPair, other: KeyPair) -> None:
    mine, theirs = _signed(node), _signed(other)
    assert verify(theirs)
    assert not verify(dataclasses.replace(theirs, origin=mine.origin))
    assert not verify(dataclasses.replace(mine, signature=theirs.signature))
    with pytest.raises(ValueError, match="not the signing key's peer ID"):
        sign(other.private_key, mine.origin, 10, ROOT, NOW)


def test_any_changed_field_fails(node: KeyPair) -> None:
    checkpoint = _signed(node)
    flipped = bytes([checkpoint.root[0] ^ 1]) + checkpoint.root[1:]
    signature = bytearray(checkpoint.signature)
    signature[10] ^= 0x80
    for changed in (
        dataclasses.replace(checkpoint, root=flipped),
        dataclasses.replace(checkpoint, root=checkpoint.root[:-1]),
        dataclasses.replace(checkpoint, size=11),
        dataclasses.replace(checkpoint, size=-1),
        dataclasses.replace(checkpoint, timestamp=NOW + 1),
        dataclasses.replace(checkpoint, signature=bytes(signature)),
        dataclasses.replace(checkpoint, signature=checkpoint.signature[:-1]),
        dataclasses.replace(checkpoint, signature=b""),
        dataclasses.replace(checkpoint, origin=checkpoint.origin + "1"),
        dataclasses.replace(checkpoint, origin="not a peer id"),
        dataclasses.replace(checkpoint, origin=""),
    ):
        assert not verify(changed), changed


def test_origins_without_an_ed25519_key_do_not_verify() -> None:
    secp = create_secp256k1_key_pair()
    origin = ID.from_pubkey(secp.public_key).to_base58()
    assert origin_key(origin) is None  # a key inside, but not Ed25519
    # An RSA-style peer ID (a SHA-256 multihash) holds no key at all.
    assert origin_key("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N") is None
    with pytest.raises(ValueError, match="Ed25519"):
        sign(secp.private_key, origin, 1, ROOT, NOW)


def test_text_round_trip_is_the_documented_signed_note(node: KeyPair) -> None:
    checkpoint = _signed(node)
    text = to_text(checkpoint)
    origin = checkpoint.origin
    encoded_root = base64.b64encode(ROOT).decode()
    key = origin_key(origin)
    assert key is not None
    encoded_signature = base64.b64encode(key_id(origin, key) + checkpoint.signature).decode()
    assert text == (f"{origin}\n10\n{encoded_root}\n{NOW}\n\n\u2014 {origin} {encoded_signature}\n")
    assert from_text(text) == checkpoint
    assert verify(from_text(text))
    assert len(text) < MAX_TEXT // 2


def test_the_key_id_is_signed_notes_for_ed25519(node: KeyPair) -> None:
    origin = _origin(node)
    raw = node.public_key.to_bytes()
    assert len(raw) == 32
    assert (
        key_id(origin, node.public_key)
        == (hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4])
    )


def _malformed(text: str, origin: str, other_origin: str) -> list[str]:
    """Texts one edit away from a good one, each of which must be refused."""
    lines = text.split("\n")  # 4 body lines, "", the signature line, "" after the last \n
    sig_name, _, sig_blob = lines[5].removeprefix("\u2014 ").partition(" ")
    blob = base64.b64decode(sig_blob)

    def edited(index: int, line: str) -> str:
        return "\n".join([*lines[:index], line, *lines[index + 1 :]])

    wrong_key_id = base64.b64encode(bytes([blob[0] ^ 1]) + blob[1:]).decode()
    return [
        "",
        "\n",
        text[:-1],  # no final newline
        text + "\n",
        text.replace("\n", "\r\n"),
        text.replace("\n\n", "\n"),  # no blank line
        text + lines[5] + "\n",  # two signature lines
        " " + text,
        edited(0, ""),
        edited(0, "not-base58-0OIl"),
        edited(0, origin + " "),
        edited(1, "010"),  # leading zero
        edited(1, "-1"),
        edited(1, "+1"),
        edited(1, "1_0"),
        edited(1, "\u0661\u0660"),  # Arabic-Indic digits that int() would take
        edited(1, str(2**63)),
        edited(1, ""),
        edited(2, lines[2].rstrip("=")),  # unpadded
        edited(2, base64.b64encode(ROOT[:31]).decode()),  # 31 bytes
        edited(2, base64.urlsafe_b64encode(b"\xff" * 32).decode()),
        edited(2, lines[2][:-2] + "B="),  # non-canonical trailing bits
        edited(3, "1.5"),
        edited(3, ""),
        edited(5, lines[5].replace("\u2014", "-")),
        edited(5, lines[5].replace("\u2014 ", "\u2014")),
        edited(5, f"\u2014 {other_origin} {sig_blob}"),  # another key's name
        edited(5, f"\u2014 {sig_name} {sig_blob[:-4]}"),  # a short signature
        edited(5, f"\u2014 {sig_name} {sig_blob} extra"),
        edited(5, f"\u2014 {sig_name} {wrong_key_id}"),
        edited(5, f"\u2014 {sig_name}"),
        text.replace(origin, other_origin),  # an origin whose key ID does not match
        text + "x" * MAX_TEXT,
    ]


def test_malformed_texts_are_refused(node: KeyPair, other: KeyPair) -> None:
    text = to_text(_signed(node))
    for bad in _malformed(text, _origin(node), _origin(other)):
        assert bad != text
        with pytest.raises(ValueError):  # noqa: PT011
            from_text(bad)


def test_well_formed_texts_with_bad_signatures_parse_but_do_not_verify(node: KeyPair) -> None:
    checkpoint = _signed(node)
    text = to_text(checkpoint)
    lines = text.split("\n")
    lines[1] = "11"
    parsed = from_text("\n".join(lines))
    assert parsed.size == 11
    assert not verify(parsed)


def test_unwritable_checkpoints_are_refused(node: KeyPair) -> None:
    checkpoint = _signed(node)
    for bad in (
        dataclasses.replace(checkpoint, origin="QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"),
        dataclasses.replace(checkpoint, root=b"short"),
        dataclasses.replace(checkpoint, size=2**63),
        dataclasses.replace(checkpoint, timestamp=-1),
        dataclasses.replace(checkpoint, signature=b"\x00" * 63),
    ):
        with pytest.raises(ValueError):  # noqa: PT011
            to_text(bad)
    with pytest.raises(ValueError, match="root"):
        sign(node.private_key, checkpoint.origin, 1, b"\x00" * 31, NOW)
    with pytest.raises(ValueError, match="size"):
        sign(node.private_key, checkpoint.origin, True, ROOT, NOW)


def test_equivocation_is_two_signed_roots_for_one_size(node: KeyPair, other: KeyPair) -> None:
    honest, forked = _signed(node), _signed(node, root=OTHER_ROOT)
    assert equivocation(honest, forked)
    assert equivocation(forked, honest)
    assert not equivocation(honest, honest)
    assert not equivocation(honest, _signed(node, size=11, root=OTHER_ROOT))  # a later size
    assert not equivocation(honest, _signed(other, root=OTHER_ROOT))  # another node's log
    # A forgery is no proof against the node: both must be validly signed.
    forged = dataclasses.replace(forked, signature=_signed(other, root=OTHER_ROOT).signature)
    assert not equivocation(honest, forged)
    # And the proof survives the trip through text.
    assert equivocation(from_text(to_text(honest)), from_text(to_text(forked)))
