"""The numbers the window counts itself (as opposed to reading the status report): the
task latencies as the claim book moves tasks, and the workers' numbers from their events."""

from __future__ import annotations

from pathlib import Path

from dramatiq import Message

from bzzz.claims.actions import Phase, TaskClaim
from bzzz.queue.sqlite import SQLiteBroker
from bzzz.window.metrics import TaskTimings
from bzzz.window.workers import WorkerTally
from bzzz.work import EventKind, TaskEvent


def test_the_task_timings_observe_announce_to_claim_and_claim_to_result() -> None:
    now = [100.0]
    timings = TaskTimings(clock=lambda: now[0])
    moving = TaskClaim("lab/app#7", "lab")
    for phase, at in ((Phase.SEEN, 100.0), (Phase.HELD, 103.0), (Phase.DONE, 163.0)):
        now[0], moving.phase = at, phase
        timings.moved(moving)
    registry = timings.registry
    assert registry.get_sample_value("bzzz_task_announce_to_claim_seconds_sum") == 3.0
    assert registry.get_sample_value("bzzz_task_claim_to_result_seconds_sum") == 60.0


def test_the_workers_numbers_come_from_their_events() -> None:
    now = [10.0]
    tally = WorkerTally(clock=lambda: now[0])
    timings = TaskTimings()
    timings.registry.register(tally)

    def event(kind: EventKind, **entry: object) -> TaskEvent:
        return TaskEvent("lab/app#7", 1, kind, "vm:42", entry=dict(entry))

    tally.on_event(event(EventKind.STARTED))
    tally.on_event(event(EventKind.AUDIT, type="command", exit_code=0))
    tally.on_event(event(EventKind.AUDIT, type="command", exit_code=124))
    tally.on_event(
        event(EventKind.AUDIT, type="model_calls", model="lab", served_by={"node-b": 3, "x": -1})
    )
    now[0] = 25.5
    tally.on_event(event(EventKind.FINISHED))
    value = timings.registry.get_sample_value
    assert value("bzzz_worker_busy_seconds_total", {"worker": "vm:42"}) == 15.5
    assert value("bzzz_sandbox_runs_total", {"worker": "vm:42"}) == 2
    assert value("bzzz_sandbox_timeouts_total", {"worker": "vm:42"}) == 1
    assert value("bzzz_model_calls_total", {"model": "lab", "node": "node-b"}) == 3
    assert value("bzzz_model_calls_total", {"model": "lab", "node": "x"}) is None


def test_the_queue_tells_its_depths(tmp_path: Path) -> None:
    broker = SQLiteBroker(tmp_path / "queue.db")
    try:
        broker.declare_queue("tasks")
        for number in range(3):
            broker.enqueue(Message("tasks", "run", (number,), {}, {}))
        assert broker.depths() == {"ready": 3, "claimed": 0, "dead": 0, "redelivered": 0}
        consumer = broker.consume("tasks", prefetch=1, timeout=1000)
        message = next(iter(consumer))
        assert message is not None
        assert broker.depths()["claimed"] == 1
        consumer.nack(message)
        assert broker.depths() == {"ready": 2, "claimed": 0, "dead": 1, "redelivered": 0}
        consumer.close()
    finally:
        broker.close()
