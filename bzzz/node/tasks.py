"""The tasks this node knows: its task table, kept in step with the claim machine and
saved in the node's home. Trio-owned.

A task comes from this node's own polls (announced to the mesh once) or from a peer's
task_broadcast. Either way the claim machine hears of it; a task the machine has
retired is re-checked on the forge before anything else, so a finished task is never
run again. The table's claim fields (state, holder, lease, attempts, result) follow
the machine, and the table is saved whenever it changed, at most once a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import trio

from bzzz.claims.arbiter import Checked
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.matching import requirement
from bzzz.protocol import Message, TaskBroadcast, utc_now
from bzzz.tasks.poller import Found
from bzzz.tasks.sync import SyncedTask, hints
from bzzz.tasks.table import TaskRecord, TaskTable, save

log = logging.getLogger(__name__)

SAVE_EVERY = 1.0  # seconds: changes in between are saved together
REOPEN_EVERY = 60.0  # seconds between two reopenings of one closed task


class Tasks:
    def __init__(
        self,
        table: TaskTable,
        path: Path,
        *,
        name: str,
        claims: ClaimDriver | None,
        publish: Callable[[Message], Awaitable[None]],
        vet: Callable[[str], Checked] | None = None,
        fresh_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.table = table
        self._path = path
        self._name = name
        self.claims = claims
        self._publish = publish
        self._vet = vet  # reads a task's claims on the forge (blocking)
        self._fresh_for = fresh_for  # seconds an announcement counts as news
        self._clock = clock
        self._wall = wall
        self._dirty = trio.Event()
        self._reopened: dict[str, float] = {}  # task -> when it was last reopened

    async def announce(self, found: Found) -> None:
        """A task found on the forge by this node's poller: announce it, unless the mesh
        knows it already. An issue with comments may carry claims (a task this table
        forgot, or one that failed elsewhere): the forge says first whether it is still
        open to claims, so that a finished task is not announced (and claimed) again."""
        task = found.task
        record = self.table.get(task.task_id)
        if record is not None:
            if record.state == "closed" and self._may_reopen(task.task_id):
                # not a task for a while (held for a person, or the issue was closed)
                self._reopen(task)
                await self._publish(task)  # peers reopen it too: the news is newer
            return
        if found.comments and self._vet is not None:
            checked = await trio.to_thread.run_sync(self._vet, task.task_id)
            if self._finished(task, checked):
                return
        self.table.add(task, announced_by=self._name, seen_at=self._wall())
        self._dirty.set()
        log.info("announcing task %s (%s)", task.task_id, task.issue_url)
        await self._publish(task)
        if self.claims is not None:  # vetted above if it may carry claims
            self.claims.learn(task.task_id, requirement(task.model, task.agent))

    def _finished(self, task: TaskBroadcast, checked: Checked) -> bool:
        """Record a task the forge says is finished or no longer a task; True if so."""
        verdict = checked.verdict
        if verdict is None or (verdict.done is None and checked.still_a_task):
            return False
        self.table.add(task, announced_by=self._name, seen_at=self._wall())
        done = verdict.done
        self.table.update(
            task.task_id,
            self._wall(),
            state="done" if done else "closed",
            holder=done.node if done else "",
            result_url=done.result_url if done else "",
            attempts=len(verdict.attempts),
        )
        self._dirty.set()
        log.info("task %s is finished already (%s)", task.task_id, done.node if done else "closed")
        return True

    def _may_reopen(self, task_id: str) -> bool:
        """At most once a REOPEN_EVERY per task: an issue that is closed to claims for a
        reason the listing does not show (an open pull request solves it) is listed as
        a task again whenever the listing changes."""
        now = self._clock()
        if now < self._reopened.get(task_id, -REOPEN_EVERY) + REOPEN_EVERY:
            return False
        self._reopened = {t: at for t, at in self._reopened.items() if at > now - REOPEN_EVERY}
        self._reopened[task_id] = now
        return True

    def _reopen(self, task: TaskBroadcast) -> None:
        """A closed task is a task again (the hold label went): open to claims, once the
        forge says how it stands."""
        self.table.update(task.task_id, self._wall(), state="seen", holder="", result_url="")
        self._dirty.set()
        log.info("task %s is a task again", task.task_id)
        if self.claims is not None:
            self.claims.reopen(task.task_id, requirement(task.model, task.agent))

    def heard(self, announced_by: str, task: TaskBroadcast) -> None:
        """A task_broadcast from a peer."""
        record = self.table.get(task.task_id)
        if (
            record is not None
            and record.state == "closed"
            and record.finished_at
            and task.timestamp > datetime.fromisoformat(record.finished_at)
        ):
            self._reopen(task)  # announced again after it closed here
        if self.table.add(task, announced_by=announced_by, seen_at=self._wall()):
            self._dirty.set()
            log.info("task %s announced by %s", task.task_id, announced_by)
        self._to_claims(task)

    def synced(self, tasks: list[SyncedTask]) -> int:
        """A peer's table (a sync): learn the tasks this node missed, and the holders
        and ends it has not heard of. Returns how many tasks it learnt something of."""
        learnt = 0
        wall = self._wall().isoformat(timespec="milliseconds")
        for hint in hints(self.table.known(), tasks):
            task = hint.task
            learnt += 1
            if hint.new:
                record = TaskRecord(
                    task_id=task.task_id,
                    repo=task.repo,
                    issue_url=task.issue_url,
                    model=task.model,
                    agent=task.agent,
                    title=task.title,
                    branch_prefix=task.branch_prefix,
                    announced_by=task.announced_by,
                    announced_at=task.announced_at,
                    seen_at=wall,
                )
                if self.table.add_record(record):
                    self._dirty.set()
                    log.info("task %s learnt from a peer's table", task.task_id)
                if self.claims is not None:  # read on the forge before it is claimed
                    self.claims.learn(
                        task.task_id, requirement(task.model, task.agent), verify=True
                    )
            if self.claims is None:  # no claim machine: the table shows the peer's view
                changes = {"state": hint.state.value, "holder": task.holder}
                if self.table.update(task.task_id, self._wall(), **changes):
                    self._dirty.set()
            elif task.holder != self._name:
                self.claims.heard_state(
                    task.task_id, hint.state, task.holder, task.lease_s, task.result_url
                )
        return learnt

    def resume(self) -> None:
        """Tasks learnt before a restart that are not finished are open to claims again,
        once the forge says who holds them (this node may have, before it restarted)."""
        if self.claims is None:
            return
        for record in self.table.records():
            if not record.finished:
                self.claims.learn(
                    record.task_id, requirement(record.model, record.agent), check_first=True
                )

    def _to_claims(self, task: TaskBroadcast) -> None:
        """A task heard from a peer goes to the claim machine. One the machine does not
        track may have been claimed or finished since it was announced (an announcement
        delivered late, after a partition or to a node that just joined): unless it is
        fresh (announced just now, with no comment on its issue), the forge says how it
        stands before this node claims it (only the node about to claim pays for the
        read). A task this node knows to be finished is not claimed at all."""
        record = self.table.get(task.task_id)
        if self.claims is None or (record is not None and record.finished):
            return
        age = (self._wall() - task.timestamp).total_seconds()
        fresh = task.comments == 0 and age <= self._fresh_for
        self.claims.learn(task.task_id, requirement(task.model, task.agent), verify=not fresh)

    def sync(self) -> None:
        if self.claims is None:
            return
        now, wall = self._clock(), self._wall()
        dirty = False
        for task in self.claims.book.tasks():
            record = self.table.get(task.task_id)
            if task.phase.final and record is not None and record.state == task.phase.value:
                continue  # finished, and known so: nothing will change
            ours = task.phase.ours
            lease_end = task.our_lease_end if ours else task.lease_until
            held = ours or task.phase.value == "held"
            dirty |= self.table.update(
                task.task_id,
                wall,
                state=task.phase.value,
                holder=task.holder,
                lease_s=round(max(0.0, lease_end - now), 1) if held else 0.0,
                attempts=len(task.attempts),
                result_url=task.result_url,
            )
        dirty |= bool(self.table.prune())
        if dirty:
            self._dirty.set()

    async def save(self) -> None:
        """Save the table after each change, at most once a second, and once more at
        the end if it changed since."""
        try:
            while True:
                await self._dirty.wait()
                await self._save()
                await trio.sleep(SAVE_EVERY)
        finally:
            if self._dirty.is_set():
                await self._save()

    async def _save(self) -> None:
        self._dirty = trio.Event()
        text = self.table.to_json()
        with trio.CancelScope(shield=True):  # a save once begun is finished
            await trio.to_thread.run_sync(save, text, self._path)
