"""A node with Hive (the lab's stand-in) as its source of repositories and the place it
reports to: a repository added to Hive at run time is watched, its task is claimed and
run, the claim and the statuses reach Hive with the documented bodies, also when Hive
was down meanwhile; a repository removed from Hive is no longer watched."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bzzz.lab.forge import LocalForge
from bzzz.lab.hive import LabHive
from bzzz.lab.processes import NodeProcess, wait_for
from tests.claimlab import REPO, Workers, claim_node, ran, world
from tests.conftest import NodeFactory, seeded_forge

KEY = "hive-key-0123456789"


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(world(["node-a"], 1), "bzzz-hive-") as served:
        yield served


@pytest.fixture
def hive() -> Iterator[LabHive]:
    with LabHive(key=KEY) as running:
        yield running


def polled(node: NodeProcess) -> set[str]:
    report = node.status_json()
    return set((report or {}).get("polling") or {})


def test_hive_s_repositories_are_watched_and_hive_hears_the_claim_and_its_end(
    make_node: NodeFactory, pools: list[Workers], forge: LocalForge, hive: LabHive, tool_path: str
) -> None:
    a = claim_node(
        make_node,
        forge,
        "node-a",
        [],
        tool_path,
        tasks={"repositories": []},  # Hive's only
        hive={"url": hive.url, "key_file": "hive.key", "refresh": 1.0},
    )
    key_file = a.home / "hive.key"
    key_file.write_text(KEY)
    os.chmod(key_file, 0o600)
    a.start()
    project = hive.add_repo("lab", "app")
    wait_for(lambda: REPO in polled(a), 30, "node-a to watch Hive's repository")
    hive.down(True)  # Hive goes down: tasks flow on, the reports wait
    record = a.home / "record.jsonl"
    pools.append(Workers(a, record))
    wait_for(lambda: ran(record) == [(f"{REPO}#1", "node-a")], 60, "node-a to run the task")
    hive.down(False)
    wait_for(lambda: len(hive.statuses()) >= 2, 60, "Hive to hear how the task went")
    (claim,) = hive.claims()
    assert (claim["project_id"], claim["task_number"], claim["agent_id"]) == (project, 1, "node-a")
    assert isinstance(claim["claimed_at"], int)
    statuses = [(s["task_number"], s["status"]) for s in hive.statuses()]
    assert statuses[-1] == (1, "completed")
    assert set(statuses) <= {(1, "in_progress"), (1, "completed")}
    done = hive.statuses()[-1]
    assert done["results"]["pull_request_url"].endswith("/lab/app/issues/1#done-by-node-a")
    assert done["metadata"]["node"] == "node-a"
    assert {"updated_at", "results", "metadata"} <= set(done)

    hive.remove_repo(project)
    wait_for(lambda: REPO not in polled(a), 30, "node-a to stop watching the repository")
