"""Weighted rendezvous hashing: the same order everywhere, shares by weight, little churn."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.rendezvous import ordered, score
from bzzz.tasks.intake import poller_for

KEYS = [f"task-{n}" for n in range(6000)]


def test_scores_are_pinned() -> None:
    # Every node of a mesh must compute these same numbers: a change splits the mesh.
    assert score("task-1", "peer-a") == pytest.approx(0.40112374418963437, rel=1e-12)
    assert score("task-1", "peer-a", 3) == pytest.approx(3 * score("task-1", "peer-a"))
    members = {"peer-a": 1, "peer-b": 2, "peer-c": 3, "peer-d": 4}
    assert ordered("task-1", members) == ["peer-c", "peer-b", "peer-d", "peer-a"]


@given(
    st.dictionaries(st.text(min_size=1, max_size=12), st.integers(1, 64), min_size=1, max_size=8),
    st.text(min_size=1),
)
def test_the_order_depends_only_on_the_members_not_on_how_they_are_listed(
    members: dict[str, int], key: str
) -> None:
    order = ordered(key, members)
    assert sorted(order) == sorted(members)
    assert ordered(key, dict(reversed(list(members.items())))) == order
    assert ordered(key, members) == order


def test_orders_differ_from_key_to_key() -> None:
    members = dict.fromkeys((f"peer-{n}" for n in range(5)), 1)
    firsts = Counter(ordered(key, members)[0] for key in KEYS[:500])
    assert set(firsts) == set(members)


def test_a_member_comes_first_in_proportion_to_its_weight() -> None:
    members = {"small": 1, "medium": 3, "large": 6}
    firsts = Counter(ordered(key, members)[0] for key in KEYS)
    total = sum(members.values())
    for member, weight in members.items():
        assert firsts[member] / len(KEYS) == pytest.approx(weight / total, abs=0.025)


def test_members_of_no_weight_are_left_out() -> None:
    assert ordered("task-1", {"idle": 0, "busy": -1, "free": 2}) == ["free"]
    assert ordered("task-1", {}) == []


def test_when_a_member_leaves_only_its_keys_move_and_the_rest_keep_their_order() -> None:
    members = {"peer-0": 2, "peer-1": 1, "peer-2": 3, "peer-3": 1, "peer-4": 2}
    remaining = {m: w for m, w in members.items() if m != "peer-2"}
    for key in KEYS[:2000]:
        before = ordered(key, members)
        after = ordered(key, remaining)
        assert after == [m for m in before if m != "peer-2"]


def test_raising_a_weight_only_moves_keys_to_that_member() -> None:
    members = {"peer-0": 1, "peer-1": 1, "peer-2": 1}
    heavier = {**members, "peer-1": 4}
    moved = [key for key in KEYS[:2000] if ordered(key, members)[0] != ordered(key, heavier)[0]]
    assert moved  # the heavier member takes over some keys
    assert all(ordered(key, heavier)[0] == "peer-1" for key in moved)


def test_the_poller_is_the_one_the_unweighted_hash_chose_before() -> None:
    # poller_for used to take the peer with the largest sha256(repo, peer); nodes that
    # still run that code must agree with the ones that run this.
    peers = [f"12D3KooWpeer{n}" for n in range(7)]
    for key in KEYS[:1000]:
        chosen = max(peers, key=lambda p: hashlib.sha256(f"{key}\x00{p}".encode()).digest())
        assert poller_for(key, peers) == chosen
    assert poller_for("org/app", []) is None
