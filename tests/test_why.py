"""Why a node did or did not claim a task, in words (bzzz.claims.why): each reason an
operator asks about, from the claim book's state and the node's situation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bzzz.claims.actions import Phase, TaskClaim
from bzzz.claims.matching import Market, Offer, can_run, rank, requirement, split_requirement
from bzzz.claims.why import Decisions, Situation, explain

OWN = Offer("peer-a", ("qwen2.5-coder:7b",), ("ollama",), 2, "node-a")
HERE = Situation("node-a", Market(OWN), used_slots=0, max_attempts=3, place=0)


def task(**fields: object) -> TaskClaim:
    return replace(TaskClaim("lab/app#7", "qwen2.5-coder:7b"), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("claim", "situation", "said"),
    [
        (None, HERE, "this node has not heard of it as a task"),
        (
            task(model="llama3:70b"),
            HERE,
            "this node lacks `llama3:70b` (it has qwen2.5-coder:7b)",
        ),
        (
            task(model=requirement("qwen2.5-coder:7b", "codex")),
            HERE,
            "this node does not offer the agent CLI `codex` (it drives: none;"
            " `bzzz doctor` says why one is missing)",
        ),
        (task(), replace(HERE, used_slots=2), "no free worker slot (2 in use of 2)"),
        (
            task(),
            replace(HERE, readiness=("no forge token: it cannot claim or report",)),
            "this node cannot run tasks: no forge token: it cannot claim or report",
        ),
        (
            task(phase=Phase.QUARANTINED, attempts=frozenset({"node-b", "node-c", "node-d"})),
            HERE,
            "quarantined: it failed on node-b, node-c, node-d; a person must look at it",
        ),
        (
            task(phase=Phase.HELD, holder="node-b", lease_until=130.0),
            HERE,
            "held by node-b: it waits for that node's lease (30 s left)",
        ),
        (
            task(phase=Phase.HELD, holder="node-b", lease_until=90.0),
            HERE,
            "node-b's lease ran out: the forge decides who holds it next",
        ),
        (
            task(phase=Phase.WAITING, claim_at=104.0),
            replace(HERE, place=1),
            "ranked #2 among the nodes that can take it: claims in 4 s unless one ranked"
            " higher claims first",
        ),
        (
            task(phase=Phase.FAILED, attempts=frozenset({"node-a"})),
            HERE,
            "it failed on this node already (1 attempts in all)",
        ),
        (
            task(attempts=frozenset({"node-b", "node-c", "node-d"})),
            HERE,
            "it failed on 3 nodes, the most it may (claims.max_attempts)",
        ),
        (
            task(phase=Phase.RUNNING, our_lease_end=160.0),
            HERE,
            "this node holds it (running); its lease ends in 60 s unless renewed",
        ),
        (
            task(phase=Phase.DONE, holder="node-b", result_url="http://forge/lab/app/pull/3"),
            HERE,
            "done by node-b: http://forge/lab/app/pull/3",
        ),
    ],
)
def test_each_reason_in_words(claim: TaskClaim | None, situation: Situation, said: str) -> None:
    assert explain(claim, situation, now=100.0) == said


def test_a_task_reachable_only_through_the_gateway_is_eligible_after_the_local_ones() -> None:
    gateway = replace(HERE, market=Market(replace(OWN, gateway=True)), place=None)
    lacking = task(model="llama3:70b")
    said = explain(lacking, gateway, now=0.0)
    assert said == "this node lacks `llama3:70b` (it has qwen2.5-coder:7b) and no live node has it"
    assert explain(lacking, replace(gateway, place=3), now=0.0).startswith("eligible (ranked #4)")


def test_the_record_of_moves_is_short_and_bounded() -> None:
    decisions = Decisions()
    moving = task()
    for phase in (Phase.SEEN, Phase.WAITING, Phase.HELD):
        moving.phase, moving.holder = phase, "node-b"
        decisions.moved(moving, "2026-12-06T22:10:01.000+00:00")
    assert decisions.of("lab/app#7") == [
        "22:10:01 seen",
        "22:10:01 waiting",
        "22:10:01 held (node-b)",
    ]
    for number in range(600):
        decisions.moved(replace(moving, task_id=f"lab/app#{number}"), "2026-12-06T22:10:02")
    assert decisions.of("lab/app#7") == []  # the oldest records went first
    assert len(decisions.of("lab/app#599")) == 1


def test_a_task_for_an_agent_cli_goes_to_a_node_that_offers_it() -> None:
    """The requirement carries the agent and the model; a node needs both (the model
    itself, or through its gateway)."""
    wanted = requirement("lab-coder", "claude")
    assert split_requirement(wanted) == ("lab-coder", "claude")
    assert split_requirement("lab-coder") == ("lab-coder", "")
    both = Offer("p1", ("lab-coder",), ("claude",), 1)
    no_cli = Offer("p2", ("lab-coder",), ("ollama",), 1)
    gateway_only = Offer("p3", (), ("claude",), 1, gateway=True)
    assert can_run(wanted, both)
    assert not can_run(wanted, no_cli)
    assert rank("t#1", wanted, [no_cli, gateway_only, both], {"lab-coder"}) == ["p1", "p3"]
