"""The wire contract: the brief's samples round-trip; bad input raises DecodeError only."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bzzz.protocol import (
    MODELS,
    Capabilities,
    DecodeError,
    DropReason,
    TaskBroadcast,
    Topic,
    decode,
    encode,
)
from tests.strategies import BRIEF_SAMPLES, hostile_payloads, json_values


def test_every_topic_of_the_brief_has_a_model() -> None:
    assert {str(t) for t in Topic} == {
        "capabilities",
        "task_broadcast",
        "task_claim",
        "task_result",
        "presence_ping",
        "task_help_request",
        "task_help_response",
        "antennae/meta-discussion/v1",  # the architecture seed's, beside the brief's seven
        "audit/checkpoints/v1",  # the audit logs' checkpoints (the seed's Hypercore logging)
    }
    assert set(MODELS) == set(Topic)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hop_count", 4),
        ("reviewers", ["a", "b", "c", "d", "e"]),
        ("verdict", "maybe"),
        ("kind", "chat"),
        ("session_id", "has spaces"),
        ("text", "x" * 4001),
    ],
)
def test_antennae_messages_keep_their_bounds(field: str, value: object) -> None:
    sample = {**BRIEF_SAMPLES[Topic.ANTENNAE], field: value}
    with pytest.raises(DecodeError) as caught:
        decode(Topic.ANTENNAE, json.dumps(sample).encode())
    assert caught.value.reason is DropReason.INVALID


@pytest.mark.parametrize("topic", list(Topic))
def test_brief_sample_round_trips(topic: Topic) -> None:
    sample = BRIEF_SAMPLES[topic]
    message = decode(topic, json.dumps(sample).encode())
    assert type(message) is MODELS[topic]
    assert json.loads(encode(message)) == sample  # same fields, same values, same timestamps
    assert decode(topic, encode(message)) == message


def test_field_types_follow_the_brief() -> None:
    caps = decode(Topic.CAPABILITIES, json.dumps(BRIEF_SAMPLES[Topic.CAPABILITIES]).encode())
    assert isinstance(caps, Capabilities)
    assert (caps.cpu, caps.gpu, caps.status) == (43.5, 2.3, "idle")
    assert caps.timestamp == datetime(2025, 7, 12, 1, 23, 45, tzinfo=UTC)
    task = decode(Topic.TASK_BROADCAST, json.dumps(BRIEF_SAMPLES[Topic.TASK_BROADCAST]).encode())
    assert isinstance(task, TaskBroadcast)
    assert task.params.branch_prefix == "task-42-"
    assert task.sender is None
    assert caps.sender == "pi-node-1"


def test_unknown_extra_fields_are_tolerated_and_kept() -> None:
    sample = {**BRIEF_SAMPLES[Topic.TASK_CLAIM], "lease_seconds": 60, "nested": {"a": [1]}}
    message = decode(Topic.TASK_CLAIM, json.dumps(sample).encode())
    assert json.loads(encode(message))["lease_seconds"] == 60


@pytest.mark.parametrize("topic", list(Topic))
def test_each_missing_required_field_is_rejected(topic: Topic) -> None:
    for field in BRIEF_SAMPLES[topic]:
        sample = dict(BRIEF_SAMPLES[topic])
        del sample[field]
        with pytest.raises(DecodeError) as caught:
            decode(topic, json.dumps(sample).encode())
        assert caught.value.reason is DropReason.INVALID, field
        assert field in caught.value.detail


@pytest.mark.parametrize(
    ("topic", "field", "value"),
    [
        (Topic.CAPABILITIES, "cpu", "43.5"),
        (Topic.CAPABILITIES, "cpu", True),
        (Topic.CAPABILITIES, "cpu", 101.0),
        (Topic.CAPABILITIES, "models", "llama3"),
        (Topic.CAPABILITIES, "node_id", "has spaces"),
        (Topic.CAPABILITIES, "timestamp", "yesterday"),
        (Topic.CAPABILITIES, "timestamp", "2025-07-12T01:23:45"),  # no time zone
        (Topic.CAPABILITIES, "type", "task"),
        (Topic.TASK_BROADCAST, "params", {"branch": "x"}),
        (Topic.TASK_BROADCAST, "repo", "not a repo"),
        (Topic.TASK_RESULT, "result_type", "merged"),
        (Topic.TASK_RESULT, "duration_ms", -1),
        (Topic.TASK_RESULT, "duration_ms", 1.5),
        (Topic.TASK_HELP_RESPONSE, "can_help", "yes"),
        (Topic.TASK_HELP_RESPONSE, "eta_seconds", None),
        (Topic.TASK_HELP_REQUEST, "hop", 3),  # three asks behind it: no fourth
        (Topic.TASK_HELP_REQUEST, "kind", "delegate"),
        (Topic.TASK_HELP_REQUEST, "request_id", "has spaces"),
        (Topic.TASK_HELP_RESPONSE, "to_node", "has spaces"),
        (Topic.TASK_HELP_RESPONSE, "busy", -1),
    ],
)
def test_ill_typed_fields_are_rejected(topic: Topic, field: str, value: Any) -> None:
    sample = {**BRIEF_SAMPLES[topic], field: value}
    with pytest.raises(DecodeError) as caught:
        decode(topic, json.dumps(sample).encode())
    assert caught.value.reason is DropReason.INVALID


def test_integers_are_accepted_where_the_brief_has_numbers() -> None:
    sample = {**BRIEF_SAMPLES[Topic.CAPABILITIES], "cpu": 43}
    assert decode(Topic.CAPABILITIES, json.dumps(sample).encode()).cpu == 43.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", DropReason.NON_UTF8),
        (b"{not json", DropReason.MALFORMED),
        (b"[1, 2]", DropReason.INVALID),
        (b'{"cpu": NaN}', DropReason.INVALID),  # pydantic's parser reads NaN; the model refuses it
        (b"x" * 70_000, DropReason.OVERSIZED),
    ],
)
def test_bad_payloads_have_their_reason(data: bytes, reason: DropReason) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(Topic.CAPABILITIES, data)
    assert caught.value.reason is reason


def test_unknown_topic() -> None:
    with pytest.raises(DecodeError) as caught:
        decode("chat", b"{}")
    assert caught.value.reason is DropReason.UNKNOWN_TOPIC


@given(topic=st.sampled_from([*Topic, "other"]), data=hostile_payloads() | st.binary())
def test_decode_raises_nothing_but_decode_error(topic: str, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(topic, data)


@given(
    topic=st.sampled_from(list(Topic)),
    extra=st.dictionaries(st.text(min_size=1, max_size=8), json_values),
)
def test_valid_messages_with_any_extra_fields_round_trip(
    topic: Topic, extra: dict[str, Any]
) -> None:
    declared = MODELS[topic].model_fields  # an optional field of ours is not an extra one
    sample = {**{k: v for k, v in extra.items() if k not in declared}, **BRIEF_SAMPLES[topic]}
    message = decode(topic, json.dumps(sample).encode())
    assert decode(topic, encode(message)) == message


def test_timestamps_keep_milliseconds() -> None:
    sample = {**BRIEF_SAMPLES[Topic.PRESENCE_PING], "timestamp": "2026-01-02T03:04:05.678+01:00"}
    encoded = json.loads(encode(decode(Topic.PRESENCE_PING, json.dumps(sample).encode())))
    assert encoded["timestamp"] == "2026-01-02T02:04:05.678Z"


def test_help_messages_carry_the_flow_s_optional_fields() -> None:
    request = {
        **BRIEF_SAMPLES[Topic.TASK_HELP_REQUEST],
        "request_id": "a1b2c3",
        "kind": "consult",
        "hop": 2,
    }
    decoded = decode(Topic.TASK_HELP_REQUEST, json.dumps(request).encode())
    assert (decoded.request_id, decoded.kind, decoded.hop) == ("a1b2c3", "consult", 2)  # type: ignore[attr-defined]
    offer = {**BRIEF_SAMPLES[Topic.TASK_HELP_RESPONSE], "request_id": "a1b2c3", "to_node": "a"}
    assert decode(Topic.TASK_HELP_RESPONSE, json.dumps(offer).encode()).to_node == "a"  # type: ignore[attr-defined]
