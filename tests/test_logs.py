"""Logging: JSON lines in the node's log file, and secrets never written anywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz import logs

SECRET = "0123456789abcdef" * 4


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_secrets_are_redacted_from_messages_arguments_and_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    log_file = tmp_path / "logs" / "node.log"
    logs.setup("info", log_file, secrets=[SECRET], label="n1")
    log = logging.getLogger("bzzz.test")
    log.info("key is %s", SECRET)
    log.warning(f"inline {SECRET}")
    try:
        int(f"failed with {SECRET}")
    except ValueError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text()
    printed = capsys.readouterr().err
    assert SECRET not in written
    assert SECRET not in printed
    assert written.count(logs.REDACTED) == 3
    entries = [json.loads(line) for line in written.splitlines()]
    assert entries[0]["message"] == f"key is {logs.REDACTED}"
    assert entries[0]["logger"] == "bzzz.test"
    assert "ValueError" in entries[2]["exception"]
    assert "n1 INFO bzzz.test" in printed
