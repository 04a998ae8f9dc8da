"""The tasks a node knows of: every task_broadcast it heard or sent, once each.

Pure; `load` and `save` move it to and from a JSON file in the node's home, so a
restarted node does not announce known tasks again. Unfinished tasks are all kept;
of the finished ones (done, quarantined, closed) only the latest `history`, so a node
that runs for months keeps a table of bounded size.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bzzz.protocol import TaskBroadcast, as_json_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    repo: str
    issue_url: str
    model: str
    title: str
    branch_prefix: str
    announced_by: str  # node name, or peer ID of a peer not yet known by name
    announced_at: str  # the broadcast's timestamp
    seen_at: str  # when this node learnt of the task (UTC, ISO 8601)
    state: str = "seen"  # seen, claiming, held, queued, running, done, failed, ...
    holder: str = ""  # the node that holds (or finished) it
    lease_s: float = 0.0  # seconds left on the holder's lease when last reported
    attempts: int = 0  # nodes it failed on
    result_url: str = ""  # its pull request, follow-up issue or failure report, once finished
    finished_at: str = ""  # when this node learnt it was finished (UTC, ISO 8601)
    agent: str = ""  # the agent CLI it asks for ("": Bzzz's reasoning loop)

    @property
    def executor(self) -> str:
        """What runs it: the agent CLI it asks for, or Bzzz's own reasoning loop."""
        return self.agent or LOOP

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


LOOP = "loop"  # the executor of a task that asks for no agent CLI
FINISHED = frozenset({"done", "quarantined", "closed"})
DEFAULT_HISTORY = 1000


class TaskTable:
    def __init__(
        self, records: dict[str, TaskRecord] | None = None, history: int = DEFAULT_HISTORY
    ) -> None:
        self._records = dict(records or {})
        self.history = history

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def add(self, broadcast: TaskBroadcast, announced_by: str, seen_at: datetime) -> bool:
        """Record a task; False if it was known already (the first announcement stands)."""
        if broadcast.task_id in self._records:
            return False
        wire = as_json_dict(broadcast)
        self._records[broadcast.task_id] = TaskRecord(
            task_id=broadcast.task_id,
            repo=broadcast.repo,
            issue_url=broadcast.issue_url,
            model=broadcast.model,
            agent=broadcast.agent or "",
            title=broadcast.input.split("\n", 1)[0][:200],
            branch_prefix=broadcast.params.branch_prefix,
            announced_by=announced_by,
            announced_at=str(wire["timestamp"]),
            seen_at=seen_at.isoformat(timespec="milliseconds"),
        )
        return True

    def add_record(self, record: TaskRecord) -> bool:
        """Record a task a peer told of (a table sync); False if it was known already."""
        if record.task_id in self._records:
            return False
        self._records[record.task_id] = record
        return True

    def known(self) -> dict[str, TaskRecord]:
        return dict(self._records)

    def get(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)

    def update(self, task_id: str, now: datetime, **changes: Any) -> bool:
        """Change a record's claim fields; True if anything changed."""
        record = self._records.get(task_id)
        if record is None:
            return False
        updated = replace(record, **changes)
        if updated.finished != record.finished:
            stamp = now.isoformat(timespec="milliseconds") if updated.finished else ""
            updated = replace(updated, finished_at=stamp)
        self._records[task_id] = updated
        return updated != record

    def prune(self) -> list[str]:
        """Forget the oldest finished tasks beyond `history`; returns their IDs."""
        finished = sorted(
            (r for r in self._records.values() if r.finished), key=lambda r: r.finished_at
        )
        gone = [r.task_id for r in finished[: max(0, len(finished) - self.history)]]
        for task_id in gone:
            del self._records[task_id]
        return gone

    def records(self) -> list[TaskRecord]:
        return sorted(self._records.values(), key=lambda r: (r.repo, _number(r.task_id), r.task_id))

    def to_json(self) -> str:
        return json.dumps({"tasks": [asdict(r) for r in self.records()]}, indent=1)

    @classmethod
    def from_json(cls, text: str, history: int = DEFAULT_HISTORY) -> TaskTable:
        data = json.loads(text)
        records = {raw["task_id"]: TaskRecord(**raw) for raw in data.get("tasks", [])}
        table = cls(records, history)
        table.prune()
        return table


def load(path: Path, history: int = DEFAULT_HISTORY) -> TaskTable:
    """The saved table; an unreadable file is set aside (and logged), not fatal."""
    try:
        return TaskTable.from_json(path.read_text(encoding="utf-8"), history)
    except FileNotFoundError:
        return TaskTable(history=history)
    except (ValueError, KeyError, TypeError) as exc:
        aside = path.with_suffix(".corrupt")
        os.replace(path, aside)
        log.warning(
            "%s was unreadable (%s); moved it to %s and start with no tasks", path, exc, aside
        )
        return TaskTable(history=history)


def save(table_json: str, path: Path) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(table_json, encoding="utf-8")
    os.replace(temporary, path)


def _number(task_id: str) -> int:
    _, _, number = task_id.rpartition("#")
    return int(number) if number.isdigit() else 0
