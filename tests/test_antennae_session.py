"""A plan review's rules (pure): who reviews, what a round leads to, and how the models'
replies are read."""

from __future__ import annotations

import json

import pytest

from bzzz.antennae.prompts import read_plan, read_review
from bzzz.antennae.session import MAX_MESSAGES, Outcome, Said, Session, reviewers, session_id


def test_reviewers_are_the_top_peers_by_rendezvous_never_the_holder_at_most_four() -> None:
    sid = session_id("lab/app#1", 42)
    peers = [f"node-{i}" for i in range(10)]
    chosen = reviewers(sid, "node-0", peers, 4)
    assert len(chosen) == 4
    assert "node-0" not in chosen
    assert chosen == reviewers(sid, "node-0", list(reversed(peers)), 4)  # any order: the same
    assert reviewers(sid, "node-0", peers, 9) == reviewers(sid, "node-0", peers, 4)  # capped
    assert session_id("lab/app#1", 43) != sid  # a new claim: a new session


def session() -> Session:
    return Session("s1", "lab/app#1", "a", ["b", "c"], started=0.0, rounds=1)


def reviews(*verdicts: str) -> dict[str, Said]:
    return {node: Said(node, verdict, "") for node, verdict in zip("bc", verdicts, strict=False)}


@pytest.mark.parametrize(
    ("verdicts", "outcome"),
    [
        (("approve", "approve"), Outcome.APPROVED),
        (("approve",), Outcome.APPROVED),  # c was silent: no objection by the window's end
        ((), Outcome.APPROVED),
        (("suggestion", "approve"), Outcome.APPROVED),
        (("objection", "approve"), Outcome.REVISE),
        (("person", "approve"), Outcome.PERSON),
    ],
)
def test_what_a_round_leads_to(verdicts: tuple[str, ...], outcome: Outcome) -> None:
    assert session().round(reviews(*verdicts), max_rounds=3, now=1.0) is outcome


def test_objections_past_the_last_round_or_too_many_messages_do_not_converge() -> None:
    last = Session("s1", "t", "a", ["b"], started=0.0, rounds=3)
    assert last.round(reviews("objection"), max_rounds=3, now=1.0) is Outcome.NO_CONSENSUS
    chatty = Session("s1", "t", "a", ["b"], started=0.0, rounds=1)
    chatty.said = [Said("a", "plan", "")] * MAX_MESSAGES
    assert chatty.round(reviews("objection"), max_rounds=3, now=1.0) is Outcome.NO_CONSENSUS
    old = Session("s1", "t", "a", ["b"], started=0.0, rounds=1)
    assert old.round(reviews("objection"), max_rounds=3, now=1801.0) is Outcome.NO_CONSENSUS


def chat(content: str) -> bytes:
    return json.dumps({"message": {"role": "assistant", "content": content}}).encode()


def test_a_review_is_read_from_its_field_not_from_keywords() -> None:
    happy = chat(json.dumps({"verdict": "approve", "text": "Happy to help: I need a human? No."}))
    assert read_review(happy) == ("approve", "Happy to help: I need a human? No.")
    with pytest.raises(ValueError, match="no verdict"):
        read_review(chat(json.dumps({"verdict": "stuck, escalate", "text": "help"})))
    with pytest.raises(ValueError, match="not JSON"):
        read_review(chat("I approve."))
    with pytest.raises(ValueError, match="said"):
        read_review(json.dumps({"error": "model not found"}).encode())


def test_a_plan_and_its_question_for_a_person() -> None:
    assert read_plan(json.dumps({"plan": " Do it. ", "question_for_person": ""})) == ("Do it.", "")
    asked = read_plan(json.dumps({"plan": "", "question_for_person": "Which API version?"}))
    assert asked == ("", "Which API version?")
    assert read_plan("Just a text plan.") == ("Just a text plan.", "")  # format ignored
