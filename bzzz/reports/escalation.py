"""Escalating a task to people, once: the issue gets a comment with a summary and the hold
label (tasks.hold_label: no node works on it until a person removes the label), the N8N
webhook gets the documented body, and Hive a status `escalated`. Each is a report in the
outbox, keyed by the task and the escalation's cause (or its Antennae session), so that
an escalation made twice, or again after a restart, goes out once.

`Escalation` and the texts are pure; `Escalator` is trio-side and hands the outbox to a
thread.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import trio

from bzzz.protocol import utc_now
from bzzz.reports.outbox import Outbox
from bzzz.reports.sender import Sender

log = logging.getLogger(__name__)

KEPT = 50  # escalations remembered for the status
HISTORY_LINES = 50
LINE_CHARS = 500


class Trigger:
    """Why a task escalates (the webhook body's `trigger`)."""

    QUARANTINED = "quarantined"  # it failed on claims.max_attempts nodes
    HELP_NOT_FOUND = "help_not_found"  # it asked the mesh for help and no peer could
    NO_CONSENSUS = "no_consensus"  # its plan's review did not converge
    PERSON_ASKED = "person_asked"  # a reviewer or its model asked for a person


@dataclass(frozen=True)
class Escalation:
    task_id: str  # owner/repository#number
    title: str
    issue_url: str
    trigger: str
    reason: str
    node: str  # the node that escalates (the Go body's `escalation_agent`)
    session_id: str = ""  # the Antennae session that escalates, if any
    participants: tuple[str, ...] = ()
    conversation: tuple[dict[str, str], ...] = ()  # {"node", "kind", "text"}, oldest first
    at: datetime = field(default_factory=utc_now)

    @property
    def key(self) -> str:
        """One escalation per task and cause (per session, for a plan's review)."""
        return f"escalation:{self.task_id}:{self.session_id or self.trigger}"

    @property
    def repo(self) -> str:
        return self.task_id.rpartition("#")[0]

    @property
    def number(self) -> int:
        return int(self.task_id.rpartition("#")[2])

    def history(self) -> str:
        """The conversation as lines, as the Go body's `history` had it."""
        lines = [
            f"{said.get('node', '?')} ({said.get('kind', 'message')}): {said.get('text', '')}"
            for said in self.conversation[-HISTORY_LINES:]
        ]
        return "\n".join(line[:LINE_CHARS] for line in lines) or self.reason


def webhook_body(escalation: Escalation) -> dict[str, Any]:
    """The N8N webhook's JSON: the Go client's fields first (`task_id` is the issue's
    number, as there), then what a workflow needs to act without asking back."""
    e = escalation
    return {
        "task_id": e.number,
        "task_title": e.title,
        "escalation_agent": e.node,
        "reason": e.reason,
        "history": e.history(),
        "task": e.task_id,
        "repository": e.repo,
        "issue_url": e.issue_url,
        "session_id": e.session_id,
        "trigger": e.trigger,
        "participants": list(e.participants),
        "conversation": [dict(said) for said in e.conversation[-HISTORY_LINES:]],
        "timestamp": e.at.isoformat(timespec="seconds"),
    }


def issue_comment(escalation: Escalation, label: str) -> str:
    e = escalation
    said = "\n".join(f"> {line}" for line in e.history().splitlines()[-10:])
    cause = e.trigger.replace("_", " ")
    return (
        f"Bzzz node **{e.node}** asks a person to look at this task ({cause})."
        f"\n\n{e.reason}\n\n{said}\n\nNo Bzzz node works on it while it has the `{label}`"
        " label: remove the label to let them go on."
    )


@dataclass(frozen=True)
class Escalated:
    """An escalation this node made, for the status."""

    task_id: str
    trigger: str
    reason: str
    at: str


class Escalator:
    """Makes escalations' reports; the sender delivers them."""

    def __init__(
        self, *, outbox: Outbox, sender: Sender, label: str, webhook: bool, hive: bool
    ) -> None:
        self._outbox = outbox
        self._sender = sender
        self._label = label
        self._targets = {"webhook": webhook, "hive": hive}
        self._nursery: trio.Nursery | None = None
        self.escalated: deque[Escalated] = deque(maxlen=KEPT)

    def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def escalate_soon(self, escalation: Escalation) -> None:
        """Escalate from code that cannot wait (a claim's end, an ask's end)."""
        if self._nursery is None:
            log.error("%s: cannot escalate: the node is not running", escalation.task_id)
            return
        self._nursery.start_soon(self.escalate, escalation)

    async def escalate(self, escalation: Escalation) -> bool:
        """Escalate once; False if this task escalated for this cause already."""
        added = await trio.to_thread.run_sync(self._add, escalation)
        if added:
            log.warning(
                "%s: escalated to people (%s): %s",
                escalation.task_id,
                escalation.trigger,
                escalation.reason,
            )
            e = escalation
            self.escalated.append(Escalated(e.task_id, e.trigger, e.reason[:300], e.at.isoformat()))
            self._sender.poke()
        return added

    def _add(self, escalation: Escalation) -> bool:
        e, key = escalation, escalation.key
        if not self._outbox.add(f"{key}:label", "forge", _label(e, self._label)):
            return False  # escalated before (the label is the first report made)
        self._outbox.add(
            f"{key}:comment",
            "forge",
            {
                "op": "comment",
                "repo": e.repo,
                "number": e.number,
                "text": issue_comment(e, self._label),
            },
        )
        if self._targets["webhook"]:
            self._outbox.add(f"{key}:webhook", "webhook", webhook_body(e))
        if self._targets["hive"]:
            results = {"escalation_reason": e.reason, "escalated_by": e.node, "trigger": e.trigger}
            body = {
                "op": "status",
                "repo": e.repo,
                "number": e.number,
                "status": "escalated",
                "results": results,
                "metadata": {
                    "session_id": e.session_id,
                    "conversation_length": len(e.conversation),
                },
            }
            self._outbox.add(f"{key}:hive", "hive", body)
        return True


def _label(escalation: Escalation, label: str) -> dict[str, Any]:
    return {"op": "label", "repo": escalation.repo, "number": escalation.number, "label": label}
