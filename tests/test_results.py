"""What the forge is told about a run: which nodes' models did the work."""

from __future__ import annotations

from workers.results import RunFacts, served


def facts(**served_by: int) -> RunFacts:
    return RunFacts(node="a", model="lab-coder", seconds=1.0, served_by=served_by)


def test_a_run_on_the_nodes_own_model_says_nothing_more() -> None:
    assert served(facts()) == ""
    assert served(facts(a=5)) == ""


def test_a_peers_model_is_named_and_several_are_counted() -> None:
    assert served(facts(c=5)) == ", served by node **c** over the mesh"
    assert served(facts(a=1, c=4, b=4)) == (
        ", served by nodes **b** (4 calls), **c** (4 calls), **a** (1 call) over the mesh"
    )
