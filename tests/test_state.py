"""The peer table: liveness from silence, names bound to peers, sweeping. Time is passed in."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bzzz.protocol import (
    Capabilities,
    Message,
    PresencePing,
    TaskBroadcast,
    TaskHelpRequest,
    TaskParams,
)
from bzzz.state import Observation, PeerTable

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ping(name: str) -> PresencePing:
    return PresencePing(node_id=name, timestamp=T0)


def caps(name: str, cpu: float = 1.0) -> Capabilities:
    return Capabilities(
        node_id=name, cpu=cpu, gpu=0.0, models=[], installed=[], status="idle", timestamp=T0
    )


def table() -> PeerTable:
    return PeerTable("me", "self", dead_after=10.0, forget_after=100.0)


def test_first_message_makes_a_peer_alive_and_silence_kills_it() -> None:
    peers = table()
    assert peers.observe("p1", ping("a"), now=0.0) is Observation.NEW
    assert peers.is_alive("p1", now=10.0)
    assert not peers.is_alive("p1", now=10.1)
    assert peers.observe("p1", ping("a"), now=11.0) is Observation.REVIVED
    assert peers.observe("p1", ping("a"), now=12.0) is Observation.UPDATED
    assert peers.live_peer_ids(now=12.0) == ["p1"]


def test_a_peer_that_pings_slowly_gets_three_of_its_intervals() -> None:
    peers = table()  # dead after 10 s by default
    peers.observe("slow", PresencePing(node_id="s", interval_s=20.0, timestamp=T0), now=0.0)
    assert peers.is_alive("slow", now=59.0)
    assert not peers.is_alive("slow", now=61.0)
    peers.observe("fast", PresencePing(node_id="f", interval_s=1.0, timestamp=T0), now=0.0)
    assert not peers.is_alive("fast", now=10.5)  # never below the configured silence
    peers.observe("liar", PresencePing(node_id="l", interval_s=1e9, timestamp=T0), now=0.0)
    assert not peers.is_alive("liar", now=301.0)  # nobody stays alive for long unheard


def test_latest_capabilities_are_kept() -> None:
    peers = table()
    peers.observe("p1", caps("a", cpu=10), now=0.0)
    peers.observe("p1", ping("a"), now=1.0)
    peers.observe("p1", caps("a", cpu=20), now=2.0)
    (view,) = peers.views(now=3.0)
    assert view.capabilities is not None
    assert view.capabilities.cpu == 20
    assert (view.node_id, view.alive, view.silence) == ("a", True, 1.0)


def test_a_live_peers_name_cannot_be_used_by_another_peer() -> None:
    peers = table()
    peers.observe("p1", ping("a"), now=0.0)
    assert not peers.may_speak_for("p2", "a", now=5.0)
    assert peers.observe("p2", caps("a"), now=5.0) is Observation.SPOOFED
    assert peers.get("p2") is None
    help_request = TaskHelpRequest(
        task_id="#1", from_node="a", reason="r", requested_capability="x", timestamp=T0
    )
    assert peers.observe("p2", help_request, now=5.0) is Observation.SPOOFED


def test_nobody_may_use_our_own_name() -> None:
    peers = table()
    assert not peers.may_speak_for("p1", "self", now=0.0)
    assert peers.observe("p1", ping("self"), now=0.0) is Observation.SPOOFED
    assert peers.observe("me", ping("self"), now=0.0) is Observation.OWN


def test_a_dead_peers_name_can_be_taken_over() -> None:
    peers = table()
    peers.observe("old", ping("a"), now=0.0)
    assert peers.observe("new", ping("a"), now=11.0) is Observation.NEW
    assert peers.peer_of("a") == "new"
    assert peers.get("old") is None
    assert not peers.may_speak_for("old", "a", now=12.0)


def test_a_peer_may_rename_itself_and_frees_its_old_name() -> None:
    peers = table()
    peers.observe("p1", ping("a"), now=0.0)
    peers.observe("p1", ping("b"), now=1.0)
    assert peers.peer_of("b") == "p1"
    assert peers.peer_of("a") is None
    assert peers.may_speak_for("p2", "a", now=1.0)


def test_messages_without_a_name_refresh_known_peers_only() -> None:
    peers = table()
    task = TaskBroadcast(
        task_id="#1",
        repo="o/r",
        issue_url="u",
        model="m",
        input="i",
        params=TaskParams(branch_prefix="b"),
        timestamp=T0,
    )
    assert peers.observe("p1", task, now=0.0) is Observation.ANONYMOUS
    peers.observe("p1", ping("a"), now=1.0)
    assert peers.observe("p1", task, now=9.0) is Observation.UPDATED
    assert peers.is_alive("p1", now=18.0)


def test_sweep_reports_each_death_once_and_forgets_long_dead_peers() -> None:
    peers = table()
    peers.observe("p1", ping("a"), now=0.0)
    peers.observe("p2", ping("b"), now=0.0)
    assert peers.sweep(now=5.0).died == []
    peers.observe("p2", ping("b"), now=8.0)
    sweep = peers.sweep(now=11.0)
    assert [v.node_id for v in sweep.died] == ["a"]
    assert peers.sweep(now=12.0).died == []
    sweep = peers.sweep(now=101.0)
    assert [v.node_id for v in sweep.forgotten] == ["a"]
    assert peers.peer_of("a") is None
    assert [v.node_id for v in peers.views(now=101.0)] == ["b"]


events = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["a", "b", "self"]),
        st.floats(min_value=0, max_value=30),
    ),
    max_size=40,
)


@given(events)
def test_no_two_live_peers_ever_hold_one_name(steps: list[tuple[str, str, float]]) -> None:
    peers = table()
    now = 0.0
    for peer, name, delay in steps:
        now += delay
        message: Message = ping(name)
        peers.observe(peer, message, now)
        live = [v for v in peers.views(now) if v.alive]
        names = [v.node_id for v in live]
        assert len(names) == len(set(names))
        assert "self" not in names
        for view in live:
            assert peers.peer_of(view.node_id) == view.peer_id
