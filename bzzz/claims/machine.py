"""Who takes which task, as one node sees it: a state machine with no I/O. Time is passed in.

The node feeds it what it learns (tasks, gossip claims and results, the forge's
verdicts, its workers' events, clock ticks) and carries out the actions it returns
(post or edit a claim comment, enqueue, publish). The forge is the arbiter: a claim
counts only once the forge's comments say this node's claim is the earliest live
one. A held claim is a lease: renewed on gossip often and on the forge every third
of the lease. If the forge cannot be reached before the lease runs out (measured
from when the last successful renewal was *sent*, less a margin), the node gives
the task up: by then another node may have taken it over, and it must not push.

Times are monotonic seconds of this node.
"""

from __future__ import annotations

from bzzz.claims.actions import (
    Action,
    Announce,
    Check,
    Enqueue,
    Phase,
    PostClaim,
    Release,
    TaskClaim,
)
from bzzz.claims.holding import Holding
from bzzz.claims.ledger import ClaimNote, Verdict


class ClaimBook(Holding):
    # ---- what the node learns ----------------------------------------------------------

    def learn(
        self,
        task_id: str,
        model: str,
        now: float,
        *,
        check_first: bool = False,
        verify: bool = False,
    ) -> list[Action]:
        """A task this node heard of. `check_first`: ask the forge before anything else
        (a task known before a restart: this node may have claimed it then). `verify`:
        ask the forge before claiming it (a task heard of late, or again, may be claimed
        or finished already: its news may be stale)."""
        if task_id in self._tasks:
            return []
        task = TaskClaim(task_id, model, next_check=now + self.settings.lease)
        task.unverified = verify
        self._tasks[task_id] = task
        if self.on_move is not None:
            self.on_move(task)
        if check_first:
            return self._check(task, now)
        return self._tick(task, now)

    def heard_claim(self, task_id: str, node: str, lease_s: float, now: float) -> list[Action]:
        """Another node said on task_claim that it holds the task (or let it go)."""
        task = self._tasks.get(task_id)
        if task is None or node == self.node or task.phase.final:
            return []
        if lease_s <= 0:
            if task.holder == node and task.phase is Phase.HELD:
                self._move(task, Phase.SEEN)
            return self.tick(now)
        if task.phase.ours:
            # Two holders cannot both be confirmed: ask the forge at once who is.
            task.next_forge_renewal = now
            return self.tick(now)
        if task.phase is Phase.ADOPTING:
            return []  # our own earlier claim comes first on the forge
        if task.phase is not Phase.CLAIMING:
            self._move(task, Phase.HELD)
        task.holder = node
        task.lease_until = now + lease_s
        return []

    def take_over(self, task_id: str, predecessor: str, now: float) -> list[Action]:
        """`predecessor` hands the task on to this node (its claim is a handoff naming
        us): claim it in the handoff's place."""
        task = self._tasks.get(task_id)
        if task is None or task.phase.ours or task.phase.final or task.phase.busy:
            return []
        self._move(task, Phase.CLAIMING)
        attempt = len(task.attempts) + 1
        return [PostClaim(task_id, attempt, "", task.own_comment, handed_by=predecessor)]

    def reopen(self, task_id: str, model: str, now: float) -> list[Action]:
        """A task closed here (its issue was no longer a task: held for a person) is a
        task again: learn it afresh, reading the forge before claiming it."""
        task = self._tasks.get(task_id)
        if task is not None and task.phase is not Phase.CLOSED:
            return []
        self._tasks.pop(task_id, None)
        return self.learn(task_id, model, now, verify=True)

    def heard_end(self, task_id: str, phase: Phase, holder: str, result_url: str) -> None:
        """A peer's table says the task ended (done, quarantined, closed): a hint that
        keeps this node from claiming it; one it holds is not touched."""
        task = self._tasks.get(task_id)
        if task is None or task.phase.ours or task.phase.final or not phase.final:
            return
        task.holder, task.result_url = holder, result_url
        self._move(task, phase)

    def heard_result(
        self, task_id: str, node: str, succeeded: bool, now: float, *, result_url: str = ""
    ) -> list[Action]:
        task = self._tasks.get(task_id)
        if task is None or node == self.node or task.phase.final:
            return []
        task.result_url = result_url
        if succeeded:
            self._move(task, Phase.DONE)
            task.holder = node
            return []
        task.attempts |= {node}
        if len(task.attempts) >= self.settings.max_attempts and not task.phase.ours:
            self._move(task, Phase.QUARANTINED)
            return []
        if task.phase is Phase.HELD and task.holder == node:
            self._move(task, Phase.SEEN)
        return self.tick(now)

    def claim_checked(
        self,
        task_id: str,
        own: ClaimNote | None,
        verdict: Verdict | None,
        *,
        sent_at: float,
        still_a_task: bool,
        now: float,
    ) -> list[Action]:
        """The forge's answer after we posted our claim `own` (None: posting failed;
        `verdict` None: posted, but the comments could not be read back)."""
        task = self._tasks.get(task_id)
        if task is None or task.phase is not Phase.CLAIMING:
            return [Release(task_id, own.comment_id, "no longer claiming")] if own else []
        reused = own is not None and own.comment_id == task.own_comment
        if own is not None:
            task.own_comment = own.comment_id  # the one comment this node claims it with
        if own is None or verdict is None:
            task.failures += 1
            task.claim_at = task.next_check = now + self.backoff(task)
            self._move(task, Phase.SEEN)
            return [Release(task_id, own.comment_id, "the forge did not answer")] if own else []
        task.failures = 0
        if task.unsettled and task.unsettled.comment_id == own.comment_id:
            task.unsettled = None  # that comment is a claim again: nothing left to settle
        task.attempts |= verdict.attempts
        if not still_a_task or verdict.done is not None:
            self._move(task, Phase.DONE if verdict.done else Phase.CLOSED)
            return [Release(task_id, own.comment_id, "the task is finished or closed")]
        holder = verdict.holder
        if reused and any(n.node != self.node for n in verdict.live):
            # An older comment edited back into a claim must not jump the queue: it
            # counts only when no other node's claim is live at all.
            holder = next(n for n in verdict.live if n.node != self.node)
        if holder is None or holder.comment_id != own.comment_id:
            if holder is not None and holder.node == self.node:
                self._adopting(task, holder, verdict.holder_left, now)
            elif holder is not None:
                task.holder = holder.node
                task.lease_until = now + verdict.holder_left + self.settings.clock_skew
                self._move(task, Phase.HELD)
            else:  # our claim does not count (an untrusted account?): do not insist
                task.failures += 1
                task.claim_at = task.next_check = now + self.backoff(task)
                self._move(task, Phase.SEEN)
            return [Release(task_id, own.comment_id, "another claim came first")]
        task.comment_id = own.comment_id
        task.holder = self.node
        task.our_lease_end = sent_at + self.settings.lease - self.settings.margin
        task.next_forge_renewal = sent_at + self.settings.forge_renew
        task.next_gossip_renewal = now + self.settings.gossip_renew
        self._move(task, Phase.CLAIMED)
        return [Announce(task_id, self.settings.lease), Enqueue(task_id, own.comment_id)]

    def checked(
        self, task_id: str, verdict: Verdict | None, *, still_a_task: bool, now: float
    ) -> list[Action]:
        """The forge's answer to a `Check` (`verdict` None: it could not be read)."""
        task = self._tasks.get(task_id)
        if task is None or task.phase is not Phase.CHECKING:
            return []
        task.next_check = now + self.settings.lease
        if verdict is None:
            task.failures += 1
            task.next_check = task.claim_at = now + self.backoff(task)
            self._move(task, Phase.FAILED if self.node in task.attempts else Phase.SEEN)
            return []
        task.failures = 0
        task.attempts |= verdict.attempts
        holder = verdict.holder
        actions: list[Action] = []
        if holder is not None and holder.node == self.node and self.node in task.attempts:
            # It failed here, but saying so did not reach the forge: say it again.
            actions.append(Release(task_id, holder.comment_id, "It failed on this node.", True))
            holder = None
        if verdict.done is not None:
            task.holder = verdict.done.node
            task.result_url = verdict.done.result_url
            self._move(task, Phase.DONE)
        elif not still_a_task:
            self._move(task, Phase.CLOSED)
        elif holder is not None and holder.node == self.node:
            self._adopting(task, holder, verdict.holder_left, now)
        elif holder is not None:
            task.holder = holder.node
            task.lease_until = now + verdict.holder_left + self.settings.clock_skew
            self._move(task, Phase.HELD)
        else:
            if verdict.expired and not task.expired_holder:
                task.expired_holder = verdict.expired[-1].node
            if len(task.attempts) >= self.settings.max_attempts:
                self._move(task, Phase.QUARANTINED)
                return []
            self._move(task, Phase.FAILED if self.node in task.attempts else Phase.SEEN)
            return actions + self._consider(task, now)
        return actions

    # ---- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for task in self._tasks.values():
            actions.extend(self._tick(task, now))
            if task.unsettled is not None:
                actions.extend(self._settle(task, now))
        return actions

    def retire(self, now: float) -> list[str]:
        """Forget tasks that have been finished (done, quarantined, closed) for longer
        than the retention; returns their IDs. Until then a task's announcements and
        claims are recognised as finished."""
        retired = []
        for task in list(self._tasks.values()):
            if not task.phase.final:
                task.finished_at = None
            elif task.finished_at is None:
                task.finished_at = now
            elif now - task.finished_at >= self.settings.retention and task.unsettled is None:
                retired.append(task.task_id)
                del self._tasks[task.task_id]
        return retired

    def _tick(self, task: TaskClaim, now: float) -> list[Action]:
        match task.phase:
            case Phase.SEEN | Phase.FAILED:
                return self._idle(task, now)
            case Phase.HELD if now >= task.lease_until:
                # The holder went quiet: the forge says whether it finished, renewed
                # (its gossip was lost), or let the lease run out.
                task.expired_holder = task.holder
                return self._check(task, now)
            case Phase.ADOPTING if now >= task.adopt_until:
                return self._orphaned(task, now)
            case Phase.WAITING if now >= task.claim_at:
                return self._claim(task, now)
            case Phase.CLAIMED | Phase.QUEUED | Phase.RUNNING:
                return self._keep(task, now)
            case _:
                return []

    def _claim(self, task: TaskClaim, now: float) -> list[Action]:
        if task.unverified:
            task.unverified = False  # what the forge says decides; then it may claim
            return self._check(task, now)
        self._move(task, Phase.CLAIMING)
        attempt = len(task.attempts) + 1
        return [PostClaim(task.task_id, attempt, task.expired_holder, task.own_comment)]

    def _idle(self, task: TaskClaim, now: float) -> list[Action]:
        actions = self._consider(task, now)
        idle = task.phase in (Phase.SEEN, Phase.FAILED)
        if actions or not idle or now < task.next_check:
            return actions
        return self._check(task, now)  # not claiming now: still, learn how it ends

    def _consider(self, task: TaskClaim, now: float) -> list[Action]:
        if now < task.claim_at:
            return []
        if self.node in task.attempts or len(task.attempts) >= self.settings.max_attempts:
            return []
        place = self._ranking(
            task.task_id, task.model, self.market, task.attempts, self.used_slots()
        )
        if place is None:
            return []
        task.claim_at = now + place * self.settings.rank_delay
        self._move(task, Phase.WAITING)
        return self._tick(task, now)

    def _check(self, task: TaskClaim, now: float) -> list[Action]:
        task.next_check = now + self.settings.lease
        self._move(task, Phase.CHECKING)
        return [Check(task.task_id)]
