"""The node and Hive (bzzz/hive/): Hive's active repositories join the ones the node
watches, and this node's claims and their progress are reported to Hive through the
outbox. Hive is advisory: while it is down, tasks flow as before and the reports wait.

`HiveReports.note(records)` runs on the trio thread after each change of the task table
and says which reports are new; the outbox, in a thread, keeps each once (its key names
the task, the state and the attempt), so a restart does not send them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bzzz.hive import HiveClient, HiveError, claim_body, enabled_repositories, status_body
from bzzz.reports.sender import Tried
from bzzz.tasks.sources import HiveRepositories
from bzzz.tasks.table import TaskRecord

log = logging.getLogger(__name__)

NOTED_KEPT = 10_000  # report keys remembered in memory; forgotten ones only cost a lookup

# The task table's states that Hive hears of, and as what.
STATUS_OF = {
    "running": "in_progress",
    "done": "completed",
    "failed": "failed",
    "quarantined": "failed",
}


class HiveReports:
    def __init__(self, node: str, client: HiveClient, source: HiveRepositories) -> None:
        self.node = node
        self.client = client
        self.source = source
        self._noted: set[str] = set()  # keys made since the node started

    def note(self, records: Iterable[TaskRecord]) -> list[tuple[str, dict[str, Any]]]:
        """New reports (key, body) for this node's tasks in `records`."""
        made = []
        for record in records:
            if record.holder != self.node or self.source.project_id(record.repo) is None:
                continue
            number = int(record.task_id.rpartition("#")[2])
            base = {"repo": record.repo, "number": number}
            if record.state in ("claimed", "queued", "running"):
                key = f"hive:{record.task_id}:claim:{record.attempts}"
                made.append((key, {"op": "claim", **base}))
            status = STATUS_OF.get(record.state)
            if status is not None:
                results = {"pull_request_url": record.result_url} if record.result_url else {}
                key = f"hive:{record.task_id}:{status}:{record.attempts}"
                made.append((key, {"op": "status", "status": status, "results": results, **base}))
        new = [(key, body) for key, body in made if key not in self._noted]
        if len(self._noted) + len(new) > NOTED_KEPT:  # the outbox's keys still dedupe
            self._noted.clear()
        self._noted.update(key for key, _ in new)
        return new

    def deliver(self, body: dict[str, Any]) -> Tried:
        """Send one report (blocking: the sender's thread)."""
        repo = str(body["repo"])
        project = self.source.project_id(repo)
        if project is None:
            return Tried(False, f"Hive lists no project for {repo}", lasting=True)
        number, now = int(body["number"]), datetime.now(UTC)
        try:
            if body["op"] == "claim":
                self.client.claim(project, claim_body(number, self.node, now.timestamp()))
            else:
                metadata = {"node": self.node, **body.get("metadata", {})}
                results = body.get("results", {})
                self.client.status(
                    project, status_body(number, str(body["status"]), results, metadata, now)
                )
        except HiveError as exc:
            return Tried(False, str(exc), lasting=not exc.retry)
        return Tried(True)

    def refresh(self) -> dict[str, int]:
        """Hive's enabled repositories (blocking: a scheduler job's thread; a HiveError
        is the job's failure, counted and logged by the scheduler)."""
        return enabled_repositories(self.client.active_repos())
