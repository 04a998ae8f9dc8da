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
import secrets
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
    HandOff,
    Phase,
    PostClaim,
    Release,
    Renew,
    Settle,
)
from bzzz.claims.arbiter import Arbiter, Claim, split
from bzzz.claims.handing import Continuation, Handing
from bzzz.claims.ledger import ClaimState, Verdict
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Market
from bzzz.config import Settings
from bzzz.protocol import Message as Wire
from bzzz.protocol import TaskClaim, TaskResult, utc_now
from bzzz.tasks.table import TaskTable
from bzzz.work import DECLINED, HANDED, RUN_TASK, TASKS_QUEUE, EventKind, TaskEvent, TaskSpec

log = logging.getLogger(__name__)

TICK = 0.5
LANE_BUFFER = 64


class ClaimDriver(Handing):
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
        super().__init__()
        self.settings = settings
        self.node = settings.node.name
        # A worker that outlived its node's restart speaks up within a few heartbeats, and
        # a live worker starts a queued task within as long.
        grace = 3 * settings.workers.heartbeat + 10.0
        self.book = ClaimBook(self.node, settings.claims, orphan_grace=grace, pickup_grace=grace)
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
        self.on_quarantine: Callable[[str, str], None] | None = None  # (task, why): escalate
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

    def learn(
        self, task_id: str, model: str, *, check_first: bool = False, verify: bool = False
    ) -> None:
        now = self._clock()
        self.apply(self.book.learn(task_id, model, now, check_first=check_first, verify=verify))

    def reopen(self, task_id: str, model: str) -> None:
        """A closed task is a task again: consider it afresh (the forge is read first)."""
        self.apply(self.book.reopen(task_id, model, self._clock()))

    def heard_claim(self, message: TaskClaim) -> None:
        lease = message.lease_s if message.lease_s is not None else self.settings.claims.lease
        self.apply(self.book.heard_claim(message.task_id, message.node_id, lease, self._clock()))

    def heard_state(self, task_id: str, state: str, holder: str, lease_s: float, url: str) -> None:
        """A peer's table says who holds the task, or how it ended (a sync's hint)."""
        now = self._clock()
        if state == "held" and holder and lease_s > 0:
            self.apply(self.book.heard_claim(task_id, holder, lease_s, now))
        elif state in ("done", "quarantined", "closed"):
            self.book.heard_end(task_id, Phase(state), holder, url)
            self.changed.set()

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
        claim = self._claims.get(event.task_id)
        if claim is not None and event.nonce and claim.nonce and event.nonce != claim.nonce:
            return  # from an earlier claim made with the same comment
        now = self._clock()
        if task.phase is Phase.ADOPTING:
            log.info("%s: a worker still runs it since before the restart: adopted", task.task_id)
            self.apply(self.book.adopt(event.task_id, event.comment_id, now))
        match event.kind:
            case EventKind.STARTED:
                self.book.worker_started(event.task_id, now)
            case EventKind.FINISHED if event.result_type == HANDED:
                log.info("%s: its worker handed it on: %s", task.task_id, event.reason)
            case EventKind.FINISHED if event.result_type == DECLINED:
                log.warning(
                    "%s: this node could not run it, letting it go: %s",
                    event.task_id,
                    event.reason,
                )
                self.apply(self.book.worker_declined(event.task_id, now))
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
                    if isinstance(action, HandOff | PostClaim):
                        self._said(task_id, f"{type(action).__name__} failed")
                self.changed.set()

    def _forget(self, retired: list[str]) -> None:
        for task_id in retired:
            self._claims.pop(task_id, None)
            self._forget_continuation(task_id)
            self.claim_urls.pop(task_id, None)

    async def _do(self, action: Action) -> None:
        match action:
            case Check():
                checked = await trio.to_thread.run_sync(self._arbiter.check, action.task_id)
                self._remember(action.task_id, checked.verdict)
                actions = self.book.checked(
                    action.task_id,
                    checked.verdict,
                    still_a_task=checked.still_a_task,
                    now=self._clock(),
                )
                self.apply(actions)
            case PostClaim():
                await self._post_claim(action)
            case HandOff():
                await self._hand_off(action)
            case Renew():
                sent = self._clock()
                verdict = await trio.to_thread.run_sync(
                    self._arbiter.renew, self._claim(action.task_id), action.comment_id
                )
                self.apply(self.book.renewed(action.task_id, verdict, sent, self._clock()))
            case Release(comment_id=comment_id, reason=reason, failed=failed):
                state = ClaimState.FAILED if failed else ClaimState.RELEASED
                await self._edit(Settle(action.task_id, comment_id, state, reason))
            case Settle():
                await self._edit(action)
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

    def _remember(self, task_id: str, verdict: Verdict | None) -> None:
        """A claim of ours that the forge names (made before a restart): keep what it
        records, so that its renewals keep it, and its worker's events are recognised."""
        holder = verdict.holder if verdict is not None else None
        if holder is not None and holder.node == self.node:
            self._claims[task_id] = Claim(
                task_id,
                holder.attempt,
                holder.takes_over,
                holder.comment_id,
                holder.nonce,
                holder.handed_by,
                holder.successor,
            )

    def _claim(self, task_id: str) -> Claim:
        return self._claims.get(task_id) or Claim(task_id)

    async def _post_claim(self, action: PostClaim) -> None:
        nonce = secrets.token_hex(6)  # this claim's, even when it reuses a comment
        claim = Claim(
            action.task_id,
            action.attempt,
            action.takes_over,
            action.reuse,
            nonce,
            handed_by=action.handed_by,
        )
        self._claims[action.task_id] = claim
        record = self._table.get(action.task_id)
        prefix = record.branch_prefix if record else ""
        sent = self._clock()
        posted = await trio.to_thread.run_sync(self._arbiter.post_claim, claim, prefix)
        holder = posted.verdict.holder if posted.verdict is not None else None
        if holder is not None and (
            posted.own is None or holder.comment_id != posted.own.comment_id
        ):
            self._remember(action.task_id, posted.verdict)  # an earlier claim of ours, maybe
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
        self._claimed(action.task_id)

    async def _enqueue(self, action: Enqueue) -> None:
        record = self._table.get(action.task_id)
        repo, number = split(action.task_id)
        task = self.book.get(action.task_id)
        handed = self.continuations.get(action.task_id) or Continuation("")
        spec = TaskSpec(
            task_id=action.task_id,
            repo=repo,
            number=number,
            issue_url=record.issue_url if record else "",
            model=record.model if record else "",
            agent=record.agent if record else "",
            input=record.title if record else "",
            branch_prefix=record.branch_prefix if record else "",
            node=self.node,
            comment_id=action.comment_id,
            attempt=len(task.attempts) + 1 if task else 1,
            nonce=self._claim(action.task_id).nonce,
            handed_by=handed.predecessor,
            handed_reason=handed.reason,
            continue_from=handed.branch,
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
            Settle(action.task_id, action.comment_id, state, action.reason, action.result_url)
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
            if self.on_quarantine is not None:
                self.on_quarantine(
                    action.task_id,
                    f"It failed on {self.settings.claims.max_attempts}"
                    f" nodes; the last failure, on {self.node}: {action.reason}",
                )
        log.info(
            "%s: %s (%s)",
            action.task_id,
            "done" if action.succeeded else "failed",
            action.result_url or action.reason,
        )

    async def _edit(self, settle: Settle) -> None:
        """Edit our claim comment into its final state; if the forge does not take it,
        the machine tries again after a back-off."""
        claim = self._claim(settle.task_id)  # read here: the thread only talks to the forge
        state = ClaimState(settle.state)

        def edit() -> bool:
            return self._arbiter.edit(
                claim,
                settle.comment_id,
                state,
                result_url=settle.result_url,
                reason=settle.reason,
            )

        if await trio.to_thread.run_sync(edit):
            self.book.edit_done(settle.task_id, settle.comment_id)
        else:
            self.book.edit_failed(settle, self._clock())
