"""Peers taking part in each other's work: [help] and [antennae] (plans reviewed)."""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.config.base import Invalid, doc, positive
from bzzz.protocol import MAX_ANTENNAE_HOPS, MAX_HELP_HOPS, MAX_REVIEWERS


@dataclass(frozen=True)
class HelpSettings:
    slots: int = doc(
        "Consults this node gives peers at once (advice from its model); 0 gives none.",
        default=1,
    )
    bid_window: float = doc(
        "Seconds an asking node gathers offers before it takes the best one.", default=2.0
    )
    max_asks: int = doc(
        f"Times a task asks the mesh before it goes on alone (at most {MAX_HELP_HOPS}).",
        default=MAX_HELP_HOPS,
    )
    eta: int = doc(
        "Seconds this node says a consult of its takes (the eta of its offers).", default=30
    )
    wait_floor: float = doc(
        "Seconds an asker waits at least for an accepted helper's advice (else twice the"
        " helper's eta) before it takes the next offer.",
        default=30.0,
    )
    consult_timeout: float = doc(
        "Seconds this node's model may take to write one piece of advice.", default=120.0
    )

    def check(self) -> None:
        if self.slots < 0:
            raise Invalid("help.slots", f"is {self.slots}", "use 0 or more")
        if not 1 <= self.max_asks <= MAX_HELP_HOPS:
            raise Invalid("help.max_asks", f"is {self.max_asks}", f"use 1 to {MAX_HELP_HOPS}")
        if self.eta < 1:
            raise Invalid("help.eta", f"is {self.eta}", "use 1 or more")
        positive("help.bid_window", self.bid_window)
        positive("help.wait_floor", self.wait_floor)
        positive("help.consult_timeout", self.consult_timeout)


REVIEW_MODES = ("off", "label", "always")


@dataclass(frozen=True)
class AntennaeSettings:
    review: str = doc(
        "When a task's plan is reviewed by peers before work starts: off, label (issues"
        " with antennae.label), or always.",
        default="off",
    )
    label: str = doc(
        "With review = label: the issues whose plans peers review.", default="bzzz-review"
    )
    window: float = doc(
        "Seconds reviewers have to answer a plan; no objection by then lets work start.",
        default=30.0,
    )
    max_rounds: int = doc(
        f"Plans a task may post (the first and its revisions, at most {MAX_ANTENNAE_HOPS});"
        " an objection to the last escalates to people.",
        default=MAX_ANTENNAE_HOPS,
    )
    reviewers: int = doc(
        f"Peers that review a plan (at most {MAX_REVIEWERS}).", default=MAX_REVIEWERS
    )

    def check(self) -> None:
        if self.review not in REVIEW_MODES:
            raise Invalid(
                "antennae.review", f"is {self.review!r}", f"use one of {', '.join(REVIEW_MODES)}"
            )
        if not self.label.strip():
            raise Invalid("antennae.label", "is empty", 'use e.g. "bzzz-review"')
        positive("antennae.window", self.window)
        if not 1 <= self.max_rounds <= MAX_ANTENNAE_HOPS:
            raise Invalid(
                "antennae.max_rounds", f"is {self.max_rounds}", f"use 1 to {MAX_ANTENNAE_HOPS}"
            )
        if not 1 <= self.reviewers <= MAX_REVIEWERS:
            raise Invalid("antennae.reviewers", f"is {self.reviewers}", f"use 1 to {MAX_REVIEWERS}")


@dataclass(frozen=True)
class AuditSettings:
    replicas: int = doc(
        "Other nodes' audit logs this node keeps a verified replica of (the first it"
        " meets); 0 keeps none.",
        default=32,
    )
    replica_entries: int = doc(
        "Entries kept of each replica at most; beyond them, its checkpoints are still"
        " checked by consistency proofs.",
        default=1_000_000,
    )
    announce_every: float = doc(
        "Seconds at most between two announcements of this node's latest checkpoint (it"
        " is announced at once when signed).",
        default=60.0,
    )

    def check(self) -> None:
        if self.replicas < 0:
            raise Invalid("audit.replicas", f"is {self.replicas}", "use 0 or more")
        if self.replica_entries < 0:
            raise Invalid("audit.replica_entries", f"is {self.replica_entries}", "use 0 or more")
        positive("audit.announce_every", self.announce_every)
