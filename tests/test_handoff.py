"""Handing a claimed task on to another node: the claim machine on both sides (pure), the
worker's ask and the hand-off case, and the claim comments on the local forge, where the
successor holds the task in its predecessor's place and nobody else can take it meanwhile.
Between real nodes: tests/test_handover.py."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bzzz.claims.actions import Announce, Enqueue, HandOff, Phase, PostClaim, Release, Renew
from bzzz.claims.arbiter import Arbiter, Claim
from bzzz.claims.ledger import ClaimNote, ClaimState, Verdict
from bzzz.claims.machine import ClaimBook
from bzzz.config import ClaimSettings, NodeSettings, Settings, TaskSettings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.help.handover import BadHandOver, case_from, parse_case
from bzzz.lab.forge import LocalForge
from bzzz.work import HANDED, TaskSpec
from tests.claimlab import REPO, token, world
from workers.executors import Outcome
from workers.handover import hand_off

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


def test_the_holder_lets_go_as_soon_as_its_successor_s_claim_holds() -> None:
    a = running("a", 10)
    a.hand_off(TASK, "c")
    assert a.handed(TASK, 2.0) == [Announce(TASK, 0.0), Release(TASK, 10, "Handed on to c.")]
    task = a.get(TASK)
    assert task is not None
    assert (task.phase, task.holder, task.attempts) == (Phase.HELD, "c", frozenset())
    assert running("a", 10).handed(TASK, 2.0) == []  # nothing handed: nothing to let go


def test_a_hand_off_nobody_took_leaves_the_task_held_and_renewed_at_once() -> None:
    a = running("a", 10)
    a.hand_off(TASK, "c")
    a.hand_off_failed(TASK, 5.0)
    task = a.get(TASK)
    assert task is not None
    assert (task.phase, task.successor, task.next_forge_renewal) == (Phase.RUNNING, "", 5.0)
    assert Renew(TASK, 10) in a.tick(5.0)  # its comment names no successor any more


def spec() -> TaskSpec:
    return TaskSpec(
        TASK, REPO, 1, "http://forge/lab/app/issues/1", "coder", "Task 1", "", "a", 10, 1
    )


def test_a_worker_hands_on_when_its_node_finds_a_taker(tmp_path: Path) -> None:
    sent: list[dict[str, object]] = []

    def node(path: Path, command: dict[str, object], timeout: float) -> dict[str, object]:
        sent.append(command)
        return {"handed": True, "node": "c", "asks": 1, "offers": ["c"]}

    handed = hand_off(
        spec(),
        "the model crashed",
        socket_path=tmp_path,
        node="a",
        still_holds=lambda: True,
        send=node,
    )
    assert handed == Outcome(False, HANDED, spec().issue_url, "handed on to c: the model crashed")
    assert sent == [
        {
            "cmd": "handoff",
            "task_id": TASK,
            "capability": "coder",
            "reason": "the model crashed",
            "branch": "",
        }
    ]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ({"handed": False, "reason": "no peer offered to take it after 3 asks"}, "no peer offered"),
        ({"error": "handoff: a task_id is needed"}, "handoff: a task_id"),
        ({"handed": True}, "no answer"),  # names no successor: not handed
    ],
)
def test_a_worker_that_finds_no_taker_learns_why(reply: dict[str, object], why: str) -> None:
    def node(path: Path, command: dict[str, object], timeout: float) -> dict[str, object]:
        return reply

    answer = hand_off(
        spec(),
        "broken",
        socket_path=Path("/nowhere"),
        node="a",
        still_holds=lambda: True,
        send=node,
    )
    assert isinstance(answer, str)
    assert answer.startswith(why)


def test_a_worker_that_lost_its_claim_hands_nothing_on() -> None:
    def node(path: Path, command: dict[str, object], timeout: float) -> dict[str, object]:
        raise AssertionError("the node is not asked")

    lost = hand_off(
        spec(),
        "broken",
        socket_path=Path("/nowhere"),
        node="a",
        still_holds=lambda: False,
        send=node,
    )
    assert lost == Outcome(False, "failure", spec().issue_url, "broken (and the claim is lost)")


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'{"type": "handoff", "request_id": "r", "task_id": 7}',
        b'{"type": "handoff", "request_id": "r", "task_id": "lab/app#1", "branch": "x"}',
        b'{"type": "handoff", "request_id": "", "task_id": "lab/app#1"}',
        b'{"type": "consult", "request_id": "r", "task_id": "lab/app#1"}',
    ],
)
def test_a_malformed_hand_off_case_is_refused(data: bytes) -> None:
    with pytest.raises(BadHandOver):
        parse_case(data)


def test_a_hand_off_case_travels_whole_and_bounded() -> None:
    case = case_from(
        "r1", TASK, {"capability": "coder", "reason": "x " * 400, "branch": "node-a/app:bzzz/t-1"}
    )
    assert parse_case(case.to_json()) == case
    assert 0 < len(case.reason) <= 500
