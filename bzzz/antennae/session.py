"""A plan's review session, as its holder keeps it: who reviews, what was said, and what
follows. Pure.

A session is keyed by the task and the claim that holds it. Its reviewers are the top
eligible peers by rendezvous score on the session (at most MAX_REVIEWERS, so at most five
take part), chosen by the holder and named in the plan, so no coordinator is needed and
a reviewer knows it was asked. A round is one plan and its reviews: an objection makes
the holder revise (another round); approval, or no objection by the window's end, lets
work start; a question for a person, too many messages (MAX_MESSAGES) or too long a
session (MAX_SECONDS) escalates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from bzzz.protocol import MAX_REVIEWERS
from bzzz.rendezvous import score

MAX_MESSAGES = 10  # a session that has not converged by then escalates
MAX_SECONDS = 1800.0  # and one that lives longer


def session_id(task_id: str, claim: int) -> str:
    """The session of `task_id` under its claim comment `claim`: short and wire-safe."""
    return "s" + hashlib.sha256(f"{task_id}|{claim}".encode()).hexdigest()[:20]


def reviewers(session: str, holder: str, candidates: Iterable[str], count: int) -> list[str]:
    """The peers that review `session`'s plans: the top `count` (at most MAX_REVIEWERS) of
    `candidates` other than the holder, by rendezvous score on the session."""
    others = {c for c in candidates if c != holder}
    return sorted(others, key=lambda node: -score(session, node))[: min(count, MAX_REVIEWERS)]


class Outcome(StrEnum):
    APPROVED = "approved"  # every reviewer approved, or none objected within the window
    REVISE = "revise"  # an objection: the holder revises its plan
    PERSON = "person"  # a reviewer asked a question for a person: escalate
    NO_CONSENSUS = "no_consensus"  # objections past the last round, or too many messages


@dataclass(frozen=True)
class Said:
    node: str
    kind: str  # plan, or the review's verdict
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"node": self.node, "kind": self.kind, "text": self.text}


@dataclass
class Session:
    id: str
    task_id: str
    holder: str
    reviewers: list[str]
    started: float
    rounds: int = 0
    said: list[Said] = field(default_factory=list)

    def round(self, reviews: dict[str, Said], max_rounds: int, now: float) -> Outcome:
        """What a round's reviews (by reviewer; the silent ones are not there) lead to."""
        verdicts = {said.kind for said in reviews.values()}
        if "person" in verdicts:
            return Outcome.PERSON
        if "objection" not in verdicts:
            return Outcome.APPROVED
        too_long = now - self.started > MAX_SECONDS or len(self.said) >= MAX_MESSAGES
        if self.rounds >= max_rounds or too_long:
            return Outcome.NO_CONSENSUS
        return Outcome.REVISE

    def transcript(self) -> list[dict[str, str]]:
        return [said.as_dict() for said in self.said]
