"""Capabilities and presence publishing, and the scheduler's one concurrency rule: blocking
work in threads, every result handed to trio, nothing of the node's touched elsewhere."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from bzzz.capabilities import CapabilityDetector, GpuReading
from bzzz.claims.machine import ClaimBook
from bzzz.claims.matching import Offer
from bzzz.config import CapabilitySettings, ClaimSettings, NodeSettings, Settings
from bzzz.node.announcer import Announcer, Self
from bzzz.node.membership import Membership
from bzzz.node.offering import Offering
from bzzz.node.readiness import Facts
from bzzz.node.scheduler import JobHealth, Scheduler
from bzzz.node.workforce import Workforce
from bzzz.protocol import Capabilities, Message, PresencePing
from bzzz.state import PeerTable
from bzzz.work import Problem, WorkerBeat


class Machine:
    def __init__(self) -> None:
        self.cpu = 5.0
        self.models: tuple[str, ...] = ("llama3",)

    def detector(self) -> CapabilityDetector:
        def no_gpus() -> tuple[GpuReading, ...]:
            return ()

        return CapabilityDetector(
            load=lambda: (self.cpu, 40.0),
            gpus=no_gpus,
            models=lambda: self.models,
            clis=lambda: ("claude",),
        )


def test_capabilities_are_published_on_change_and_at_least_every_max_interval() -> None:
    machine, clock, sent = Machine(), [0.0], []
    announcer = Announcer(
        "n1", CapabilitySettings(max_interval=30.0, load_change=10.0), clock=lambda: clock[0]
    )
    detector = machine.detector()

    def job() -> None:
        message = announcer.capabilities(detector.read(), Self(status="idle"))
        if message is not None:
            sent.append(message)

    job()
    assert len(sent) == 1
    first = sent[0]
    assert isinstance(first, Capabilities)
    assert (first.node_id, first.cpu, first.models, first.installed) == (
        "n1",
        5.0,
        ["llama3"],
        ["claude"],
    )

    clock[0] = 5.0
    machine.cpu = 9.0  # small wiggle: not a change
    job()
    assert len(sent) == 1

    clock[0] = 10.0
    machine.models = ("llama3", "mistral")  # a model was installed: publish at once
    job()
    assert len(sent) == 2

    clock[0] = 39.9
    job()
    assert len(sent) == 2
    clock[0] = 40.0  # 30 s since the last publish
    job()
    assert len(sent) == 3


def test_a_change_of_the_nodes_own_state_is_published_without_a_new_reading() -> None:
    announcer = Announcer("n1", CapabilitySettings(), clock=lambda: 0.0)
    assert announcer.capabilities(None, Self()) is None  # nothing read yet
    assert announcer.capabilities(Machine().detector().read(), Self(slots=2)) is not None
    assert announcer.capabilities(None, Self(slots=2)) is None
    changed = announcer.capabilities(None, Self(slots=0, cannot_run=("no model",)))
    assert changed is not None
    assert (changed.slots, changed.cannot_run) == (0, ["no model"])


def test_presence_pings_slow_down_as_the_mesh_grows() -> None:
    clock, sent, peers = [0.0], [], [2]
    announcer = Announcer(
        "n1",
        CapabilitySettings(presence_interval=5.0, presence_per_peer=1.5),
        clock=lambda: clock[0],
    )

    def ticks(until: float) -> list[float]:
        """Run the loop every 5 s (its schedule) up to `until`; the times it pinged."""
        times = []
        while clock[0] < until:
            ping = announcer.presence(peers[0])
            if ping is not None:
                sent.append(ping)
                times.append(clock[0])
            clock[0] += 5.0
        return times

    assert ticks(20.0) == [0.0, 5.0, 10.0, 15.0]  # 2 peers: every 5 s
    ping = sent[-1]
    assert isinstance(ping, PresencePing)
    assert (ping.node_id, ping.interval_s) == ("n1", 5.0)
    peers[0] = 9  # 9 peers: every 13.5 s, reached in steps that at most double
    assert ticks(70.0) == [25.0, 40.0, 55.0]
    assert [ping.interval_s for ping in sent[-3:]] == [10.0, 13.5, 13.5]


def test_work_runs_in_threads_and_results_are_delivered_on_trio() -> None:
    delivered: list[tuple[Any, bool]] = []

    async def main() -> None:
        trio_thread = threading.current_thread()
        both = trio.Event()
        work_threads: set[bool] = set()

        def read() -> str:
            work_threads.add(threading.current_thread() is trio_thread)
            return "reading"

        async def deliver(result: Any) -> None:
            delivered.append((result, threading.current_thread() is trio_thread))
            if {r for r, _ in delivered} >= {"reading", ("planned", 1)}:
                both.set()

        plans = iter(range(1, 100))
        scheduler = Scheduler()
        scheduler.every("reader", 0.1, read, deliver)
        scheduler.planned("planner", 0.1, lambda: next(plans), lambda n: ("planned", n), deliver)
        scheduler.start(trio.lowlevel.current_trio_token())
        try:
            with trio.fail_after(10):
                await both.wait()
        finally:
            await trio.to_thread.run_sync(scheduler.shutdown)
        assert work_threads == {False}  # the blocking part never ran on trio's thread

    trio.run(main)
    assert all(on_trio for _, on_trio in delivered)


def test_a_failing_job_is_counted_logged_once_and_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bzzz.node.scheduler")

    async def main() -> dict[str, Any]:
        calls = []

        def flaky() -> int:
            calls.append(1)
            if len(calls) <= 3:
                raise OSError("the probe is down")
            return len(calls)

        done = trio.Event()

        async def deliver(result: int) -> None:
            done.set()

        scheduler = Scheduler()
        scheduler.every("probe", 0.05, flaky, deliver)
        scheduler.start(trio.lowlevel.current_trio_token())
        try:
            with trio.fail_after(10):
                await done.wait()
        finally:
            await trio.to_thread.run_sync(scheduler.shutdown)
        return {name: view for name, view in scheduler.health.views().items()}

    views = trio.run(main)
    probe = views["probe"]
    assert probe.failures == 3
    assert probe.failing_since_runs == 0  # it works again
    assert probe.last_error == "OSError: the probe is down"
    warnings = [r for r in caplog.records if "job probe failed" in r.getMessage()]
    assert len(warnings) == 1
    assert any("works again after 3 failed runs" in r.getMessage() for r in caplog.records)


def test_a_job_after_trio_has_finished_reports_nothing() -> None:
    health = JobHealth()

    async def grab() -> trio.lowlevel.TrioToken:
        return trio.lowlevel.current_trio_token()

    scheduler = Scheduler(health)
    scheduler._token = trio.run(grab)  # a token of a finished run

    async def never_called(result: object) -> None:
        raise AssertionError("ran after trio finished")

    scheduler.every("late", 60.0, lambda: 1, never_called)
    job = scheduler._scheduler.get_jobs()[0]
    job.func()  # what the scheduler's thread would run
    assert health.views() == {}


class TrioOnly(dict[str, Any]):
    """A dict that records every access from a thread other than its owner's."""

    def __init__(self, owner: threading.Thread) -> None:
        super().__init__()
        self.owner = owner
        self.foreign: list[str] = []

    def _check(self, what: str) -> None:
        if threading.current_thread() is not self.owner:
            self.foreign.append(f"{what} from {threading.current_thread().name}")

    def __getitem__(self, key: str) -> Any:
        self._check("read")
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._check("write")
        super().__setitem__(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        self._check("read")
        return super().get(key, default)

    def values(self) -> Any:
        self._check("iteration")
        return super().values()

    def __iter__(self) -> Any:
        self._check("iteration")
        return super().__iter__()

    def __contains__(self, key: object) -> bool:
        self._check("read")
        return super().__contains__(key)


def test_capability_jobs_every_50_ms_against_a_stream_of_claims_find_no_race() -> None:
    """The capabilities job (as wired in the node: a thread reads the machine, the
    offer is recomputed on trio from the claim book) runs every 50 ms while the trio
    side takes in thousands of tasks and claims. Every access to the book's tasks is
    on trio's thread, and no run fails."""
    settings = Settings(home=Path("/nonexistent"), node=NodeSettings("n1"))
    claim_settings = ClaimSettings(lease=60.0, gossip_renew=5.0, rank_delay=1.0, margin=20.0)

    async def main() -> tuple[list[str], dict[str, Any], int]:
        book = ClaimBook("n1", claim_settings)
        guard = TrioOnly(threading.current_thread())
        book._tasks = guard  # the book's state, watched
        peers = PeerTable("p1", "n1", dead_after=15.0, forget_after=600.0)
        membership = Membership(settings, "p1", peers, None)
        workforce = Workforce(heartbeat=60.0)

        class Claims:  # what the offering reads of the claim driver
            def __init__(self) -> None:
                self.book = book

            def set_market(self, market: Any) -> None:
                book.market = market

        published: list[Message] = []

        async def publish(message: Message) -> None:
            published.append(message)

        offering = Offering(
            peer_id="p1",
            name="n1",
            facts=Facts("workers.executors:record", has_forge=True, has_token=True),
            announcer=Announcer("n1", CapabilitySettings(load_change=0.1)),
            workforce=workforce,
            membership=membership,
            claims=Claims(),  # type: ignore[arg-type]
            poller=None,
            publish=publish,
        )
        await offering.on_beat(WorkerBeat("w:1", 4, 0))
        readings = iter(range(10**6))

        def load() -> tuple[float, float | None]:  # every reading differs: each is published
            return float(next(readings) % 100), 40.0

        detector = CapabilityDetector(load, lambda: (), lambda: ("m",), lambda: ("ollama",))
        scheduler = Scheduler()
        scheduler.every("capabilities", 0.05, detector.read, offering.on_reading)
        scheduler.start(trio.lowlevel.current_trio_token())
        try:
            now, n = 0.0, 0
            with trio.fail_after(60):  # thousands of claims, while the job runs ten times
                while n < 3000 or scheduler.health.views()["capabilities"].runs < 10:
                    n, now = n + 1, now + 0.01
                    book.learn(f"lab/app#{n}", "ollama", now)
                    book.heard_claim(f"lab/app#{n}", "n2", 60.0, now)
                    if n % 50 == 0:
                        book.tick(now)
                        await trio.sleep(0.01)  # let the jobs' hops in
        finally:
            await trio.to_thread.run_sync(scheduler.shutdown)
        runs = scheduler.health.views()["capabilities"]
        return guard.foreign, {"failures": runs.failures, "runs": runs.runs}, len(published)

    foreign, runs, published = trio.run(main)
    assert foreign == []
    assert runs["failures"] == 0
    assert runs["runs"] >= 10
    assert published >= 10


def test_an_offer_closes_when_the_node_cannot_run_tasks() -> None:
    settings = Settings(home=Path("/nonexistent"), node=NodeSettings("n1"))
    book = ClaimBook("n1", ClaimSettings())

    class Claims:
        def __init__(self) -> None:
            self.book = book

        def set_market(self, market: Any) -> None:
            book.market = market

    async def publish(message: Message) -> None:
        pass

    def offering(facts: Facts, *beats: WorkerBeat) -> Offering:
        peers = PeerTable("p1", "n1", dead_after=15.0, forget_after=600.0)
        workforce = Workforce(heartbeat=60.0)
        for beat in beats:
            workforce.beat(beat)
        return Offering(
            peer_id="p1",
            name="n1",
            facts=facts,
            announcer=Announcer("n1", CapabilitySettings()),
            workforce=workforce,
            membership=Membership(settings, "p1", peers, None),
            claims=Claims(),  # type: ignore[arg-type]
            poller=None,
            publish=publish,
        )

    agent = Facts("workers.agent:run", has_forge=True, has_token=True, models=("m",))
    worker = WorkerBeat("host:1", 2, 0)
    ready = offering(agent, worker)
    ready.refresh()
    assert ready.readiness.takes_tasks
    assert book.market.own == Offer("p1", (), (), 2, "n1")
    no_bwrap = WorkerBeat("host:1", 2, 0, (Problem("no sandbox", "bwrap is missing"),))
    record = Facts("workers.executors:record", has_forge=True, has_token=True)
    for closed, reason in [
        (offering(replace(record, executor="workers.executors:decline"), worker), "executor"),
        (offering(replace(record, has_token=False), worker), "no forge token"),
        (offering(replace(agent, models=()), worker), "no model"),
        (offering(agent, no_bwrap), "no sandbox"),
        (offering(record), "no live worker"),
    ]:
        closed.refresh()
        assert not closed.readiness.takes_tasks
        assert book.market.own.free_slots == 0
        assert any(reason in text for text in closed.own_state().cannot_run)
    # A worker that reports no problem is enough; a task declined closes the offer.
    mixed = offering(agent, no_bwrap, WorkerBeat("host:2", 3, 0))
    mixed.refresh()
    assert (mixed.readiness.takes_tasks, mixed.readiness.capacity) == (True, 3)
    mixed.declined("the model server did not answer")
    assert not mixed.readiness.takes_tasks
    assert mixed.own_state().cannot_run == ("declined a task",)


def test_a_worker_is_live_while_its_beats_come() -> None:
    clock = [0.0]
    workforce = Workforce(heartbeat=10.0, clock=lambda: clock[0])
    workforce.beat(WorkerBeat("host:1", 2, 1))
    assert workforce.threads() == 2
    clock[0] = 35.0  # three heartbeats and the margin
    assert workforce.threads() == 2
    clock[0] = 35.1
    assert workforce.threads() == 0
    assert workforce.live() == []
