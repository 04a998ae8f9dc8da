"""What goes into the node's audit log: each change in the node's parts since the last
look, recorded once. Trio-owned (it reads the parts on the trio thread).

The claim book tells of a task's life as this node sees it, each change as it happens
(learnt, claimed by whom, in progress, completed with its pull request, failed,
quarantined, closed); the other parts are compared with the last look: the help
asked and given, hand-offs included; escalations; each plan and review of a session this
node holds; peers that joined and left. Free text is cut short; no secret is in any of
these parts.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from bzzz.claims.actions import Phase, TaskClaim
from bzzz.node.audit import AuditLog

if TYPE_CHECKING:
    from bzzz.node.runtime import Parts

SEEN_KEPT = 5000  # remembered keys of recorded events (then forgotten: at worst, recorded again)
TYPE_OF_PHASE = {
    Phase.HELD: "task_claimed",  # by another node
    Phase.CLAIMED: "task_claimed",  # by this node
    Phase.RUNNING: "task_progress",
    Phase.DONE: "task_completed",
    Phase.FAILED: "task_failed",
    Phase.QUARANTINED: "task_quarantined",
    Phase.CLOSED: "task_closed",
}


class Recorder:
    def __init__(self, audit: AuditLog, parts: Parts) -> None:
        self.audit = audit
        self.parts = parts
        self.audit_node = parts.settings.node.name
        self._known: set[str] = set()  # tasks announced in this log since the node started
        self._seen: set[Hashable] = set()
        self._peers: set[str] = set()
        self._said: dict[str, int] = {}  # session -> entries recorded

    def observe(self) -> None:
        self._help()
        self._escalations()
        self._reviews()
        self._peers_now()

    def _new(self, key: Hashable) -> bool:
        if key in self._seen:
            return False
        if len(self._seen) >= SEEN_KEPT:
            self._seen.clear()
        self._seen.add(key)
        return True

    def moved(self, task: TaskClaim) -> None:
        """The claim book learnt a task or moved one to another phase (every change, as
        it happens: the claim machine calls this)."""
        if task.task_id not in self._known:
            kind: str | None = "task_announced"
            if len(self._known) >= SEEN_KEPT:
                self._known.clear()
            self._known.add(task.task_id)
        elif task.phase is Phase.SEEN:
            kind = "task_released"  # nobody holds it now (a lease ran out, a node let go)
        else:
            kind = TYPE_OF_PHASE.get(task.phase)
        if kind is None:
            return
        self.audit.record(
            kind,
            task=task.task_id,
            phase=task.phase.value,
            holder=task.holder or (self.audit_node if task.phase.ours else ""),
            attempts=len(task.attempts),
            result_url=task.result_url,
            successor=task.successor,
        )

    def _help(self) -> None:
        help_ = self.parts.help
        for asked in list(help_.asker.asked):
            if asked.outcome == "asking" or not self._new(("asked", id(asked), asked.outcome)):
                continue
            kind = "task_handoff" if asked.kind == "handoff" else "task_help_requested"
            self.audit.record(
                kind,
                task=asked.task_id,
                capability=asked.capability,
                asks=asked.asks,
                offers=list(asked.offers),
                helper=asked.helper,
                model=asked.model,
                outcome=asked.outcome,
            )
        for given in list(help_.giver.given):
            if self._new(("given", given)):
                kind = "task_takeover" if given.kind == "handoff" else "task_help_offered"
                self.audit.record(
                    kind,
                    task=given.task_id,
                    asker=given.asker,
                    model=given.model,
                    outcome=given.outcome,
                )

    def _escalations(self) -> None:
        reports = self.parts.reports
        for escalated in list(reports.escalator.escalated) if reports else ():
            if self._new(("escalated", escalated)):
                self.audit.record(
                    "escalation",
                    task=escalated.task_id,
                    trigger=escalated.trigger,
                    reason=escalated.reason,
                )

    def _reviews(self) -> None:
        proposer = self.parts.help.proposer
        for session in list(proposer.sessions.values()) if proposer else ():
            done = self._said.get(session.id, 0)
            for said in session.said[done:]:
                kind = {"plan": "plan_proposed", "objection": "objection_raised"}.get(
                    said.kind, "plan_review"
                )
                self.audit.record(
                    kind,
                    task=session.task_id,
                    session=session.id,
                    node=said.node,
                    verdict=said.kind,
                    text=said.text,
                )
            self._said[session.id] = len(session.said)
        if len(self._said) > 1000:
            live = set(proposer.sessions) if proposer else set()
            self._said = {s: n for s, n in self._said.items() if s in live}

    def _peers_now(self) -> None:
        membership = self.parts.membership
        now = {offer.node_id for offer in membership.offers()}
        for node in sorted(now - self._peers):
            self.audit.record("peer_joined", peer=node)
        for node in sorted(self._peers - now):
            self.audit.record("peer_left", peer=node)
        self._peers = now
