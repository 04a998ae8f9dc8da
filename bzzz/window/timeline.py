"""A task's timeline for the dashboard: its entries in this node's audit log and in the
replicas it keeps of its peers' logs, merged by time. Blocking (SQLite): run in a thread."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from bzzz.audit.store import AuditStore

MAX_ROWS = 500
SHOWN = ("holder", "result_url", "model", "command", "exit_code", "reason", "trigger", "helper")


@dataclass(frozen=True)
class Row:
    at: str  # UTC, ISO 8601
    node: str  # whose log says it
    type: str
    details: str
    url: str = ""  # a result's link


def timeline(stores: Iterable[tuple[str, AuditStore]], task_id: str) -> list[Row]:
    rows = []
    for node, store in stores:
        for entry in store.entries(task=task_id, limit=MAX_ROWS):
            try:
                fields = json.loads(entry.leaf)
            except ValueError:
                continue
            details = ", ".join(
                f"{key} {str(fields[key])[:120]}"
                for key in SHOWN
                if fields.get(key) not in (None, "")
            )
            url = str(fields.get("result_url", ""))
            rows.append(
                Row(entry.at, node, entry.type, details, url if url.startswith("http") else "")
            )
    rows.sort(key=lambda row: row.at)
    return rows[-MAX_ROWS:]
