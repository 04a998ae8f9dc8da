"""Logging: readable lines on stderr, JSON lines in the node's log file, secrets redacted."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

REDACTED = "[redacted]"

# Libraries that log routine events at INFO, or routine failures (a dial that
# crossed another) as ERRORs; Bzzz logs what matters of those itself.
QUIET_LOGGERS = {
    "libp2p": logging.CRITICAL,
    "apscheduler": logging.WARNING,
    "zeroconf": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "multiaddr": logging.WARNING,
}


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


def setup(level: str, path: Path | None, secrets: Iterable[str] = (), label: str = "") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if level == "debug" else logging.INFO)
    redact = RedactSecrets(secrets)
    prefix = f"{label} " if label else ""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(level.upper())
    stderr.setFormatter(
        logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    stderr.addFilter(redact)
    root.addHandler(stderr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(
            path, maxBytes=10 * 2**20, backupCount=3, encoding="utf-8"
        )
        to_file.setLevel(level.upper())
        to_file.setFormatter(JsonFormatter())
        to_file.addFilter(redact)
        root.addHandler(to_file)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("libp2p."):  # py-libp2p sets levels on some of its module loggers
            logging.getLogger(name).setLevel(logging.NOTSET)
    for name, quiet_level in QUIET_LOGGERS.items():
        library = logging.getLogger(name)
        library.setLevel(logging.WARNING if level == "debug" else quiet_level)
        library.propagate = True  # py-libp2p turns propagation off and falls back to bare prints
