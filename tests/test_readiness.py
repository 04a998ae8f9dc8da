"""A node takes only what it can run: nodes that cannot (executor `decline`, no forge
token, no model) never claim, and say why in `bzzz status --json` and in the
capabilities they gossip; a node that can runs every task. Then, on one node: finished
tasks leave the claim machine and the table's history, and a forgotten task announced
again is checked on the forge, never run or claimed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bzzz.claims.ledger import ClaimState
from bzzz.lab.processes import NodeProcess, free_port, wait_for
from bzzz.protocol import TaskBroadcast, TaskParams, encode, utc_now
from tests.claimlab import REPO, Workers, claim_node, claim_notes, ran, task_states, token, world
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive
from tests.test_hostile import Hostile

TASKS = 3


def readiness(node: NodeProcess) -> dict[str, object]:
    report = node.status_json()
    assert report is not None
    ready: dict[str, object] = report["readiness"]
    return ready


def test_nodes_that_cannot_run_tasks_never_claim_and_say_why(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    names = ["able", "decliner", "tokenless", "modelless"]
    seeded = world(names, TASKS)
    seeded["users"].append({"login": "mallory", "token": token("mallory")})
    seeded["repos"][0]["labels"].append("model:nowhere")
    seeded["repos"][0]["issues"] += [
        {"number": 11, "title": "No node has it", "labels": ["bzzz-task", "model:nowhere"]},
        {"number": 12, "title": "Not labelled", "labels": []},
        {"number": 13, "title": "From a stranger", "labels": ["bzzz-task"], "author": "mallory"},
    ]
    with seeded_forge(seeded, "bzzz-ready-") as forge:
        able = claim_node(make_node, forge, "able", [], tool_path)
        decliner = claim_node(
            make_node,
            forge,
            "decliner",
            [able.addr],
            tool_path,
            executor="workers.executors:decline",
        )
        tokenless = claim_node(make_node, forge, "tokenless", [able.addr], tool_path)
        tokenless.env.pop("BZZZ_FORGE_TOKEN")
        nowhere = f"http://127.0.0.1:{free_port()}"  # no model server listens there
        modelless = claim_node(
            make_node,
            forge,
            "modelless",
            [able.addr],
            tool_path,
            executor="workers.agent:run",
            capabilities={"ollama_host": nowhere, "ollama_timeout": 0.5},
        )
        unable = [decliner, tokenless, modelless]
        # The unable start first: had they claimed, they would have claimed everything.
        start_all(*unable)
        start_all(able)
        for node in (able, *unable):
            wait_alive(node, set(names) - {node.name})
        record = tmp_path / "record.jsonl"
        pools.extend(Workers(node, record) for node in (able, *unable))

        def done() -> bool:
            return list(task_states(able).values()).count("done") == TASKS

        wait_for(done, 60, "the able node to run every task")
        assert {node for _, node in ran(record)} == {"able"}
        claimers = {note.node for n in range(1, TASKS + 1) for note in claim_notes(forge, n)}
        assert claimers == {"able"}

        expected = {
            "decliner": "workers.executors:decline",
            "tokenless": "no forge token",
            "modelless": "no model",
        }
        for node in unable:
            ready = readiness(node)
            assert ready["takes_tasks"] is False
            assert any(expected[node.name] in str(r) for r in ready["reasons"])  # type: ignore[attr-defined]
            states = task_states(node)  # it still follows the tasks (#11: none can run it)
            assert {states[f"{REPO}#{n}"] for n in range(1, TASKS + 1)} == {"done"}
        assert readiness(able)["takes_tasks"] is True
        # Peers learn why from the capabilities it gossips (short reasons, no local detail).
        report = able.status()
        assert report is not None
        gossiped = {p.node_id: (p.capabilities or {}).get("cannot_run") for p in report.peers}
        assert gossiped == {
            "decliner": ["executor declines tasks"],
            "tokenless": ["no forge token"],
            "modelless": ["no model"],
        }
        text = json.dumps(report.to_json())
        assert nowhere not in text
        assert str(modelless.home) not in text

        # Why (not) claimed, asked of every node over the mesh: one line per node.
        def explain(task: str) -> dict[str, str]:
            out = subprocess.run(
                [sys.executable, "-m", "bzzz", "tasks", "explain", task, "--json"],
                env={**os.environ, "BZZZ_HOME": str(modelless.home)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return {n["node"]: n["line"] for n in json.loads(out)}

        lines = explain(f"{REPO}#11")
        assert list(lines) == ["modelless", "able", "decliner", "tokenless"]  # its own first
        assert (
            lines["able"] == "this node lacks `nowhere` (it has no models) and no live node has it"
        )
        assert lines["decliner"].startswith("this node cannot run tasks: ")
        assert "workers.executors:decline" in lines["decliner"]
        assert lines["tokenless"].startswith("this node cannot run tasks: no forge token")
        assert lines["modelless"].startswith("this node cannot run tasks: ")
        assert explain(f"{REPO}#1")["decliner"] == f"done by able: {done_url(able, 1)}"
        # Issues that never became tasks: the node that polls the repository reads them.
        report = modelless.status()
        assert report is not None
        poller = report.polling[REPO].poller
        assert explain(f"{REPO}#12")[poller] == "issue #12 is not a task: no bzzz-task label"
        assert "opened by mallory (NONE), who is not trusted" in explain(f"{REPO}#13")[poller]


def done_url(node: NodeProcess, number: int) -> str:
    report = node.status()
    assert report is not None
    (task,) = [t for t in report.tasks if t.task_id == f"{REPO}#{number}"]
    return task.result_url


def test_finished_tasks_are_forgotten_and_a_forgotten_one_is_never_run_again(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    with seeded_forge(world(["solo"], TASKS), "bzzz-forget-") as forge:
        solo = claim_node(
            make_node,
            forge,
            "solo",
            [],
            tool_path,
            claims={"retention": 2.0},
            tasks={"history": 1},
        )
        start_all(solo)
        record = tmp_path / "record.jsonl"
        pools.append(Workers(solo, record))
        wait_for(lambda: len(ran(record)) == TASKS, 60, "every task to run")

        def forgotten() -> bool:
            report = solo.status()
            claims = report.claims if report else None
            return claims is not None and claims.tracked == 0 and claims.in_flight == 0

        wait_for(forgotten, 30, "the claim machine to forget the finished tasks")
        # The table keeps one finished task; the poller saw the others again (their
        # issues are open) and read on the forge that they are done: none is announced,
        # claimed or run again.
        report = solo.status()
        assert report is not None
        assert [t.state for t in report.tasks] == ["done"]
        forgotten_id = next(
            f"{REPO}#{n}" for n in range(1, TASKS + 1) if f"{REPO}#{n}" != report.tasks[0].task_id
        )

        # A peer announces a forgotten task again (as a new poller would).
        hostile = Hostile(solo)
        try:
            number = int(forgotten_id.rpartition("#")[2])
            again = TaskBroadcast(
                task_id=forgotten_id,
                repo=REPO,
                issue_url=f"{forge.url}/{REPO}/issues/{number}",
                model="ollama",
                input=f"Task {number}",
                params=TaskParams(branch_prefix=f"bzzz/task-{number}-"),
                timestamp=utc_now(),
            )
            hostile.send("task_broadcast", encode(again))
            hostile.flush()
            wait_for(
                lambda: task_states(solo).get(forgotten_id) == "done",
                30,
                "the node to read on the forge that the task is done",
            )
        finally:
            hostile.close()
        assert len(ran(record)) == TASKS  # nothing ran again
        for n in range(1, TASKS + 1):
            (note,) = claim_notes(forge, n)  # one claim comment per task, ever
            assert note.state is ClaimState.DONE
        published = report.messages.published.get("task_broadcast", 0)
        assert published == TASKS
        assert token("solo") not in solo.output()
