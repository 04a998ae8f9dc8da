"""Bounded state: finished tasks leave the claim machine after a retention, their lanes
close, the task table keeps a bounded history, and a task that was forgotten is checked
on the forge, never run again."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from bzzz.claims.actions import Phase
from bzzz.claims.arbiter import Arbiter
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.ledger import ClaimState
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Market, Offer
from bzzz.config import ClaimSettings, NodeSettings, Settings, TaskSettings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.protocol import TaskBroadcast, TaskParams
from bzzz.queue.sqlite import SQLiteBroker
from bzzz.tasks.table import TaskTable
from bzzz.work import EventKind, TaskEvent
from tests.claimlab import REPO, claim_notes, token, world

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = ClaimSettings(lease=60.0, gossip_renew=5.0, rank_delay=2.0, margin=10.0, retention=30.0)


def broadcast(number: int) -> TaskBroadcast:
    return TaskBroadcast(
        task_id=f"{REPO}#{number}",
        repo=REPO,
        issue_url=f"http://forge/{REPO}/issues/{number}",
        model="ollama",
        input=f"Task {number}",
        params=TaskParams(branch_prefix=f"bzzz/task-{number}-"),
        timestamp=T0,
    )


# ---- the claim machine ------------------------------------------------------------------


def test_a_finished_task_leaves_the_book_after_the_retention_and_not_before() -> None:
    book = ClaimBook("me", SETTINGS)
    book.learn("t#1", "ollama", 0.0)
    book.learn("t#2", "ollama", 0.0)
    book.heard_result("t#1", "other", True, 1.0, result_url="http://pr/1")
    assert book.retire(1.0) == []  # first seen finished now
    assert book.retire(30.9) == []
    assert book.get("t#1") is not None
    # Within the retention, its announcements and claims are recognised at no cost.
    assert book.learn("t#1", "ollama", 20.0) == []
    assert book.heard_claim("t#1", "late", 60.0, 20.0) == []
    assert book.get("t#1").phase is Phase.DONE  # type: ignore[union-attr]
    assert book.retire(31.0) == ["t#1"]
    assert book.get("t#1") is None
    assert book.get("t#2") is not None  # unfinished: kept however long
    assert book.retire(10_000.0) == []


# ---- the task table ---------------------------------------------------------------------


def test_the_table_keeps_every_unfinished_task_and_the_latest_finished_ones() -> None:
    table = TaskTable(history=2)
    for n in range(1, 7):
        table.add(broadcast(n), announced_by="a", seen_at=T0)
    for n in (1, 2, 3, 4):  # finished in this order
        table.update(f"{REPO}#{n}", T0 + timedelta(seconds=n), state="done")
    assert table.prune() == [f"{REPO}#1", f"{REPO}#2"]
    assert [r.task_id for r in table.records()] == [f"{REPO}#{n}" for n in (3, 4, 5, 6)]
    assert table.get(f"{REPO}#3").finished_at == (T0 + timedelta(seconds=3)).isoformat(  # type: ignore[union-attr]
        timespec="milliseconds"
    )
    table.update(f"{REPO}#5", T0 + timedelta(seconds=9), state="quarantined")
    assert table.prune() == [f"{REPO}#3"]
    reloaded = TaskTable.from_json(table.to_json(), history=1)  # a smaller history on load
    assert [r.task_id for r in reloaded.records()] == [f"{REPO}#5", f"{REPO}#6"]


# ---- the driver, on a real forge and queue ----------------------------------------------


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    root = Path(tempfile.mkdtemp(prefix="bzzz-retain-"))
    served = LocalForge(root).start()
    try:
        served.seed(world(["me"], 12))
        yield served
    finally:
        served.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_lanes_close_and_finished_tasks_are_forgotten(forge: LocalForge, tmp_path: Path) -> None:
    """Twelve tasks claimed, run (the workers' events) and finished: afterwards the
    driver holds no lane, and after the retention the book holds nothing."""
    settings = Settings(
        home=tmp_path,
        node=NodeSettings("me"),
        tasks=TaskSettings(repositories=(REPO,)),
        claims=ClaimSettings(
            lease=60.0, gossip_renew=5.0, rank_delay=0.0, margin=20.0, retention=0.5
        ),
    )
    client = GitHubForge(forge.api_url, Token(token("me")), seconds_between_writes=0)
    broker = SQLiteBroker(str(tmp_path / "queue.db"))
    table = TaskTable()
    sent: list[object] = []

    async def publish(message: object) -> None:
        sent.append(message)

    async def main() -> tuple[int, int, int]:
        driver = ClaimDriver(
            settings=settings,
            arbiter=Arbiter(client, settings, "peer-me"),
            broker=broker,
            table=table,
            publish=publish,  # type: ignore[arg-type]
        )
        driver.set_market(Market(Offer("peer-me", ("m",), ("ollama",), 12, "me")))
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            for n in range(1, 13):
                table.add(broadcast(n), announced_by="me", seen_at=T0)
                driver.learn(f"{REPO}#{n}", "ollama")
            with trio.fail_after(30):
                while sum(t.phase is Phase.QUEUED for t in driver.book.tasks()) < 12:
                    await trio.sleep(0.05)
            most_lanes = driver.lanes
            for task in driver.book.tasks():
                event = TaskEvent(task.task_id, task.comment_id, EventKind.FINISHED, "w:1")
                driver.on_event(
                    TaskEvent(
                        **{**event.__dict__, "succeeded": True, "result_type": "pull_request"}
                    )
                )
            with trio.fail_after(30):
                while driver.book.tasks() or driver.lanes:
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        return most_lanes, len(driver.claim_urls), len(driver._claims)

    try:
        most_lanes, urls, claims = trio.run(main)
    finally:
        broker.close()
    assert most_lanes <= 12
    assert (urls, claims) == (0, 0)  # nothing kept per task once it is forgotten
    for n in range(1, 13):
        (note,) = claim_notes(forge, n)
        assert note.state is ClaimState.DONE
