"""`bzzz logs`: the node's and workers' JSON logs merged, filtered by task, level and time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bzzz.cli import main
from bzzz.home import init_home
from bzzz.logview import follow, parse_since, recent


def record(minutes_ago: float, level: str, message: str, **extra: str) -> str:
    """A log line written `minutes_ago` before now (now: when the test writes it)."""
    when = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")
    return json.dumps({"time": when, "level": level, "logger": "x", "message": message, **extra})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    init_home(home, "node-a")
    logs = home / "logs"
    logs.mkdir()
    (logs / "node.log.1").write_text(record(90, "info", "lab/app#1: claimed (comment 3)") + "\n")
    (logs / "node.log").write_text(
        "\n".join(
            [
                record(30, "info", "announcing task lab/app#12 (http://forge/12)"),
                record(20, "debug", "lab/app#1: checked: held node-b"),
                "not a log record",
                record(5, "info", "lab/app#1: done (http://forge/pull/4)"),
            ]
        )
        + "\n"
    )
    (logs / "worker.log").write_text(
        record(10, "warning", "lab/app#1: failed: tests fail")
        + "\n"
        + record(8, "info", "heartbeat", task="lab/app#1")
        + "\n"
    )
    return home


def test_entries_are_merged_by_time_and_filtered_by_task(home: Path) -> None:
    entries = recent(home / "logs", task="lab/app#1", level="info", lines=0)
    assert [(e.source, e.message) for e in entries] == [
        ("node", "lab/app#1: claimed (comment 3)"),  # from the rotated file
        ("worker", "lab/app#1: failed: tests fail"),
        ("worker", "heartbeat"),  # the record's task field
        ("node", "lab/app#1: done (http://forge/pull/4)"),
    ]  # not lab/app#12, not the debug line


def test_level_time_and_count_limits(home: Path) -> None:
    assert [e.message for e in recent(home / "logs", level="warning")] == [
        "lab/app#1: failed: tests fail"
    ]
    since = recent(home / "logs", since=timedelta(minutes=9), level="debug")
    assert [e.message for e in since] == ["heartbeat", "lab/app#1: done (http://forge/pull/4)"]
    assert len(recent(home / "logs", lines=2)) == 2
    assert parse_since("90s") == timedelta(seconds=90)
    with pytest.raises(ValueError, match="10m"):
        parse_since("ten minutes")


def test_follow_prints_what_is_written_next(home: Path) -> None:
    lines = follow(home / "logs", task="lab/app#1", poll=0.01)
    with (home / "logs" / "worker.log").open("a") as log:
        log.write(record(0, "info", "lab/app#1: started") + "\n" + record(0, "info", "other"))
    assert next(lines).message == "lab/app#1: started"


def test_the_cli_prints_lines_or_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "--home", str(home), "--task", "lab/app#1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4
    assert "worker WARNING x: lab/app#1: failed: tests fail" in out[1]
    assert main(["logs", "--home", str(home), "--json", "--lines", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["message"] == "lab/app#1: done (http://forge/pull/4)"
    assert main(["logs", "--home", str(home), "--since", "soon"]) == 2
