"""The node's reports to people and services: its outbox, the loop that delivers it,
and escalations (bzzz/reports/). Built here from the settings; the claim driver and
the help asker call `escalate` when a task needs a person."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import trio

from bzzz.antennae.session import Session
from bzzz.config import Settings
from bzzz.forge.api import Forge
from bzzz.forge.token import load_secret
from bzzz.node.hive import HiveReports
from bzzz.reports.escalation import Escalation, Escalator
from bzzz.reports.outbox import Outbox
from bzzz.reports.sender import Deliver, Sender
from bzzz.reports.targets import to_forge, to_hive, to_webhook
from bzzz.tasks.table import TaskTable


@dataclass
class ReportParts:
    outbox: Outbox
    sender: Sender
    escalator: Escalator
    node: str
    table: TaskTable
    hive: HiveReports | None = None

    async def note_tasks(self) -> None:
        """Report this node's claims and their progress to Hive (new ones only)."""
        if self.hive is None:
            return
        new = self.hive.note(self.table.records())
        if new:
            await trio.to_thread.run_sync(self._keep, new)
            self.sender.poke()

    def _keep(self, reports: list[tuple[str, dict[str, Any]]]) -> None:
        for key, body in reports:
            self.outbox.add(key, "hive", body)

    def escalate(self, trigger: str, task_id: str, reason: str) -> None:
        """Escalate a task this node knows to people (once per task and cause)."""
        self.escalator.escalate_soon(self._escalation(trigger, task_id, reason))

    def escalate_session(self, trigger: str, task_id: str, reason: str, session: Session) -> None:
        """Escalate a plan's review (once per session): its participants and transcript."""
        escalation = replace(
            self._escalation(trigger, task_id, reason),
            session_id=session.id,
            participants=(session.holder, *session.reviewers),
            conversation=tuple(session.transcript()),
        )
        self.escalator.escalate_soon(escalation)

    def _escalation(self, trigger: str, task_id: str, reason: str) -> Escalation:
        record = self.table.get(task_id)
        return Escalation(
            task_id=task_id,
            title=record.title if record else "",
            issue_url=record.issue_url if record else "",
            trigger=trigger,
            reason=reason,
            node=self.node,
            participants=(self.node,),
        )


def build_reports(
    settings: Settings, forge: Forge | None, table: TaskTable, hive: HiveReports | None = None
) -> ReportParts:
    config = settings.escalation
    outbox = Outbox(settings.outbox_path, max_wait=config.max_backoff)
    deliverers: dict[str, Deliver] = {}
    if forge is not None:
        deliverers["forge"] = to_forge(forge)
    if config.webhook_url:
        secret = load_secret(
            settings.webhook_header_path, "escalation.header_file", "webhook-header"
        )
        header = (config.header_name, secret) if config.header_name and secret else None
        deliverers["webhook"] = to_webhook(config.webhook_url, header, config.timeout)
    if hive is not None:
        deliverers["hive"] = to_hive(hive.deliver)
    sender = Sender(outbox, deliverers)
    escalator = Escalator(
        outbox=outbox,
        sender=sender,
        label=settings.tasks.hold_label,
        webhook=bool(config.webhook_url),
        hive=hive is not None,
    )
    return ReportParts(outbox, sender, escalator, settings.node.name, table, hive)
