"""Task-table sync between two peers, pure: what a node tells a peer of the tasks it knows,
and what it makes of what a peer tells it.

A node that joins, restarts or finds a peer again after a partition has missed gossip:
it asks a peer for its table over a direct stream. Tables are compared by a digest of
what peers agree on (each task's shared state, holder and result), so a sync of an
unchanged table costs one small round trip. A peer's table is a hint, like any gossip:
a task learnt this way is read on the forge before it is claimed; a state it reports
(held, done, quarantined, closed) only keeps the node from acting.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bzzz.protocol import Name, RepoName, Url
from bzzz.tasks.table import TaskRecord

MAX_TASKS = 20_000
MAX_BYTES = 16 * 1024 * 1024  # decompressed


class Shared(StrEnum):
    """A task's state as every node can agree on it (phases like `waiting` are one
    node's own)."""

    OPEN = "open"
    HELD = "held"
    DONE = "done"
    QUARANTINED = "quarantined"
    CLOSED = "closed"


HELD_PHASES = {"held", "claimed", "queued", "running", "adopting"}


def shared(state: str) -> Shared:
    if state in HELD_PHASES:
        return Shared.HELD
    if state in ("done", "quarantined", "closed"):
        return Shared(state)
    return Shared.OPEN


class SyncedTask(BaseModel):
    """One task as a peer reports it (untrusted input: validated)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    task_id: Name
    repo: RepoName
    issue_url: Url
    model: Name
    title: Annotated[str, Field(max_length=200)]
    branch_prefix: Annotated[str, Field(max_length=256)]
    announced_by: Name
    announced_at: Annotated[str, Field(max_length=64)]
    state: Shared
    holder: Annotated[str, Field(max_length=64)] = ""
    lease_s: Annotated[float, Field(ge=0.0, le=86_400.0)] = 0.0
    result_url: Url = ""
    agent: Annotated[str, Field(max_length=64)] = ""


class SyncReply(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    digest: Annotated[str, Field(max_length=64)]
    tasks: Annotated[list[SyncedTask], Field(max_length=MAX_TASKS)] | None = None  # None: same


class SyncError(ValueError):
    """A peer's sync message that is not one: dropped and counted."""


def digest(records: list[TaskRecord]) -> str:
    """What peers agree on, hashed: equal digests, nothing to learn."""
    lines = sorted(_agreed(r) for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _agreed(record: TaskRecord) -> str:
    state = shared(record.state)
    holder = record.holder if state is not Shared.OPEN else ""
    return f"{record.task_id}\x00{state}\x00{holder}\x00{record.result_url}"


def to_synced(record: TaskRecord) -> SyncedTask:
    state = shared(record.state)
    return SyncedTask(
        task_id=record.task_id,
        repo=record.repo,
        issue_url=record.issue_url,
        model=record.model,
        title=record.title,
        branch_prefix=record.branch_prefix,
        announced_by=record.announced_by,
        announced_at=record.announced_at,
        state=state,
        holder=record.holder if state is not Shared.OPEN else "",
        lease_s=record.lease_s if state is Shared.HELD else 0.0,
        result_url=record.result_url,
        agent=record.agent,
    )


def encode_request(own_digest: str) -> bytes:
    return json.dumps({"digest": own_digest}).encode()


def decode_request(data: bytes) -> str:
    try:
        request = json.loads(data)
        value = request["digest"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SyncError(f"not a sync request: {exc}") from None
    if not isinstance(value, str) or len(value) > 64:
        raise SyncError("not a sync request: a bad digest")
    return value


def encode_reply(records: list[TaskRecord], their_digest: str) -> bytes:
    """The reply to a peer whose table has `their_digest`: our tasks, or "same"."""
    own = digest(records)
    tasks = None if own == their_digest else [to_synced(r) for r in records]
    reply = SyncReply(digest=own, tasks=tasks)
    return zlib.compress(reply.model_dump_json(exclude_none=True).encode())


def decode_reply(data: bytes) -> SyncReply:
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(data, MAX_BYTES)
        if inflater.unconsumed_tail:
            raise SyncError("a sync reply over the size limit")
        return SyncReply.model_validate_json(text)
    except (zlib.error, ValidationError) as exc:
        raise SyncError(f"not a sync reply: {str(exc)[:200]}") from None


@dataclass(frozen=True)
class Hint:
    """What a synced task suggests to the claim machine, given what this node knows."""

    task: SyncedTask
    new: bool  # this node did not know the task
    state: Shared  # the peer's view, when it says more than this node knows; else OPEN


def hints(known: dict[str, TaskRecord], tasks: list[SyncedTask]) -> list[Hint]:
    """For each synced task: new to this node, or a state beyond the one it knows (a
    holder it has not heard of, an end it has not seen)."""
    found = []
    for task in tasks:
        record = known.get(task.task_id)
        if record is None:
            found.append(Hint(task, True, task.state))
            continue
        mine = shared(record.state)
        if mine in (Shared.DONE, Shared.QUARANTINED, Shared.CLOSED):
            continue  # it knows the end
        if task.state is not Shared.OPEN and (task.state, task.holder) != (mine, record.holder):
            found.append(Hint(task, False, task.state))
    return found
