"""Who may help, and which offer the asking node takes."""

from __future__ import annotations

from datetime import UTC, datetime

from bzzz.help.matching import Bid, Helper, covers, eligible, listed, may_offer, rank
from bzzz.protocol import TaskHelpRequest


def request(capability: str = "advice", **extra: object) -> TaskHelpRequest:
    return TaskHelpRequest(
        task_id="lab/hello#3",
        from_node="a",
        reason="three commands failed in a row",
        requested_capability=capability,
        timestamp=datetime.now(UTC),
        **extra,  # type: ignore[arg-type]
    )


NODES = [
    Helper("a", ("lab:latest",), (), 1),  # the asker
    Helper("b", ("lab:latest",), ("claude",), 1),
    Helper("c", ("lab-helper:latest", "lab:latest"), (), 1),
    Helper("d", ("lab-helper:latest",), (), 0),  # no consult slot free
    Helper("e", (), ("claude",), 1),  # no model at all
]


def test_only_nodes_that_have_what_was_asked_and_a_free_slot_may_offer() -> None:
    assert eligible(request("lab-helper"), NODES) == ["c"]
    assert eligible(request("model:lab-helper:latest"), NODES) == ["c"]
    assert eligible(request("Claude"), NODES) == ["b", "e"]
    assert eligible(request("advice"), NODES) == ["b", "c"]  # any model; not the asker
    assert eligible(request("nowhere"), NODES) == []


def test_no_offer_past_the_hop_limit() -> None:
    c = NODES[2]
    assert may_offer(request("lab-helper", hop=2), c)
    assert not may_offer(request("lab-helper").model_copy(update={"hop": 3}), c)


def test_only_a_node_that_could_claim_the_task_offers_to_take_it_over() -> None:
    handoff = request("lab-helper", kind="handoff")
    assert not may_offer(handoff, NODES[2])  # a consult slot, but no worker slot free
    takers = [
        Helper("c", ("lab-helper:latest",), (), free=0, task_slots=1),  # consults busy: fine
        Helper("d", ("lab:latest",), (), free=1, task_slots=2),  # lacks the model
        Helper("a", ("lab-helper:latest",), (), free=1, task_slots=1),  # the holder itself
    ]
    assert eligible(handoff, takers) == ["c"]


def test_an_offer_names_what_was_asked_first() -> None:
    assert listed("lab", ["lab-helper:latest", "lab:latest"], ["claude"]) == [
        "lab:latest",
        "lab-helper:latest",
    ]
    assert covers("LAB-HELPER", ["lab-helper:latest"])
    assert not covers("advice", [], ["claude"])


def test_offers_rank_by_coverage_then_eta_then_load_then_rendezvous() -> None:
    exact = Bid("p1", "c", ("lab-helper:latest",), eta_seconds=30)
    quick_other = Bid("p2", "b", ("lab:latest",), eta_seconds=5)
    slower = Bid("p3", "d", ("lab-helper:latest",), eta_seconds=60)
    busier = Bid("p4", "e", ("lab-helper:latest",), eta_seconds=30, busy=1)
    ranked = rank("lab/hello#3", "lab-helper", [quick_other, slower, busier, exact])
    assert [b.node_id for b in ranked] == ["c", "e", "d", "b"]
    twins = [Bid(f"p{n}", f"n{n}", ("lab:latest",), 10) for n in range(5)]
    order = [b.node_id for b in rank("lab/hello#3", "advice", twins)]
    assert order == [b.node_id for b in rank("lab/hello#3", "advice", reversed(twins))]
    assert (
        order != [b.node_id for b in rank("lab/hello#4", "advice", twins)] or len(set(order)) == 5
    )
