"""Reports to people and services: the outbox (idempotent, backed off, kept across
restarts), the N8N webhook as n8n answers (against the lab's stand-in on loopback), and
an escalation's texts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bzzz.forge.token import Token
from bzzz.lab.n8n import LabWebhook
from bzzz.reports.escalation import Escalation, Trigger, issue_comment, webhook_body
from bzzz.reports.outbox import FIRST_WAIT, Outbox, State
from bzzz.reports.webhook import post_webhook

SECRET = "s3cret-header-value"  # noqa: S105 - a test value


def test_a_report_is_kept_once_and_survives_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    assert box.add("k1", "webhook", {"a": 1}, now=100.0)
    assert not box.add("k1", "webhook", {"a": 2}, now=101.0)  # the same report, made again
    again = Outbox(tmp_path / "outbox.db")  # the node restarted
    (report,) = again.due(now=100.0)
    assert (report.key, report.target, report.body, report.attempts) == (
        "k1",
        "webhook",
        {"a": 1},
        0,
    )


def test_failures_back_off_and_misconfigurations_wait_longest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db", max_wait=60.0)
    box.add("k", "webhook", {}, now=0.0)
    waits = [box.failed("k", "503", lasting=False, now=0.0) for _ in range(5)]
    assert waits == [FIRST_WAIT, 2 * FIRST_WAIT, 4 * FIRST_WAIT, 8 * FIRST_WAIT, 60.0]
    assert box.due(now=59.0) == []
    assert [r.key for r in box.due(now=60.0)] == ["k"]
    assert box.failed("k", "404 not registered", lasting=True, now=60.0) == 120.0
    (problem,) = box.problems()
    assert (problem.target, problem.state, problem.waiting) == ("webhook", State.MISCONFIGURED, 1)
    assert problem.error == "404 not registered"
    box.delivered("k", now=130.0)
    assert box.problems() == []
    assert box.counts() == {"webhook": {"delivered": 1}}
    assert box.due(now=10_000.0) == []
    box.add("later", "hive", {}, now=131.0)
    box.delivered("later", now=131.0 + 8 * 86_400)  # over a week on: the old ones go
    assert box.counts() == {"hive": {"delivered": 1}}


@pytest.fixture
def hook() -> Iterator[LabWebhook]:
    with LabWebhook(header=("X-Bzzz-Key", SECRET)) as running:
        yield running


def test_the_webhook_takes_a_post_with_its_header(hook: LabWebhook) -> None:
    tried = post_webhook(
        hook.hook_url(), {"task_id": 1}, header=("X-Bzzz-Key", Token(SECRET)), timeout=5
    )
    assert tried.ok
    (delivery,) = hook.received()
    assert (delivery.path, delivery.body) == ("human-escalation", {"task_id": 1})


def test_what_will_not_pass_by_itself_is_a_misconfiguration(hook: LabWebhook) -> None:
    unregistered = post_webhook(
        hook.hook_url("nowhere"), {}, header=("X-Bzzz-Key", Token(SECRET)), timeout=5
    )
    assert unregistered.lasting
    assert 'The requested webhook "POST webhook/nowhere" is not registered' in unregistered.error
    assert "production URL" in unregistered.error
    wrong = post_webhook(hook.hook_url(), {}, header=("X-Bzzz-Key", Token("nope")), timeout=5)
    assert (wrong.ok, wrong.lasting) == (False, True)
    assert "403" in wrong.error
    assert SECRET not in wrong.error
    assert "nope" not in wrong.error
    assert hook.received() == []


def test_a_webhook_that_is_down_is_tried_again(hook: LabWebhook, tmp_path: Path) -> None:
    hook.down(True)
    down = post_webhook(hook.hook_url(), {}, header=("X-Bzzz-Key", Token(SECRET)), timeout=5)
    assert (down.ok, down.lasting) == (False, False)
    assert down.error.startswith("cannot reach the webhook")
    url = hook.hook_url()
    hook.stop()
    refused = post_webhook(url, {}, header=None, timeout=5)
    assert (refused.ok, refused.lasting) == (False, False)


ESCALATION = Escalation(
    task_id="lab/app#7",
    title="Make it fast",
    issue_url="http://forge/lab/app/issues/7",
    trigger=Trigger.NO_CONSENSUS,
    reason="The plan's review did not converge in 10 messages.",
    node="node-a",
    session_id="s-1",
    participants=("node-a", "node-b"),
    conversation=(
        {"node": "node-a", "kind": "plan", "text": "Rewrite it in C."},
        {"node": "node-b", "kind": "objection", "text": "Too much for one issue."},
    ),
    at=datetime(2026, 12, 6, 20, 0, tzinfo=UTC),
)


def test_the_webhook_body_keeps_the_go_fields_and_adds_what_a_workflow_needs() -> None:
    assert webhook_body(ESCALATION) == {
        "task_id": 7,
        "task_title": "Make it fast",
        "escalation_agent": "node-a",
        "reason": "The plan's review did not converge in 10 messages.",
        "history": "node-a (plan): Rewrite it in C.\nnode-b (objection): Too much for one issue.",
        "task": "lab/app#7",
        "repository": "lab/app",
        "issue_url": "http://forge/lab/app/issues/7",
        "session_id": "s-1",
        "trigger": "no_consensus",
        "participants": ["node-a", "node-b"],
        "conversation": [
            {"node": "node-a", "kind": "plan", "text": "Rewrite it in C."},
            {"node": "node-b", "kind": "objection", "text": "Too much for one issue."},
        ],
        "timestamp": "2026-12-06T20:00:00+00:00",
    }
    assert ESCALATION.key == "escalation:lab/app#7:s-1"


def test_the_issue_comment_says_why_and_how_to_release_the_task() -> None:
    text = issue_comment(ESCALATION, "bzzz-needs-human")
    assert text.startswith("Bzzz node **node-a** asks a person to look at this task (no consensus)")
    assert "> node-b (objection): Too much for one issue." in text
    assert "remove the label" in text
    assert "`bzzz-needs-human`" in text


def test_a_target_s_reports_go_in_the_order_they_were_made(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.add("first", "hive", {}, now=0.0)
    box.add("second", "hive", {}, now=1.0)
    box.add("other", "webhook", {}, now=2.0)
    box.failed("first", "down", lasting=False, now=3.0)  # next try at 8
    assert [r.key for r in box.due(now=4.0)] == ["other"]  # "second" waits for "first"
    assert [r.key for r in box.due(now=8.0)] == ["first", "second", "other"]
    box.failed("first", "no such project", lasting=True, now=8.0)
    assert [r.key for r in box.due(now=9.0)] == ["second", "other"]  # it holds back nothing
