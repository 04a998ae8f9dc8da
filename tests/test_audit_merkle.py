"""RFC 6962 Merkle trees (bzzz.audit.merkle) against published vectors and the RFC's own
recursive definitions, and canonical entries (bzzz.audit.entry), the trees' leaves.

The vectors are Certificate Transparency's: the eight leaves, roots and proofs of the
reference tests, as kept in transparency-dev/merkle's proof/verify_test.go (its
inclusion vectors count leaves from 1; here from 0), and the node layouts of its
proof/proof_test.go, written here as ranges of leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bzzz.audit.entry import EntryError, canonical
from bzzz.audit.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    inclusion_proofs,
    leaf_hash,
    leaf_hashes,
    node_hash,
    root,
    root_of_hashes,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
HASHES = leaf_hashes(LEAVES)

# ROOTS[n - 1] is the root of the first n leaves.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def _hexes(*values: str) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# (0-based index, size, path)
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _hexes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _hexes(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _hexes("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _hexes(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _hexes(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _hexes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _hexes(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _hexes(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _span(low: int, high: int) -> bytes:
    """The root of LEAVES[low:high]: a node of the tree, named by the leaves under it."""
    return root(LEAVES[low:high])


# Proof layouts as nodes of the tree (transparency-dev/merkle proof/proof_test.go):
# (index or old size, size, the leaf ranges of the proof's nodes in order).
INCLUSION_LAYOUTS = [
    (0, 2, [(1, 2)]),
    (1, 3, [(0, 1), (2, 3)]),
    (0, 7, [(1, 2), (2, 4), (4, 7)]),
    (3, 7, [(2, 3), (0, 2), (4, 7)]),
    (4, 7, [(5, 6), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (0, 4)]),
    (3, 5, [(2, 3), (0, 2), (4, 5)]),
    (4, 6, [(5, 6), (0, 4)]),
]
CONSISTENCY_LAYOUTS = [
    (1, 2, [(1, 2)]),
    (1, 6, [(1, 2), (2, 4), (4, 6)]),
    (2, 3, [(2, 3)]),
    (2, 8, [(2, 4), (4, 8)]),
    (3, 7, [(2, 3), (3, 4), (0, 2), (4, 7)]),
    (4, 7, [(4, 7)]),
    (5, 7, [(4, 5), (5, 6), (6, 7), (0, 4)]),
    (6, 7, [(4, 6), (6, 7), (0, 4)]),
    (7, 8, [(6, 7), (7, 8), (4, 6), (0, 4)]),
    (3, 6, [(2, 3), (3, 4), (0, 2), (4, 6)]),
]


# The RFC's definitions (RFC 6962 2.1), transcribed literally on leaf data, slow and clear.
def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _split(len(d))
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _split(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [_mth(d)]
    k = _split(len(d))
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _data(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    tampered = list(proof)
    tampered[i] = bytes([tampered[i][0] ^ 8]) + tampered[i][1:]
    return tampered


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT == root_of_hashes([])


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_reference_vectors(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size - 1]
    assert root_of_hashes(HASHES, size) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_the_reference_vectors(
    index: int, size: int, path: list[bytes]
) -> None:
    assert inclusion_proof(index, size, HASHES) == path
    assert verify_inclusion(HASHES[index], index, size, path, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_the_reference_vectors(
    old: int, new: int, proof: list[bytes]
) -> None:
    assert consistency_proof(old, new, HASHES) == proof
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


@pytest.mark.parametrize(("index", "size", "spans"), INCLUSION_LAYOUTS)
def test_inclusion_proofs_hold_the_reference_nodes(
    index: int, size: int, spans: list[tuple[int, int]]
) -> None:
    assert inclusion_proof(index, size, HASHES) == [_span(a, b) for a, b in spans]


@pytest.mark.parametrize(("old", "new", "spans"), CONSISTENCY_LAYOUTS)
def test_consistency_proofs_hold_the_reference_nodes(
    old: int, new: int, spans: list[tuple[int, int]]
) -> None:
    assert consistency_proof(old, new, HASHES) == [_span(a, b) for a, b in spans]


def _inclusion_tampers(
    index: int, size: int, path: list[bytes], top: bytes, leaf: bytes
) -> list[tuple[bytes, int, int, list[bytes], bytes]]:
    """Changed arguments that must fail, after transparency-dev/merkle's probes."""
    probes = [
        (leaf, index - 1, size, path, top),
        (leaf, index + 1, size, path, top),
        (leaf, index ^ 2, size, path, top),
        (leaf, index, size * 2, path, top),
        (leaf, index, size // 2, path, top),
        (leaf_hash(b"wrong leaf"), index, size, path, top),
        (leaf, index, size, path, EMPTY_ROOT),
        (leaf, index, size, path, SOME_HASH),
        (leaf, index, size, [*path, b""], top),
        (leaf, index, size, [*path, top], top),
        (leaf, index, size, [b"", *path], top),
        (leaf, index, size, [top, *path], top),
    ]
    probes += [(leaf, index, size, _flip(path, i), top) for i in range(len(path))]
    if path:
        probes.append((leaf, index, size, path[:-1], top))
    if len(path) > 1:
        probes.append((leaf, index, size, [path[0], SOME_HASH, *path[1:]], top))
    return probes


def _consistency_tampers(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[int, int, bytes, bytes, list[bytes]]]:
    probes = [
        (old - 1, new, old_root, new_root, proof),
        (old + 1, new, old_root, new_root, proof),
        (old ^ 2, new, old_root, new_root, proof),
        (old, new * 2, old_root, new_root, proof),
        (old, new // 2, old_root, new_root, proof),
        (old, new, leaf_hash(b"wrong"), new_root, proof),
        (old, new, old_root, leaf_hash(b"wrong"), proof),
        (old, new, new_root, old_root, proof),
        (old, new, old_root, new_root, []),
        (old, new, old_root, new_root, [*proof, b""]),
        (old, new, old_root, new_root, [*proof, old_root]),
        (old, new, old_root, new_root, [*proof, new_root]),
        (old, new, old_root, new_root, [b"", *proof]),
        (old, new, old_root, new_root, [old_root, *proof]),
        (old, new, old_root, new_root, [new_root, *proof]),
        (old, new, old_root, new_root, [proof[0], *proof]),
        (old, new, old_root, new_root, proof[:-1]),
    ]
    return probes + [(old, new, old_root, new_root, _flip(proof, i)) for i in range(len(proof))]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS[1:])
def test_tampered_reference_inclusion_proofs_fail(index: int, size: int, path: list[bytes]) -> None:
    for probe in _inclusion_tampers(index, size, path, ROOTS[size - 1], HASHES[index]):
        assert not verify_inclusion(*probe), probe


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_tampered_reference_consistency_proofs_fail(old: int, new: int, proof: list[bytes]) -> None:
    for probe in _consistency_tampers(old, new, ROOTS[old - 1], ROOTS[new - 1], proof):
        assert not verify_consistency(*probe), probe


def test_every_inclusion_proof_up_to_64_leaves_is_the_rfcs_and_verifies() -> None:
    data = _data(64)
    hashes = leaf_hashes(data)
    for size in range(1, 65):
        top = root_of_hashes(hashes, size)
        assert top == _mth(data[:size])
        for index in range(size):
            path = inclusion_proof(index, size, hashes)
            assert path == _path(index, data[:size])
            assert verify_inclusion(hashes[index], index, size, path, top)
            for i in range(len(path)):
                assert not verify_inclusion(hashes[index], index, size, _flip(path, i), top)
            if size > 1:  # in a tree of one leaf, the root is the leaf's hash
                assert not verify_inclusion(hashes[index], index, size, path, hashes[index])
                other = (index + 1) % size
                assert not verify_inclusion(hashes[other], index, size, path, top)
                assert not verify_inclusion(hashes[index], other, size, path, top)
                assert not verify_inclusion(hashes[index], index, size * 2, path, top)


def test_every_consistency_proof_up_to_64_leaves_is_the_rfcs_and_verifies() -> None:
    data = _data(64)
    hashes = leaf_hashes(data)
    roots = [root_of_hashes(hashes, n) for n in range(65)]
    for new in range(1, 65):
        for old in range(1, new + 1):
            proof = consistency_proof(old, new, hashes)
            assert proof == _subproof(old, data[:new], True)
            assert verify_consistency(old, new, roots[old], roots[new], proof)
            if old == new:
                assert proof == []
                assert not verify_consistency(old, new, roots[old], SOME_HASH, proof)
                continue
            assert not verify_consistency(old, new, roots[old - 1], roots[new], proof)
            assert not verify_consistency(old, new, roots[old], roots[new - 1], proof)
            assert not verify_consistency(old, new * 2, roots[old], roots[new], proof)
            assert not verify_consistency(old, new, roots[old], roots[new], proof[:-1])
            for i in range(len(proof)):
                assert not verify_consistency(old, new, roots[old], roots[new], _flip(proof, i))


def test_the_empty_tree_and_equal_sizes_need_empty_proofs() -> None:
    assert consistency_proof(0, 8, HASHES) == []
    assert verify_consistency(0, 8, EMPTY_ROOT, ROOTS[7], [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, ROOTS[0], [])
    assert not verify_consistency(0, 8, ROOTS[0], ROOTS[7], [])  # a non-empty "empty" root
    assert not verify_consistency(0, 8, EMPTY_ROOT, ROOTS[7], [EMPTY_ROOT])
    assert not verify_consistency(1, 1, ROOTS[0], ROOTS[0], [EMPTY_ROOT])
    assert not verify_consistency(1, 1, ROOTS[0], ROOTS[1], [])
    assert not verify_consistency(2, 1, ROOTS[1], ROOTS[0], [])  # back in time
    assert not verify_consistency(1, 2, ROOTS[0], ROOTS[1], [])  # a proof is needed
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 1)):
        assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    single = leaf_hash(b"data")
    assert verify_inclusion(single, 0, 1, [], single)
    assert not verify_inclusion(single, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], single)


