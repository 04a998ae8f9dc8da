"""The claim book's state: the tasks this node tracks, its market, its slots, and the
final edits of its claim comments that have yet to reach the forge. Pure.

`ClaimBook` (machine.py) builds on it; `Holding` (holding.py) is the part of the
machine that runs while this node holds a task.
"""

from __future__ import annotations

from collections.abc import Callable

from bzzz.claims.actions import Action, Phase, Settle, TaskClaim
from bzzz.claims.matching import Market, Ranking, closed_market, position
from bzzz.config import ClaimSettings

RETRY_AFTER_ERROR = 10.0  # seconds before claiming again after the forge failed us


class BookState:
    def __init__(
        self,
        node: str,
        settings: ClaimSettings,
        *,
        orphan_grace: float = 30.0,
        pickup_grace: float = 40.0,
        ranking: Ranking = position,
    ) -> None:
        """`orphan_grace`: how long a claim made before a restart waits for a worker;
        `pickup_grace`: how long a queued task waits for a worker to start it."""
        if settings.margin * 2 >= settings.lease:
            raise ValueError("claims: margin must be less than half the lease")
        self.node = node
        self.settings = settings
        self._ranking = ranking
        # Who could take tasks now: an input the node keeps current (peers, capabilities).
        self.market: Market = closed_market(node_id=node)
        self.orphan_grace = orphan_grace
        self.pickup_grace = pickup_grace
        self.moves = 0  # phase changes so far: a cheap "has anything changed?"
        self._tasks: dict[str, TaskClaim] = {}
        self._used = 0  # tasks in a busy phase, kept by _move
        # Told of every task learnt and every phase change (the node's audit log).
        self.on_move: Callable[[TaskClaim], None] | None = None

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

    # ---- our comments' final edits ----------------------------------------------------

    def edit_failed(self, settle: Settle, now: float) -> None:
        """The edit of our claim comment into `settle.state` did not reach the forge:
        try it again after a back-off (until then the comment still says "claim")."""
        task = self._tasks.get(settle.task_id)
        if task is None:
            return
        task.unsettled = settle
        task.failures += 1
        task.retry_at = now + self.backoff(task)

    def edit_done(self, task_id: str, comment_id: int) -> None:
        task = self._tasks.get(task_id)
        if task is not None and task.unsettled and task.unsettled.comment_id == comment_id:
            task.unsettled = None
            task.failures = 0

    def backoff(self, task: TaskClaim) -> float:
        """Seconds to wait after the forge failed this task `failures` times in a row:
        doubling from RETRY_AFTER_ERROR, at most a lease."""
        doublings = min(max(0, task.failures - 1), 10)
        return min(self.settings.lease, RETRY_AFTER_ERROR * float(2**doublings))

    def _settle(self, task: TaskClaim, now: float) -> list[Action]:
        """Try an unsettled edit again once its back-off is over (not while claiming:
        the claim edits that very comment)."""
        settle = task.unsettled
        if settle is None or now < task.retry_at or task.phase is Phase.CLAIMING:
            return []
        task.retry_at = float("inf")  # until the driver says how it went
        return [settle]

    def _consider(self, task: TaskClaim, now: float) -> list[Action]:
        raise NotImplementedError  # ClaimBook's

    def _move(self, task: TaskClaim, phase: Phase) -> None:
        if task.phase is not phase:
            self._used += int(phase.busy) - int(task.phase.busy)
            task.phase = phase
            self.moves += 1
            if self.on_move is not None:
                self.on_move(task)
