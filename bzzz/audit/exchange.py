"""The audit log's stream protocol (`/bzzz/audit/1.0.0`): a peer asks a node for a page
of a log it holds (its own, or a replica of another node's) up to one of its signed
checkpoints, and gets the checkpoint, the entries, and the consistency proof that the
log up to the page's end is a prefix of the checkpoint's tree. Pure encoding and the
answering, over a store (blocking: called from a thread).

Request (JSON, at most MAX_REQUEST bytes):
    {"origin": peer ID, "size": the checkpoint's size (0: the latest),
     "from": the first entry wanted, "limit": entries wanted (0: only the proof)}
Reply (zlib-compressed JSON, at most MAX_REPLY bytes):
    {"checkpoint": signed text, "first": from, "entries": [canonical JSON, ...],
     "proof": [base64 hash, ...]}   (consistency from first + len(entries) to its size)
or {"error": "..."}.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass

from bzzz.audit.checkpoint import from_text
from bzzz.audit.merkle import HASH_SIZE, consistency_proof
from bzzz.audit.store import MAX_LEAF, AuditStore

MAX_REQUEST = 1024
MAX_REPLY = 8 * 1024 * 1024  # compressed; and as much again once inflated
PAGE_ENTRIES = 2000  # entries in one reply at most
PAGE_BYTES = 4 * 1024 * 1024  # of entries in one reply at most
MAX_PROOF = 64  # hashes: a tree of 2**63 leaves needs fewer


class ExchangeError(ValueError):
    """A request or reply that is not this protocol's."""


@dataclass(frozen=True)
class Request:
    origin: str
    size: int  # 0: the latest checkpoint
    start: int
    limit: int


@dataclass(frozen=True)
class Page:
    checkpoint: str
    start: int
    entries: list[bytes]
    proof: list[bytes]


def encode_request(request: Request) -> bytes:
    return json.dumps(
        {
            "origin": request.origin,
            "size": request.size,
            "from": request.start,
            "limit": request.limit,
        }
    ).encode()


def decode_request(data: bytes) -> Request:
    try:
        raw = json.loads(data)
        request = Request(raw["origin"], raw["size"], raw["from"], raw["limit"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ExchangeError(f"not an audit request: {exc}") from None
    if not isinstance(request.origin, str) or not 0 < len(request.origin) <= 128:
        raise ExchangeError("origin: not a peer ID")
    if not all(_count(value) for value in (request.size, request.start, request.limit)):
        raise ExchangeError("size, from and limit must be counts")
    return request


def encode_page(page: Page) -> bytes:
    return zlib.compress(
        json.dumps(
            {
                "checkpoint": page.checkpoint,
                "first": page.start,
                "entries": [leaf.decode() for leaf in page.entries],
                "proof": [base64.b64encode(h).decode() for h in page.proof],
            }
        ).encode(),
        level=1,
    )


def encode_error(text: str) -> bytes:
    return zlib.compress(json.dumps({"error": text[:300]}).encode())


def decode_page(data: bytes) -> Page:
    """A reply; ExchangeError for anything malformed, or the server's error."""
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(data, MAX_REPLY)
        if inflater.unconsumed_tail:
            raise ExchangeError(f"a reply of over {MAX_REPLY} bytes inflated")
        raw = json.loads(text)
    except (zlib.error, ValueError) as exc:
        raise ExchangeError(f"not an audit reply: {exc}") from None
    if not isinstance(raw, dict):
        raise ExchangeError("not an audit reply: not an object")
    if "error" in raw:
        raise ExchangeError(f"the peer says: {str(raw['error'])[:300]}")
    checkpoint, start = raw.get("checkpoint"), raw.get("first")
    entries, proof = raw.get("entries"), raw.get("proof")
    if not isinstance(checkpoint, str) or not isinstance(start, int) or not _count(start):
        raise ExchangeError("not an audit reply: no checkpoint or first entry")
    if not isinstance(entries, list) or len(entries) > PAGE_ENTRIES:
        raise ExchangeError(f"not an audit reply: entries not a list of at most {PAGE_ENTRIES}")
    if not all(isinstance(entry, str) and len(entry) <= MAX_LEAF for entry in entries):
        raise ExchangeError(f"not an audit reply: an entry not text of at most {MAX_LEAF}")
    if not isinstance(proof, list) or len(proof) > MAX_PROOF:
        raise ExchangeError(f"not an audit reply: proof not a list of at most {MAX_PROOF}")
    try:
        hashes = [base64.b64decode(h, validate=True) for h in proof]
    except (TypeError, binascii.Error):
        hashes = []
    if len(hashes) != len(proof) or any(len(h) != HASH_SIZE for h in hashes):
        raise ExchangeError("not an audit reply: proof not base64 hashes")
    return Page(checkpoint, start, [entry.encode() for entry in entries], hashes)


def answer(store: AuditStore, request: Request) -> bytes:
    """The reply to `request` from the log in `store` (blocking)."""
    text = store.latest_checkpoint() if request.size == 0 else store.checkpoint_at(request.size)
    if text is None:
        return encode_error(f"no checkpoint at size {request.size} of {request.origin}")
    size = from_text(text).size
    held = store.size()
    if request.start > size:
        return encode_error(f"entry {request.start} is past the checkpoint's {size}")
    end = min(size, held, request.start + min(request.limit, PAGE_ENTRIES))
    entries: list[bytes] = []
    total = 0
    for leaf in store.leaves(request.start, end):
        total += len(leaf)
        if total > PAGE_BYTES and entries:
            break
        entries.append(leaf)
    reached = request.start + len(entries)
    if 0 < reached < size:
        if held < size:
            return encode_error(f"this node holds {held} of the {size} entries: no proof")
        proof = consistency_proof(reached, size, store.leaf_hashes(size))
    else:
        proof = []
    return encode_page(Page(text, request.start, entries, proof))


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
