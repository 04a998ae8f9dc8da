"""Brokers for the queue tests: SQLite on a temporary file, and Redis on a private server."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dramatiq
import dramatiq.broker
import pytest
import redis
from dramatiq import Worker
from dramatiq.broker import Broker

from bzzz.lab.processes import free_port, wait_for
from bzzz.queue import SQLiteBroker, broker_from_url

TEST_LEASE = 2.0  # seconds; short so that tests of expiry stay short


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on loopback, killed at the end of the session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH (scripts/setup installs it)")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    with (directory / "redis.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        def still_running() -> None:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(directory / 'redis.log').read_text()}")

        wait_for(answers, 10, "redis-server to answer PING", interval=0.02, check=still_running)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@pytest.fixture(params=["sqlite", "redis"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A broker of each kind, made from its URL, as Dramatiq's global broker."""
    if request.param == "sqlite":
        made = broker_from_url(f"sqlite://{tmp_path}/queue.db", lease=TEST_LEASE)
    else:
        made = broker_from_url(request.getfixturevalue("redis_url"))
        made.client.flushall()
    previous = dramatiq.broker.global_broker
    made.emit_after("process_boot")
    dramatiq.set_broker(made)
    try:
        yield made
    finally:
        made.flush_all()
        made.close()
        dramatiq.broker.global_broker = previous


@pytest.fixture
def sqlite_broker(tmp_path: Path) -> Iterator[SQLiteBroker]:
    made = SQLiteBroker(tmp_path / "queue.db", lease=TEST_LEASE)
    previous = dramatiq.broker.global_broker
    dramatiq.set_broker(made)
    try:
        yield made
    finally:
        made.close()
        dramatiq.broker.global_broker = previous


@contextmanager
def running_worker(
    broker: Broker, *, threads: int = 4, queues: set[str] | None = None
) -> Iterator[Worker]:
    """A Dramatiq worker in this process, stopped at the end even on failure."""
    worker = Worker(broker, worker_timeout=100, worker_threads=threads, queues=queues)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(timeout=10_000)
