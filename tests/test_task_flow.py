"""From issue to pull request across the mesh: three real nodes with their `bzzz worker`
pools running the agent executor (sandboxed commands, the lab model server through the
real ollama client, git over HTTP), against the local forge."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from bzzz.claims.ledger import ClaimState
from bzzz.config import load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import LAB_MODEL, LabModelServer, Scripted, Text, sample_playbook
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.lab.sample import FILES
from tests.claimlab import REPO, Workers, claim_node, claim_notes, task_states, token
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive
from tests.test_agent import git
from workers.sandbox import SandboxUnavailable, choose_backend

NODES = ["node-a", "node-b", "node-c"]
SOLVABLE = f"{REPO}#1"
HOPELESS = f"{REPO}#2"
WORLD = {
    "users": [{"login": login, "token": token(login)} for login in ("lab", *NODES)],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": FILES,
            "labels": ["bzzz-task", "model:babbler"],
            "collaborators": NODES,
            "issues": [
                {"number": 1, "title": "Add farewell() next to greet()", "labels": ["bzzz-task"]},
                {
                    "number": 2,
                    "title": "Something no model can do",
                    "labels": ["bzzz-task", "model:babbler"],
                },
            ],
        }
    ],
}


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-flow-") as running:
        yield running


@pytest.fixture
def model() -> Iterator[LabModelServer]:
    models = {
        LAB_MODEL: sample_playbook(crash=False),  # issue 1 plays through: no hand-off here
        "babbler": Scripted([Text("Hmm, let me think.")]),
    }
    with LabModelServer(models=models) as running:
        yield running


def flow_node(
    make_node: NodeFactory,
    forge: LocalForge,
    model: LabModelServer,
    name: str,
    bootstrap: list[str],
    **sections: dict[str, Any],
) -> NodeProcess:
    return claim_node(
        make_node,
        forge,
        name,
        bootstrap,
        "/usr/local/bin:/usr/bin:/bin",
        executor="workers.agent:run",
        capabilities={"ollama_host": model.url},
        agent={"model": "lab", "model_timeout": 20.0},
        git={"author_name": name, "author_email": f"{name}@lab.invalid"},
        **sections,
    )


def flow_mesh(
    make_node: NodeFactory,
    forge: LocalForge,
    model: LabModelServer,
    **sections: dict[str, Any],
) -> list[NodeProcess]:
    """The three flow nodes, started and hearing each other (skips without a sandbox)."""
    a = flow_node(make_node, forge, model, "node-a", [], **sections)
    try:
        choose_backend(load_settings(a.home).sandbox)
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    nodes = [a] + [flow_node(make_node, forge, model, n, [a.addr], **sections) for n in NODES[1:]]
    start_all(*nodes)
    for node in nodes:
        wait_alive(node, set(NODES) - {node.name})
    return nodes


def test_an_issue_becomes_one_pull_request_and_a_hopeless_one_is_reported(
    forge: LocalForge,
    model: LabModelServer,
    make_node: NodeFactory,
    pools: list[Workers],
    tmp_path: Path,
) -> None:
    nodes = flow_mesh(make_node, forge, model)
    pools.extend(Workers(node, tmp_path / "unused.jsonl") for node in nodes)

    def result_urls(node: NodeProcess) -> dict[str, str]:
        report = node.status()
        return {t.task_id: t.result_url for t in report.tasks} if report else {}

    for node in nodes:  # every node hears the result (or reads it from the forge)
        wait_for(
            lambda node=node: bool(result_urls(node).get(SOLVABLE)),  # type: ignore[misc]
            90,
            f"{node.name} to know the pull request",
        )
    reader = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
    (pull,) = reader.list_pull_requests(REPO)
    assert {result_urls(node)[SOLVABLE] for node in nodes} == {pull.html_url}
    (done,) = [n for n in claim_notes(forge, 1) if n.state is ClaimState.DONE]
    assert pull.head.startswith(f"{done.node}:bzzz/task-1-")  # from the claimer's fork
    checkout = clone_branch_of(forge, done.node, pull.head.partition(":")[2], tmp_path / "pr")
    assert 'return f"Goodbye, {name}!"' in (checkout / "hello.py").read_text()
    assert git(checkout, "log", "-1", "--format=%an <%ae>").strip() == (
        f"{done.node} <{done.node}@lab.invalid>"
    )

    # The hopeless task fails once on each node, each leaving one report, then rests.
    for node in nodes:
        wait_for(
            lambda node=node: task_states(node).get(HOPELESS) == "quarantined",  # type: ignore[misc]
            90,
            f"{node.name} to see the hopeless task quarantined",
        )
    notes = claim_notes(forge, 2)
    failures = sorted(n.node for n in notes if n.state is ClaimState.FAILED)
    assert failures == NODES  # one attempt per node (claims that lost a race are released)
    assert {n.state for n in notes} <= {ClaimState.FAILED, ClaimState.RELEASED}
    reports = [c for c in reader.get_comments(REPO, 2) if "could not finish this task" in c.body]
    assert sorted(c.author for c in reports) == NODES
    assert "bzzz-quarantined" in reader.get_issue(REPO, 2).labels
    assert len(reader.list_pull_requests(REPO)) == 1

    # /metrics, read with Prometheus' own parser, counts what happened on each node.
    for node in nodes:
        families = scrape(node)
        tasks = {s.labels["state"]: s.value for s in families["bzzz_tasks"].samples}
        assert (tasks.get("done"), tasks.get("quarantined")) == (1, 1)
        claimed = families["bzzz_task_announce_to_claim_seconds"].samples
        assert next(s.value for s in claimed if s.name.endswith("_count")) >= 2
        ended = families["bzzz_task_claim_to_result_seconds"].samples
        assert next(s.value for s in ended if s.name.endswith("_count")) >= 2

    # The workers' numbers reach /metrics through the queue's events.
    def total(name: str) -> float:
        return sum(
            s.value
            for node in nodes
            for s in scrape(node)[name].samples
            if s.name.endswith("_total")
        )

    assert total("bzzz_sandbox_runs") >= 1  # the sample's commands
    assert total("bzzz_model_calls") >= 1
    assert total("bzzz_worker_tasks") >= 2  # the solvable task, the hopeless one's tries

    for node in nodes:  # no secret in any log, status or output
        secret = token(node.name)
        status = json.dumps(node.status_json())
        logs = [p.read_text(errors="replace") for p in (node.home / "logs").glob("*")]
        outputs = [node.output(), (node.home / "worker.out").read_text(errors="replace")]
        for text in (status, *logs, *outputs):
            assert secret not in text


def scrape(node: NodeProcess) -> dict[str, Metric]:
    text = httpx.get(f"{node.dashboard_url}metrics", timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def clone_branch_of(forge: LocalForge, owner: str, branch: str, into: Path) -> Path:
    subprocess.run(
        ["git", "clone", "-q", "--branch", branch, forge.git_url(owner, "app"), str(into)],
        check=True,
        capture_output=True,
    )
    return into