@pytest.mark.parametrize(
    "call",
    [
        lambda: inclusion_proof(8, 8, HASHES),
        lambda: inclusion_proof(-1, 8, HASHES),
        lambda: inclusion_proof(0, 9, HASHES),
        lambda: inclusion_proof(0, 0, HASHES),
        lambda: consistency_proof(5, 4, HASHES),
        lambda: consistency_proof(-1, 4, HASHES),
        lambda: consistency_proof(4, 9, HASHES),
        lambda: root_of_hashes(HASHES, 9),
        lambda: root_of_hashes(LEAVES),  # data where hashes belong
        lambda: inclusion_proof(0, 2, [*HASHES[:1], b"short"]),
    ],
)
def test_impossible_requests_raise(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        call()


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(min_value=65, max_value=3000))
def test_proofs_in_larger_trees_verify(data: st.DataObject, new: int) -> None:
    hashes = leaf_hashes(_data(new))
    old = data.draw(st.integers(min_value=1, max_value=new), label="old")
    index = data.draw(st.integers(min_value=0, max_value=new - 1), label="index")
    new_root, old_root = root_of_hashes(hashes), root_of_hashes(hashes, old)
    path = inclusion_proof(index, new, hashes)
    assert verify_inclusion(hashes[index], index, new, path, new_root)
    assert not verify_inclusion(hashes[index], index, new, path, old_root) or old == new
    proof = consistency_proof(old, new, hashes)
    assert verify_consistency(old, new, old_root, new_root, proof)
    if old < new:
        changed = [*hashes[: new - 1], leaf_hash(b"rewritten")]
        assert not verify_consistency(old, new, old_root, root_of_hashes(changed), proof)
        assert not verify_consistency(old, new, old_root, new_root, _flip(proof, len(proof) - 1))


