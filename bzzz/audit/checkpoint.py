"""Signed checkpoints: a node's statement "my log had `size` entries with this root".

The text is a C2SP signed note (https://c2sp.org/signed-note) whose body is a C2SP
tlog-checkpoint (https://c2sp.org/tlog-checkpoint) with one extension line, exactly:

    <origin>\\n
    <size>\\n
    <base64 root>\\n
    <timestamp>\\n
    \\n
    \u2014 <origin> <base64(key ID || signature)>\\n

- origin: the signing node's libp2p peer ID (base58, "12D3KooW..."); it names the log
  and is also the note's key name;
- size: the number of leaves, decimal, no sign and no leading zeros;
- base64 root: the RFC 6962 root (merkle.py), 32 bytes, standard base64 with padding;
- timestamp: when the node signed, unix seconds, decimal like size; tlog-checkpoint
  allows lines after the third, so checkpoint readers that know no Bzzz still read the
  first three;
- the signature line: an em dash (U+2014), a space, the origin again, a space, and the
  base64 of the 4-byte key ID, SHA-256(origin || 0x0A || 0x01 || public key)[:4] as
  signed-note defines it for Ed25519, followed by the 64-byte Ed25519 signature of the
  body (the four lines, final newline included).

Exactly one signature line, the origin's own, is accepted for now: witnesses' cosignatures
would be further lines, and this parser would have to learn to skip them.

The key is the node's libp2p identity (bzzz.identity). A libp2p Ed25519 peer ID embeds the
public key (an identity multihash), so the checkpoint carries everything needed to check
it: `verify` trusts nothing but the origin. What that proves is that the holder of the
peer ID's key signed this root; whether that peer is one to listen to is the caller's
question. Signing text with the identity key cannot be confused with libp2p's own uses of
it: those sign data with fixed prefixes ("libp2p-pubsub:", "noise-libp2p-static-key:",
peer record envelopes), and a body starts with a peer ID.

Two validly signed checkpoints of one origin with one size and different roots are proof
that the node showed different histories to different peers (`equivocation`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from libp2p.crypto.keys import KeyType, PrivateKey, PublicKey
from libp2p.peer.id import ID

from bzzz.audit.merkle import HASH_SIZE

MAX_TEXT = 1024
"""The longest checkpoint text accepted, in characters; a real one is about 250."""
MAX_ORIGIN = 128
MAX_NUMBER = 2**63 - 1
"""Sizes and timestamps fit a signed 64-bit integer, as in other checkpoint readers."""
SIGNATURE_SIZE = 64
KEY_ID_SIZE = 4
_ED25519_NOTE_TYPE = b"\x01"
_DASH = "\u2014 "

_ORIGIN = re.compile(rf"[1-9A-HJ-NP-Za-km-z]{{1,{MAX_ORIGIN}}}")  # base58
_NUMBER = re.compile(r"0|[1-9][0-9]{0,18}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint; `verify` says whether the signature holds."""

    origin: str
    size: int
    root: bytes
    timestamp: int
    signature: bytes


