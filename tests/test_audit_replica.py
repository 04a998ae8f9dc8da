"""Replicating a node's audit log as a peer does (bzzz.audit.replica over the stream
protocol's encoding, bzzz.audit.exchange), between real stores: a replica reaches the
node's checkpoints page by page, keeps at most its bound of entries and still checks
the rest by consistency proofs; a flipped byte, a dropped entry, a truncated or
rewritten log, a checkpoint signed by another key and two roots for one size are each
found by the peer."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.keys import KeyPair

from bzzz.audit.checkpoint import equivocation, from_text, sign, to_text
from bzzz.audit.exchange import (
    ExchangeError,
    Request,
    answer,
    decode_page,
    decode_request,
    encode_request,
)
from bzzz.audit.merkle import Frontier, leaf_hash, root_of_hashes
from bzzz.audit.replica import Fault, Follower, Problem
from bzzz.audit.store import AuditStore
from bzzz.audit.verify import problems
from bzzz.identity import create_identity, peer_id_of


@dataclass
class Origin:
    """A node's log: its store and key, signing checkpoints when told."""

    store: AuditStore
    keys: KeyPair
    origin: str
    clock: int = 1_000

    def add(self, count: int, tag: str = "") -> None:
        start = self.store.size()
        self.store.append(
            [
                {"type": "task_claimed", "at": "2026-12-06T20:00:00", "task": f"lab/app#{i}{tag}"}
                for i in range(start, start + count)
            ]
        )

    def checkpoint(self) -> str:
        size = self.store.size()
        self.clock += 10
        signed = sign(
            self.keys.private_key,
            self.origin,
            size,
            root_of_hashes(self.store.leaf_hashes()),
            self.clock,
        )
        text = to_text(signed)
        self.store.keep_checkpoint(size, text)
        return text


@pytest.fixture
def node(tmp_path: Path) -> Origin:
    keys = create_identity(tmp_path / "identity.key")
    return Origin(AuditStore(tmp_path / "audit.db"), keys, peer_id_of(keys).to_base58())


def replicate(follower: Follower, server: AuditStore, bound: int = 10**9) -> Problem | None:
    """What the node's fetch loop does, without the network: ask, check, keep."""
    while (request := follower.next_request(min(300, bound - follower.kept.size))) is not None:
        request = decode_request(encode_request(request))  # as it travels
        page = decode_page(answer(server, request))
        problem = follower.check_page(page, request)
        if problem is not None:
            return problem
        follower.accept(page)
    return None


def test_a_replica_follows_the_log_page_by_page(node: Origin) -> None:
    follower = Follower(node.origin)
    for count in (1, 700, 2, 299):
        node.add(count)
        assert follower.announced(node.checkpoint()) is None
        assert replicate(follower, node.store) is None
        assert follower.size == follower.kept.size == node.store.size()
        assert follower.root == root_of_hashes(node.store.leaf_hashes())
    assert follower.announced(node.store.latest_checkpoint() or "") is None  # heard again
    assert follower.next_request(300) is None


def test_a_bounded_replica_checks_the_rest_by_consistency_proofs(node: Origin) -> None:
    follower = Follower(node.origin)
    for count in (100, 400, 50):
        node.add(count)
        follower.announced(node.checkpoint())
        assert replicate(follower, node.store, bound=250) is None
    assert (follower.size, follower.kept.size) == (550, 250)
    node.add(10, tag="-rewritten")
    text = node.checkpoint()
    # A node that rewrites what the bounded replica no longer keeps is still caught.
    with sqlite3.connect(node.store.path) as db:
        db.execute("UPDATE entries SET hash = ? WHERE seq = 400", (leaf_hash(b"forged"),))
    follower.announced(text)
    problem = replicate(follower, node.store, bound=250)
    assert fault(problem) is Fault.INCONSISTENT


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 90), min_size=1, max_size=5), bound=st.integers(0, 300))
def test_any_growth_and_bound_verify(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], bound: int
) -> None:
    home = tmp_path_factory.mktemp("log")
    keys = create_identity(home / "identity.key")
    node = Origin(AuditStore(home / "audit.db"), keys, peer_id_of(keys).to_base58())
    follower = Follower(node.origin)
    for count in sizes:
        node.add(count)
        follower.announced(node.checkpoint())
        assert replicate(follower, node.store, bound) is None
        assert follower.size == node.store.size()
        assert follower.kept.size == min(bound, node.store.size())


def fault(problem: Problem | None) -> Fault | None:
    return None if problem is None else problem.fault


def fresh_replica_of(node: Origin) -> Problem | None:
    follower = Follower(node.origin)
    assert follower.announced(node.store.latest_checkpoint() or "") is None
    return replicate(follower, node.store)


def test_a_flipped_byte_is_found_by_a_peer(node: Origin) -> None:
    node.add(40)
    node.checkpoint()
    with sqlite3.connect(node.store.path) as db:
        (leaf,) = db.execute("SELECT leaf FROM entries WHERE seq = 17").fetchone()
        db.execute("UPDATE entries SET leaf = ? WHERE seq = 17", (leaf.replace(b"#17", b"#71"),))
    problem = fresh_replica_of(node)
    assert fault(problem) is Fault.INCONSISTENT


def test_a_dropped_entry_is_found_by_a_peer(node: Origin) -> None:
    node.add(40)
    node.checkpoint()
    with sqlite3.connect(node.store.path) as db:
        db.execute("DELETE FROM entries WHERE seq = 5")
        db.execute("UPDATE entries SET seq = seq - 1 WHERE seq > 5")
    # Short of an entry, the node cannot prove its checkpoint: the fetch fails.
    with pytest.raises(ExchangeError, match="holds 39 of the 40 entries"):
        fresh_replica_of(node)
    node.add(1)  # and once it logged another, the entries are not the ones it signed
    problem = fresh_replica_of(node)
    assert fault(problem) is Fault.INCONSISTENT


