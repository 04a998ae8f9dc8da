"""Handing a claimed task on to another node: the claim machine on both sides (pure),
and the claim comments on the local forge, where the successor holds the task in its
predecessor's place and nobody else can take it meanwhile."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bzzz.claims.actions import Announce, Enqueue, HandOff, Phase, PostClaim, Release
from bzzz.claims.arbiter import Arbiter, Claim
from bzzz.claims.ledger import ClaimNote, ClaimState, Verdict
from bzzz.claims.machine import ClaimBook
from bzzz.config import ClaimSettings, NodeSettings, Settings, TaskSettings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from tests.claimlab import REPO, token, world

SETTINGS = ClaimSettings(lease=60.0, gossip_renew=5.0, rank_delay=2.0, margin=10.0)
T0 = datetime(2026, 12, 6, tzinfo=UTC)
TASK = f"{REPO}#1"


def book(node: str) -> ClaimBook:
    return ClaimBook(node, SETTINGS, ranking=lambda *_: 0)


def claim(cid: int, node: str, state: ClaimState = ClaimState.CLAIM, **kw: str) -> ClaimNote:
    return ClaimNote(cid, "bot", node, f"peer-{node}", state, 60.0, T0, T0, **kw)  # type: ignore[arg-type]


def held_by(note: ClaimNote, *live: ClaimNote) -> Verdict:
    return Verdict(holder=note, done=None, attempts=frozenset(), expired=(), live=(note, *live))


def running(node: str, cid: int) -> ClaimBook:
    b = book(node)
    b.learn(TASK, "lab", 0.0)
    own = claim(cid, node)
    b.claim_checked(TASK, own, held_by(own), sent_at=0.0, still_a_task=True, now=0.0)
    b.worker_started(TASK, 1.0)
    return b


def test_the_holder_hands_on_and_lets_go_once_its_successor_holds() -> None:
    a = running("a", 10)
    assert a.hand_off(TASK, "c") == [HandOff(TASK, 10, "c")]
    # While c has not claimed, a still holds and renews (its note names c from now on).
    assert a.renewed(TASK, held_by(claim(10, "a", ClaimState.HANDOFF)), 2.0, 2.0) == []
    assert a.get(TASK).phase is Phase.RUNNING  # type: ignore[union-attr]
    successor = claim(12, "c", handed_by="a")
    actions = a.renewed(TASK, held_by(successor, claim(10, "a", ClaimState.HANDOFF)), 3.0, 3.0)
    assert actions == [Announce(TASK, 0.0), Release(TASK, 10, "Handed on to c.")]
    task = a.get(TASK)
    assert task is not None
    assert (task.phase, task.holder, task.attempts) == (Phase.HELD, "c", frozenset())


def test_only_a_task_held_here_is_handed_on() -> None:
    idle = book("a")
    idle.learn(TASK, "lab", 0.0)
    assert idle.hand_off(TASK, "c") == []
    assert running("a", 10).hand_off(TASK, "a") == []  # not to itself


def test_the_successor_claims_in_its_predecessor_s_place_and_runs_it() -> None:
    c = ClaimBook("c", SETTINGS, ranking=lambda *_: None)  # it would not claim it itself
    c.learn(TASK, "lab", 0.0)
    c.heard_claim(TASK, "a", 60.0, 0.5)  # a holds it: c would not claim it
    assert c.get(TASK).phase is Phase.HELD  # type: ignore[union-attr]
    assert c.take_over(TASK, "a", 1.0) == [PostClaim(TASK, 1, "", 0, handed_by="a")]
    own = claim(12, "c", handed_by="a")
    verdict = held_by(own, claim(10, "a", ClaimState.HANDOFF))
    actions = c.claim_checked(TASK, own, verdict, sent_at=1.0, still_a_task=True, now=1.1)
    assert actions == [Announce(TASK, 60.0), Enqueue(TASK, 12)]
    assert c.take_over(TASK, "a", 2.0) == []  # already ours


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    root = Path(tempfile.mkdtemp(prefix="bzzz-handoff-"))
    served = LocalForge(root).start()
    try:
        served.seed(world(["a", "b", "c"], 1))
        yield served
    finally:
        served.stop()
        shutil.rmtree(root, ignore_errors=True)


def arbiter(forge: LocalForge, node: str, tmp_path: Path) -> Arbiter:
    settings = Settings(
        home=tmp_path / node,
        node=NodeSettings(node),
        tasks=TaskSettings(repositories=(REPO,)),
        claims=SETTINGS,
    )
    client = GitHubForge(forge.api_url, Token(token(node)), seconds_between_writes=0)
    return Arbiter(client, settings, f"peer-{node}")


def test_on_the_forge_nobody_jumps_ahead_of_a_handed_on_claim(
    forge: LocalForge, tmp_path: Path
) -> None:
    a, b, c = (arbiter(forge, n, tmp_path) for n in ("a", "b", "c"))
    mine = a.post_claim(Claim(TASK, nonce="n1"), "bzzz/task-1-")
    assert mine.own is not None
    assert mine.verdict is not None
    assert mine.verdict.holder is not None
    assert mine.verdict.holder.node == "a"
    handing = Claim(TASK, nonce="n1", successor="c")
    assert a.edit(handing, mine.own.comment_id, ClaimState.HANDOFF, reason="to c")
    # b claims meanwhile (it missed the gossip): a's handoff still holds.
    stray = b.post_claim(Claim(TASK, nonce="n2"), "bzzz/task-1-")
    assert stray.verdict is not None
    assert stray.verdict.holder is not None
    assert stray.verdict.holder.node == "a"
    # c claims in a's place: it holds, ahead of b's earlier comment.
    taken = c.post_claim(Claim(TASK, nonce="n3", handed_by="a"), "bzzz/task-1-")
    assert taken.own is not None
    assert taken.verdict is not None
    assert taken.verdict.holder is not None
    assert taken.verdict.holder.comment_id == taken.own.comment_id
    # a lets go; c still holds, and a's going is no attempt.
    assert a.edit(handing, mine.own.comment_id, ClaimState.RELEASED, reason="Handed on to c.")
    after = c.check(TASK).verdict
    assert after is not None
    assert after.holder is not None
    assert (after.holder.node, after.attempts) == ("c", frozenset())
    assert [n.node for n in after.live] == ["c", "b"]
    # Renewals keep each note what it is: a's renewal while handing says handoff.
    assert a.renew(handing, mine.own.comment_id) is not None
    said = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
    bodies = [x.body for x in said.get_comments(REPO, 1)]
    assert any("hands this task on to **c**" in body for body in bodies)
    assert any("takes this task over from **a**" in body for body in bodies)
