"""Claims end to end: real nodes, real SQLite queues, real worker processes, the local forge.

The witnesses: the record the workers keep of which node ran which task, and the
claim comments on the forge.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz.claims import ledger
from bzzz.claims.ledger import ClaimState
from bzzz.forge.github import GitHubForge
from bzzz.forge.server import LocalForge
from bzzz.forge.token import Token
from bzzz.lab import NodeProcess, wait_for
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive

REPO = "lab/app"
NODES = ("node-a", "node-b", "node-c")
TOKENS = {login: f"tok-{login}-0123456789" for login in ("lab", *NODES)}
TASKS = 8
WORLD: dict[str, Any] = {
    "users": [{"login": login, "token": token} for login, token in TOKENS.items()],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": {"README.md": "# app\n"},
            "labels": ["bzzz-task"],
            "collaborators": list(NODES),
            "issues": [
                {"number": n, "title": f"Task {n}", "labels": ["bzzz-task"]}
                for n in range(1, TASKS + 1)
            ],
        }
    ],
}
CLAIMS = {"lease": 20.0, "gossip_renew": 2.0, "rank_delay": 1.0, "margin": 6.0, "clock_skew": 2.0}


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-claims-") as forge:
        yield forge


class Workers:
    """`bzzz worker` for a node, killed at the end of the test."""

    def __init__(self, node: NodeProcess, record: Path) -> None:
        self.node = node
        env = {
            **os.environ,
            **node.env,
            "BZZZ_RECORD_FILE": str(record),
            "BZZZ_RECORD_SECONDS": "1",
        }
        out = (node.home / "worker.out").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bzzz", "worker", "--home", str(node.home)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def workers() -> Iterator[list[Workers]]:
    started: list[Workers] = []
    yield started
    for pool in started:
        pool.stop()


@pytest.fixture
def tool_path(tmp_path: Path) -> str:
    """A PATH on which the nodes find an `ollama` CLI: tasks that ask for no particular
    model need a node that has one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "ollama"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def claim_node(
    make_node: NodeFactory, forge: LocalForge, login: str, bootstrap: list[str], path: str
) -> NodeProcess:
    return make_node(
        login,
        bootstrap=bootstrap,
        env={"BZZZ_FORGE_TOKEN": TOKENS[login], "PATH": path},
        forge={"api_url": forge.api_url, "seconds_between_writes": 0.0, "timeout": 3.0},
        tasks={"repositories": [REPO], "poll_interval": 1.0},
        claims=CLAIMS,
        workers={
            "threads": 2,
            "heartbeat": 1.0,
            "executor": "workers.executors:record",
        },
    )


def ran(record: Path) -> list[tuple[str, str]]:
    if not record.exists():
        return []
    lines = record.read_text().splitlines()
    return [(r["task_id"], r["node"]) for r in map(json.loads, lines)]


def test_every_task_runs_exactly_once_and_the_forge_agrees(
    forge: LocalForge,
    make_node: NodeFactory,
    workers: list[Workers],
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
    workers.extend(Workers(node, record) for node in nodes)

    wait_for(lambda: len(ran(record)) >= TASKS, 90, f"{TASKS} tasks to run")

    runs = ran(record)
    assert sorted(Counter(task for task, _ in runs).values()) == [1] * TASKS  # each exactly once
    reader = GitHubForge(forge.api_url, Token(TOKENS["lab"]), seconds_between_writes=0)
    for task, node in runs:
        number = int(task.rpartition("#")[2])

        def finished(number: int = number) -> bool:
            notes = ledger.claims(reader.get_comments(REPO, number), {"COLLABORATOR"}, ())
            return any(n.state is ClaimState.DONE for n in notes)

        wait_for(finished, 20, f"{task} to be marked done on the forge")
        notes = ledger.claims(reader.get_comments(REPO, number), {"COLLABORATOR"}, ())
        done = [n for n in notes if n.state is ClaimState.DONE]
        assert [n.node for n in done] == [node]  # the forge names the node that ran it
        assert not [n for n in notes if n.state is ClaimState.CLAIM]  # no claim left dangling

    spread = Counter(node for _, node in runs)
    assert len(spread) >= 2, f"work did not spread: {spread}"
    for node in nodes:  # a node that missed a result on gossip learns it from the forge
        try:
            wait_for(
                lambda node=node: set(task_states(node).values()) == {"done"},  # type: ignore[misc]
                2 * CLAIMS["lease"] + 10,
                f"{node.name} to see every task done",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {task_states(node)}") from None


def task_states(node: NodeProcess) -> dict[str, str]:
    report = node.status()
    return {str(t["task_id"]): str(t["state"]) for t in (report or {}).get("tasks", [])}
