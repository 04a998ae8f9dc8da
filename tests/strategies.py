"""Hypothesis strategies for wire messages: the brief's samples, and hostile variations of them."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from bzzz.protocol import Topic

# The sample messages of the project brief, verbatim.
BRIEF_SAMPLES: dict[Topic, dict[str, Any]] = {
    Topic.CAPABILITIES: {
        "type": "capabilities",
        "node_id": "pi-node-1",
        "cpu": 43.5,
        "gpu": 2.3,
        "models": ["llama3", "mistral"],
        "installed": ["ollama", "gemini-cli"],
        "status": "idle",
        "timestamp": "2025-07-12T01:23:45Z",
    },
    Topic.TASK_BROADCAST: {
        "type": "task",
        "task_id": "#42",
        "repo": "example-org/task-repo",
        "issue_url": "https://github.com/example-org/task-repo/issues/42",
        "model": "ollama",
        "input": "Add unit tests to utils module",
        "params": {"branch_prefix": "task-42-"},
        "timestamp": "2025-07-12T02:00:00Z",
    },
    Topic.TASK_CLAIM: {
        "type": "task_claim",
        "task_id": "#42",
        "node_id": "pi-node-2",
        "timestamp": "2025-07-12T02:00:03Z",
    },
    Topic.TASK_RESULT: {
        "type": "task_result",
        "task_id": "#42",
        "node_id": "pi-node-2",
        "result_type": "pull_request",
        "result_url": "https://github.com/example-org/task-repo/pull/97",
        "duration_ms": 15830,
        "timestamp": "2025-07-12T02:10:05Z",
    },
    Topic.TASK_HELP_REQUEST: {
        "type": "task_help_request",
        "task_id": "#42",
        "from_node": "pi-node-2",
        "reason": "Long-running task or missing capability",
        "requested_capability": "claude-cli",
        "timestamp": "2025-07-12T02:05:00Z",
    },
    Topic.TASK_HELP_RESPONSE: {
        "type": "task_help_response",
        "task_id": "#42",
        "from_node": "pi-node-3",
        "can_help": True,
        "capabilities": ["claude-cli"],
        "eta_seconds": 30,
        "timestamp": "2025-07-12T02:05:02Z",
    },
    # Not in the brief: its topic table names presence_ping without a sample.
    Topic.PRESENCE_PING: {
        "type": "presence_ping",
        "node_id": "pi-node-1",
        "timestamp": "2025-07-12T02:05:02Z",
    },
    # Not in the brief: the Antennae topic the architecture seed adds (a meta_msg).
    Topic.ANTENNAE: {
        "type": "meta_msg",
        "session_id": "s-42",
        "task_id": "#42",
        "node_id": "pi-node-2",
        "msg_id": "m-1",
        "hop_count": 0,
        "kind": "plan",
        "text": "Add tests for utils.parse first, then fix the off-by-one.",
        "timestamp": "2025-07-12T02:00:10Z",
    },
    # Not in the brief: the audit logs' checkpoints (the seed's "Hypercore logging").
    Topic.AUDIT: {
        "type": "audit_checkpoint",
        "node_id": "pi-node-2",
        "checkpoint": "12D3KooWA\n1\nAAAA\n1752285610\n\n\u2014 12D3KooWA AAAA\n",
        "timestamp": "2025-07-12T02:00:10Z",
    },
}

SENDER_FIELDS = ("node_id", "from_node")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


def _as_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


@st.composite
def sample(draw: st.DrawFn, sender: str | None = None) -> dict[str, Any]:
    """A brief sample message of any topic, speaking as `sender` (if it names a node)."""
    message = copy.deepcopy(BRIEF_SAMPLES[draw(st.sampled_from(list(BRIEF_SAMPLES)))])
    for field in SENDER_FIELDS:
        if field in message and sender is not None:
            message[field] = sender
    return message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A near-valid message with one field dropped, retyped, or one field added."""
    message = draw(sample(sender=draw(st.sampled_from(["hostile", "target", "witness"]))))
    key = draw(st.sampled_from(sorted(message)))
    action = draw(st.sampled_from(["drop", "retype", "add"]))
    if action == "drop":
        del message[key]
    elif action == "retype":
        message[key] = draw(json_values)
    else:
        message[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return _as_bytes(message)


def hostile_payloads() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        json_values.map(_as_bytes),
        mutated(),
        # Correct messages speaking for nodes that other peers speak for.
        sample(sender=None).flatmap(
            lambda m: st.sampled_from(["target", "witness"]).map(lambda n: _renamed(m, n))
        ),
        # Correct messages under a name of the hostile peer's own: these must get through.
        sample(sender="hostile").map(_as_bytes),
        # A correct message padded past the size limit.
        sample(sender="hostile").map(lambda m: _as_bytes({**m, "padding": "x" * 70_000})),
    )


def _renamed(message: dict[str, Any], name: str) -> bytes:
    renamed = dict(message)
    for field in SENDER_FIELDS:
        if field in renamed:
            renamed[field] = name
    return _as_bytes(renamed)
