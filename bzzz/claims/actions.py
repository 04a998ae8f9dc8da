"""What the claim machine tracks per task, and the actions it asks the node to carry out.

Pure data: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    SEEN = "seen"  # nobody is known to hold it
    CHECKING = "checking"  # asking the forge who holds it (read only)
    ADOPTING = "adopting"  # the forge names a claim this node made before it restarted
    WAITING = "waiting"  # eligible; claims when its rank's delay has passed
    CLAIMING = "claiming"  # our claim is on its way to the forge
    HELD = "held"  # another node holds it
    CLAIMED = "claimed"  # we hold it: confirmed by the forge, being enqueued
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # failed on this node; another may retry it
    QUARANTINED = "quarantined"
    CLOSED = "closed"  # the issue is no longer a task

    @property
    def ours(self) -> bool:
        return self in (Phase.CLAIMED, Phase.QUEUED, Phase.RUNNING)

    @property
    def busy(self) -> bool:
        """It takes one of this node's worker slots."""
        return self.ours or self in (Phase.CLAIMING, Phase.ADOPTING)

    @property
    def final(self) -> bool:
        return self in (Phase.DONE, Phase.QUARANTINED, Phase.CLOSED)


# ---- actions: what the node must do -------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """Read the issue and its claims; answer with `ClaimBook.checked`."""

    task_id: str


@dataclass(frozen=True)
class PostClaim:
    task_id: str
    attempt: int
    takes_over: str  # node whose expired claim this one follows, or ""
    # Our earlier claim comment on the task (let go, or its release never reached the
    # forge): edit it back into a claim rather than post another, so that a node leaves
    # one claim comment per task however often it claims.
    reuse: int = 0
    handed_by: str = ""  # the node whose handoff names this node: the claim takes its place


@dataclass(frozen=True)
class HandOff:
    """Edit our claim comment into a handoff naming `successor`, which claims next."""

    task_id: str
    comment_id: int
    successor: str


@dataclass(frozen=True)
class Renew:
    task_id: str
    comment_id: int


@dataclass(frozen=True)
class Release:
    task_id: str
    comment_id: int
    reason: str
    failed: bool = False  # mark it failed (an attempt) rather than released


@dataclass(frozen=True)
class Settle:
    """Edit our claim comment into its final state again: the last try failed."""

    task_id: str
    comment_id: int
    state: str  # a ledger.ClaimState value: released, failed or done
    reason: str = ""
    result_url: str = ""


@dataclass(frozen=True)
class Enqueue:
    task_id: str
    comment_id: int  # the fencing token: the worker checks it still holds the forge's lease


@dataclass(frozen=True)
class Announce:
    """Publish a task_claim: we hold the task for `lease_s` more seconds (0: let go)."""

    task_id: str
    lease_s: float


@dataclass(frozen=True)
class Finish:
    task_id: str
    comment_id: int
    succeeded: bool
    result_type: str
    result_url: str
    reason: str
    duration_ms: int
    quarantine: bool  # the failure on this node made the task fail on K nodes


Action = Check | PostClaim | HandOff | Renew | Release | Settle | Enqueue | Announce | Finish


@dataclass
class TaskClaim:
    task_id: str
    model: str
    phase: Phase = Phase.SEEN
    holder: str = ""  # node name of the holder, when known
    lease_until: float = 0.0  # when the holder's lease ends, as far as we know
    claim_at: float = 0.0
    attempts: frozenset[str] = frozenset()
    comment_id: int = 0  # our claim comment while we claim or hold
    our_lease_end: float = 0.0  # we stop working at this time unless renewed
    next_forge_renewal: float = 0.0
    next_gossip_renewal: float = 0.0
    renewing: bool = False
    started_at: float = 0.0
    expired_holder: str = ""  # the node whose lease we saw run out
    result_url: str = ""  # the finished task's pull request, issue or failure report
    next_check: float = 0.0  # when to ask the forge again, if nothing else happens
    adopt_until: float = 0.0  # an orphaned claim of ours is released unless a worker speaks up
    finished_at: float | None = None  # when it was first seen final: retired after a retention
    queued_at: float = 0.0  # when it was first seen queued: a worker must pick it up soon
    unverified: bool = False  # heard of late: the forge is read before claiming it
    own_comment: int = 0  # our latest claim comment on it, kept after we let it go
    unsettled: Settle | None = None  # our comment's final edit that did not reach the forge
    failures: int = 0  # forge failures in a row for this task: the back-off grows with them
    retry_at: float = 0.0  # when to try `unsettled` again
    successor: str = ""  # the node we hand the task on to, once it claims
