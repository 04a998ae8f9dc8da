"""A Dramatiq broker from a URL: SQLite on the node by default, Redis or RabbitMQ by choice.

- `sqlite:///abs/path/queue.db`: a SQLite file at an absolute path;
- `sqlite:relative/queue.db`: relative to `relative_to` (the node's home), else the
  current directory;
- `redis://[[user]:password@]host[:port][/db]` and `rediss://`: Dramatiq's RedisBroker;
- `amqp://user:password@host[:port][/vhost]` and `amqps://`: Dramatiq's RabbitmqBroker.

Errors and `redact_url` never show a URL's user information or query values.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from dramatiq.broker import Broker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from bzzz.errors import BzzzError, ExitCode
from bzzz.queue.sqlite import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_DEAD_LETTER_TTL,
    DEFAULT_LEASE,
    SQLiteBroker,
)

SQLITE = "sqlite"
REDIS = ("redis", "rediss")
AMQP = ("amqp", "amqps")
ACCEPTED = "sqlite:///abs/path, sqlite:relative/path, redis://, rediss://, amqp:// or amqps://"


class BrokerURLError(BzzzError, ValueError):
    """A broker URL Bzzz cannot use; the message shows the URL redacted."""

    exit_code = ExitCode.CONFIG


def broker_from_url(
    url: str,
    *,
    middleware: list[Middleware] | None = None,
    relative_to: Path | None = None,
    lease: float = DEFAULT_LEASE,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    dead_letter_ttl: float = DEFAULT_DEAD_LETTER_TTL,
) -> Broker:
    """The broker `url` names. No connection is made yet.

    `lease` and `busy_timeout` apply to SQLite only (see `SQLiteBroker`);
    `dead_letter_ttl` (seconds) to SQLite and Redis (RabbitMQ reads Dramatiq's
    `dramatiq_dead_message_ttl` environment variable).
    """
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if scheme == SQLITE:
        return SQLiteBroker(
            sqlite_path(url, relative_to),
            middleware=middleware,
            lease=lease,
            busy_timeout=busy_timeout,
            dead_letter_ttl=dead_letter_ttl,
        )
    if scheme in REDIS or scheme in AMQP:
        try:
            return _network_broker(scheme, url, middleware, dead_letter_ttl)
        except ValueError:
            raise BrokerURLError(f"malformed broker URL {redact_url(url)}") from None
    named = f"scheme {scheme!r}" if scheme else "no scheme"
    raise BrokerURLError(f"broker URL {redact_url(url)} has {named}; use {ACCEPTED}")


def _network_broker(
    scheme: str, url: str, middleware: list[Middleware] | None, dead_letter_ttl: float
) -> Broker:
    if scheme in REDIS:
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=url, middleware=middleware, dead_message_ttl=int(dead_letter_ttl * 1000)
        )
    return RabbitmqBroker(url=url, middleware=middleware)


def sqlite_path(url: str, relative_to: Path | None = None) -> Path:
    """The file a `sqlite:` URL names."""
    parts = urlsplit(url)
    if parts.netloc:
        raise BrokerURLError(
            f"{redact_url(url)} names a host; use sqlite:///abs/path or sqlite:relative/path"
        )
    if parts.query or parts.fragment:
        raise BrokerURLError(f"{redact_url(url)}: a sqlite URL takes no query or fragment")
    path = Path(unquote(parts.path))
    if not parts.path.strip("/"):
        raise BrokerURLError(f"{url} names no file; use sqlite:///abs/path or sqlite:relative/path")
    return path if path.is_absolute() else (relative_to or Path.cwd()) / path


def redact_url(url: str) -> str:
    """`url` with its user information and its query and fragment values as `***`."""
    scheme, colon, rest = url.partition(":")
    if not colon:
        return "***" if "@" in url else url
    if scheme.lower() != SQLITE and "@" in rest:
        slashes = "//" if rest.startswith("//") else ""
        rest = f"{slashes}***@{rest.rpartition('@')[2]}"
    rest, hash_mark, _ = rest.partition("#")
    rest, question, query = rest.partition("?")
    if question:
        masked = (f"{pair.partition('=')[0]}=***" for pair in query.split("&") if pair)
        rest = f"{rest}?{'&'.join(masked)}"
    return f"{scheme}:{rest}{'#***' if hash_mark else ''}"
