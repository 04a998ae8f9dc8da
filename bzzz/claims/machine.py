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
    Finish,
    Phase,
    PostClaim,
    Release,
    Renew,
    TaskClaim,
)
from bzzz.claims.ledger import ClaimNote, Verdict
from bzzz.claims.matching import Market, Ranking, closed_market, position
from bzzz.config import ClaimSettings

RETRY_AFTER_ERROR = 10.0  # seconds before claiming again after the forge failed us


class ClaimBook:
    def __init__(
        self,
        node: str,
        settings: ClaimSettings,
        *,
        orphan_grace: float = 30.0,
        ranking: Ranking = position,
    ) -> None:
        """`orphan_grace`: how long a claim made before a restart waits for a worker."""
        if settings.margin * 2 >= settings.lease:
            raise ValueError("claims: margin must be less than half the lease")
        self.node = node
        self.settings = settings
        self._ranking = ranking
        # Who could take tasks now: an input the node keeps current (peers, capabilities).
        self.market: Market = closed_market(node_id=node)
        self.orphan_grace = orphan_grace
        self.moves = 0  # phase changes so far: a cheap "has anything changed?"
        self._tasks: dict[str, TaskClaim] = {}
        self._used = 0  # tasks in a busy phase, kept by _move

    def get(self, task_id: str) -> TaskClaim | None:
        return self._tasks.get(task_id)

    def tasks(self) -> list[TaskClaim]:
        return list(self._tasks.values())

    def holds(self, task_id: str, now: float) -> bool:
        """Whether this node holds a confirmed, unexpired lease on the task."""
        task = self._tasks.get(task_id)
        return task is not None and task.phase.ours and now < task.our_lease_end

    def used_slots(self) -> int:
        """Worker slots this node's claims use (claiming, adopting, held by us)."""
        return self._used

    def free_slots(self) -> int:
        """Tasks this node could take on now: its capacity less what its claims use."""
        return max(0, self.market.own.free_slots - self.used_slots())

    # ---- what the node learns ----------------------------------------------------------

    def learn(
        self, task_id: str, model: str, now: float, *, check_first: bool = False
    ) -> list[Action]:
        """A task this node heard of. `check_first`: ask the forge before anything else
        (a task known before a restart: this node may have claimed it then)."""
        if task_id in self._tasks:
            return self.tick(now)
        task = TaskClaim(task_id, model, next_check=now + self.settings.lease)
        self._tasks[task_id] = task
        actions: list[Action] = self._check(task, now) if check_first else []
        return actions + self.tick(now)

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
        if own is None or verdict is None:
            task.claim_at = task.next_check = now + RETRY_AFTER_ERROR
            self._move(task, Phase.SEEN)
            return [Release(task_id, own.comment_id, "the forge did not answer")] if own else []
        task.attempts |= verdict.attempts
        if not still_a_task or verdict.done is not None:
            self._move(task, Phase.DONE if verdict.done else Phase.CLOSED)
            return [Release(task_id, own.comment_id, "the task is finished or closed")]
        holder = verdict.holder
        if holder is None or holder.comment_id != own.comment_id:
            if holder is not None and holder.node == self.node:
                self._adopting(task, holder, verdict.holder_left, now)
            elif holder is not None:
                task.holder = holder.node
                task.lease_until = now + verdict.holder_left + self.settings.clock_skew
                self._move(task, Phase.HELD)
            else:  # our claim does not count (an untrusted account?): do not insist
                task.claim_at = task.next_check = now + RETRY_AFTER_ERROR
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
            task.next_check = task.claim_at = now + RETRY_AFTER_ERROR
            self._move(task, Phase.FAILED if self.node in task.attempts else Phase.SEEN)
            return []
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
        if holder is None or holder.comment_id != task.comment_id:
            return self._lose(task, now, holder.node if holder else "")
        task.our_lease_end = sent_at + self.settings.lease - self.settings.margin
        task.next_forge_renewal = sent_at + self.settings.forge_renew
        return self.tick(now)

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

    # ---- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for task in self._tasks.values():
            actions.extend(self._tick(task, now))
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
            elif now - task.finished_at >= self.settings.retention:
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
                self._move(task, Phase.CLAIMING)
                return [PostClaim(task.task_id, len(task.attempts) + 1, task.expired_holder)]
            case Phase.CLAIMED | Phase.QUEUED | Phase.RUNNING:
                return self._keep(task, now)
            case _:
                return []

    def _idle(self, task: TaskClaim, now: float) -> list[Action]:
        actions = self._consider(task, now)
        idle = task.phase in (Phase.SEEN, Phase.FAILED)
        if actions or not idle or now < task.next_check:
            return actions
        return self._check(task, now)  # not claiming now: still, learn how it ends

    def _orphaned(self, task: TaskClaim, now: float) -> list[Action]:
        """No worker spoke up for a claim made before the restart: let it go."""
        comment_id, task.comment_id = task.comment_id, 0
        task.holder = ""
        self._move(task, Phase.SEEN)
        reason = "This node restarted and none of its workers runs it."
        return [Release(task.task_id, comment_id, reason), *self._consider(task, now)]

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

    def _adopting(self, task: TaskClaim, holder: ClaimNote, left: float, now: float) -> None:
        task.comment_id = holder.comment_id
        task.holder = self.node
        task.adopt_until = now + self.orphan_grace
        task.our_lease_end = now + left - self.settings.clock_skew - self.settings.margin
        self._move(task, Phase.ADOPTING)

    def _keep(self, task: TaskClaim, now: float) -> list[Action]:
        if now >= task.our_lease_end:
            return self._lose(task, now, "")
        actions: list[Action] = []
        if now >= task.next_gossip_renewal:
            task.next_gossip_renewal = now + self.settings.gossip_renew
            actions.append(Announce(task.task_id, task.our_lease_end - now + self.settings.margin))
        if now >= task.next_forge_renewal and not task.renewing:
            task.renewing = True
            actions.append(Renew(task.task_id, task.comment_id))
        return actions

    def _lose(self, task: TaskClaim, now: float, holder: str) -> list[Action]:
        """Our lease ended or the forge names another holder: stop, and say so."""
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
            Release(task.task_id, comment_id, "lease lost"),
        ]

    def _move(self, task: TaskClaim, phase: Phase) -> None:
        if task.phase is not phase:
            self._used += int(phase.busy) - int(task.phase.busy)
            task.phase = phase
            self.moves += 1
