"""Brokers by URL, and URLs shown without their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from bzzz.queue import BrokerURLError, SQLiteBroker, broker_from_url, redact_url

SECRET = "hunter2-secret"  # noqa: S105 (a made-up one, to look for)


def test_an_absolute_sqlite_url(tmp_path: Path) -> None:
    broker = broker_from_url(f"sqlite://{tmp_path}/my%20queue.db", lease=5.0)
    assert isinstance(broker, SQLiteBroker)
    assert broker.path == tmp_path / "my queue.db"
    assert broker.lease == 5.0
    assert broker.path.exists()
    broker.close()


def test_a_relative_sqlite_url_is_relative_to_the_given_directory(tmp_path: Path) -> None:
    broker = broker_from_url("sqlite:state/queue.db", relative_to=tmp_path)
    assert isinstance(broker, SQLiteBroker)
    assert broker.path == tmp_path / "state" / "queue.db"
    broker.close()


def test_a_relative_sqlite_url_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    broker = broker_from_url("sqlite:queue.db")
    assert isinstance(broker, SQLiteBroker)
    assert broker.path == tmp_path / "queue.db"
    broker.close()


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://queue.db", "names a host"),
        ("sqlite:", "names no file"),
        ("sqlite:///", "names no file"),
        ("sqlite:///tmp/queue.db?mode=ro", "no query"),
    ],
)
def test_a_bad_sqlite_url_is_refused(url: str, complaint: str) -> None:
    with pytest.raises(BrokerURLError, match=complaint):
        broker_from_url(url)


def test_a_redis_url_makes_dramatiq_s_redis_broker_without_connecting() -> None:
    broker = broker_from_url(f"redis://:{SECRET}@127.0.0.1:1/2", dead_letter_ttl=60.0)
    assert isinstance(broker, RedisBroker)
    assert broker.dead_message_ttl == 60_000
    assert SECRET not in repr(broker.client)
    assert isinstance(broker_from_url("rediss://127.0.0.1:1/0"), RedisBroker)


def test_an_amqp_url_makes_dramatiq_s_rabbitmq_broker_without_connecting() -> None:
    broker = broker_from_url(f"amqp://bzzz:{SECRET}@127.0.0.1:1/tasks")
    assert isinstance(broker, RabbitmqBroker)
    assert SECRET not in repr(broker.parameters)
    assert isinstance(broker_from_url("amqps://127.0.0.1:1/"), RabbitmqBroker)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        (f"postgres://bzzz:{SECRET}@db/queue", "scheme 'postgres'"),
        (f"http://{SECRET}@example.com/", "scheme 'http'"),
        ("queue.db", "no scheme"),
    ],
)
def test_an_unknown_scheme_is_named_with_the_accepted_ones(url: str, named: str) -> None:
    with pytest.raises(BrokerURLError) as refused:
        broker_from_url(url)
    message = str(refused.value)
    assert named in message
    assert "sqlite:///abs/path" in message
    assert "redis://" in message
    assert "amqp://" in message
    assert SECRET not in message


def test_a_malformed_url_is_refused_without_its_password() -> None:
    with pytest.raises(BrokerURLError) as refused:
        broker_from_url(f"redis://:{SECRET}@127.0.0.1:notaport/0")
    assert SECRET not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://bzzz:pw@host:5672/tasks", "amqp://***@host:5672/tasks"),
        ("redis://:p@ss#word@host/0", "redis://***@host/0"),
        ("redis://host:6379/0?password=pw&db=1", "redis://host:6379/0?password=***&db=***"),
        ("redis://host/0#pw", "redis://host/0#***"),
        ("redis:user:pw@host", "redis:***@host"),
        ("sqlite:///var/lib/bzzz/queue.db", "sqlite:///var/lib/bzzz/queue.db"),
        ("sqlite:///tmp/a@b.db", "sqlite:///tmp/a@b.db"),
        ("just-a-name", "just-a-name"),
        ("secret@host", "***"),
    ],
)
def test_redact_url_hides_user_information_and_query_values(url: str, shown: str) -> None:
    assert redact_url(url) == shown
