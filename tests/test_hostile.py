"""A hostile peer floods a real node with malformed and spoofed messages.

Every bad message must be dropped and counted under its reason, every good one
delivered, and the node must keep serving its real peers throughout.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.protocol import DecodeError, DropReason, Topic, decode
from tests.conftest import NodeFactory, alive_names, start_all, wait_alive
from tests.strategies import hostile_payloads

BATCHES = 12
BATCH_SIZE = 100  # 1,200 messages in all


class Hostile:
    def __init__(self, target: NodeProcess) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile_peer", target.addr],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.peer_id = self._read()["ready"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"hostile peer exited with {self.process.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def send(self, topic: str, data: bytes) -> None:
        assert self.process.stdin is not None
        command = {"topic": topic, "data": base64.b64encode(data).decode()}
        self.process.stdin.write(json.dumps(command) + "\n")

    def flush(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write('{"flush": true}\n')
        self.process.stdin.flush()
        flushed: int = self._read()["flushed"]
        return flushed

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def arena(make_node: NodeFactory) -> Iterator[tuple[NodeProcess, NodeProcess, Hostile]]:
    target = make_node("target", gossip={"max_messages_per_second": 400.0})
    witness = make_node("witness", bootstrap=[target.addr])
    start_all(target, witness)
    wait_alive(target, {"witness"})
    hostile = Hostile(target)
    try:
        yield target, witness, hostile
    finally:
        hostile.close()


def expected_verdict(topic: str, data: bytes, taken_names: set[str]) -> str:
    try:
        message = decode(topic, data)
    except DecodeError as exc:
        return str(exc.reason)
    if message.sender in taken_names:
        return str(DropReason.SPOOFED)
    return "accepted"


def counters(node: NodeProcess) -> tuple[Counter[str], int]:
    report = node.status()
    assert report is not None, "the target stopped answering"
    messages = report.messages
    return Counter(messages.dropped), sum(messages.received.values())


def scraped_drops(node: NodeProcess) -> Counter[str]:
    with httpx.Client(timeout=10) as client:
        text = client.get(f"{node.dashboard_url}metrics").text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "bzzz_messages_dropped"
    ]
    counted: Counter[str] = Counter()  # the drops by reason, over every topic
    for sample in family.samples:
        if sample.name.endswith("_total"):
            counted[sample.labels["reason"]] += int(sample.value)
    return counted


@settings(
    max_examples=BATCHES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(list(Topic)), hostile_payloads()),
        min_size=BATCH_SIZE,
        max_size=BATCH_SIZE,
    )
)
def test_malformed_and_spoofed_messages_are_dropped_and_counted(
    arena: tuple[NodeProcess, NodeProcess, Hostile], batch: list[tuple[Topic, bytes]]
) -> None:
    target, witness, hostile = arena
    dropped_before, received_before = counters(target)
    expected: Counter[str] = Counter()
    for topic, data in batch:
        expected[expected_verdict(topic, data, taken_names={"target", "witness"})] += 1
        hostile.send(topic, data)
    assert hostile.flush() >= len(batch)
    accepted = expected.pop("accepted", 0)

    def all_counted() -> bool:
        dropped, received = counters(target)
        return dropped - dropped_before == expected and received - received_before >= accepted

    wait_for(
        all_counted, 30, f"the target to count {dict(expected)} dropped and {accepted} accepted"
    )
    # Its /metrics, read with Prometheus' own parser, counts the same drops by reason.
    wait_for(
        lambda: scraped_drops(target) == counters(target)[0], 10, "/metrics to count the drops"
    )
    # Still serving its real peer, in both directions.
    assert "witness" in alive_names(target)
    assert "target" in alive_names(witness)
    assert hostile.process.poll() is None
