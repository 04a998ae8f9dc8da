"""The claim driver's part in a hand-off: on the holder, the claim comment becomes a
handoff naming the successor; on the successor, a claim in the holder's place. Each
waits for the forge's answer, so that the help stream between the two nodes says what
the forge says. Runs on the trio thread, like the rest of the driver.

Order matters: the holder's note must name the successor before the successor claims,
or the successor's claim would not take the note's place (ledger._places).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import trio

from bzzz.claims.actions import Action, HandOff
from bzzz.claims.arbiter import Arbiter, Claim
from bzzz.claims.ledger import ClaimState
from bzzz.claims.machine import ClaimBook

log = logging.getLogger(__name__)

FORGE_WITHIN = 60.0  # seconds a hand-off's edit, or the successor's claim, may take


@dataclass(frozen=True)
class Continuation:
    """Where a handed-on task's work so far is: the successor's worker starts from it."""

    predecessor: str
    reason: str = ""
    branch: str = ""  # "owner/repository:branch", or "" when nothing was pushed


class Handing:
    """Mixed into the ClaimDriver (claims/driver.py), whose state it shares."""

    node: str
    book: ClaimBook
    _arbiter: Arbiter
    _claims: dict[str, Claim]
    _clock: Callable[[], float]

    def __init__(self) -> None:
        self._forge_said: dict[str, tuple[trio.Event, list[str]]] = {}  # per task in flight
        self.continuations: dict[str, Continuation] = {}  # tasks handed on to us

    def apply(self, actions: list[Action]) -> None:
        raise NotImplementedError  # the driver's

    # ---- the holder ----------------------------------------------------------------------

    async def hand_off(self, task_id: str, successor: str) -> str:
        """Make our claim a handoff naming `successor`: "" once the forge has it, else
        why not (then the task stays ours as before)."""
        actions = self.book.hand_off(task_id, successor)
        if not actions:
            return "this node does not hold the task"
        return await self._forge_answer(task_id, actions) or ""

    async def _hand_off(self, action: HandOff) -> None:
        """Our claim comment becomes a handoff naming the successor; every later edit
        keeps naming it, so that its claim keeps our place."""
        claim = replace(self._claim(action.task_id), successor=action.successor)
        self._claims[action.task_id] = claim
        reason = f"It goes to **{action.successor}**, which continues from this node's work."
        edited = await trio.to_thread.run_sync(
            partial(self._arbiter.edit, claim, action.comment_id, ClaimState.HANDOFF, reason=reason)
        )
        if not edited:
            log.warning("%s: the forge did not take the handoff; keeping it", action.task_id)
            self.cancel_hand_off(action.task_id)
        self._said(action.task_id, "" if edited else "the forge did not take the handoff")

    def cancel_hand_off(self, task_id: str) -> None:
        """The successor did not take the task: it stays ours, and our next renewal (at
        once) names no successor."""
        self._claims[task_id] = replace(self._claim(task_id), successor="")
        self.book.hand_off_failed(task_id, self._clock())

    async def handed(self, task_id: str, comment: str) -> None:
        """The successor holds the task on the forge: let ours go, and say so on the
        issue (`comment`)."""
        self.apply(self.book.handed(task_id, self._clock()))
        await trio.to_thread.run_sync(self._arbiter.say, task_id, comment)

    # ---- the successor -------------------------------------------------------------------

    async def take_over(self, task_id: str, continuation: Continuation) -> str:
        """The predecessor's handoff names us: claim the task in its place; "" once the
        forge says we hold it, else why not."""
        actions = self.book.take_over(task_id, continuation.predecessor, self._clock())
        if not actions:
            task = self.book.get(task_id)
            return f"cannot take it over: it is {task.phase if task else 'unknown here'}"
        self.continuations[task_id] = continuation
        why = await self._forge_answer(task_id, actions)
        if why is None and not self.book.holds(task_id, self._clock()):
            task = self.book.get(task_id)
            why = f"the forge names {task.holder if task and task.holder else 'another claim'}"
        if why:
            self.continuations.pop(task_id, None)
        return why or ""

    def _claimed(self, task_id: str) -> None:
        """Our claim's answer came back from the forge (the driver's _post_claim)."""
        self._said(task_id, None)

    # ---- waiting for the forge -----------------------------------------------------------

    async def _forge_answer(self, task_id: str, actions: list[Action]) -> str | None:
        """Carry out `actions` and wait for what the forge said (None: as hoped, for
        a claim: the book has the verdict; or why not)."""
        event, said = self._forge_said[task_id] = (trio.Event(), [])
        try:
            self.apply(actions)
            with trio.move_on_after(FORGE_WITHIN):
                await event.wait()
        finally:
            del self._forge_said[task_id]
        if not event.is_set():
            return f"the forge did not answer within {FORGE_WITHIN:.0f} s"
        return said[0] if said and said[0] else None

    def _said(self, task_id: str, why: str | None) -> None:
        waiting = self._forge_said.get(task_id)
        if waiting is not None:
            waiting[1].append(why or "")
            waiting[0].set()

    def _forget_continuation(self, task_id: str) -> None:
        self.continuations.pop(task_id, None)

    def _claim(self, task_id: str) -> Claim:
        raise NotImplementedError  # the driver's
