"""The replicas a node keeps of other nodes' audit logs, on disk: one SQLite store per
log in `<home>/replicas/<peer ID>.db` (entries, the checkpoints verified, and the alarms
raised about it), and what the node remembers of each between fetches. Blocking: used
from threads, except the small accessors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bzzz.audit.checkpoint import from_text
from bzzz.audit.exchange import Page
from bzzz.audit.merkle import Frontier
from bzzz.audit.replica import Fault, Follower, Problem
from bzzz.audit.store import ALARM_PREFIX, AuditStore
from bzzz.node.status import AuditAlarm


@dataclass
class Replica:
    follower: Follower
    store: AuditStore
    node_id: str
    fetched_at: str = ""
    failures: int = 0
    fetch_ms: float = 0.0
    alarms: list[AuditAlarm] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.follower.origin

    @property
    def broken(self) -> bool:
        """Its node's log is not what it signed: kept as evidence, no longer followed."""
        return bool(self.alarms)


def open_replica(directory: Path, origin: str, node_id: str) -> Replica:
    """The replica of `origin`'s log kept in `directory`, created empty if there is none."""
    directory.mkdir(parents=True, exist_ok=True)
    store = AuditStore(directory / f"{origin}.db")
    follower = Follower(origin, kept=Frontier.of(store.leaf_hashes()))
    text = store.latest_checkpoint()
    if text is not None:
        follower.checkpoint, follower.text = from_text(text), text
    if node_id:
        store.set_meta("node_id", node_id)
    replica = Replica(follower, store, node_id or store.get_meta("node_id") or origin)
    for _, value in store.meta_items(ALARM_PREFIX):
        replica.alarms.append(_alarm_from_json(value))
    return replica


def open_all(directory: Path) -> list[Replica]:
    if not directory.is_dir():
        return []
    return [open_replica(directory, path.stem, "") for path in sorted(directory.glob("*.db"))]


def keep_page(replica: Replica, page: Page, checkpoint_changed: bool) -> None:
    """Store an accepted page: the checkpoint first, so that the entries kept never go
    past the checkpoints kept."""
    if checkpoint_changed:
        checkpoint = from_text(page.checkpoint)
        replica.store.keep_checkpoint(checkpoint.size, page.checkpoint)
    if page.entries:
        replica.store.append_leaves(page.start, page.entries)


def raise_alarm(replica: Replica, problem: Problem) -> AuditAlarm | None:
    """Record an alarm about the replica's node (once per fault and detail); None if it
    was known."""
    alarm = AuditAlarm(
        replica.origin,
        replica.node_id,
        str(problem.fault),
        problem.detail,
        datetime.now(UTC).isoformat(timespec="milliseconds"),
        tuple(text for text in problem.evidence if text),
    )
    if any((a.fault, a.detail) == (alarm.fault, alarm.detail) for a in replica.alarms):
        return None
    replica.alarms.append(alarm)
    key = f"{ALARM_PREFIX}{alarm.fault}:{alarm.detail}"
    replica.store.set_meta(key, json.dumps(alarm.__dict__))
    if problem.fault is Fault.EQUIVOCATION:
        for text in alarm.evidence:
            replica.store.keep_conflict(from_text(text).size, text)
    return alarm


def _alarm_from_json(value: str) -> AuditAlarm:
    raw = json.loads(value)
    return AuditAlarm(
        raw["peer_id"],
        raw["node_id"],
        raw["fault"],
        raw["detail"],
        raw["at"],
        tuple(raw.get("evidence", ())),
    )
