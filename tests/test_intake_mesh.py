"""Task intake end to end: real nodes in separate processes polling the local forge over HTTP.

The forge's request log is the witness: who polled which repository, and how.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import github
import pytest

from bzzz.lab.forge import Fault, LocalForge, LoggedRequest
from bzzz.lab.processes import NodeProcess, wait_for
from tests.conftest import FAST, NodeFactory, seeded_forge, start_all, wait_alive
from tests.lab.forge.conftest import clone, commit_file, push

REPO = "lab/app"
NODES = ("node-a", "node-b", "node-c")
TOKENS = {login: f"tok-{login}-0123456789" for login in ("lab", "stranger", *NODES, "node-x")}
LIST_PATH = f"/api/v3/repos/{REPO}/issues"

WORLD: dict[str, Any] = {
    "users": [{"login": login, "token": token} for login, token in TOKENS.items()],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": {"README.md": "# app\n"},
            "labels": ["bzzz-task", "model:qwen2.5-coder:7b", "bug"],
            "issues": [
                {"number": 1, "title": "Add a greeting", "labels": ["bzzz-task"]},
                {"number": 2, "title": "Not a task", "labels": ["bug"]},
                {
                    "number": 3,
                    "title": "From a stranger",
                    "labels": ["bzzz-task"],
                    "author": "stranger",
                },
                {
                    "number": 4,
                    "title": "Use qwen",
                    "labels": ["bzzz-task", "model:qwen2.5-coder:7b"],
                },
                {"number": 5, "title": "Closed", "labels": ["bzzz-task"], "state": "closed"},
            ],
        }
    ],
}
EXPECTED = {f"{REPO}#1", f"{REPO}#4"}
PEER_TIMEOUT = FAST["capabilities"]["peer_timeout"]


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-intake-") as forge:
        yield forge


def open_pull_request(forge: LocalForge, workdir: Path) -> int:
    """A labelled pull request by the owner: listed among the issues, never a task."""
    repo = clone(forge.git_url("lab", "app"), workdir)
    commit_file(repo, "feature", "NOTES.md", "notes\n")
    assert push(repo, "lab", "feature", token=TOKENS["lab"]).results == {"refs/heads/feature": None}
    lab = github.Github(
        base_url=forge.api_url, auth=github.Auth.Token(TOKENS["lab"]), seconds_between_writes=0
    )
    pull = lab.get_repo(REPO).create_pull(base="main", head="feature", title="A PR", body="")
    pull.as_issue().add_to_labels("bzzz-task")
    return int(pull.number)


def new_task(forge: LocalForge, title: str) -> int:
    lab = github.Github(
        base_url=forge.api_url, auth=github.Auth.Token(TOKENS["lab"]), seconds_between_writes=0
    )
    return int(lab.get_repo(REPO).create_issue(title=title, labels=["bzzz-task"]).number)


def intake_node(
    make_node: NodeFactory,
    forge: LocalForge,
    login: str,
    bootstrap: list[str] | None = None,
    *,
    repositories: tuple[str, ...] = (REPO,),
    api_url: str | None = None,
) -> NodeProcess:
    return make_node(
        login,
        bootstrap=bootstrap or [],
        env={"BZZZ_FORGE_TOKEN": TOKENS[login]},
        forge={"api_url": api_url or forge.api_url, "seconds_between_writes": 0.0},
        tasks={"repositories": list(repositories), "poll_interval": 1.0},
    )


def task_ids(node: NodeProcess) -> set[str]:
    report = node.status()
    return set() if report is None else {task.task_id for task in report.tasks}


def list_requests(forge: LocalForge, after: int = 0) -> list[LoggedRequest]:
    return [r for r in forge.requests(after) if r.path == LIST_PATH]


def polled_by(node: NodeProcess) -> str | None:
    report = node.status()
    entry = report.polling.get(REPO) if report else None
    return None if entry is None else entry.poller


def pollers(forge: LocalForge, after: int = 0) -> set[str | None]:
    return {r.user for r in list_requests(forge, after)}


def test_three_nodes_announce_exactly_the_right_tasks_once(
    forge: LocalForge, make_node: NodeFactory, tmp_path: Path
) -> None:
    pull_number = open_pull_request(forge, tmp_path / "work")
    a = intake_node(make_node, forge, "node-a")
    b = intake_node(make_node, forge, "node-b", [a.addr])
    c = intake_node(make_node, forge, "node-c", [b.addr])
    nodes = (a, b, c)
    start_all(*nodes)
    for node in nodes:
        wait_alive(node, {n.name for n in nodes} - {node.name})
    for node in nodes:
        wait_for(lambda node=node: task_ids(node) == EXPECTED, 30, f"{node.name} to know the tasks")  # type: ignore[misc]
    assert f"{REPO}#{pull_number}" not in task_ids(a)

    reports = [node.status() for node in nodes]
    assert all(r is not None for r in reports)
    published = sum(r.messages.published.get("task_broadcast", 0) for r in reports)  # type: ignore[union-attr]
    received = [r.messages.received.get("task_broadcast", 0) for r in reports]  # type: ignore[union-attr]
    assert published == 2  # one announcement per task in the whole mesh
    assert sorted(received) == [0, 2, 2]  # the poller hears none back; the others each hear two
    (poller,) = pollers(forge)  # exactly one node polled
    for node, report in zip(nodes, reports, strict=True):
        token = TOKENS[node.name]
        assert token not in json.dumps(report.to_json())  # type: ignore[union-attr]
        assert token not in node.output()
        assert token not in (node.home / "logs" / "node.log").read_text()
        assert token not in (node.home / "config.toml").read_text()
    for report in reports:
        by_id = {t.task_id: t for t in report.tasks}  # type: ignore[union-attr]
        assert by_id[f"{REPO}#4"].model == "qwen2.5-coder:7b"
        assert by_id[f"{REPO}#1"].model == "ollama"
        assert {t.announced_by for t in by_id.values()} == {poller}
    # A node names pollers once it has settled (two presence intervals after its start),
    # which may come after it heard the tasks.
    for node in nodes:
        wait_for(
            lambda node=node: polled_by(node) == poller,  # type: ignore[misc]
            15,
            f"{node.name} to name the poller",
        )

    # Unchanged polls are 304s that cost no quota.
    seen = forge.requests()[-1].seq
    wait_for(lambda: len(list_requests(forge, seen)) >= 3, 15, "three more polls")
    later = list_requests(forge, seen)
    assert {r.status for r in later} == {304}
    assert not any(r.counted for r in later)
    assert pollers(forge, seen) == {poller}

    table = subprocess.run(
        [sys.executable, "-m", "bzzz", "tasks", "--home", str(b.home)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{REPO}#1" in table
    assert "qwen2.5-coder:7b" in table
    listed = json.loads(
        subprocess.run(
            [sys.executable, "-m", "bzzz", "tasks", "--home", str(c.home), "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert {t["task_id"] for t in listed} == EXPECTED


def test_another_node_takes_over_when_the_poller_dies(
    forge: LocalForge, make_node: NodeFactory
) -> None:
    a = intake_node(make_node, forge, "node-a")
    b = intake_node(make_node, forge, "node-b", [a.addr])
    c = intake_node(make_node, forge, "node-c", [a.addr, b.addr])
    nodes = {node.name: node for node in (a, b, c)}
    start_all(*nodes.values())
    for node in nodes.values():
        wait_for(lambda node=node: task_ids(node) == EXPECTED, 30, f"{node.name} to know the tasks")  # type: ignore[misc]
    (first,) = pollers(forge)
    assert first is not None
    killed_at = forge.requests()[-1].seq
    killed_time = time.time()
    nodes[first].kill()
    survivors = [node for name, node in nodes.items() if name != first]
    wait_for(lambda: bool(pollers(forge, killed_at) - {first}), 15, "another node to start polling")
    (second,) = pollers(forge, killed_at) - {first}
    first_poll = min(r.time for r in list_requests(forge, killed_at) if r.user == second)
    took_over = first_poll - killed_time
    # Within one liveness timeout (3 s here), plus the 1 s sweep and the 1 s poll tick.
    assert took_over < PEER_TIMEOUT + 2.5, took_over

    number = new_task(forge, "Arrives after the takeover")
    for node in survivors:
        wait_for(
            lambda node=node: f"{REPO}#{number}" in task_ids(node),
            15,
            f"{node.name} to hear the new task",
        )  # type: ignore[misc]
    settled = forge.requests()[-1].seq
    wait_for(lambda: len(list_requests(forge, settled)) >= 2, 10, "two more polls")
    assert pollers(forge, settled) == {second}  # one poller again
    for node in survivors:
        wait_for(lambda node=node: polled_by(node) == second, 10, f"{node.name} to name {second}")  # type: ignore[misc]
        assert len(task_ids(node)) == 3  # each task once


def test_rate_limits_and_outages_are_waited_out_without_losing_or_repeating(
    forge: LocalForge, make_node: NodeFactory
) -> None:
    node = intake_node(make_node, forge, "node-a")
    start_all(node)
    wait_for(lambda: task_ids(node) == EXPECTED, 30, "the first tasks")

    def next_poll_in() -> float:
        report = node.status()
        assert report is not None
        return float(report.polling[REPO].next_in_s or 0.0)

    def survive(fault: Fault | None, title: str, exhaust: float | None = None) -> None:
        mark = forge.requests()[-1].seq
        if fault is not None:
            forge.add_fault(Fault(**{**fault.as_json(), "id": None, "path": LIST_PATH}))  # type: ignore[arg-type]
        if exhaust is not None:
            forge.exhaust_rate_limit("node-a", reset_in=exhaust)
        number = new_task(forge, title)
        wait_for(
            lambda: any(r.status >= 400 for r in list_requests(forge, mark)),
            10,
            f"{title}: the fault",
        )
        forge.clear_faults()
        wait_for(
            lambda: f"{REPO}#{number}" in task_ids(node), 30, f"{title}: the task after the fault"
        )

    survive(
        Fault("secondary_rate_limit", retry_after=2, count=1),
        "after a secondary limit with Retry-After",
    )
    survive(Fault("too_many_requests", retry_after=2, count=1), "after a 429 with Retry-After")
    survive(Fault("server_error", status=502, count=3), "after a burst of 502s")
    survive(None, "after the quota ran out", exhaust=3.0)

    # Without Retry-After the poller waits at least a minute (GitHub's rule), not less.
    mark = forge.requests()[-1].seq
    forge.add_fault(Fault("secondary_rate_limit", path=LIST_PATH, count=1))
    wait_for(
        lambda: any(r.status == 403 for r in list_requests(forge, mark)), 10, "the secondary limit"
    )
    assert next_poll_in() > 55
    forge.add_fault(Fault("too_many_requests", path=LIST_PATH, count=1))  # not reached: it waits

    report = node.status()
    assert report is not None
    assert report.messages.published["task_broadcast"] == len(report.tasks) == 6  # no repeats
    hammered = [r for r in list_requests(forge) if r.status >= 400]
    assert len(hammered) <= 8  # each fault met about once: waited out, not retried at once


def test_a_broken_repository_token_or_forge_is_named_and_the_node_carries_on(
    forge: LocalForge, make_node: NodeFactory
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    mixed = intake_node(make_node, forge, "node-a", repositories=(REPO, "lab/missing"))
    locked_out = make_node(
        "node-x",
        env={"BZZZ_FORGE_TOKEN": "not-a-token-0000"},
        forge={"api_url": forge.api_url},
        tasks={"repositories": [REPO], "poll_interval": 1.0},
    )
    stranded = intake_node(make_node, forge, "node-b", api_url=f"http://127.0.0.1:{closed}/api/v3")
    start_all(mixed, locked_out, stranded)

    wait_for(lambda: task_ids(mixed) == EXPECTED, 30, "tasks from the good repository")
    expectations = {
        mixed: "polling lab/missing failed: lab/missing: HTTP 404: Not Found",
        locked_out: "polling lab/app failed: lab/app: HTTP 401: Bad credentials",
        stranded: "polling lab/app failed: lab/app: forge unreachable (ConnectionError)",
    }
    for node, line in expectations.items():
        wait_for(
            lambda node=node, line=line: line in node.output(), 30, f"{node.name} to say: {line}"
        )  # type: ignore[misc]
        assert node.output().count(line) == 1  # said once, not at every poll
        assert node.status() is not None  # still serving
        assert "Traceback" not in node.output()
        assert "not-a-token-0000" not in node.output()
    for node in (mixed, locked_out, stranded):
        assert node.stop(signal.SIGTERM) == 0
