"""The claim machine's runtime in the node: carries out its actions on the forge, the
mesh and the queue, and feeds it the answers, the clock and the workers' events.

Everything here runs on the trio thread and owns the claim book. Forge requests block,
so they run in threads (`Arbiter`), which hand their answers back. Requests for one
task run one after another, in the order the machine asked for them (a renewal in
flight must not undo a finished claim), through a lane that exists only while the
task has actions pending; different tasks' requests run side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from dramatiq.broker import Broker
from dramatiq.message import Message
from trio_typing import TaskStatus

from bzzz.claims.actions import (
    Action,
    Announce,
    Check,
    Enqueue,
    Finish,
    Phase,
    PostClaim,
    Release,
    Renew,
)
from bzzz.claims.arbiter import Arbiter, Claim, split
from bzzz.claims.ledger import ClaimState
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Market
from bzzz.config import Settings
from bzzz.protocol import Message as Wire
from bzzz.protocol import TaskClaim, TaskResult, utc_now
from bzzz.tasks.table import TaskTable
from bzzz.work import RUN_TASK, TASKS_QUEUE, EventKind, TaskEvent, TaskSpec

log = logging.getLogger(__name__)

TICK = 0.5
LANE_BUFFER = 64


class ClaimDriver:
    def __init__(
        self,
        *,
        settings: Settings,
        arbiter: Arbiter,
        broker: Broker,
        table: TaskTable,
        publish: Callable[[Wire], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.node = settings.node.name
        # A worker that outlived its node's restart speaks up within a few heartbeats.
        orphan_grace = max(3 * settings.workers.heartbeat, 10.0)
        self.book = ClaimBook(self.node, settings.claims, orphan_grace=orphan_grace)
        self._arbiter = arbiter
        self._broker = broker
        self._table = table
        self._publish = publish
        self._clock = clock
        self._lanes: dict[str, trio.MemorySendChannel[Action]] = {}
        self._nursery: trio.Nursery | None = None
        self._claims: dict[str, Claim] = {}  # our latest claim comment's attempt, per task
        self.claim_urls: dict[str, str] = {}
        self.changed = trio.Event()  # set when a task's phase changes
        self._moves_seen = 0

    @property
    def lanes(self) -> int:
        """Tasks with forge, queue or mesh actions in flight."""
        return len(self._lanes)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                now = self._clock()
                self.apply(self.book.tick(now))
                self._forget(self.book.retire(now))
                await trio.sleep(TICK)

    # ---- inputs (on the trio thread) ----------------------------------------------------

    def set_market(self, market: Market) -> None:
        self.book.market = market

    def learn(self, task_id: str, model: str, *, check_first: bool = False) -> None:
        self.apply(self.book.learn(task_id, model, self._clock(), check_first=check_first))

    def heard_claim(self, message: TaskClaim) -> None:
        lease = message.lease_s if message.lease_s is not None else self.settings.claims.lease
        self.apply(self.book.heard_claim(message.task_id, message.node_id, lease, self._clock()))

    def heard_result(self, message: TaskResult) -> None:
        succeeded = message.result_type != "failure"
        self.apply(
            self.book.heard_result(
                message.task_id,
                message.node_id,
                succeeded,
                self._clock(),
                result_url=message.result_url,
            )
        )

    def on_event(self, event: TaskEvent) -> None:
        task = self.book.get(event.task_id)
        if task is None or task.comment_id != event.comment_id:
            return  # from a claim this node no longer holds
        now = self._clock()
        if task.phase is Phase.ADOPTING:
            log.info("%s: a worker still runs it since before the restart: adopted", task.task_id)
            self.apply(self.book.adopt(event.task_id, event.comment_id, now))
        match event.kind:
            case EventKind.STARTED:
                self.book.worker_started(event.task_id, now)
            case EventKind.FINISHED:
                self.apply(
                    self.book.worker_finished(
                        event.task_id,
                        succeeded=event.succeeded,
                        result_type=event.result_type or "failure",
                        result_url=event.result_url,
                        reason=event.reason,
                        duration_ms=event.duration_ms,
                        now=now,
                    )
                )
            case _:
                pass
        self.changed.set()

    # ---- actions ------------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            lane = self._lanes.get(action.task_id)
            if lane is None:
                if self._nursery is None:
                    raise RuntimeError("the claim driver is not running")
                lane, out = trio.open_memory_channel[Action](LANE_BUFFER)
                self._lanes[action.task_id] = lane
                self._nursery.start_soon(self._drain, action.task_id, out)
            lane.send_nowait(action)
        # An input may move a task to another phase with nothing to carry out.
        if actions or self.book.moves != self._moves_seen:
            self._moves_seen = self.book.moves
            self.changed.set()

    async def _drain(self, task_id: str, lane: trio.MemoryReceiveChannel[Action]) -> None:
        """Carry out one task's actions in order; the lane goes once nothing is pending."""
        with lane:
            while True:
                try:
                    action = lane.receive_nowait()
                except trio.WouldBlock:
                    # No await between this check and the removal: apply() cannot slip
                    # an action into a lane that is going away.
                    del self._lanes[task_id]
                    return
                try:
                    await self._do(action)
                except Exception:
                    log.exception("%s: %s failed", action.task_id, type(action).__name__)
                self.changed.set()

    def _forget(self, retired: list[str]) -> None:
        for task_id in retired:
            self._claims.pop(task_id, None)
            self.claim_urls.pop(task_id, None)

    async def _do(self, action: Action) -> None:
        match action:
            case Check():
                checked = await trio.to_thread.run_sync(self._arbiter.check, action.task_id)
                actions = self.book.checked(
                    action.task_id,
                    checked.verdict,
                    still_a_task=checked.still_a_task,
                    now=self._clock(),
                )
                self.apply(actions)
            case PostClaim():
                await self._post_claim(action)
            case Renew():
                sent = self._clock()
                verdict = await trio.to_thread.run_sync(
                    self._arbiter.renew, self._claim(action.task_id), action.comment_id
                )
                self.apply(self.book.renewed(action.task_id, verdict, sent, self._clock()))
            case Release(comment_id=comment_id, reason=reason, failed=failed):
                state = ClaimState.FAILED if failed else ClaimState.RELEASED
                await self._edit(action.task_id, comment_id, state, reason=reason)
            case Enqueue():
                await self._enqueue(action)
            case Announce(lease_s=lease_s):
                await self._publish(
                    TaskClaim(
                        task_id=action.task_id,
                        node_id=self.node,
                        lease_s=round(max(lease_s, 0.0), 1),
                        claim_url=self.claim_urls.get(action.task_id),
                        timestamp=utc_now(),
                    )
                )
            case Finish():
                await self._finish(action)

    def _claim(self, task_id: str) -> Claim:
        return self._claims.get(task_id) or Claim(task_id)

    async def _post_claim(self, action: PostClaim) -> None:
        claim = Claim(action.task_id, action.attempt, action.takes_over)
        self._claims[action.task_id] = claim
        record = self._table.get(action.task_id)
        prefix = record.branch_prefix if record else ""
        sent = self._clock()
        posted = await trio.to_thread.run_sync(self._arbiter.post_claim, claim, prefix)
        if posted.url:
            self.claim_urls[action.task_id] = posted.url
        actions = self.book.claim_checked(
            action.task_id,
            posted.own,
            posted.verdict,
            sent_at=sent,
            still_a_task=posted.still_a_task,
            now=self._clock(),
        )
        task = self.book.get(action.task_id)
        if task is not None and task.phase.ours:
            log.info("%s: claimed (comment %s)", action.task_id, task.comment_id)
        elif task is not None:
            log.info("%s: not ours: %s %s", action.task_id, task.phase, task.holder or "")
        self.apply(actions)

    async def _enqueue(self, action: Enqueue) -> None:
        record = self._table.get(action.task_id)
        repo, number = split(action.task_id)
        task = self.book.get(action.task_id)
        spec = TaskSpec(
            task_id=action.task_id,
            repo=repo,
            number=number,
            issue_url=record.issue_url if record else "",
            model=record.model if record else "",
            input=record.title if record else "",
            branch_prefix=record.branch_prefix if record else "",
            node=self.node,
            comment_id=action.comment_id,
            attempt=len(task.attempts) + 1 if task else 1,
        )
        message: Message[Any] = Message(
            queue_name=TASKS_QUEUE,
            actor_name=RUN_TASK,
            args=(spec.to_dict(),),
            kwargs={},
            options={},
        )
        await trio.to_thread.run_sync(self._broker.enqueue, message)
        self.book.enqueued(action.task_id)
        log.info("%s: queued for the workers", action.task_id)

    async def _finish(self, action: Finish) -> None:
        state = ClaimState.DONE if action.succeeded else ClaimState.FAILED
        await self._edit(
            action.task_id,
            action.comment_id,
            state,
            result_url=action.result_url,
            reason=action.reason,
        )
        await self._publish(
            TaskResult(
                task_id=action.task_id,
                node_id=self.node,
                result_type=action.result_type,  # type: ignore[arg-type]
                result_url=action.result_url,
                duration_ms=action.duration_ms,
                timestamp=utc_now(),
            )
        )
        if action.quarantine:
            await trio.to_thread.run_sync(self._arbiter.quarantine, action.task_id, action.reason)
        log.info(
            "%s: %s (%s)",
            action.task_id,
            "done" if action.succeeded else "failed",
            action.result_url or action.reason,
        )

    async def _edit(
        self,
        task_id: str,
        comment_id: int,
        state: ClaimState,
        *,
        result_url: str = "",
        reason: str = "",
    ) -> None:
        claim = self._claim(task_id)  # read here: the thread only talks to the forge

        def edit() -> None:
            self._arbiter.edit(claim, comment_id, state, result_url=result_url, reason=reason)

        await trio.to_thread.run_sync(edit)
