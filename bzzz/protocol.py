"""The wire contract: one typed model per pubsub topic of the project brief.

Topic names, JSON field names and field types are exactly the brief's. Receivers
tolerate unknown extra fields (newer peers may add some) and reject a message
whose required fields are missing or ill-typed. Everything here is pure: bytes
in, models out, and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
)
from pydantic_core import ErrorDetails


class Topic(StrEnum):
    CAPABILITIES = "capabilities"
    TASK_BROADCAST = "task_broadcast"
    TASK_CLAIM = "task_claim"
    TASK_RESULT = "task_result"
    PRESENCE_PING = "presence_ping"
    TASK_HELP_REQUEST = "task_help_request"
    TASK_HELP_RESPONSE = "task_help_response"
    ANTENNAE = "antennae/meta-discussion/v1"  # beside the brief's seven: plans reviewed
    AUDIT = "audit/checkpoints/v1"  # beside them too: the audit logs' signed checkpoints


class DropReason(StrEnum):
    """Why a received message was dropped; each has its own counter."""

    OVERSIZED = "oversized"
    NON_UTF8 = "non_utf8"
    MALFORMED = "malformed"  # not JSON at all
    INVALID = "invalid"  # JSON, but not this topic's message
    UNKNOWN_TOPIC = "unknown_topic"
    SPOOFED = "spoofed"  # names a node that another peer speaks for
    INTERNAL = "internal"  # our validator failed; never expected, always counted


NODE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024

NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Url = Annotated[str, StringConstraints(max_length=2048)]
Text = Annotated[str, StringConstraints(max_length=DEFAULT_MAX_MESSAGE_BYTES)]
REPO_PATTERN = r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"
RepoName = Annotated[str, StringConstraints(pattern=REPO_PATTERN)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
MAX_HELP_HOPS = 3  # a task asks for help at most this many times over
MAX_ANTENNAE_HOPS = 3  # a plan's review goes at most this many messages deep
MAX_REVIEWERS = 4  # so that a session has at most five participants
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="allow", allow_inf_nan=False)


class Message(_Model):
    """Fields and behaviour common to every topic's message."""

    topic: ClassVar[Topic]
    # The field naming the node that speaks; task_broadcast has none (it relays a forge issue).
    sender_field: ClassVar[str | None] = "node_id"

    timestamp: AwareDatetime

    @field_serializer("timestamp")
    def _timestamp_as_utc_z(self, value: datetime) -> str:
        # Millisecond precision in the brief's "2025-07-12T01:23:45Z" form.
        utc = value.astimezone(UTC)
        millis = utc.microsecond // 1000
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{millis:03d}Z" if millis else "Z")

    @property
    def sender(self) -> str | None:
        """The node this message speaks for (`node_id` or `from_node`), if it names one."""
        return None if self.sender_field is None else str(getattr(self, self.sender_field))


class GpuDevice(_Model):
    index: NonNegativeInt
    name: Name
    utilization: Percent
    memory_used_mb: NonNegativeInt
    memory_total_mb: NonNegativeInt


class Capabilities(Message):
    topic = Topic.CAPABILITIES

    type: Literal["capabilities"] = "capabilities"
    node_id: NodeId
    cpu: Percent
    gpu: Percent
    models: Annotated[list[Name], Field(max_length=1024)]
    installed: Annotated[list[Name], Field(max_length=256)]
    status: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    # Additions to the brief; optional so that brief-only peers stay valid.
    memory: Percent | None = None
    gpus: Annotated[list[GpuDevice], Field(max_length=64)] | None = None
    # Repositories this node can poll for tasks (configured, with a working token).
    polls: Annotated[list[RepoName], Field(max_length=1024)] | None = None
    # Tasks this node could take on now (free worker slots).
    slots: NonNegativeInt | None = None
    # Why this node takes no tasks at all (no token, no model, ...), in a few words each.
    cannot_run: Annotated[list[Name], Field(max_length=16)] | None = None
    # The model gateway: peers' model calls this node serves at once, and serves now.
    gateway_slots: NonNegativeInt | None = None
    gateway_calls: NonNegativeInt | None = None


class TaskParams(_Model):
    branch_prefix: Name


class TaskBroadcast(Message):
    topic = Topic.TASK_BROADCAST
    sender_field = None

    type: Literal["task"] = "task"
    task_id: Name
    repo: RepoName
    issue_url: Url
    model: Name
    input: Text
    params: TaskParams
    # Addition to the brief: the issue's comment count when it was announced. Claims are
    # comments, so a receiver reads the claims of a task with comments (or of unknown
    # count) on the forge before it claims the task itself.
    comments: NonNegativeInt | None = None
    # Addition to the brief: the agent CLI the task asks to be run by (its `agent:NAME`
    # label: aider, claude, codex, ...); absent: Bzzz's own reasoning loop.
    agent: Name | None = None


class TaskClaim(Message):
    topic = Topic.TASK_CLAIM

    type: Literal["task_claim"] = "task_claim"
    task_id: Name
    node_id: NodeId
    # Additions to the brief: how many more seconds the sender holds the task (0: it
    # let go), and the forge comment that records the claim.
    lease_s: Annotated[float, Field(ge=0.0, le=86_400.0)] | None = None
    claim_url: Url | None = None


class TaskResult(Message):
    topic = Topic.TASK_RESULT

    type: Literal["task_result"] = "task_result"
    task_id: Name
    node_id: NodeId
    result_type: Literal["pull_request", "issue", "failure"]
    result_url: Url
    duration_ms: NonNegativeInt


