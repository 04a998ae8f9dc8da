"""RFC 6962 Merkle tree hashes and proofs, as pure functions over leaf hashes.

The tree is Certificate Transparency's (RFC 6962 section 2.1, kept by RFC 9162): a leaf
hashes as SHA-256(0x00 || data), an interior node as SHA-256(0x01 || left || right), the
two prefixes keeping a leaf from passing for a node; a tree of n > 1 leaves splits at k,
the largest power of two below n, into a full left subtree of k leaves and a right one
of n - k. Following the RFC exactly, rather than some other Merkle shape, means any
RFC 6962 verifier (Go's transparency-dev/merkle, Sigstore's clients, ...) can check our
proofs, and the RFC's published test vectors can check this code.

Indices are 0-based, as in the RFC (pymerkle, for one, counts from 1).

Everything past `root` works on leaf *hashes*, not leaf data: a log stores each entry's
leaf hash once, and proofs over it never rehash entries. `leaf_hashes` turns data into
them. Every function that takes a sequence of leaf hashes and a size reads the first
`size` of them, so one stored list serves every past size of the tree.

Cost: a root or a proof over n leaves hashes each interior node at most once, O(n)
hashes with no recursion (about n SHA-256 calls, 0.1 s for 100,000 leaves); a proof
holds O(log n) hashes and verifying it costs O(log n). Nothing is cached: a caller that
proves often over a large log can keep subtree roots itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves: SHA-256 of the empty string (RFC 6962 2.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one leaf."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    """The leaf hash of each leaf, in order: what the functions on hashes take."""
    return [leaf_hash(data) for data in leaves]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]), the Merkle tree hash of the leaf data `leaves`."""
    return root_of_hashes(leaf_hashes(leaves))


def root_of_hashes(hashes: Sequence[bytes], size: int | None = None) -> bytes:
    """The Merkle tree hash of the first `size` leaf hashes (all of them by default)."""
    size = len(hashes) if size is None else size
    _check_hashes(hashes, size)
    return _subtree(hashes, 0, size) if size else EMPTY_ROOT


class Frontier:
    """A growing tree's right edge: the roots of its full subtrees, largest first (a
    "compact range" from 0), so that appending a leaf and taking the root cost O(log n)
    and memory O(log n), however long the log. RFC 6962's root is these roots folded
    from the right: MTH of 7 leaves = H(MTH[0:4], H(MTH[4:6], MTH[6:7]))."""

    def __init__(self) -> None:
        self.size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (leaves under it, its hash)

    @classmethod
    def of(cls, hashes: Sequence[bytes]) -> Frontier:
        frontier = cls()
        frontier.extend(hashes)
        return frontier

    def copy(self) -> Frontier:
        other = Frontier()
        other.size, other._peaks = self.size, list(self._peaks)
        return other

    def extend(self, hashes: Sequence[bytes]) -> None:
        _check_hashes(hashes, len(hashes))
        peaks = self._peaks
        for value in hashes:
            leaves, node = 1, value
            while peaks and peaks[-1][0] == leaves:
                left_leaves, left = peaks.pop()
                leaves, node = left_leaves + leaves, node_hash(left, node)
            peaks.append((leaves, node))
        self.size += len(hashes)

    def root(self) -> bytes:
        if not self._peaks:
            return EMPTY_ROOT
        node = self._peaks[-1][1]
        for _, left in reversed(self._peaks[:-1]):
            node = node_hash(left, node)
        return node


def inclusion_proof(index: int, size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[size]) of RFC 6962 2.1.1: the hashes that, with leaf `index`'s own
    hash, rebuild the root of the tree of the first `size` leaves; the deepest first.

    Raises ValueError unless 0 <= index < size <= len(leaf_hashes).
    """
    _check_hashes(leaf_hashes, size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of {size} leaves")
    # Walk down from the root; at each split the subtree without the leaf is on the path.
    path: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        middle = low + _split(high - low)
        if index < middle:
            path.append(_subtree(leaf_hashes, middle, high))
            high = middle
        else:
            path.append(_subtree(leaf_hashes, low, middle))
            low = middle
    path.reverse()
    return path


def inclusion_proofs(
    indices: Sequence[int], size: int, leaf_hashes: Sequence[bytes]
) -> list[list[bytes]]:
    """`inclusion_proof` for many leaves of one tree at once: the tree's levels are built
    once (O(size)), then each proof costs O(log size), where one call each would cost
    O(size) per leaf. A level's odd last node has no sibling: it goes up unchanged, as
    in `_subtree`, which is the RFC's tree."""
    _check_hashes(leaf_hashes, size)
    levels = [list(leaf_hashes[:size])]
    while len(levels[-1]) > 1:
        level = levels[-1]
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        levels.append(paired + ([level[-1]] if len(level) % 2 else []))
    proofs = []
    for index in indices:
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        proof, position = [], index
        for level in levels[:-1]:
            sibling = position ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            position >>= 1
        proofs.append(proof)
    return proofs


