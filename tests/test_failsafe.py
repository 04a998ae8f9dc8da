"""A node that is half started or facing a failing forge never holds, burns or spams a
task: its claims wait for live workers, a task it cannot run goes back at once with no
attempt used and nothing posted, and a forge that refuses edits costs at most one claim
comment per task, tried again with a back-off and cleaned up once the forge recovers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bzzz.claims.ledger import ClaimState
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import Fault, LoggedRequest
from bzzz.lab.processes import NodeProcess, wait_for
from tests.claimlab import (
    REPO,
    Workers,
    claim_node,
    claim_notes,
    number_of,
    open_task,
    ran,
    task_states,
    token,
    world,
)
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive

SINGLE_COMMENT = "/api/v3/repos/*/issues/comments/*"


def reasons(node: NodeProcess) -> list[str]:
    report = node.status()
    return list(report.readiness.reasons) if report else []


def takes_tasks(node: NodeProcess) -> bool:
    report = node.status()
    return report is not None and report.readiness.takes_tasks


def test_claims_wait_for_live_workers_and_a_claim_no_worker_starts_is_let_go(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    with seeded_forge(world(["alone", "other"], 0), "bzzz-pickup-") as forge:
        alone = claim_node(make_node, forge, "alone", [], tool_path)
        other = claim_node(make_node, forge, "other", [alone.addr], tool_path)
        start_all(alone, other)
        wait_alive(alone, {"other"})
        record = tmp_path / "record.jsonl"
        # No `bzzz worker` runs yet: neither node offers a slot, and they say why.
        wait_for(lambda: any("no worker" in r for r in reasons(alone)), 20, "alone to say why")
        task = open_task(forge, "Nobody can run this yet")
        wait_for(lambda: task in task_states(other), 20, "the task to be known")
        pool = Workers(alone, record)
        pools.append(pool)
        wait_for(lambda: len(ran(record)) == 1, 30, "alone to run it once its workers live")

        # Its workers die without a word (SIGKILL): until their beats are missed it may
        # claim one more task, which no worker starts; it lets that go, using no attempt.
        os.killpg(pool.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
        second = open_task(forge, "Its workers are gone")
        pools.append(Workers(other, record))
        wait_for(lambda: (second, "other") in ran(record), 60, "other to run the second task")
        assert ran(record) == [(task, "alone"), (second, "other")]
        wait_for(  # the worker records the run before its node edits the claim
            lambda: any(n.state is ClaimState.DONE for n in claim_notes(forge, number_of(second))),
            10,
            "the forge to record it done",
        )
        notes = claim_notes(forge, number_of(second))
        assert {n.node for n in notes if n.state is ClaimState.FAILED} == set()  # no attempt
        assert [n.state for n in notes if n.node == "other"] == [ClaimState.DONE]
        wait_for(lambda: any("no worker" in r for r in reasons(alone)), 20, "alone to say why")


def test_a_task_a_node_cannot_run_goes_back_at_once_with_nothing_posted(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    with seeded_forge(world(["unfit", "able"], 0), "bzzz-unfit-") as forge:
        unfit = claim_node(
            make_node, forge, "unfit", [], tool_path, executor="workers.executors:unfit"
        )
        able = claim_node(make_node, forge, "able", [unfit.addr], tool_path)
        start_all(unfit, able)
        wait_alive(unfit, {"able"})
        record = tmp_path / "record.jsonl"
        pools.append(Workers(unfit, record))
        wait_for(lambda: takes_tasks(unfit), 20, "unfit to take tasks")
        task = open_task(forge, "The unfit node claims this first")
        number = number_of(task)
        wait_for(
            lambda: "could not run the last task" in " ".join(reasons(unfit)),
            30,
            "unfit to decline",
        )
        pools.append(Workers(able, record))
        wait_for(lambda: ran(record) == [(task, "able")], 40, "able to run it")
        wait_for(  # the worker records the run before its node edits the claim
            lambda: any(n.state is ClaimState.DONE for n in claim_notes(forge, number)),
            10,
            "the forge to record it done",
        )
        notes = claim_notes(forge, number)
        assert [(n.node, n.state) for n in notes] == [
            ("unfit", ClaimState.RELEASED),
            ("able", ClaimState.DONE),
        ]
        lab = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
        comments = lab.get_comments(REPO, number)
        assert len(comments) == 2  # the two claims: no failure report
        assert str(unfit.home) not in "".join(c.body for c in comments)
        assert all("unfit for tasks" not in c.body for c in comments)  # the node's detail


def test_a_forge_refusing_edits_costs_one_claim_comment_and_is_cleaned_up_after(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    with seeded_forge(world(["solo"], 0), "bzzz-edits-") as forge:
        solo = claim_node(make_node, forge, "solo", [], tool_path)
        start_all(solo)
        record = tmp_path / "record.jsonl"
        pools.append(Workers(solo, record, seconds=0.0))
        wait_for(lambda: takes_tasks(solo), 20, "solo to take tasks")
        forge.add_fault(Fault("server_error", method="PATCH", path=SINGLE_COMMENT))
        seen = max((r.seq for r in forge.requests()), default=0)

        def edits() -> list[LoggedRequest]:
            return [r for r in forge.requests(seen) if r.method == "PATCH"]

        task = open_task(forge, "Edits fail")
        number = number_of(task)
        # It claims (a new comment: creating comments works), runs the task, cannot say
        # on its comment that the task is done, and tries again with a growing back-off
        # (10 s, then 20: a lease, the most), one try at a time.
        wait_for(lambda: len(ran(record)) == 1, 30, "the task to run")
        wait_for(lambda: len(edits()) >= 3, 60, "three tries of the edit", interval=1.0)
        tries = edits()
        assert tries[1].time - tries[0].time >= 10 - 1  # then twice as long
        assert tries[2].time - tries[1].time >= 20 - 1
        posts = [r for r in forge.requests() if r.method == "POST" and r.user == "solo"]
        assert len(posts) == 1  # one claim comment, ever
        forge.clear_faults()
        wait_for(
            lambda: [n.state for n in claim_notes(forge, number)] == [ClaimState.DONE],
            60,
            "the claim comment to say done once the forge takes edits again",
        )
        assert task_states(solo).get(task) == "done"
        comments = [r for r in forge.requests() if r.method == "POST" and r.user == "solo"]
        assert len(comments) == 1
