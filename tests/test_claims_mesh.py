"""Claims end to end: real nodes, real SQLite queues, real worker processes, the local forge.

The witnesses: the record the workers keep of which node ran which task, and the
claim comments on the forge.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.claims.ledger import ClaimState
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, wait_for
from tests.claimlab import CLAIMS, Workers, claim_node, claim_notes, ran, task_states, world
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive

NODES = ["node-a", "node-b", "node-c"]
TASKS = 8


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(world(NODES, TASKS), "bzzz-claims-") as forge:
        yield forge


def wait_all_done(nodes: tuple[NodeProcess, ...], timeout: float) -> None:
    for node in nodes:
        try:
            wait_for(
                lambda node=node: set(task_states(node).values()) == {"done"},  # type: ignore[misc]
                timeout,
                f"{node.name} to see every task done",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {task_states(node)}") from None


def test_every_task_runs_exactly_once_and_the_forge_agrees(
    forge: LocalForge,
    make_node: NodeFactory,
    pools: list[Workers],
    tmp_path: Path,
    tool_path: str,
) -> None:
    record = tmp_path / "ran.jsonl"
    a = claim_node(make_node, forge, "node-a", [], tool_path)
    b = claim_node(make_node, forge, "node-b", [a.addr], tool_path)
    c = claim_node(make_node, forge, "node-c", [b.addr], tool_path)
    nodes = (a, b, c)
    start_all(*nodes)
    for node in nodes:
        wait_alive(node, {n.name for n in nodes} - {node.name})
    pools.extend(Workers(node, record) for node in nodes)

    wait_for(lambda: len(ran(record)) >= TASKS, 90, f"{TASKS} tasks to run")

    runs = ran(record)
    assert sorted(Counter(task for task, _ in runs).values()) == [1] * TASKS  # each exactly once
    for task, node in runs:
        number = int(task.rpartition("#")[2])

        def finished(number: int = number) -> bool:
            return any(n.state is ClaimState.DONE for n in claim_notes(forge, number))

        wait_for(finished, 20, f"{task} to be marked done on the forge")
        notes = claim_notes(forge, number)
        done = [n for n in notes if n.state is ClaimState.DONE]
        assert [n.node for n in done] == [node]  # the forge names the node that ran it
        assert not [n for n in notes if n.state is ClaimState.CLAIM]  # no claim left dangling

    spread = Counter(node for _, node in runs)
    assert len(spread) >= 2, f"work did not spread: {spread}"
    # A node that missed a result on gossip learns it from the forge.
    wait_all_done(nodes, 2 * CLAIMS["lease"] + 10)

    shown = subprocess.run(
        [sys.executable, "-m", "bzzz", "tasks", "--home", str(a.home)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **a.env},
    ).stdout
    header, _rule, *lines = shown.splitlines()
    headers = ["TASK", "MODEL", "EXECUTOR", "STATE", "HOLDER", "LEASE", "ATTEMPTS"]
    assert header.split()[:7] == headers
    by_task = dict(runs)
    for line in lines:
        task, _, executor, state, holder, *_ = line.split()
        assert (executor, state, holder) == ("loop", "done", by_task[task])