def consistency_proof(old_size: int, new_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 6962 2.1.2: the hashes that show the tree of
    the first `old_size` leaves is a prefix of the tree of the first `new_size` leaves.

    Empty when old_size is 0 or equals new_size (there is nothing to prove). Raises
    ValueError unless 0 <= old_size <= new_size <= len(leaf_hashes).
    """
    _check_hashes(leaf_hashes, new_size)
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[low:high], whole), unrolled: `whole` stays true while the old tree's
    # root is a node of the new tree that the verifier already knows (its old root).
    proof: list[bytes] = []
    low, high, old, whole = 0, new_size, old_size, True
    while old != high - low:
        middle = low + _split(high - low)
        if old <= middle - low:
            proof.append(_subtree(leaf_hashes, middle, high))
            high = middle
        else:
            proof.append(_subtree(leaf_hashes, low, middle))
            old -= middle - low
            low = middle
            whole = False
    if not whole:
        proof.append(_subtree(leaf_hashes, low, high))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether `proof` shows the leaf with hash `leaf_hash` at `index` in the tree of
    `size` leaves whose root is `root` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size or not _all_hashes(leaf_hash, root, *proof):
        return False
    # fn walks up from the leaf, sn from the tree's last leaf; where they meet (fn == sn)
    # the right edge's missing siblings are skipped.
    fn, sn = index, size - 1
    computed = leaf_hash
    for sibling in proof:
        if sn == 0:
            return False  # a longer proof than the tree is high
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and computed == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether `proof` shows the tree of `old_size` leaves with root `old_root` is a
    prefix of the tree of `new_size` leaves with root `new_root` (RFC 9162 2.1.4.2).

    For an old size of 0, or equal sizes, the proof must be empty; stricter than the
    RFC, which leaves those cases to the caller, the old root of an empty tree must then
    be EMPTY_ROOT, and equal sizes need equal roots.
    """
    if not 0 <= old_size <= new_size or not _all_hashes(old_root, new_root, *proof):
        return False
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)  # the old tree is a full subtree: its root starts the walk
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_computed = new_computed = path[0]
    for sibling in path[1:]:
        if sn == 0:
            return False  # a longer proof than the tree is high
        if fn & 1 or fn == sn:
            old_computed = node_hash(sibling, old_computed)
            new_computed = node_hash(sibling, new_computed)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_computed = node_hash(new_computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and old_computed == old_root and new_computed == new_root


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): the size of the left subtree."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree(hashes: Sequence[bytes], low: int, high: int) -> bytes:
    """MTH(D[low:high]) for low < high, level by level from the leaves up.

    Pairing neighbours and carrying a level's odd last node up unchanged builds exactly
    the RFC's tree (left subtrees full, splits at powers of two) without recursion.
    """
    level = list(hashes[low:high])
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _check_hashes(hashes: Sequence[bytes], size: int) -> None:
    """Reject a size beyond the hashes and anything that is not a 32-byte hash: passing
    leaf data where leaf hashes belong would otherwise give a wrong root silently."""
    if not 0 <= size <= len(hashes):
        raise ValueError(f"a tree of {size} leaves needs {size} leaf hashes, got {len(hashes)}")
    if not all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes[:size]):
        raise ValueError(f"leaf hashes must be {HASH_SIZE}-byte SHA-256 digests")


def _all_hashes(*values: object) -> bool:
    return all(isinstance(v, bytes) and len(v) == HASH_SIZE for v in values)
