"""The node's audit log (bzzz/audit/): what it takes part in, appended to its own log and
covered by checkpoints it signs with its identity key. Trio-owned; the store is written
in a thread.

`Recorder.observe` compares the node's parts with what it saw last (the task table, the
help it asked and gave, escalations, plan reviews, its peers) and records each change
once; the loop appends what was recorded, and signs a checkpoint when the log grew (at
most every CHECKPOINT_EVERY seconds), so that a later rewrite of what a checkpoint covers
is evident.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from libp2p.crypto.keys import PrivateKey

from bzzz.audit.checkpoint import Checkpoint, from_text, sign, to_text
from bzzz.audit.merkle import Frontier
from bzzz.audit.store import AuditStore
from bzzz.protocol import utc_now
from bzzz.work import TaskEvent

log = logging.getLogger(__name__)

FLUSH_EVERY = 1.0  # seconds between appends of what was recorded
CHECKPOINT_EVERY = 10.0  # seconds at least between two checkpoints
TEXT_CHARS = 300  # of free text in an entry (never whole outputs)


class AuditLog:
    def __init__(self, store: AuditStore, origin: str, key: PrivateKey) -> None:
        self.store = store
        self.origin = origin  # this node's peer ID: anyone can verify its checkpoints
        self._key = key
        self._pending: list[dict[str, Any]] = []
        self.size = 0
        self.latest: Checkpoint | None = None
        self.latest_text = ""
        self.problem = ""  # the stored log does not match its latest checkpoint
        self.signed = trio.Event()  # set (and replaced) at each new checkpoint
        self._tree = Frontier()
        self._signed_at = -CHECKPOINT_EVERY

    def record(self, type_: str, **fields: Any) -> None:
        """Record an event (trio thread); it reaches the store within FLUSH_EVERY."""
        entry = {"type": type_, "at": utc_now().isoformat(timespec="milliseconds")}
        for key, value in fields.items():
            entry[key] = value[:TEXT_CHARS] if isinstance(value, str) else value
        self._pending.append(entry)

    async def open(self) -> None:
        """Read the stored log: its size, its tree, its latest checkpoint, which must be
        the root of the entries it covers (else the log was changed under the node)."""
        self.size, self._tree, text = await trio.to_thread.run_sync(self._load)
        if text is None:
            return
        self.latest, self.latest_text = from_text(text), text
        if self.latest.size > self.size:
            self.problem = f"its checkpoint covers {self.latest.size} entries; it holds {self.size}"
        else:
            covered = await trio.to_thread.run_sync(self.store.leaf_hashes, self.latest.size)
            if Frontier.of(covered).root() != self.latest.root:
                self.problem = f"its entries differ from its checkpoint at size {self.latest.size}"
        if self.problem:
            log.error(
                "this node's audit log is not what it signed (%s): see `bzzz audit verify`",
                self.problem,
            )

    def _load(self) -> tuple[int, Frontier, str | None]:
        hashes = self.store.leaf_hashes()
        return len(hashes), Frontier.of(hashes), self.store.latest_checkpoint()

    async def run(self, observe: Callable[[], None]) -> None:
        while True:
            observe()
            await self._append()
            now = trio.current_time()
            grown = self.latest is None or self.latest.size != self.size
            if grown and self.size and now - self._signed_at >= CHECKPOINT_EVERY:
                await self._sign()
            await trio.sleep(FLUSH_EVERY)

    async def _append(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            start = self.size
            self.size = await trio.to_thread.run_sync(self.store.append, batch)
            added = await trio.to_thread.run_sync(self.store.hashes_between, start, self.size)
            self._tree.extend(added)

    async def _sign(self) -> None:
        self._signed_at = trio.current_time()
        self.latest, self.latest_text = await trio.to_thread.run_sync(
            self._checkpoint, self.size, self._tree.root()
        )
        self.signed.set()
        self.signed = trio.Event()

    async def position(self, task_id: str) -> dict[str, Any]:
        """Where a task's entries are in this log, and a checkpoint that covers them all
        (signed now if the latest does not): for the pull request's description."""
        await self._append()
        if self.size and (self.latest is None or self.latest.size != self.size):
            await self._sign()
        entries = await trio.to_thread.run_sync(
            lambda: [e.index for e in self.store.entries(task=task_id, limit=10_000)]
        )
        return {
            "origin": self.origin,
            "entries": entries,
            "checkpoint_size": self.latest.size if self.latest else 0,
            "checkpoint_root": self.latest.root.hex() if self.latest else "",
        }

    def _checkpoint(self, size: int, root: bytes) -> tuple[Checkpoint, str]:
        checkpoint = sign(self._key, self.origin, size, root, int(time.time()))
        text = to_text(checkpoint)
        self.store.keep_checkpoint(size, text)
        return checkpoint, text


WORKER_TYPES = frozenset({"command", "model_calls", "diff"})
WORKER_FIELDS = 12


def worker_entry(audit: AuditLog, event: TaskEvent) -> None:
    """A worker's entry (a command it ran, its model calls, its diff): kept bounded, with
    the task and the worker, as `worker_<type>`."""
    entry = event.entry
    kind = entry.get("type")
    if kind not in WORKER_TYPES:
        return
    fields: dict[str, Any] = {}
    for key, value in list(entry.items())[:WORKER_FIELDS]:
        if key == "type" or not isinstance(key, str) or len(key) > 40:
            continue
        if isinstance(value, dict):  # counts by node: ints only
            fields[key] = {
                str(k)[:100]: v for k, v in list(value.items())[:16] if isinstance(v, int)
            }
        elif isinstance(value, str | int | bool):
            fields[key] = value
    audit.record(f"worker_{kind}", task=event.task_id, worker=event.worker, **fields)
