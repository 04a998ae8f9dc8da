"""Matching, the forge's claim record, and the claim state machine, step by step."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.claims import ledger
from bzzz.claims.actions import (
    Announce,
    Check,
    Enqueue,
    Finish,
    Phase,
    PostClaim,
    Release,
    Renew,
    Settle,
)
from bzzz.claims.arbiter import solves
from bzzz.claims.ledger import ClaimNote, ClaimState
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Offer, can_run, rank
from bzzz.config import ClaimSettings
from bzzz.forge.api import Comment, PullRequest

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TRUSTED = {"OWNER", "MEMBER", "COLLABORATOR"}


def offer(peer: str, slots: int = 1, models: tuple[str, ...] = ("qwen2.5-coder:7b",)) -> Offer:
    return Offer(peer, models, ("ollama", "claude"), slots)


# ---- matching -----------------------------------------------------------------------------


def test_what_a_peer_can_run() -> None:
    peer = offer("a")
    assert can_run("qwen2.5-coder:7b", peer)
    assert can_run("QWEN2.5-coder:7b", peer)
    assert can_run("ollama", peer)  # any model
    assert can_run("claude", peer)  # an agent CLI
    assert not can_run("llama3:70b", peer)
    assert not can_run("ollama", Offer("b", (), ("claude",), 1))
    assert can_run("llama3", Offer("c", ("llama3:latest",), (), 1))


def test_no_free_slot_no_claim_and_the_order_is_the_same_everywhere() -> None:
    offers = [offer("a"), offer("b", slots=0), offer("c"), offer("d", models=())]
    order = rank("lab/hello#1", "qwen2.5-coder:7b", offers)
    assert set(order) == {"a", "c"}
    assert rank("lab/hello#1", "qwen2.5-coder:7b", list(reversed(offers))) == order


def test_work_spreads_over_peers_in_proportion_to_free_slots() -> None:
    offers = [offer("a", slots=1), offer("b", slots=1), offer("c", slots=2)]
    firsts = Counter(rank(f"lab/hello#{n}", "ollama", offers)[0] for n in range(4000))
    assert firsts["c"] == pytest.approx(2000, rel=0.1)
    assert firsts["a"] == pytest.approx(1000, rel=0.15)
    assert firsts["b"] == pytest.approx(1000, rel=0.15)


# ---- the ledger -----------------------------------------------------------------------------


def comment(
    cid: int,
    body: str,
    *,
    at: datetime = T0,
    updated: datetime | None = None,
    association: str = "COLLABORATOR",
    author: str = "bot",
) -> Comment:
    return Comment(cid, author, body, "", at, updated or at, association)


def note(node: str, state: ClaimState = ClaimState.CLAIM, lease_s: float = 60.0) -> ClaimNote:
    return ClaimNote(0, "bot", node, f"peer-{node}", state, lease_s, T0, T0)


def claim_comment(cid: int, node: str, at: datetime, **kw: object) -> Comment:
    state = kw.pop("state", ClaimState.CLAIM)
    return comment(cid, ledger.render(note(node, state), f"{node} claims"), at=at, **kw)  # type: ignore[arg-type]


def test_a_claim_comment_round_trips_and_hostile_ones_are_ignored() -> None:
    text = ledger.render(note("n1"), "Bzzz node n1 claims this task.")
    parsed = ledger.parse(comment(7, text))
    assert parsed is not None
    assert (parsed.comment_id, parsed.node, parsed.state, parsed.lease_s) == (
        7,
        "n1",
        ClaimState.CLAIM,
        60.0,
    )
    for hostile in [
        "<!-- bzzz-claim {not json} -->",
        '<!-- bzzz-claim {"node": "n1"} -->',
        '<!-- bzzz-claim {"node":"n1","peer":"p","state":"owned","lease_s":60} -->',
        '<!-- bzzz-claim {"node":"n1","peer":"p","state":"claim","lease_s":1e12} -->',
        '<!-- bzzz-claim {"node":["n1"],"peer":"p","state":"claim","lease_s":60} -->',
        "<!-- bzzz-claim {" + '"x":"' + "y" * 5000 + '"} -->',
    ]:
        assert ledger.parse(comment(8, hostile)) is None
    untrusted = comment(9, text, association="NONE", author="mallory")
    assert ledger.claims([untrusted], TRUSTED, ()) == []
    assert len(ledger.claims([untrusted], TRUSTED, ("mallory",))) == 1


def test_the_earliest_live_claim_holds_and_expired_ones_count_as_attempts() -> None:
    comments = [
        claim_comment(1, "dead", T0),  # lease 60 s, never renewed
        claim_comment(2, "lost", T0 + timedelta(seconds=70), state=ClaimState.RELEASED),
        claim_comment(3, "live", T0 + timedelta(seconds=80)),
        claim_comment(4, "late", T0 + timedelta(seconds=81)),
        claim_comment(5, "broke", T0 + timedelta(seconds=2), state=ClaimState.FAILED),
    ]
    notes = ledger.claims(comments, TRUSTED, ())
    early = ledger.verdict(notes, T0 + timedelta(seconds=30), skew=5)
    assert early.holder is not None
    assert early.holder.node == "dead"
    later = ledger.verdict(notes, T0 + timedelta(seconds=90), skew=5)
    assert later.holder is not None
    assert later.holder.node == "live"
    assert later.attempts == {"dead", "broke"}
    # Within the skew allowance an expired-looking claim still holds.
    edge = ledger.verdict(notes, T0 + timedelta(seconds=63), skew=5)
    assert edge.holder is not None
    assert edge.holder.node == "dead"
    done = [*comments, claim_comment(6, "live", T0 + timedelta(seconds=85), state=ClaimState.DONE)]
    final = ledger.verdict(ledger.claims(done, TRUSTED, ()), T0 + timedelta(seconds=90), 5)
    assert final.done is not None
    assert final.holder is None
    assert not final.is_free


# ---- the state machine ----------------------------------------------------------------------

SETTINGS = ClaimSettings(lease=60.0, gossip_renew=5.0, rank_delay=2.0, margin=10.0)


def book(position: int | None = 0, node: str = "me") -> ClaimBook:
    return ClaimBook(node, SETTINGS, ranking=lambda task, model, market, failed, used: position)


def won(b: ClaimBook, now: float, cid: int = 10) -> list[object]:
    own = ClaimNote(cid, "bot", b.node, "p", ClaimState.CLAIM, 60.0, T0, T0)
    verdict = ledger.Verdict(holder=own, done=None, attempts=frozenset(), expired=())
    return list(b.claim_checked("t#1", own, verdict, sent_at=now, still_a_task=True, now=now))


def test_the_best_ranked_claims_at_once_others_after_their_delay() -> None:
    first = book(0)
    assert first.learn("t#1", "ollama", 0.0) == [PostClaim("t#1", 1, "")]
    third = book(2)
    assert third.learn("t#1", "ollama", 0.0) == []
    assert third.tick(3.9) == []
    assert third.tick(4.0) == [PostClaim("t#1", 1, "")]
    assert book(None).learn("t#1", "ollama", 0.0) == []  # not eligible


def test_hearing_a_claim_cancels_a_pending_one_until_its_lease_runs_out() -> None:
    b = book(1)
    b.learn("t#1", "ollama", 0.0)
    assert b.heard_claim("t#1", "other", 60.0, 1.0) == []
    assert b.get("t#1").phase is Phase.HELD  # type: ignore[union-attr]
    assert b.tick(30.0) == []
    assert b.heard_claim("t#1", "other", 60.0, 30.0) == []  # renewed on gossip
    assert b.tick(89.0) == []
    assert b.tick(90.0) == [Check("t#1")]  # lease over: asks the forge (read only)...
    expired = ClaimNote(5, "bot", "other", "p", ClaimState.CLAIM, 60.0, T0, T0)
    gone = ledger.Verdict(None, None, frozenset({"other"}), (expired,))
    assert b.checked("t#1", gone, still_a_task=True, now=91.0) == []  # ...waits its rank's delay
    assert b.tick(93.0) == [PostClaim("t#1", 2, "other")]  # ...then takes over


def held_verdict(node: str, cid: int, left: float) -> ledger.Verdict:
    note = ClaimNote(cid, "bot", node, "p", ClaimState.CLAIM, 60.0, T0, T0)
    return ledger.Verdict(note, None, frozenset(), (), holder_left=left)


def test_a_missed_result_or_renewal_is_learnt_from_the_forge() -> None:
    b = book(1)
    b.learn("t#1", "ollama", 0.0)
    b.heard_claim("t#1", "other", 60.0, 1.0)
    assert b.tick(61.0) == [Check("t#1")]
    # The holder renewed on the forge, but its gossip was lost: held for what is left.
    assert b.checked("t#1", held_verdict("other", 5, 40.0), still_a_task=True, now=62.0) == []
    assert b.get("t#1").phase is Phase.HELD  # type: ignore[union-attr]
    assert b.tick(62.0 + 40.0 + 4.9) == []  # the lease left, plus the skew allowance
    assert b.tick(62.0 + 40.0 + 5.0) == [Check("t#1")]
    done_note = ClaimNote(5, "bot", "other", "p", ClaimState.DONE, 60.0, T0, T0)
    done = ledger.Verdict(None, done_note, frozenset(), ())
    assert b.checked("t#1", done, still_a_task=True, now=110.0) == []
    assert b.get("t#1").phase is Phase.DONE  # type: ignore[union-attr]


def test_a_node_that_cannot_claim_still_learns_how_a_task_ends() -> None:
    b = book(None)
    assert b.learn("t#1", "ollama", 0.0) == []
    assert b.tick(59.0) == []
    assert b.tick(60.0) == [Check("t#1")]  # once a lease
    assert (
        b.checked("t#1", ledger.Verdict(None, None, frozenset(), ()), still_a_task=False, now=61.0)
        == []
    )
    assert b.get("t#1").phase is Phase.CLOSED  # type: ignore[union-attr]


def test_after_a_restart_a_claim_is_adopted_if_a_worker_still_runs_it() -> None:
    b = book(0)
    assert b.learn("t#1", "ollama", 0.0, check_first=True) == [Check("t#1")]
    assert b.checked("t#1", held_verdict("me", 7, 50.0), still_a_task=True, now=1.0) == []
    assert b.get("t#1").phase is Phase.ADOPTING  # type: ignore[union-attr]
    assert b.used_slots() == 1
    assert b.adopt("t#1", 8, 2.0) == []  # not that claim
    assert b.adopt("t#1", 7, 2.0) == [Announce("t#1", 50.0 - 5.0 - 1.0), Renew("t#1", 7)]
    assert b.holds("t#1", 2.0)
    assert not b.holds("t#1", 1.0 + 50.0 - 5.0 - 10.0)  # judged by the forge's times, less margins


def test_after_a_restart_an_orphaned_claim_is_released_if_no_worker_runs_it() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0, check_first=True)
    b.checked("t#1", held_verdict("me", 7, 50.0), still_a_task=True, now=1.0)
    assert b.tick(30.9) == []
    release, claim = b.tick(31.0)
    assert release == Release("t#1", 7, "This node restarted and none of its workers runs it.")
    assert claim == PostClaim("t#1", 1, "")


def test_a_failure_the_forge_did_not_hear_is_said_again() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    won(b, 1.0, cid=7)
    b.worker_finished(
        "t#1",
        succeeded=False,
        result_type="failure",
        result_url="",
        reason="x",
        duration_ms=1,
        now=2.0,
    )  # its Finish never reached the forge
    assert b.tick(59.0) == []
    assert b.tick(60.0) == [Check("t#1")]  # once a lease, as for any task it cannot claim
    (release,) = b.checked("t#1", held_verdict("me", 7, 5.0), still_a_task=True, now=61.0)
    assert release == Release("t#1", 7, "It failed on this node.", True)
    assert b.get("t#1").phase is Phase.FAILED  # type: ignore[union-attr]


def test_a_confirmed_claim_is_enqueued_renewed_and_finished() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    assert won(b, 1.0) == [Announce("t#1", 60.0), Enqueue("t#1", 10)]
    b.enqueued("t#1")
    assert b.holds("t#1", 2.0)
    assert b.tick(6.0) == [Announce("t#1", 60.0 - 5.0)]
    assert Renew("t#1", 10) in b.tick(21.0)
    assert b.tick(22.0) == []  # one renewal at a time
    b.worker_started("t#1", 23.0)
    verdict = ledger.Verdict(
        holder=ClaimNote(10, "bot", "me", "p", ClaimState.CLAIM, 60, T0, T0),
        done=None,
        attempts=frozenset(),
        expired=(),
    )
    b.renewed("t#1", verdict, sent_at=21.0, now=23.0)
    assert b.holds("t#1", 70.9)
    assert not b.holds("t#1", 71.0)
    actions = b.worker_finished(
        "t#1",
        succeeded=True,
        result_type="pull_request",
        result_url="http://forge/pr/1",
        reason="",
        duration_ms=5,
        now=30.0,
    )
    assert actions == [Finish("t#1", 10, True, "pull_request", "http://forge/pr/1", "", 5, False)]
    assert b.get("t#1").phase is Phase.DONE  # type: ignore[union-attr]


def test_a_holder_cut_off_from_the_forge_stops_before_its_lease_ends() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    won(b, 0.0)
    b.tick(20.0)  # asks to renew...
    b.renewed("t#1", None, sent_at=20.0, now=25.0)  # ...the forge is unreachable
    assert b.holds("t#1", 49.9)
    assert b.tick(50.0) == [Announce("t#1", 0.0), Release("t#1", 10, "lease lost")]
    assert not b.holds("t#1", 50.0)


def test_a_failure_on_k_nodes_quarantines() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    b.heard_result("t#1", "n1", succeeded=False, now=0.5)
    won(b, 1.0)
    b.heard_result("t#1", "n2", succeeded=False, now=2.0)
    (finish,) = b.worker_finished(
        "t#1",
        succeeded=False,
        result_type="failure",
        result_url="http://forge/issue/1",
        reason="tests fail",
        duration_ms=5,
        now=3.0,
    )
    assert isinstance(finish, Finish)
    assert finish.quarantine
    other = book(0, node="n9")
    other.learn("t#1", "ollama", 0.0)
    for node in ("n1", "n2", "n3"):
        other.heard_result("t#1", node, succeeded=False, now=1.0)
    assert other.get("t#1").phase is Phase.QUARANTINED  # type: ignore[union-attr]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 200)), max_size=30))
def test_gossip_alone_never_makes_a_node_a_holder(claims: list[tuple[str, float]]) -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    now = 0.0
    for node, lease in claims:
        now += 1.0
        for action in b.heard_claim("t#1", node, lease, now) + b.tick(now):
            assert not isinstance(action, Enqueue)
        assert not b.holds("t#1", now)


def pull(body: str = "", head: str = "lab:feature", state: str = "open") -> PullRequest:
    return PullRequest(3, "http://forge/pr/3", head, "main", state, True, body)


def test_a_pull_request_solves_an_issue_it_closes_or_a_peer_made_for_it() -> None:
    assert solves(pull("Fixes #4"), 4, "bzzz/task-4-")
    assert solves(pull("This resolves: #4."), 4, "")
    assert solves(pull("", head="node-b:bzzz/task-4-x1"), 4, "bzzz/task-4-")
    assert not solves(pull("Fixes #41"), 4, "bzzz/task-4-")
    assert not solves(pull("See #4"), 4, "bzzz/task-4-")
    assert not solves(pull("Fixes #4", state="closed"), 4, "")
    assert not solves(pull("", head="node-b:bzzz/task-40-x"), 4, "bzzz/task-4-")


# ---- a node that cannot run what it claimed, and a failing forge ---------------------------


def test_a_queued_task_no_worker_picks_up_is_let_go_without_an_attempt() -> None:
    b = ClaimBook("me", SETTINGS, pickup_grace=30.0, ranking=lambda *_: 0)
    b.learn("t#1", "ollama", 0.0)
    won(b, 1.0)
    b.enqueued("t#1")
    b.tick(2.0)  # queued from now on
    before = [a for t in (10.0, 20.0, 31.9) for a in b.tick(t)]
    assert not [a for a in before if isinstance(a, Release)]  # renewed meanwhile
    assert b.tick(32.0) == [
        Announce("t#1", 0.0),
        Release("t#1", 10, "No worker of this node picked it up."),
    ]
    task = b.get("t#1")
    assert task is not None
    assert (task.phase, task.attempts, b.used_slots()) == (Phase.SEEN, frozenset(), 0)
    assert b.tick(91.9) == [Check("t#1")]  # others get a lease to take it first; it looks
    b.checked("t#1", ledger.Verdict(None, None, frozenset(), ()), still_a_task=True, now=91.9)
    assert b.tick(92.0) == [PostClaim("t#1", 1, "", reuse=10)]  # ...then its own comment again


def test_a_task_declined_for_a_problem_of_the_node_is_let_go_at_once() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    won(b, 1.0)
    b.worker_started("t#1", 2.0)
    assert b.worker_declined("t#1", 3.0) == [
        Announce("t#1", 0.0),
        Release("t#1", 10, "This node could not run it (a problem of the node, not of the task)."),
    ]
    task = b.get("t#1")
    assert task is not None
    assert (task.phase, task.attempts) == (Phase.SEEN, frozenset())


def test_an_edit_the_forge_refused_is_retried_with_a_growing_back_off() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    won(b, 1.0)
    (finish,) = b.worker_finished(
        "t#1",
        succeeded=True,
        result_type="pull_request",
        result_url="http://forge/pr/1",
        reason="",
        duration_ms=5,
        now=2.0,
    )
    assert isinstance(finish, Finish)
    done = Settle("t#1", 10, "done", "", "http://forge/pr/1")
    b.edit_failed(done, 3.0)
    assert b.tick(12.9) == []
    assert b.tick(13.0) == [done]  # 10 s later
    assert b.tick(14.0) == []  # one try in flight at a time
    b.edit_failed(done, 14.0)
    assert b.tick(33.9) == []
    assert b.tick(34.0) == [done]  # 20 s later
    b.edit_done("t#1", 10)
    assert b.tick(100.0) == []
    assert b.retire(100.0) == []
    assert b.retire(100.0 + SETTINGS.retention) == ["t#1"]  # retired only once settled


def test_a_claim_that_cannot_be_read_back_costs_no_new_comment_and_backs_off() -> None:
    b = book(0)
    assert b.learn("t#1", "ollama", 0.0) == [PostClaim("t#1", 1, "")]
    own = ClaimNote(10, "bot", "me", "p", ClaimState.CLAIM, 60.0, T0, T0)
    (release,) = b.claim_checked("t#1", own, None, sent_at=0.0, still_a_task=True, now=1.0)
    assert release == Release("t#1", 10, "the forge did not answer")
    b.edit_failed(Settle("t#1", 10, "released", "the forge did not answer"), 1.0)
    assert b.tick(10.9) == []
    # The claim is tried again with the same comment (its release is not retried meanwhile).
    assert b.tick(11.0) == [PostClaim("t#1", 1, "", reuse=10)]
    assert b.claim_checked("t#1", None, None, sent_at=11.0, still_a_task=True, now=12.0) == []
    assert b.tick(32.0) == [Settle("t#1", 10, "released", "the forge did not answer")]
    assert b.tick(51.9) == []  # the claim's back-off: 40 s after three failures in a row
    assert b.tick(52.0) == [PostClaim("t#1", 1, "", reuse=10)]


def test_an_old_comment_claimed_again_yields_to_any_other_live_claim() -> None:
    b = book(0)
    b.learn("t#1", "ollama", 0.0)
    mine = ClaimNote(10, "bot", "me", "p", ClaimState.CLAIM, 60.0, T0, T0)
    b.claim_checked("t#1", mine, None, sent_at=0.0, still_a_task=True, now=1.0)
    assert b.tick(11.0) == [PostClaim("t#1", 1, "", reuse=10)]
    theirs = ClaimNote(12, "bot", "other", "q", ClaimState.CLAIM, 60.0, T0, T0)
    verdict = ledger.Verdict(mine, None, frozenset(), (), 60.0, live=(mine, theirs))
    (release,) = b.claim_checked("t#1", mine, verdict, sent_at=11.0, still_a_task=True, now=12.0)
    assert release == Release("t#1", 10, "another claim came first")
    task = b.get("t#1")
    assert task is not None
    assert (task.phase, task.holder) == (Phase.HELD, "other")


def test_a_task_heard_of_late_is_read_on_the_forge_before_it_is_claimed() -> None:
    b = book(0)
    assert b.learn("t#1", "ollama", 0.0, verify=True) == [Check("t#1")]  # not a claim
    free = ledger.Verdict(None, None, frozenset(), ())
    assert b.checked("t#1", free, still_a_task=True, now=1.0) == [PostClaim("t#1", 1, "")]
    late = book(0)
    late.learn("t#2", "ollama", 0.0, verify=True)
    held = held_verdict("other", 5, 40.0)
    assert late.checked("t#2", held, still_a_task=True, now=1.0) == []  # claimed already
    assert late.get("t#2").phase is Phase.HELD  # type: ignore[union-attr]
    assert late.learn("t#2", "ollama", 2.0) == []  # known: nothing new


def test_a_model_only_the_mesh_has_ranks_gateway_peers_after_those_that_have_it() -> None:
    has_it = Offer("a", ("qwen:7b",), (), 1, "a", gateway=True)
    via_gateway = [Offer(p, ("other",), (), 1, p, gateway=True) for p in ("b", "c")]
    no_gateway = Offer("d", ("other",), (), 1, "d")
    mesh = frozenset({"qwen:7b", "other"})
    for n in range(50):
        order = rank(f"t#{n}", "qwen:7b", [*via_gateway, no_gateway, has_it], mesh)
        assert order[0] == "a"
        assert set(order[1:]) == {"b", "c"}  # d has no gateway
    assert rank("t#1", "qwen:7b", [*via_gateway, no_gateway]) == []  # no mesh models counted
    busy = Offer("a", ("qwen:7b",), (), 0, "a", gateway=True)
    assert rank("t#1", "qwen:7b", [busy, *via_gateway], mesh)[0] in {"b", "c"}


def handing(cid: int, node: str, at: datetime, state: ClaimState, successor: str) -> Comment:
    handed = replace(note(node, state), successor=successor)
    return comment(cid, ledger.render(handed, f"{node} hands over"), at=at)


def taking(cid: int, node: str, at: datetime, handed_by: str, **kw: object) -> Comment:
    state = kw.pop("state", ClaimState.CLAIM)
    taken = replace(note(node, state), handed_by=handed_by)  # type: ignore[arg-type]
    return comment(cid, ledger.render(taken, f"{node} takes over"), at=at, **kw)  # type: ignore[arg-type]


def test_a_handed_on_claim_holds_in_its_predecessor_s_place() -> None:
    t = [T0 + timedelta(seconds=s) for s in range(0, 100, 10)]
    a_handing = handing(1, "a", t[1], ClaimState.HANDOFF, successor="c")
    stray = claim_comment(2, "b", t[2])  # a claim made meanwhile by another node
    c_taking = taking(3, "c", t[3], handed_by="a")
    notes = ledger.claims([a_handing, stray, c_taking], TRUSTED, ())
    now = t[3] + timedelta(seconds=1)
    held = ledger.verdict(notes, now, skew=5)
    assert held.holder is not None
    assert held.holder.node == "c"  # ahead of a's handoff note, and of b's claim
    assert [n.node for n in held.live] == ["c", "a", "b"]
    assert held.attempts == frozenset()

    # a lets go (released, not failed): c still holds, in a's place; no attempt counted.
    a_released = handing(1, "a", t[1], ClaimState.RELEASED, successor="c")
    after = ledger.verdict(ledger.claims([a_released, stray, c_taking], TRUSTED, ()), now, 5)
    assert after.holder is not None
    assert (after.holder.node, after.attempts) == ("c", frozenset())

    # Only the named successor may take the place: b saying a handed it over does not.
    b_pretends = taking(4, "b", t[4], handed_by="a")
    forged = ledger.claims([a_released, b_pretends], TRUSTED, ())
    assert [n.node for n in ledger.verdict(forged, now, 5).live] == ["b"]
    # ...and an untrusted account's claim counts for nothing, named successor or not.
    to_mallory = handing(5, "a", t[1], ClaimState.RELEASED, successor="mallory")
    mallory = taking(6, "mallory", t[5], handed_by="a", association="NONE", author="mallory")
    counted = ledger.claims([to_mallory, mallory], TRUSTED, ())
    assert [n.node for n in counted] == ["a"]
    assert ledger.verdict(counted, now, 5).is_free


def test_a_handoff_nobody_takes_runs_out_like_any_claim() -> None:
    a_handing = handing(1, "a", T0, ClaimState.HANDOFF, successor="c")
    notes = ledger.claims([a_handing], TRUSTED, ())
    assert ledger.verdict(notes, T0 + timedelta(seconds=30), 5).holder is not None
    late = ledger.verdict(notes, T0 + timedelta(seconds=90), 5)
    assert late.is_free
    assert late.attempts == {"a"}  # as an expired claim does


def test_a_handoff_round_trips_in_its_comment() -> None:
    parsed = ledger.parse(handing(1, "a", T0, ClaimState.HANDOFF, successor="c"))
    assert parsed is not None
    assert (parsed.state, parsed.successor, parsed.handed_by) == (ClaimState.HANDOFF, "c", "")
    taken = ledger.parse(taking(2, "c", T0, handed_by="a"))
    assert taken is not None
    assert (taken.state, taken.handed_by) == (ClaimState.CLAIM, "a")
