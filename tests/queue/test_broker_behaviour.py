"""What Dramatiq's broker tests check, run against our SQLite broker and Redis alike.

Then what only the SQLite broker offers: dead letters to list and retry, delivery
ids and counts, requeue and prefetch at the consumer, storage errors as connection
errors, and the poison guard.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from unittest import mock

import dramatiq
import dramatiq.worker
import pytest
from dramatiq import Message, QueueJoinTimeout, Worker
from dramatiq.broker import Broker
from dramatiq.errors import BrokerConnectionError

from bzzz.lab.processes import wait_for
from bzzz.queue import DELIVERIES, DELIVERY_ID, PoisonGuard, PrefetchPerThread, SQLiteBroker
from tests.queue.conftest import running_worker

JOIN = 10_000  # ms: how long a test waits for a queue to drain


def dead_message_ids(broker: Broker, queue_name: str) -> list[str]:
    if isinstance(broker, SQLiteBroker):
        return [dead.message_id for dead in broker.dead_letters(queue_name)]
    bodies = broker.client.hvals(f"dramatiq:{queue_name}.XQ.msgs")  # type: ignore[attr-defined]
    return [Message.decode(body).message_id for body in bodies]


def test_every_message_sent_runs(broker: Broker) -> None:
    done: set[int] = set()

    @dramatiq.actor
    def put(number: int) -> None:
        done.add(number)

    for number in range(100):
        put.send(number)
    with running_worker(broker):
        broker.join(put.queue_name, timeout=JOIN)
    assert done == set(range(100))


def test_a_message_enqueued_twice_runs_twice(broker: Broker) -> None:
    runs: list[str] = []

    @dramatiq.actor
    def count() -> None:
        runs.append("ran")

    message = count.message()
    broker.enqueue(message)
    broker.enqueue(message)
    with running_worker(broker):
        broker.join(count.queue_name, timeout=JOIN)
    assert len(runs) == 2


def test_retries_without_delay_all_run(broker: Broker) -> None:
    attempts: list[int] = []

    @dramatiq.actor(max_retries=10)
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) <= 10:
            raise dramatiq.Retry(delay=0)

    flaky.send()
    with running_worker(broker):
        broker.join(flaky.queue_name, timeout=JOIN)
    assert len(attempts) == 11


def test_a_failing_actor_is_retried_after_a_backoff(broker: Broker) -> None:
    attempts: list[float] = []

    @dramatiq.actor(min_backoff=100, max_backoff=400, max_retries=3)
    def fails_twice() -> None:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise RuntimeError("failing on purpose")

    fails_twice.send()
    with running_worker(broker):
        broker.join(fails_twice.queue_name, timeout=JOIN)
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.1
    assert attempts[2] - attempts[1] >= 0.2


def test_a_delayed_message_runs_after_its_delay(broker: Broker) -> None:
    ran_at: list[float] = []

    @dramatiq.actor
    def record() -> None:
        ran_at.append(time.time())

    sent_at = time.time()
    record.send_with_options(delay=500)
    with running_worker(broker):
        broker.join(record.queue_name, timeout=JOIN)
    assert len(ran_at) == 1
    assert ran_at[0] - sent_at >= 0.499


def test_delayed_messages_run_in_eta_order(broker: Broker) -> None:
    order: list[int] = []

    @dramatiq.actor
    def append(number: int) -> None:
        order.append(number)

    append.send_with_options(args=(1,), delay=900)
    append.send_with_options(args=(2,), delay=300)
    append.send_with_options(args=(3,), delay=600)
    with running_worker(broker, threads=1):
        broker.join(append.queue_name, timeout=JOIN)
    assert order == [2, 3, 1]


def test_a_failed_message_is_dead_lettered(broker: Broker) -> None:
    @dramatiq.actor(max_retries=0)
    def fails() -> None:
        raise RuntimeError("failing on purpose")

    message = fails.send()
    with running_worker(broker):
        broker.join(fails.queue_name, timeout=JOIN)
    assert dead_message_ids(broker, fails.queue_name) == [message.message_id]


def test_a_message_for_an_unknown_actor_is_dead_lettered(broker: Broker) -> None:
    broker.declare_queue("elsewhere")
    message = broker.enqueue(Message("elsewhere", "nobody", (), {}, {}))
    with running_worker(broker):
        broker.join("elsewhere", timeout=JOIN)
    assert dead_message_ids(broker, "elsewhere") == [message.message_id]


def test_stopping_a_worker_requeues_the_messages_it_did_not_start(broker: Broker) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    @dramatiq.actor
    def slow(number: int) -> None:
        ran.append(number)
        started.set()
        release.wait(10)

    for number in range(5):
        slow.send(number)
    worker = Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 10_000})
    try:
        assert started.wait(10)
        stopper.start()
        wait_for(lambda: not worker.workers[0].running, 10, "the worker to start stopping")
    finally:
        release.set()
        if stopper.is_alive():
            stopper.join(15)
        else:
            worker.stop(timeout=10_000)
    assert len(ran) == 1
    with running_worker(broker):
        broker.join(slow.queue_name, timeout=JOIN)
    assert sorted(ran) == [0, 1, 2, 3, 4]


def test_stopping_a_worker_keeps_its_delayed_messages(broker: Broker) -> None:
    ran_at: list[float] = []

    @dramatiq.actor
    def later() -> None:
        ran_at.append(time.time())

    sent_at = time.time()
    later.send_with_options(delay=1500)
    with running_worker(broker) as worker:
        delay_queue = f"{later.queue_name}.DQ"

        def taken() -> bool:  # Redis hands it over at once; SQLite keeps it till its eta
            consumer = worker.consumers.get(delay_queue)
            return consumer is not None and (
                isinstance(broker, SQLiteBroker) or consumer.delay_queue.qsize() == 1
            )

        wait_for(taken, 10, "the worker to consume the delay queue", interval=0.01)
    assert ran_at == []
    with running_worker(broker):
        broker.join(later.queue_name, timeout=JOIN)
    assert len(ran_at) == 1
    assert ran_at[0] - sent_at >= 1.499


def test_join_times_out_while_a_message_runs(broker: Broker) -> None:
    release = threading.Event()

    @dramatiq.actor
    def slow() -> None:
        release.wait(10)

    slow.send()
    with running_worker(broker):
        try:
            with pytest.raises(QueueJoinTimeout):
                broker.join(slow.queue_name, timeout=300)
        finally:
            release.set()
        broker.join(slow.queue_name, timeout=JOIN)


def test_flush_empties_one_queue_and_flush_all_every_queue(broker: Broker) -> None:
    @dramatiq.actor(queue_name="first")
    def in_first() -> None:
        pass

    @dramatiq.actor(queue_name="second")
    def in_second() -> None:
        pass

    in_first.send()
    in_first.send_with_options(delay=60_000)
    in_second.send()
    broker.flush("first")
    broker.join("first", timeout=200)
    with pytest.raises(QueueJoinTimeout):
        broker.join("second", timeout=100)
    broker.flush_all()
    broker.join("second", timeout=200)


def test_a_worker_consumes_only_its_queues(broker: Broker) -> None:
    ran: list[str] = []

    @dramatiq.actor(queue_name="first")
    def in_first() -> None:
        ran.append("first")

    @dramatiq.actor(queue_name="second")
    def in_second() -> None:
        ran.append("second")

    in_first.send()
    in_second.send()
    with running_worker(broker, queues={"first"}):
        broker.join("first", timeout=JOIN)
        with pytest.raises(QueueJoinTimeout):
            broker.join("second", timeout=300)
    assert ran == ["first"]
    with running_worker(broker):
        broker.join("second", timeout=JOIN)
    assert sorted(ran) == ["first", "second"]


def test_queues_are_declared_with_their_delay_queues(broker: Broker) -> None:
    broker.declare_queue("tasks")
    broker.declare_queue("tasks")
    assert "tasks" in broker.get_declared_queues()
    assert "tasks.DQ" in broker.get_declared_delay_queues()


def test_actors_can_prioritize_work(broker: Broker) -> None:
    calls: list[str] = []

    @dramatiq.actor(priority=0)
    def high() -> None:
        calls.append("high")

    @dramatiq.actor(priority=10)
    def low() -> None:
        calls.append("low")

    with (
        mock.patch.object(dramatiq.worker, "QUEUE_PREFETCH", 20),  # all of them at once
        mock.patch.object(dramatiq.worker, "CONSUMER_RESTART_DELAY_SECS", 0.1),  # after pause
        running_worker(broker, threads=1) as worker,
    ):
        worker.pause()
        for _ in range(10):
            low.send()
            high.send()
        worker.resume()
        broker.join(low.queue_name, timeout=JOIN)
    assert calls == ["high"] * 10 + ["low"] * 10


# -- the SQLite broker's own features


def test_each_enqueue_is_a_delivery_of_its_own(sqlite_broker: SQLiteBroker) -> None:
    sqlite_broker.declare_queue("tasks")
    message = Message("tasks", "someone", (), {}, {})
    first, second = sqlite_broker.enqueue(message), sqlite_broker.enqueue(message)
    assert first.message_id == second.message_id
    assert first.options[DELIVERY_ID] != second.options[DELIVERY_ID]


def test_dead_letters_can_be_listed_retried_and_purged(sqlite_broker: SQLiteBroker) -> None:
    broken = ["yes"]
    ran: list[str] = []

    @dramatiq.actor(max_retries=0)
    def fragile() -> None:
        if broken:
            raise RuntimeError("failing on purpose")
        ran.append("ran")

    message = fragile.send()
    with running_worker(sqlite_broker):
        sqlite_broker.join(fragile.queue_name, timeout=JOIN)
        [dead] = sqlite_broker.dead_letters()
        assert dead.message_id == message.message_id
        assert dead.queue_name == fragile.queue_name
        assert dead.message.actor_name == "fragile"
        assert "failing on purpose" in dead.message.options["traceback"]
        assert dead.deliveries == 1
        assert sqlite_broker.dead_letters("elsewhere") == []

        broken.clear()
        assert sqlite_broker.retry_dead_letters([dead.delivery_id]) == 1
        sqlite_broker.join(fragile.queue_name, timeout=JOIN)
    assert ran == ["ran"]
    assert sqlite_broker.dead_letters() == []

    sqlite_broker.enqueue(Message("default", "nobody", (), {}, {}))
    sqlite_broker.dead_letter_ttl = 0.0
    with running_worker(sqlite_broker):
        sqlite_broker.join("default", timeout=JOIN)
    wait_for(lambda: sqlite_broker.dead_letters() != [], 5, "the dead letter")
    wait_for(lambda: sqlite_broker.purge_dead_letters() == 1, 5, "the dead letter to expire")
    assert sqlite_broker.dead_letters() == []


def test_requeued_messages_are_ready_again_without_counting_a_delivery(
    sqlite_broker: SQLiteBroker,
) -> None:
    sqlite_broker.declare_queue("tasks")
    for number in range(3):
        sqlite_broker.enqueue(Message("tasks", "someone", (number,), {}, {}))
    consumer = sqlite_broker.consume("tasks", prefetch=3, timeout=100)
    first = next(consumer)
    assert first is not None
    assert first.options[DELIVERIES] == 1
    consumer.requeue([first])
    consumer.close()  # gives back the two it claimed and never handed out

    again = sqlite_broker.consume("tasks", prefetch=3, timeout=100)
    messages = [next(again) for _ in range(3)]
    assert [m.args[0] for m in messages if m is not None] == [0, 1, 2]
    assert {m.options[DELIVERIES] for m in messages if m is not None} == {1}
    for message in messages:
        assert message is not None
        again.ack(message)
    sqlite_broker.join("tasks", timeout=200)


def test_a_consumer_holds_no_more_than_its_prefetch(sqlite_broker: SQLiteBroker) -> None:
    sqlite_broker.declare_queue("tasks")
    for number in range(4):
        sqlite_broker.enqueue(Message("tasks", "someone", (number,), {}, {}))
    consumer = sqlite_broker.consume("tasks", prefetch=2, timeout=50)
    first, second, third = next(consumer), next(consumer), next(consumer)
    assert first is not None
    assert second is not None
    assert third is None
    consumer.ack(first)
    assert next(consumer) is not None


def test_the_queue_prefetch_can_follow_the_thread_count(sqlite_broker: SQLiteBroker) -> None:
    sqlite_broker.declare_queue("tasks")
    sqlite_broker.queue_prefetch = 3
    consumer = sqlite_broker.consume("tasks", prefetch=16, timeout=50)
    assert consumer.prefetch == 3  # type: ignore[attr-defined]
    sqlite_broker.queue_prefetch = None
    sqlite_broker.add_middleware(PrefetchPerThread())
    with running_worker(sqlite_broker, threads=3) as worker:
        assert worker.queue_prefetch == 3


def test_storage_errors_are_connection_errors(tmp_path: object) -> None:
    broker = SQLiteBroker(f"{tmp_path}/queue.db", busy_timeout=0.1)
    broker.declare_queue("tasks")
    blocker = sqlite3.connect(f"{tmp_path}/queue.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(BrokerConnectionError):
            broker.enqueue(Message("tasks", "someone", (), {}, {}))
        blocker.execute("ROLLBACK")
        broker.enqueue(Message("tasks", "someone", (), {}, {}))
    finally:
        blocker.close()
        broker.close()


def test_the_poison_guard_dead_letters_a_message_whose_workers_keep_dying(
    sqlite_broker: SQLiteBroker,
) -> None:
    ran: list[str] = []

    @dramatiq.actor
    def poison() -> None:
        ran.append("ran")

    message = poison.send()
    # Another process takes it and dies: a broker that claims, then stops renewing.
    dying = SQLiteBroker(sqlite_broker.path, lease=0.3)
    dying.declare_queue(poison.queue_name)
    assert next(dying.consume(poison.queue_name, timeout=1000)) is not None
    dying.close()

    sqlite_broker.add_middleware(PoisonGuard(max_deliveries=1))
    with running_worker(sqlite_broker):
        sqlite_broker.join(poison.queue_name, timeout=JOIN)
    assert ran == []
    [dead] = sqlite_broker.dead_letters()
    assert dead.message_id == message.message_id
    assert dead.deliveries == 2


def test_what_a_closing_consumer_cannot_requeue_comes_back_after_a_lease(tmp_path: object) -> None:
    broker = SQLiteBroker(f"{tmp_path}/queue.db", lease=0.3, busy_timeout=0.1)
    broker.declare_queue("tasks")
    broker.enqueue(Message("tasks", "someone", (), {}, {}), delay=0)
    consumer = broker.consume("tasks.DQ", prefetch=10, timeout=1000)
    assert next(consumer) is not None  # then dropped, as Dramatiq does on a consumer error
    blocker = sqlite3.connect(f"{tmp_path}/queue.db", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        consumer.close()  # cannot requeue it: the database is locked
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    try:
        again = next(broker.consume("tasks.DQ", prefetch=10, timeout=3000))
        assert again is not None
        assert again.options[DELIVERIES] == 2
    finally:
        broker.close()
