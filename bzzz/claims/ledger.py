"""Claims recorded on the forge: the arbiter of who holds a task. Pure.

A node claims a task by commenting on its issue. The comment carries a marker with
the claim's state and lease; the node renews the lease by editing the comment (the
forge stamps `updated_at`), and finishes by editing it once more (done, failed or
released). Every node reading the issue's comments reaches the same verdict:

- the task is done if a claim says so;
- otherwise its holder is the earliest *live* claim: state `claim`, lease not
  expired (`updated_at + lease_s`, judged with an allowance for clock skew and the
  forge's whole-second times);
- attempts are the distinct nodes whose claim failed or expired unfinished.

Comments are untrusted input: only claims by trusted accounts count (the same
author associations and logins that may open tasks), and a marker that does not
parse is ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bzzz.forge.api import Comment

MARKER = re.compile(r"<!-- bzzz-claim (\{.*?\}) -->")
MAX_MARKER_CHARS = 2_000


class ClaimState(StrEnum):
    CLAIM = "claim"  # holds the task while its lease lasts
    HANDOFF = "handoff"  # holds it while its lease lasts, and hands it to `successor`
    RELEASED = "released"  # let go without running it to the end (lost the race, lease lost)
    DONE = "done"
    FAILED = "failed"


HOLDING = frozenset({ClaimState.CLAIM, ClaimState.HANDOFF})  # a live one holds the task


@dataclass(frozen=True)
class ClaimNote:
    comment_id: int
    author: str
    node: str
    peer: str
    state: ClaimState
    lease_s: float
    created_at: datetime
    updated_at: datetime
    attempt: int = 1
    takes_over: str = ""  # the node whose expired claim this one follows
    result_url: str = ""
    reason: str = ""
    # Fresh for each claim a node makes with a comment, so that a claim made again with
    # the same comment is told apart from the earlier one (the workers' fencing token is
    # the comment and its nonce).
    nonce: str = ""
    successor: str = ""  # a handoff: the node the task passes to
    handed_by: str = ""  # a claim: the node whose handoff names this one's node

    def expires_at(self) -> datetime:
        return self.updated_at + timedelta(seconds=self.lease_s)

    def is_live(self, now: datetime, skew: float) -> bool:
        """Whether it may still hold the task: judged late, so a live claim is never
        thought dead early."""
        return self.state in HOLDING and now < self.expires_at() + timedelta(seconds=skew)


@dataclass(frozen=True)
class Verdict:
    holder: ClaimNote | None  # the earliest live claim
    done: ClaimNote | None
    attempts: frozenset[str]  # nodes on which the task failed or whose lease expired
    expired: tuple[ClaimNote, ...]  # claims that ran out without being finished
    holder_left: float = 0.0  # seconds until the holder's lease ends by the forge's times
    live: tuple[ClaimNote, ...] = ()  # every live claim, the holder's first

    @property
    def is_free(self) -> bool:
        return self.holder is None and self.done is None


def render(note: ClaimNote, summary: str) -> str:
    """A claim comment: a line for people, then the marker for nodes."""
    fields = {
        "node": note.node,
        "peer": note.peer,
        "state": note.state.value,
        "lease_s": note.lease_s,
        "attempt": note.attempt,
        "takes_over": note.takes_over,
        "result_url": note.result_url,
        "reason": note.reason[:500],
        "nonce": note.nonce,
    }
    if note.successor:
        fields["successor"] = note.successor
    if note.handed_by:
        fields["handed_by"] = note.handed_by
    return f"{summary}\n\n<!-- bzzz-claim {json.dumps(fields, separators=(',', ':'))} -->\n"


def parse(comment: Comment) -> ClaimNote | None:
    """The claim a comment records, or None if it records none (or a malformed one)."""
    match = MARKER.search(comment.body)
    if match is None or len(match.group(1)) > MAX_MARKER_CHARS:
        return None
    try:
        fields = json.loads(match.group(1))
        note = ClaimNote(
            comment_id=comment.id,
            author=comment.author,
            node=_text(fields["node"]),
            peer=_text(fields["peer"]),
            state=ClaimState(fields["state"]),
            lease_s=float(fields["lease_s"]),
            created_at=comment.created_at,
            updated_at=comment.updated_at,
            attempt=int(fields.get("attempt", 1)),
            takes_over=_text(fields.get("takes_over", ""), empty=True),
            result_url=_text(fields.get("result_url", ""), empty=True),
            reason=_text(fields.get("reason", ""), empty=True),
            nonce=_text(fields.get("nonce", ""), empty=True),
            successor=_text(fields.get("successor", ""), empty=True),
            handed_by=_text(fields.get("handed_by", ""), empty=True),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if not 0 < note.lease_s <= 86_400:
        return None
    return note


def claims(
    comments: Iterable[Comment],
    trusted_associations: Collection[str],
    trusted_authors: Collection[str],
) -> list[ClaimNote]:
    """The trusted claims among an issue's comments, oldest first."""
    notes = []
    for comment in comments:
        if (
            comment.author_association not in trusted_associations
            and comment.author not in trusted_authors
        ):
            continue
        note = parse(comment)
        if note is not None:
            notes.append(note)
    return sorted(notes, key=lambda n: n.comment_id)


def verdict(notes: Iterable[ClaimNote], now: datetime, skew: float) -> Verdict:
    ordered = sorted(notes, key=lambda n: n.comment_id)
    place = _places(ordered)
    done = next((n for n in ordered if n.state is ClaimState.DONE), None)
    live = (
        ()
        if done is not None
        else tuple(sorted((n for n in ordered if n.is_live(now, skew)), key=place.__getitem__))
    )
    holder = live[0] if live else None
    expired = tuple(n for n in ordered if n.state in HOLDING and not n.is_live(now, skew))
    failed = {n.node for n in ordered if n.state is ClaimState.FAILED}
    return Verdict(
        holder=holder,
        done=done,
        attempts=frozenset(failed | {n.node for n in expired}),
        expired=expired,
        holder_left=(holder.expires_at() - now).total_seconds() if holder else 0.0,
        live=live,
    )


def _places(ordered: list[ClaimNote]) -> dict[ClaimNote, tuple[int, int]]:
    """Each claim's place in the queue: its comment's, except that a claim handed on by
    a node's handoff (a `handoff` or `released` note that names this claim's node as its
    successor, made earlier) takes that note's place, just ahead of it. So the successor
    holds the task as its predecessor did, and no claim made meanwhile jumps ahead."""
    place: dict[ClaimNote, tuple[int, int]] = {}
    handing: dict[tuple[str, str], ClaimNote] = {}
    for note in ordered:
        origin = handing.get((note.handed_by, note.node)) if note.handed_by else None
        if origin is not None and note.state in HOLDING | {ClaimState.DONE}:
            first, second = place[origin]
            place[note] = (first, second - 1)
        else:
            place[note] = (note.comment_id, 0)
        if note.successor and note.state in (ClaimState.HANDOFF, ClaimState.RELEASED):
            handing[(note.node, note.successor)] = note
    return place


def _text(value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty) or len(value) > 500:
        raise ValueError("not a short string")
    return value