def body(origin: str, size: int, root: bytes, timestamp: int) -> bytes:
    """The signed text: the four lines of the module docstring, UTF-8 (ASCII, in fact).

    Raises ValueError for fields the text format cannot carry back unchanged.
    """
    if not _ORIGIN.fullmatch(origin):
        raise ValueError(f"origin must be a base58 peer ID of at most {MAX_ORIGIN} characters")
    for name, value in (("size", size), ("timestamp", timestamp)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NUMBER:
            raise ValueError(f"{name} must be an integer from 0 to 2**63 - 1, got {value!r}")
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise ValueError(f"root must be {HASH_SIZE} bytes")
    encoded_root = base64.b64encode(root).decode("ascii")
    return f"{origin}\n{size}\n{encoded_root}\n{timestamp}\n".encode("ascii")


def sign(
    private_key: PrivateKey, origin: str, size: int, root: bytes, timestamp: int
) -> Checkpoint:
    """Sign a checkpoint with the node's identity key.

    Raises ValueError if the key is not Ed25519 or `origin` is not its peer ID: such a
    checkpoint could never verify, and failing here tells the caller why.
    """
    if private_key.get_type() is not KeyType.Ed25519:
        raise ValueError(f"checkpoints are signed with Ed25519, not {private_key.get_type().name}")
    own = ID.from_pubkey(private_key.get_public_key()).to_base58()
    if origin != own:
        raise ValueError(f"origin {origin} is not the signing key's peer ID {own}")
    signature = private_key.sign(body(origin, size, root, timestamp))
    return Checkpoint(origin, size, root, timestamp, signature)


def verify(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint is well formed and signed by the key in its origin."""
    public_key = origin_key(checkpoint.origin)
    if public_key is None or len(checkpoint.signature) != SIGNATURE_SIZE:
        return False
    try:
        signed = body(checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.timestamp)
    except ValueError:
        return False
    return public_key.verify(signed, checkpoint.signature)


def origin_key(origin: str) -> PublicKey | None:
    """The Ed25519 public key embedded in a peer ID, or None if it holds none.

    The peer ID must be the canonical one of its key (base58 of the identity multihash
    of the key's protobuf): another spelling of the same key would be another origin.
    """
    if not _ORIGIN.fullmatch(origin):
        return None
    try:
        peer_id = ID.from_base58(origin)
    except ValueError:
        return None
    public_key = peer_id.extract_public_key()
    if public_key is None or public_key.get_type() is not KeyType.Ed25519:
        return None
    if ID.from_pubkey(public_key).to_base58() != origin:
        return None
    return public_key


def key_id(origin: str, public_key: PublicKey) -> bytes:
    """The signed-note key ID of an Ed25519 key named `origin`: a hint, not a check."""
    material = origin.encode("utf-8") + b"\n" + _ED25519_NOTE_TYPE + public_key.to_bytes()
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE]


def to_text(checkpoint: Checkpoint) -> str:
    """The checkpoint as a signed note (the module docstring's format).

    Raises ValueError if a field cannot be written, or the origin holds no Ed25519 key
    (the signature line's key ID needs it); it does not check the signature.
    """
    public_key = origin_key(checkpoint.origin)
    if public_key is None:
        raise ValueError(f"origin {checkpoint.origin!r} is not an Ed25519 peer ID")
    if len(checkpoint.signature) != SIGNATURE_SIZE:
        raise ValueError(f"an Ed25519 signature has {SIGNATURE_SIZE} bytes")
    signed = body(checkpoint.origin, checkpoint.size, checkpoint.root, checkpoint.timestamp)
    blob = base64.b64encode(key_id(checkpoint.origin, public_key) + checkpoint.signature)
    return f"{signed.decode('ascii')}\n{_DASH}{checkpoint.origin} {blob.decode('ascii')}\n"


def from_text(text: str) -> Checkpoint:
    """Parse a checkpoint written by `to_text`, strictly: one spelling per checkpoint.

    Raises ValueError naming what is wrong. Parsing does not verify the signature; call
    `verify` on the result.
    """
    if len(text) > MAX_TEXT:
        raise ValueError(f"a checkpoint has at most {MAX_TEXT} characters, got {len(text)}")
    if not text.endswith("\n"):
        raise ValueError("a checkpoint ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 6 or lines[4] != "":
        raise ValueError("a checkpoint has four body lines, a blank line and one signature line")
    origin, size, encoded_root, timestamp, _, signature_line = lines
    if not _ORIGIN.fullmatch(origin):
        raise ValueError("line 1 (origin) is not a base58 peer ID")
    root = _decode_base64(encoded_root, "line 3 (root)")
    if len(root) != HASH_SIZE:
        raise ValueError(f"line 3 (root) must hold {HASH_SIZE} bytes, not {len(root)}")
    if not signature_line.startswith(_DASH):
        raise ValueError("the signature line starts with an em dash and a space")
    name, _, encoded_signature = signature_line[len(_DASH) :].partition(" ")
    if name != origin:
        raise ValueError("the signature line names another key than the origin")
    blob = _decode_base64(encoded_signature, "the signature")
    if len(blob) != KEY_ID_SIZE + SIGNATURE_SIZE:
        raise ValueError("the signature is not a 4-byte key ID and a 64-byte Ed25519 signature")
    public_key = origin_key(origin)
    if public_key is None:
        raise ValueError("line 1 (origin) is not the peer ID of an Ed25519 key")
    if blob[:KEY_ID_SIZE] != key_id(origin, public_key):
        raise ValueError("the signature's key ID is not the origin key's")
    return Checkpoint(
        origin=origin,
        size=_decode_number(size, "line 2 (size)"),
        root=root,
        timestamp=_decode_number(timestamp, "line 4 (timestamp)"),
        signature=blob[KEY_ID_SIZE:],
    )


def equivocation(a: Checkpoint, b: Checkpoint) -> bool:
    """Whether `a` and `b` prove their origin signed two histories: same origin, same
    size, different roots, both signatures valid."""
    return (
        a.origin == b.origin and a.size == b.size and a.root != b.root and verify(a) and verify(b)
    )


def _decode_number(text: str, what: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) > MAX_NUMBER:
        raise ValueError(f"{what} must be a decimal from 0 to 2**63 - 1 without leading zeros")
    return int(text)


def _decode_base64(text: str, what: str) -> bytes:
    """Standard base64 with padding, in its one canonical spelling."""
    if not _BASE64.fullmatch(text):
        raise ValueError(f"{what} is not base64")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError(f"{what} is not base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise ValueError(f"{what} is not in canonical base64")
    return data
