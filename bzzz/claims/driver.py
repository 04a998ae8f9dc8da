"""The claim machine's runtime in the node: carries out its actions on the forge, the
mesh and the queue, and feeds it the answers, the clock and the workers' events.

Forge requests for one task run one after another, in the order the machine asked
for them (a renewal in flight must not undo a finished claim); different tasks'
requests run side by side in threads.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio
from dramatiq.broker import Broker
from dramatiq.message import Message

from bzzz.claims import ledger
from bzzz.claims.ledger import ClaimNote, ClaimState
from bzzz.claims.machine import (
    Action,
    Announce,
    Check,
    ClaimBook,
    Enqueue,
    Finish,
    Phase,
    PostClaim,
    Ranker,
    Release,
    Renew,
)
from bzzz.config import Settings
from bzzz.forge.api import Forge, ForgeError, PullRequest
from bzzz.protocol import Message as Wire
from bzzz.protocol import TaskClaim, TaskResult, utc_now
from bzzz.tasks.intake import is_task
from bzzz.tasks.table import TaskRecord
from bzzz.work import RUN_TASK, TASKS_QUEUE, EventKind, TaskEvent, TaskSpec

log = logging.getLogger(__name__)

TICK = 0.5


class ClaimDriver:
    def __init__(
        self,
        *,
        settings: Settings,
        peer_id: str,
        forge: Forge,
        broker: Broker,
        ranker: Ranker,
        publish: Callable[[Wire], Awaitable[None]],
        record: Callable[[str], TaskRecord | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.node = settings.node.name
        self.peer_id = peer_id
        # A worker that outlived its node's restart speaks up within a few heartbeats.
        orphan_grace = max(3 * settings.workers.heartbeat, 10.0)
        self.book = ClaimBook(self.node, settings.claims, ranker, orphan_grace=orphan_grace)
        self._forge = forge
        self._broker = broker
        self._publish = publish
        self._record = record
        self._clock = clock
        self._lanes: dict[str, trio.MemorySendChannel[Action]] = {}
        self._nursery: trio.Nursery | None = None
        self.claim_urls: dict[str, str] = {}
        self._posted: dict[str, tuple[int, str]] = {}  # task -> (attempt, takes over from)
        self.changed = trio.Event()  # set when a task's phase changes
        self._moves_seen = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                self.apply(self.book.tick(self._clock()))
                await trio.sleep(TICK)

    # ---- inputs (on the trio thread) ----------------------------------------------------

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
                lane, out = trio.open_memory_channel[Action](64)
                self._lanes[action.task_id] = lane
                self._nursery.start_soon(self._drain, out)
            lane.send_nowait(action)
        # An input may move a task to another phase with nothing to carry out.
        if actions or self.book.moves != self._moves_seen:
            self._moves_seen = self.book.moves
            self.changed.set()

    async def _drain(self, lane: trio.MemoryReceiveChannel[Action]) -> None:
        async for action in lane:
            try:
                await self._do(action)
            except Exception:
                log.exception("%s: %s failed", action.task_id, type(action).__name__)
            self.changed.set()

    async def _do(self, action: Action) -> None:
        match action:
            case Check():
                await self._check(action)
            case PostClaim():
                await self._post_claim(action)
            case Renew():
                await self._renew(action)
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

    async def _post_claim(self, action: PostClaim) -> None:
        repo, number = _split(action.task_id)
        sent = self._clock()
        text = f"Bzzz node **{self.node}** claims this task (attempt {action.attempt})."
        if action.takes_over:
            text = (
                f"Bzzz node **{self.node}** takes this task over: the claim of"
                f" **{action.takes_over}** ran out (attempt {action.attempt})."
            )
        self._posted[action.task_id] = (action.attempt, action.takes_over)
        body = ledger.render(self._note(action.task_id, ClaimState.CLAIM), text)
        own: ClaimNote | None = None
        verdict = None
        still = True
        try:
            comment = await _in_thread(self._forge.comment, repo, number, body)
            own = ledger.parse(comment)
            self.claim_urls[action.task_id] = comment.html_url
            still = await self._still_a_task(repo, number, solved_check=True)
            verdict = await self._verdict(repo, number)
            if own is not None and verdict.holder is None and verdict.done is None:
                log.error(
                    "%s: this node's claim comment does not count: its forge account %s is"
                    " not trusted. Fix: make it a collaborator of %s or add it to"
                    " tasks.trusted_authors.",
                    action.task_id,
                    comment.author,
                    repo,
                )
        except ForgeError as exc:
            log.warning("%s: claiming failed: %s", action.task_id, exc)
        actions = self.book.claim_checked(
            action.task_id, own, verdict, sent_at=sent, still_a_task=still, now=self._clock()
        )
        task = self.book.get(action.task_id)
        if task is not None and task.phase.ours:
            log.info("%s: claimed (comment %s)", action.task_id, task.comment_id)
        elif task is not None:
            log.info("%s: not ours: %s %s", action.task_id, task.phase, task.holder or "")
        self.apply(actions)

    async def _check(self, action: Check) -> None:
        repo, number = _split(action.task_id)
        verdict = None
        still = True
        try:
            still = await self._still_a_task(repo, number)
            verdict = await self._verdict(repo, number)
        except ForgeError as exc:
            log.warning("%s: reading its claims failed: %s", action.task_id, exc)
        self.apply(
            self.book.checked(action.task_id, verdict, still_a_task=still, now=self._clock())
        )
        task = self.book.get(action.task_id)
        if task is not None:
            log.debug("%s: checked: %s %s", action.task_id, task.phase, task.holder)

    async def _still_a_task(self, repo: str, number: int, *, solved_check: bool = False) -> bool:
        """Whether the issue is still a task: open, labelled, and (`solved_check`) not
        already answered by an open pull request."""
        issue = await _in_thread(self._forge.get_issue, repo, number)
        if not is_task(issue, self.settings.tasks):
            return False
        if not solved_check:
            return True
        pulls = await _in_thread(self._forge.list_pull_requests, repo)
        prefix = self._record_prefix(f"{repo}#{number}")
        solving = [p for p in pulls if solves(p, number, prefix)]
        if solving:
            log.info("%s: already answered by %s", f"{repo}#{number}", solving[0].html_url)
        return not solving

    def _record_prefix(self, task_id: str) -> str:
        record = self._record(task_id)
        return record.branch_prefix if record else ""

    async def _renew(self, action: Renew) -> None:
        repo, number = _split(action.task_id)
        sent = self._clock()
        verdict = None
        try:
            body = ledger.render(
                self._note(action.task_id, ClaimState.CLAIM),
                f"Bzzz node **{self.node}** holds this task (renewed {utc_now():%H:%M:%S} UTC).",
            )
            await _in_thread(self._forge.edit_comment, repo, action.comment_id, body)
            verdict = await self._verdict(repo, number)
        except ForgeError as exc:
            log.warning("%s: renewing the claim failed: %s", action.task_id, exc)
        self.apply(self.book.renewed(action.task_id, verdict, sent, self._clock()))

    async def _enqueue(self, action: Enqueue) -> None:
        record = self._record(action.task_id)
        repo, number = _split(action.task_id)
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
        await _in_thread(self._broker.enqueue, message)
        self.book.enqueued(action.task_id)
        log.info("%s: queued for the workers", action.task_id)

    async def _finish(self, action: Finish) -> None:
        repo, number = _split(action.task_id)
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
            report = (
                f"Bzzz quarantined this task: it failed on {self.settings.claims.max_attempts}"
                f" nodes. The last failure, on **{self.node}**: {action.reason[:2000]}"
            )
            try:
                await _in_thread(
                    self._forge.add_labels, repo, number, [self.settings.claims.quarantine_label]
                )
                await _in_thread(self._forge.comment, repo, number, report)
            except ForgeError as exc:
                log.warning("%s: could not quarantine it on the forge: %s", action.task_id, exc)
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
        repo, _ = _split(task_id)
        words = {
            ClaimState.RELEASED: "let this task go",
            ClaimState.DONE: "finished this task",
            ClaimState.FAILED: "failed this task",
            ClaimState.CLAIM: "holds this task",
        }
        text = f"Bzzz node **{self.node}** {words[state]}."
        if reason:
            text += f" {reason[:500]}"
        body = ledger.render(self._note(task_id, state, result_url=result_url, reason=reason), text)
        try:
            await _in_thread(self._forge.edit_comment, repo, comment_id, body)
        except ForgeError as exc:
            log.warning("%s: could not update claim comment %s: %s", task_id, comment_id, exc)

    async def _verdict(self, repo: str, number: int) -> ledger.Verdict:
        comments = await _in_thread(self._forge.get_comments, repo, number)
        tasks = self.settings.tasks
        notes = ledger.claims(comments, tasks.trusted_associations, tasks.trusted_authors)
        return ledger.verdict(notes, datetime.now(UTC), self.settings.claims.clock_skew)

    def _note(
        self, task_id: str, state: ClaimState, *, result_url: str = "", reason: str = ""
    ) -> ClaimNote:
        """What our claim comment on `task_id` records; its edits keep the attempt and
        whose claim it took over."""
        attempt, takes_over = self._posted.get(task_id, (1, ""))
        epoch = datetime.fromtimestamp(0, UTC)
        return ClaimNote(
            0,
            "",
            self.node,
            self.peer_id,
            state,
            self.settings.claims.lease,
            epoch,
            epoch,
            attempt=attempt,
            takes_over=takes_over,
            result_url=result_url,
            reason=reason,
        )


_CLOSING = re.compile(r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+#(\d+)\b", re.I)


def solves(pull: PullRequest, number: int, branch_prefix: str) -> bool:
    """Whether an open pull request answers issue `number`: its body closes the issue
    (GitHub's keywords), or it comes from the task's branch (a Bzzz peer's earlier run)."""
    if pull.state != "open":
        return False
    if any(int(m) == number for m in _CLOSING.findall(pull.body)):
        return True
    branch = pull.head.partition(":")[2] or pull.head
    return bool(branch_prefix) and branch.startswith(branch_prefix)


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await trio.to_thread.run_sync(fn, *args)


def _split(task_id: str) -> tuple[str, int]:
    repo, _, number = task_id.rpartition("#")
    return repo, int(number)
