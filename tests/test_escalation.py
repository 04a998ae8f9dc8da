"""Escalation to people, with a real node and its workers, the local forge and the lab's
n8n stand-in: a task that ends quarantined escalates once (a comment and the hold label
on the issue, one webhook POST with the documented body), a webhook that is down is
delivered once it comes back, across a node restart too, and an issue with the hold
label is left alone until a person removes the label."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.config import load_settings
from bzzz.doctor import Verdict, diagnose
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.n8n import LabWebhook
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.reports.outbox import Outbox
from bzzz.reports.webhook import post_webhook
from tests.claimlab import REPO, Workers, claim_node, ran, task_states, token, world
from tests.conftest import NodeFactory, seeded_forge

HOLD = "bzzz-needs-human"
TASK = f"{REPO}#1"


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(world(["node-a"], 1), "bzzz-escalation-") as served:
        yield served


@pytest.fixture
def hook() -> Iterator[LabWebhook]:
    with LabWebhook() as running:
        yield running


def lab_account(forge: LocalForge) -> GitHubForge:
    return GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)


def reports(node: NodeProcess) -> dict[str, object]:
    report = node.status_json()
    return (report or {}).get("reports") or {}  # type: ignore[return-value]


def test_a_quarantined_task_escalates_once_and_the_webhook_gets_it_when_it_is_back(
    make_node: NodeFactory,
    pools: list[Workers],
    forge: LocalForge,
    hook: LabWebhook,
    tool_path: str,
) -> None:
    hook.down(True)
    a = claim_node(
        make_node,
        forge,
        "node-a",
        [],
        tool_path,
        executor="workers.executors:fail",
        claims={"max_attempts": 1},
        escalation={"webhook_url": hook.hook_url()},
    )
    a.start()
    pools.append(Workers(a, a.home / "record.jsonl"))
    wait_for(lambda: task_states(a).get(TASK) == "quarantined", 60, "the task to be quarantined")
    lab = lab_account(forge)
    wait_for(lambda: HOLD in lab.get_issue(REPO, 1).labels, 30, "the hold label on the issue")

    def asked_a_person() -> list[str]:
        return [c.body for c in lab.get_comments(REPO, 1) if "asks a person" in c.body]

    # The label and the comment are two reports of the outbox: the comment may follow.
    wait_for(lambda: bool(asked_a_person()), 30, "the comment that asks a person")
    asked = asked_a_person()
    assert len(asked) == 1
    assert asked[0].startswith(
        "Bzzz node **node-a** asks a person to look at this task (quarantined)"
    )
    wait_for(lambda: bool(reports(a).get("problems")), 30, "the undelivered webhook in the status")
    assert reports(a)["waiting"] == 1
    assert hook.received() == []

    a.stop()  # the node restarts while the webhook is still down
    a.start()
    hook.down(False)
    wait_for(lambda: len(hook.received()) == 1, 60, "the webhook to get the escalation")
    (delivery,) = hook.received()
    body = delivery.body
    assert (body["task_id"], body["task"], body["trigger"]) == (1, TASK, "quarantined")
    assert (body["task_title"], body["escalation_agent"]) == ("Task 1", "node-a")
    assert body["reason"].startswith("It failed on 1 nodes; the last failure, on node-a:")
    assert body["repository"] == REPO
    assert body["issue_url"].endswith("/lab/app/issues/1")
    assert set(body) >= {"history", "session_id", "participants", "conversation", "timestamp"}
    wait_for(lambda: reports(a).get("waiting") == 0, 30, "the outbox to be empty")
    assert "reports  0 waiting" in bzzz(a, "status")
    assert len(hook.received()) == 1  # once, though the node asked twice (before and after)
    assert len([c for c in lab.get_comments(REPO, 1) if "asks a person" in c.body]) == 1
    # The node's audit log has the task's life and the escalation, and verifies.
    logged = bzzz(a, "audit", "show", "--task", TASK)
    for kind in ("task_announced", "task_claimed", "task_quarantined", "escalation"):
        assert kind in logged, logged
    wait_for(lambda: "ok    " in bzzz(a, "audit", "verify", check=False), 30, "a checkpoint")


def test_an_issue_held_for_a_person_is_left_alone_until_the_label_goes(
    make_node: NodeFactory, pools: list[Workers], forge: LocalForge, tmp_path: Path, tool_path: str
) -> None:
    a = claim_node(make_node, forge, "node-a", [], tool_path)
    a.start()
    wait_for(lambda: TASK in task_states(a), 30, "node-a to know the task")
    lab = lab_account(forge)
    lab.add_labels(REPO, 1, [HOLD])  # before any worker could take it
    record = tmp_path / "record.jsonl"
    pools.append(Workers(a, record))
    wait_for(lambda: task_states(a).get(TASK) == "closed", 60, "node-a to leave it alone")
    ignored = a.status_json()["ignored"]  # type: ignore[index]
    assert [i["reason"] for i in ignored] == [
        f"waiting for a person: remove the {HOLD} label to release it"
    ]
    assert ran(record) == []
    lab.remove_label(REPO, 1, HOLD)
    wait_for(lambda: ran(record) == [(TASK, "node-a")], 60, "node-a to run it once released")


def test_a_webhook_that_is_not_registered_shows_in_bzzz_doctor(
    make_node: NodeFactory, forge: LocalForge, hook: LabWebhook, tool_path: str
) -> None:
    a = claim_node(
        make_node, forge, "node-a", [], tool_path, escalation={"webhook_url": hook.hook_url("gone")}
    )
    settings = load_settings(a.home)
    outbox = Outbox(settings.outbox_path)
    outbox.add("escalation:x:webhook", "webhook", {"task_id": 1})
    tried = post_webhook(hook.hook_url("gone"), {"task_id": 1}, header=None, timeout=5)
    outbox.failed("escalation:x:webhook", tried.error, lasting=tried.lasting)
    (check,) = [c for c in diagnose(a.home) if c.name == "reports"]
    assert check.verdict is Verdict.FAIL
    assert 'The requested webhook "POST webhook/gone" is not registered' in check.detail
    assert "production URL" in check.detail


def bzzz(node: NodeProcess, *command: str, check: bool = True) -> str:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *command, "--home", str(node.home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
    ).stdout