class PresencePing(Message):
    topic = Topic.PRESENCE_PING

    type: Literal["presence_ping"] = "presence_ping"
    node_id: NodeId
    # Addition to the brief: the sender's current ping interval, so that receivers
    # know how long a silence means it is dead (it grows with the mesh).
    interval_s: Annotated[float, Field(gt=0.0)] | None = None


class TaskHelpRequest(Message):
    topic = Topic.TASK_HELP_REQUEST
    sender_field = "from_node"

    type: Literal["task_help_request"] = "task_help_request"
    task_id: Name
    from_node: NodeId
    reason: Text
    requested_capability: Name
    # Additions to the brief, optional: one ask's id (offers answer it), the kind of help
    # (advice from the helper's model; the hand-over of the task), and how many times
    # the task has asked before (a request with MAX_HELP_HOPS asks behind it is dropped).
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    kind: Literal["consult", "handoff"] | None = None
    hop: Annotated[int, Field(ge=0, le=MAX_HELP_HOPS - 1)] | None = None


class TaskHelpResponse(Message):
    topic = Topic.TASK_HELP_RESPONSE
    sender_field = "from_node"

    type: Literal["task_help_response"] = "task_help_response"
    task_id: Name
    from_node: NodeId
    can_help: bool
    capabilities: Annotated[list[Name], Field(max_length=256)]
    eta_seconds: NonNegativeInt
    # Additions to the brief, optional: the ask this offer answers, and the node that asked.
    request_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    to_node: NodeId | None = None
    # The helper's load: consults it is giving now, and how many it gives at once.
    busy: NonNegativeInt | None = None


class AntennaeMessage(Message):
    """A plan and its reviews ("Antennae", the seeds' meta-discussion): the holder of a
    task posts its plan naming its reviewers; each reviewer answers it. The seeds' meta_msg
    shape, flattened: a session, the message and its parent, a hop count."""

    topic = Topic.ANTENNAE

    type: Literal["meta_msg"] = "meta_msg"
    session_id: Ident
    task_id: Name
    node_id: NodeId
    msg_id: Ident
    parent_id: Ident | None = None
    hop_count: Annotated[int, Field(ge=0, le=MAX_ANTENNAE_HOPS)]
    kind: Literal["plan", "review"]
    text: Annotated[str, StringConstraints(max_length=4000)]
    # A review's: approve, objection, suggestion, or person (a question for a person).
    verdict: Literal["approve", "objection", "suggestion", "person"] | None = None
    reviewers: Annotated[list[NodeId], Field(max_length=MAX_REVIEWERS)] | None = None  # a plan's


CHECKPOINT_CHARS = 1024  # a signed checkpoint's text is about 250


class AuditCheckpoint(Message):
    """A node's latest signed checkpoint of its audit log (bzzz.audit.checkpoint), or,
    with `conflicting`, proof that a node equivocated: two checkpoints it signed for one
    size with different roots, relayed by whoever found them. The signatures are checked
    by the receiver, not here."""

    topic = Topic.AUDIT

    type: Literal["audit_checkpoint"] = "audit_checkpoint"
    node_id: NodeId
    checkpoint: Annotated[str, StringConstraints(min_length=1, max_length=CHECKPOINT_CHARS)]
    conflicting: Annotated[str, StringConstraints(max_length=CHECKPOINT_CHARS)] | None = None


MODELS: Mapping[Topic, type[Message]] = {
    model.topic: model
    for model in (
        Capabilities,
        TaskBroadcast,
        TaskClaim,
        TaskResult,
        PresencePing,
        TaskHelpRequest,
        TaskHelpResponse,
        AntennaeMessage,
        AuditCheckpoint,
    )
}


class DecodeError(ValueError):
    """A received payload is not a valid message of its topic."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode(topic: str, data: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Parse and validate one payload received on `topic`.

    Raises DecodeError (and nothing else) for any bad input.
    """
    if len(data) > max_bytes:
        raise DecodeError(DropReason.OVERSIZED, f"{len(data)} bytes > {max_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(DropReason.NON_UTF8, str(exc)) from None
    try:
        model = MODELS[Topic(topic)]
    except ValueError:
        raise DecodeError(DropReason.UNKNOWN_TOPIC, repr(topic[:64])) from None
    try:
        message = model.model_validate_json(text)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        reason = DropReason.MALFORMED if errors[0]["type"] == "json_invalid" else DropReason.INVALID
        raise DecodeError(reason, _summarize(errors)) from None
    if "type" not in message.model_fields_set:
        raise DecodeError(DropReason.INVALID, "type: field required")
    return message


def encode(message: Message) -> bytes:
    return message.model_dump_json(exclude=_unset_optionals(message)).encode("utf-8")


def as_json_dict(message: Message) -> dict[str, object]:
    """The message as it travels, for status output."""
    return message.model_dump(mode="json", exclude=_unset_optionals(message))


def _unset_optionals(message: Message) -> set[str]:
    """Our optional additions to the brief that are None are left out of the wire form
    (extra fields from other peers are kept as they came, nulls included)."""
    optional = _OPTIONAL_FIELDS.get(type(message))
    if optional is None:
        fields = type(message).model_fields
        optional = _OPTIONAL_FIELDS[type(message)] = frozenset(
            n for n, f in fields.items() if f.default is None
        )
    return {name for name in optional if getattr(message, name) is None}


_OPTIONAL_FIELDS: dict[type[Message], frozenset[str]] = {}


def _summarize(errors: list[ErrorDetails]) -> str:
    parts = []
    for error in errors[:3]:
        location = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{location}: {error['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