# Canonical entries: the bytes a leaf holds.


def test_canonical_entries_sort_keys_and_drop_whitespace() -> None:
    entry = {"type": "task_claimed", "task": "#42", "at": 1700000000, "by": None, "ok": True}
    assert (
        canonical(entry)
        == b'{"at":1700000000,"by":null,"ok":true,"task":"#42","type":"task_claimed"}'
    )
    nested = {"b": [1, {"z": "", "a": []}], "a": {}}
    assert canonical(nested) == b'{"a":{},"b":[1,{"a":[],"z":""}]}'


def test_canonical_strings_are_utf8_with_only_the_required_escapes() -> None:
    assert canonical({"s": "é€😀"}) == '{"s":"é€😀"}'.encode()
    assert (
        canonical({"s": 'q"b\\\n\t\x01\x7f\u2028'})
        == b'{"s":"q\\"b\\\\\\n\\t\\u0001\x7f\xe2\x80\xa8"}'
    )


def test_canonical_keys_sort_by_utf16_code_units() -> None:
    # RFC 8785 3.2.3: U+1F600 is D83D DE00 in UTF-16, before U+FB33; by code point after.
    keys = {"\ufb33": 1, "😀": 2, "a": 3}
    assert canonical(keys) == '{"a":3,"😀":2,"\ufb33":1}'.encode()


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        float("nan"),
        float("inf"),
        2**53,
        -(2**53),
        (1, 2),
        {1, 2},
        b"bytes",
        "\ud800",
        object(),
    ],
)
def test_canonical_refuses_what_it_cannot_spell_one_way(value: object) -> None:
    with pytest.raises(EntryError):
        canonical({"v": value})
    with pytest.raises(EntryError):
        canonical({"v": [value]})


def test_canonical_refuses_odd_keys_and_deep_nesting() -> None:
    with pytest.raises(EntryError):
        canonical({1: "int key"})
    deep: object = "bottom"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(EntryError):
        canonical({"deep": deep})
    assert (
        canonical({"v": 2**53 - 1, "w": -(2**53 - 1)})
        == b'{"v":9007199254740991,"w":-9007199254740991}'
    )


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 300), st.data())
def test_proofs_of_many_leaves_at_once_are_the_single_proofs(
    size: int, data: st.DataObject
) -> None:
    hashes = [leaf_hash(n.to_bytes(4, "big")) for n in range(size)]
    indices = data.draw(st.lists(st.integers(0, size - 1), max_size=20))
    assert inclusion_proofs(indices, size, hashes) == [
        inclusion_proof(i, size, hashes) for i in indices
    ]
