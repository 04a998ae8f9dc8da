"""The claim machine while this node holds a task: adopting a claim made before a
restart, the queue and the workers, renewing the lease, and losing or letting go of it.
Pure; time is passed in.
"""

from __future__ import annotations

from bzzz.claims.actions import (
    Action,
    Announce,
    Finish,
    HandOff,
    Phase,
    Release,
    Renew,
    TaskClaim,
)
from bzzz.claims.book import RETRY_AFTER_ERROR, BookState
from bzzz.claims.ledger import ClaimNote, Verdict

DECLINED_REASON = "This node could not run it (a problem of the node, not of the task)."
UNPICKED_REASON = "No worker of this node picked it up."


class Holding(BookState):
    def adopt(self, task_id: str, comment_id: int, now: float) -> list[Action]:
        """One of this node's workers still runs the task under `comment_id`, a claim
        made before the node restarted: hold it again and renew it at once."""
        task = self._tasks.get(task_id)
        if task is None or task.phase is not Phase.ADOPTING or task.comment_id != comment_id:
            return []
        task.started_at = now
        task.next_forge_renewal = task.next_gossip_renewal = now
        self._move(task, Phase.RUNNING)
        return self._keep(task, now)

    def enqueued(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.phase is Phase.CLAIMED:
            self._move(task, Phase.QUEUED)

    def renewed(
        self, task_id: str, verdict: Verdict | None, sent_at: float, now: float
    ) -> list[Action]:
        """The forge's answer to a renewal (None: the forge could not be reached)."""
        task = self._tasks.get(task_id)
        if task is None or not task.phase.ours:
            return []
        task.renewing = False
        if verdict is None:
            task.next_forge_renewal = now + RETRY_AFTER_ERROR
            return self.tick(now)
        holder = verdict.holder
        if holder is not None and task.successor and holder.node == task.successor:
            return self._lose(task, now, holder.node, f"Handed on to {task.successor}.")
        if holder is None or holder.comment_id != task.comment_id:
            return self._lose(task, now, holder.node if holder else "")
        task.our_lease_end = sent_at + self.settings.lease - self.settings.margin
        task.next_forge_renewal = sent_at + self.settings.forge_renew
        return self.tick(now)

    def _let_go(self, task: TaskClaim, now: float, reason: str) -> list[Action]:
        """Give up a task this node holds but cannot run, without using an attempt:
        others get a lease's time to take it first."""
        comment_id, task.comment_id = task.comment_id, 0
        task.holder = ""
        task.renewing = False
        task.queued_at = 0.0
        task.claim_at = now + self.settings.lease
        self._move(task, Phase.SEEN)
        return [Announce(task.task_id, 0.0), Release(task.task_id, comment_id, reason)]

    def hand_off(self, task_id: str, successor: str) -> list[Action]:
        """Hand a task this node holds on to `successor`: our claim becomes a handoff
        naming it (still holding while its lease lasts), the successor claims in its
        place, and the next renewal that sees the successor hold lets ours go (no
        attempt). A successor that never claims leaves the task ours."""
        task = self._tasks.get(task_id)
        if task is None or not task.phase.ours or successor == self.node:
            return []
        task.successor = successor
        return [HandOff(task_id, task.comment_id, successor)]

    def hand_off_failed(self, task_id: str, now: float | None = None) -> None:
        """The forge did not take our handoff, or the successor did not claim: the task
        stays ours as before (with `now`: renew at once, so that the comment no longer
        names the successor)."""
        task = self._tasks.get(task_id)
        if task is not None:
            task.successor = ""
            if now is not None and task.phase.ours:
                task.next_forge_renewal = now

    def handed(self, task_id: str, now: float) -> list[Action]:
        """The successor's claim holds on the forge: let ours go (no attempt)."""
        task = self._tasks.get(task_id)
        if task is None or not task.phase.ours or not task.successor:
            return []
        return self._lose(task, now, task.successor, f"Handed on to {task.successor}.")

    def worker_declined(self, task_id: str, now: float) -> list[Action]:
        """The worker could not run the task because of a problem of this node (no git
        identity, no model server, no sandbox): let it go at once; it is no attempt."""
        task = self._tasks.get(task_id)
        if task is None or not task.phase.ours:
            return []
        return self._let_go(task, now, DECLINED_REASON)

    def worker_started(self, task_id: str, now: float) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.phase in (Phase.CLAIMED, Phase.QUEUED):
            task.started_at = now
            self._move(task, Phase.RUNNING)

    def worker_finished(
        self,
        task_id: str,
        *,
        succeeded: bool,
        result_type: str,
        result_url: str,
        reason: str,
        duration_ms: int,
        now: float,
    ) -> list[Action]:
        task = self._tasks.get(task_id)
        if task is None or not task.phase.ours:
            return []  # a lease we lost: its holder reports, not us
        comment_id = task.comment_id
        task.result_url = result_url
        if succeeded:
            self._move(task, Phase.DONE)
            quarantine = False
        else:
            task.attempts |= {self.node}
            quarantine = len(task.attempts) >= self.settings.max_attempts
            self._move(task, Phase.QUARANTINED if quarantine else Phase.FAILED)
        outcome = (succeeded, result_type, result_url, reason, duration_ms, quarantine)
        return [Finish(task_id, comment_id, *outcome)]

    def tick(self, now: float) -> list[Action]:
        raise NotImplementedError  # ClaimBook's

    def _orphaned(self, task: TaskClaim, now: float) -> list[Action]:
        """No worker spoke up for a claim made before the restart: let it go."""
        comment_id, task.comment_id = task.comment_id, 0
        task.holder = ""
        self._move(task, Phase.SEEN)
        reason = "This node restarted and none of its workers runs it."
        return [Release(task.task_id, comment_id, reason), *self._consider(task, now)]

    def _adopting(self, task: TaskClaim, holder: ClaimNote, left: float, now: float) -> None:
        task.comment_id = holder.comment_id
        task.holder = self.node
        task.adopt_until = now + self.orphan_grace
        task.our_lease_end = now + left - self.settings.clock_skew - self.settings.margin
        self._move(task, Phase.ADOPTING)

    def _keep(self, task: TaskClaim, now: float) -> list[Action]:
        if now >= task.our_lease_end:
            return self._lose(task, now, "")
        if task.phase is Phase.QUEUED:
            task.queued_at = task.queued_at or now
            if now >= task.queued_at + self.pickup_grace:
                return self._let_go(task, now, UNPICKED_REASON)
        actions: list[Action] = []
        if now >= task.next_gossip_renewal:
            task.next_gossip_renewal = now + self.settings.gossip_renew
            actions.append(Announce(task.task_id, task.our_lease_end - now + self.settings.margin))
        if now >= task.next_forge_renewal and not task.renewing:
            task.renewing = True
            actions.append(Renew(task.task_id, task.comment_id))
        return actions

    def _lose(
        self, task: TaskClaim, now: float, holder: str, reason: str = "lease lost"
    ) -> list[Action]:
        """Our lease ended or the forge names another holder (our successor, after a
        handoff): stop, and say so."""
        comment_id = task.comment_id
        task.comment_id = 0
        task.renewing = False
        task.holder = holder
        if holder:
            task.lease_until = now + self.settings.lease
            self._move(task, Phase.HELD)
        else:
            self._move(task, Phase.SEEN)
            task.claim_at = now + self.settings.lease  # give a takeover its chance first
            task.next_check = now  # and learn from the forge who took it, when it answers
        return [
            Announce(task.task_id, 0.0),
            Release(task.task_id, comment_id, reason),
        ]
