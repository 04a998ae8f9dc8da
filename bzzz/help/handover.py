"""Handing a task on: its holder's worker cannot finish it here (its model or sandbox
broke, the pull request cannot be opened from this node), so the node asks the mesh for
a node that could claim it (`kind: "handoff"`), and passes the claim to the best offer.

For each offer in turn: the holder's claim comment becomes a handoff naming the offer's
node (claims/handing.py); the case goes to that node over a help stream; the node claims
in the holder's place and answers once the forge says it holds the task. Then the holder
lets go (no attempt) and says so on the issue. A node that does not take it: the
holder's comment names no successor again, and the next offer is tried. No taker after
`max_asks` asks: the worker goes on as it would have alone.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Protocol

import trio

from bzzz.help.asking import ASK_WITHIN, Asked, Asker
from bzzz.help.matching import Bid

log = logging.getLogger(__name__)

REASON_CHARS = 500
BRANCH = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}:[A-Za-z0-9_./{}-]{1,200}$")


class BadHandOver(ValueError):
    """A hand-off case that is malformed or out of bounds."""


@dataclass(frozen=True)
class HandOverCase:
    """What the holder tells its successor: the task, why, and where its work is."""

    request_id: str
    task_id: str
    capability: str
    reason: str
    branch: str = ""  # "owner/repository:branch", or "" when nothing was pushed

    def to_json(self) -> bytes:
        return json.dumps({"type": "handoff", **self.__dict__}).encode()


def case_from(request_id: str, task_id: object, command: dict[str, Any]) -> HandOverCase:
    """The case from a worker's control command `handoff`, checked."""
    return _checked(
        request_id,
        task_id,
        command.get("capability", ""),
        command.get("reason", ""),
        command.get("branch", ""),
    )


def parse_case(data: bytes) -> HandOverCase:
    """A case as it came over a help stream."""
    try:
        fields = json.loads(data)
    except ValueError:
        raise BadHandOver("not JSON") from None
    if not isinstance(fields, dict) or fields.get("type") != "handoff":
        raise BadHandOver("not a hand-off")
    return _checked(
        fields.get("request_id"),
        fields.get("task_id"),
        fields.get("capability", ""),
        fields.get("reason", ""),
        fields.get("branch", ""),
    )


def _checked(
    request_id: object, task_id: object, capability: object, reason: object, branch: object
) -> HandOverCase:
    texts = [_text(t) for t in (request_id, task_id, capability, reason, branch)]
    request_id, task_id, capability, reason, branch = texts
    if not request_id or not task_id or len(task_id) > 256 or len(capability) > 200:
        raise BadHandOver("a task_id (at most 256 characters) is needed")
    if branch and not BRANCH.match(branch):
        raise BadHandOver(f"branch {branch[:80]!r} is not owner/repository:branch")
    reason = " ".join(reason.split())[:REASON_CHARS].rstrip()
    return HandOverCase(request_id, task_id, capability, reason, branch)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise BadHandOver("request_id, task_id, capability, reason and branch are texts")
    return value


class Claims(Protocol):
    """The claim driver's hand-off (claims/handing.py)."""

    async def hand_off(self, task_id: str, successor: str) -> str: ...

    def cancel_hand_off(self, task_id: str) -> None: ...

    async def handed(self, task_id: str, comment: str) -> None: ...


class HandingOver:
    """The holder's side of hand-offs. Trio-owned."""

    def __init__(self, *, name: str, asker: Asker, claims: Claims, max_asks: int) -> None:
        self._name = name
        self._asker = asker
        self._claims = claims
        self._max_asks = max_asks

    async def hand_off(self, case: HandOverCase) -> dict[str, Any]:
        """Pass the task on to the best node that takes it; the answer for the worker."""
        record = Asked(case.task_id, case.reason, case.capability, kind="handoff")
        self._asker.asked.append(record)
        turned_away: list[tuple[str, Bid]] = []
        try:
            with trio.move_on_after(ASK_WITHIN) as overall:
                answer = await self._asks(case, record, turned_away)
            if overall.cancelled_caught:
                self._claims.cancel_hand_off(case.task_id)
                record.outcome = f"no node took it within {ASK_WITHIN:.0f} s"
                answer = {"handed": False, "reason": record.outcome}
            return {"asks": record.asks, "offers": record.offers, **answer}
        finally:
            await self._asker.decline(turned_away)

    async def _asks(
        self, case: HandOverCase, record: Asked, turned_away: list[tuple[str, Bid]]
    ) -> dict[str, Any]:
        for hop in range(self._max_asks):
            record.asks = hop + 1
            asked_at = trio.current_time()
            request_id, bids = await self._asker.gather(
                record, f"{case.request_id}-{hop}", hop, case.reason or "handoff"
            )
            for position, bid in enumerate(bids):
                why = await self._claims.hand_off(case.task_id, bid.node_id)
                if why:  # the task is no longer ours to hand on
                    turned_away += [(request_id, b) for b in bids[position:]]
                    record.outcome = why
                    return {"handed": False, "reason": why}
                sent = replace(case, request_id=request_id)
                answer = await self._asker.exchange(bid, sent.to_json(), record, asked_at)
                if answer.get("taken") is True:
                    turned_away += [(request_id, b) for b in bids[position + 1 :]]
                    await self._claims.handed(case.task_id, self._comment(case, bid.node_id))
                    record.helper, record.outcome = bid.node_id, "handed on"
                    log.info("%s: handed on to %s", case.task_id, bid.node_id)
                    return {"handed": True, "node": bid.node_id}
                self._claims.cancel_hand_off(case.task_id)
                record.outcome = f"{bid.node_id}: {answer.get('error', 'did not take it')}"
        if not record.offers:
            record.outcome = f"no peer offered to take it after {record.asks} asks"
        else:
            record.outcome = f"no node took it ({record.outcome})"
        return {"handed": False, "reason": record.outcome}

    def _comment(self, case: HandOverCase, successor: str) -> str:
        work = (
            f" Its work so far is on branch `{case.branch}`, which **{successor}** continues."
            if case.branch
            else ""
        )
        why = f" Why: {case.reason}" if case.reason else ""
        return (
            f"Bzzz node **{self._name}** handed this task on to node **{successor}**,"
            f" which holds it now.{why}{work} (A hand-off is not a failed attempt.)"
        )