def test_a_truncated_log_is_found_by_the_peers_that_hold_more(node: Origin) -> None:
    follower = Follower(node.origin)
    node.add(50)
    follower.announced(node.checkpoint())
    assert replicate(follower, node.store) is None
    with sqlite3.connect(node.store.path) as db:  # cut back to 30, then logging again
        db.execute("DELETE FROM entries WHERE seq >= 30")
        db.execute("DELETE FROM checkpoints")
    node.add(5, tag="-after")
    problem = follower.announced(node.checkpoint())  # size 35, signed after size 50
    assert fault(problem) is Fault.ROLLED_BACK
    assert problem is not None
    assert len(problem.evidence) == 2
    node.add(40, tag="-after")  # and once it has grown past what the peer holds
    follower = Follower(node.origin, from_text(problem.evidence[0]), problem.evidence[0])
    follower.kept = Frontier()
    follower.announced(node.checkpoint())
    problem = replicate(follower, node.store, bound=0)
    assert fault(problem) is Fault.INCONSISTENT


def test_a_checkpoint_signed_by_another_key_is_refused(node: Origin, tmp_path: Path) -> None:
    node.add(3)
    text = node.checkpoint()
    other = create_identity(tmp_path / "other.key")
    forged = from_text(text)
    signed = sign(
        other.private_key, peer_id_of(other).to_base58(), forged.size, forged.root, forged.timestamp
    )
    swapped = to_text(signed).replace(peer_id_of(other).to_base58(), node.origin)
    problem = Follower(node.origin).announced(swapped)  # its key ID is not the origin's
    assert fault(problem) is Fault.MALFORMED
    problem = Follower(node.origin).announced(to_text(signed))  # another node's, as this one's
    assert fault(problem) is Fault.UNSIGNED


def test_two_roots_for_one_size_are_equivocation_with_proof(node: Origin, tmp_path: Path) -> None:
    follower = Follower(node.origin)
    node.add(20)
    first = node.checkpoint()
    follower.announced(first)
    assert replicate(follower, node.store) is None
    twin = Origin(AuditStore(tmp_path / "twin.db"), node.keys, node.origin, node.clock)
    twin.add(20, tag="-other")
    second = twin.checkpoint()
    problem = follower.announced(second)
    assert problem is not None
    assert problem.fault is Fault.EQUIVOCATION
    assert problem.evidence == (first, second)
    assert equivocation(from_text(first), from_text(second))  # anyone can check it
    # A node that serves another root than it announced is caught the same way.
    follower = Follower(node.origin)
    follower.announced(first)
    problem = replicate(follower, twin.store)
    assert fault(problem) is Fault.EQUIVOCATION


def test_verify_reports_a_replicas_equivocation(node: Origin, tmp_path: Path) -> None:
    node.add(8)
    first = node.checkpoint()
    replica = AuditStore(tmp_path / "replica.db")
    replica.append_leaves(0, node.store.leaves(0, 4))  # a bounded replica: 4 of 8 kept
    replica.keep_checkpoint(8, first)
    assert problems(replica, node.origin, replica=True) == []
    assert problems(replica, node.origin)  # as a node's own log, it is truncated
    replica.keep_conflict(8, first.replace(first.split("\n")[2], "A" * 43 + "="))
    assert any("equivocation" in p for p in problems(replica, node.origin, replica=True))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not zlib",
        __import__("zlib").compress(b"[1, 2]"),
        __import__("zlib").compress(
            b'{"checkpoint": "x", "first": -1, "entries": [], "proof": []}'
        ),
        __import__("zlib").compress(
            b'{"checkpoint": "x", "first": 0, "entries": [1], "proof": []}'
        ),
        __import__("zlib").compress(
            b'{"checkpoint": "x", "first": 0, "entries": [], "proof": ["AAAA"]}'
        ),
        __import__("zlib").compress(b"{" + b" " * (9 * 1024 * 1024) + b"}"),  # inflates too far
        __import__("zlib").compress(b'{"error": "no such log here"}'),
    ],
)
def test_a_malformed_page_is_refused(data: bytes) -> None:
    with pytest.raises(ExchangeError):
        decode_page(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"origin": "", "size": 0, "from": 0, "limit": 1}',
        b'{"origin": "x"}',
        b'{"origin": "x", "size": -1, "from": 0, "limit": 1}',
        b'{"origin": "x", "size": true, "from": 0, "limit": 1}',
    ],
)
def test_a_malformed_request_is_refused(data: bytes) -> None:
    with pytest.raises(ExchangeError):
        decode_request(data)


def test_a_node_answers_only_what_it_holds(node: Origin) -> None:
    node.add(10)
    node.checkpoint()
    with pytest.raises(ExchangeError, match="no checkpoint at size 7"):
        decode_page(answer(node.store, Request(node.origin, 7, 0, 5)))
    page = decode_page(answer(node.store, Request(node.origin, 0, 4, 3)))
    assert (page.start, len(page.entries), from_text(page.checkpoint).size) == (4, 3, 10)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=300))
def test_a_frontier_has_the_trees_root(leaves: list[bytes]) -> None:
    hashes = [leaf_hash(leaf) for leaf in leaves]
    grown = Frontier()
    for start in range(0, len(hashes), 7):
        grown.extend(hashes[start : start + 7])
    assert grown.root() == Frontier.of(hashes).root() == root_of_hashes(hashes)
    assert grown.size == len(hashes)
