"""Logging: readable lines on stderr, JSON lines in the node's log file, secrets redacted.

Only Bzzz's own loggers log below WARNING. Other libraries log routine events at INFO
(pika's connection lines, dramatiq's, apscheduler's each run) and py-libp2p routine
failures (a dial that crossed another) as ERRORs; Bzzz logs what matters of those itself.
So every other library is held at WARNING (py-libp2p at CRITICAL; at WARNING with
`log.level = "debug"`), unless the operator names it in BZZZ_LOG_LIBRARIES
(comma-separated top-level logger names such as `pika,dramatiq`, or `all`): a library
named there logs at `log.level` like Bzzz.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

REDACTED = "[redacted]"
LIBRARIES_ENV = "BZZZ_LOG_LIBRARIES"
OWN_LOGGERS = frozenset({"bzzz", "workers", "bench", "__main__", "root"})

# Libraries known to log routine events, and the least level they log at; any other
# library is held at WARNING by the handlers' filter (LibraryFilter).
QUIET_LOGGERS = {
    "libp2p": logging.CRITICAL,
    "apscheduler": logging.WARNING,
    "zeroconf": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "multiaddr": logging.WARNING,
    "pika": logging.WARNING,
    "dramatiq": logging.WARNING,
    "redis": logging.WARNING,
    "urllib3": logging.WARNING,
    "requests": logging.WARNING,
    "github": logging.WARNING,
    "docker": logging.WARNING,
    "charset_normalizer": logging.WARNING,
    "tzlocal": logging.WARNING,
    "asyncio": logging.WARNING,
    "trio-websocket": logging.WARNING,
}


def shown_libraries(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The libraries BZZZ_LOG_LIBRARIES names (`all`: every one)."""
    text = (os.environ if environ is None else environ).get(LIBRARIES_ENV, "")
    return frozenset(name.strip() for name in text.split(",") if name.strip())


class LibraryFilter(logging.Filter):
    """Drops what other libraries log below WARNING, but for the libraries `shown`."""

    def __init__(self, shown: Iterable[str] = ()) -> None:
        super().__init__()
        self._shown = frozenset(shown)
        self._all = "all" in self._shown

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or self._all:
            return True
        top = record.name.partition(".")[0]
        return top in OWN_LOGGERS or top in self._shown


class RedactSecrets(logging.Filter):
    """Replaces every known secret value in a record's final text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            if record.exc_info:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("peer", "node", "topic", "task"):
            if hasattr(record, key):
                entry[key] = str(getattr(record, key))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def setup(
    level: str,
    path: Path | None,
    secrets: Iterable[str] = (),
    label: str = "",
    libraries: Iterable[str] | None = None,
) -> None:
    """Log at `level` to stderr and, as JSON lines, to `path`. `libraries`: those whose
    routine messages to show too (default: BZZZ_LOG_LIBRARIES)."""
    shown = shown_libraries() if libraries is None else frozenset(libraries)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    redact = RedactSecrets(secrets)
    quiet = LibraryFilter(shown)
    prefix = f"{label} " if label else ""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(level.upper())
    stderr.setFormatter(
        logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    stderr.addFilter(quiet)
    stderr.addFilter(redact)
    root.addHandler(stderr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(
            path, maxBytes=10 * 2**20, backupCount=3, encoding="utf-8"
        )
        to_file.setLevel(level.upper())
        to_file.setFormatter(JsonFormatter())
        to_file.addFilter(quiet)
        to_file.addFilter(redact)
        root.addHandler(to_file)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("libp2p."):  # py-libp2p sets levels on some of its module loggers
            logging.getLogger(name).setLevel(logging.NOTSET)
    for name, quiet_level in QUIET_LOGGERS.items():
        library = logging.getLogger(name)
        if name in shown or "all" in shown:
            library.setLevel(logging.NOTSET)  # as the root: `level`
        else:
            library.setLevel(logging.WARNING if level == "debug" else quiet_level)
        library.propagate = True  # py-libp2p turns propagation off and falls back to bare prints
