"""`bzzz logs`: the node's and its workers' recent structured log, merged by time.

Both write JSON lines (logs/node.log, logs/worker.log, with rotated `.1`… beside them).
Filters: a task (its ID in the message or the record's `task` field), a lowest level,
a time window.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
SOURCES = ("node.log", "worker.log")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


@dataclass(frozen=True)
class Entry:
    time: datetime
    level: str
    logger: str
    message: str
    source: str  # "node" or "worker"
    raw: dict[str, object]

    def line(self) -> str:
        stamp = self.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        text = f"{stamp} {self.source:<6} {self.level.upper():<7} {self.logger}: {self.message}"
        exception = self.raw.get("exception")
        return f"{text}\n{exception}" if exception else text


def parse_since(text: str) -> timedelta:
    """`90s`, `10m`, `2h` or `1d`."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"--since {text!r}: write it as a number and s, m, h or d (e.g. 10m)")
    amount, unit = float(match.group(1)), match.group(2)
    return timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def read(path: Path, source: str) -> Iterator[Entry]:
    """Entries of one file; lines that are not log records are skipped."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        entry = _entry(line, source)
        if entry is not None:
            yield entry


def _entry(line: str, source: str) -> Entry | None:
    try:
        raw = json.loads(line)
        when = datetime.fromisoformat(str(raw["time"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(raw, dict):
        return None
    return Entry(
        time=when if when.tzinfo else when.replace(tzinfo=UTC),
        level=str(raw.get("level", "info")),
        logger=str(raw.get("logger", "")),
        message=str(raw.get("message", "")),
        source=source,
        raw=raw,
    )


def files(log_dir: Path) -> list[tuple[Path, str]]:
    """Every log file of the home, oldest rotation first."""
    found = []
    for name in SOURCES:
        source = name.removesuffix(".log")
        rotated = sorted(log_dir.glob(f"{name}.*"), key=lambda p: -_rotation(p))
        found += [(path, source) for path in [*rotated, log_dir / name]]
    return found


def _rotation(path: Path) -> int:
    suffix = path.name.rpartition(".")[2]
    return int(suffix) if suffix.isdigit() else 0


def mentions(task: str) -> re.Pattern[str]:
    """`lab/app#1` but not `lab/app#12`."""
    return re.compile(re.escape(task) + r"(?!\d)")


def select(
    entries: Iterable[Entry],
    *,
    task: str | None = None,
    level: str = "debug",
    since: datetime | None = None,
) -> list[Entry]:
    lowest = LEVELS[level]
    pattern = mentions(task) if task else None
    chosen = []
    for entry in entries:
        if LEVELS.get(entry.level, 20) < lowest or (since is not None and entry.time < since):
            continue
        if pattern is not None and not (
            entry.raw.get("task") == task or pattern.search(entry.message)
        ):
            continue
        chosen.append(entry)
    return sorted(chosen, key=lambda e: e.time)


def recent(
    log_dir: Path,
    *,
    task: str | None = None,
    level: str = "debug",
    since: timedelta | None = None,
    lines: int = 50,
) -> list[Entry]:
    start = datetime.now(UTC) - since if since is not None else None
    entries = (e for path, source in files(log_dir) for e in read(path, source))
    chosen = select(entries, task=task, level=level, since=start)
    return chosen[-lines:] if lines > 0 else chosen


def follow(
    log_dir: Path, *, task: str | None = None, level: str = "debug", poll: float = 0.5
) -> Iterator[Entry]:
    """New entries as they are written (both files) from now on, until the caller stops."""
    offsets = {name: _size(log_dir / name) for name in SOURCES}  # now, not at the first next()
    return _tail(log_dir, offsets, task, level, poll)


def _tail(
    log_dir: Path, offsets: dict[str, int], task: str | None, level: str, poll: float
) -> Iterator[Entry]:
    while True:
        fresh: list[Entry] = []
        for name in SOURCES:
            path = log_dir / name
            size = _size(path)
            if size < offsets[name]:  # rotated: read the new file from its start
                offsets[name] = 0
            if size > offsets[name]:
                with path.open("rb") as handle:
                    handle.seek(offsets[name])
                    chunk = handle.read(size - offsets[name])
                complete = chunk.rpartition(b"\n")[0]
                offsets[name] += len(complete) + (1 if complete else 0)
                source = name.removesuffix(".log")
                text = complete.decode("utf-8", errors="replace")
                fresh += [e for line in text.splitlines() if (e := _entry(line, source))]
        yield from select(fresh, task=task, level=level)
        time.sleep(poll)  # polling a file for new lines, not synchronisation


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
