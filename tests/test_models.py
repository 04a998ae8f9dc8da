"""The loop's model adapter with the real `ollama` client against the lab model server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bzzz.lab.model import HttpError, LabModelServer, Scripted, Text, done_step, run_step
from tests.test_loop import TASK, Shell
from workers.loop import Budget, Ending, ModelFailed, ModelUnreachable, run_loop
from workers.models import OllamaChat, choose_model


@pytest.fixture
def server() -> Iterator[LabModelServer]:
    models = {
        "coder": Scripted(
            [
                run_step("printf 'hi\\n' > note.txt"),
                run_step("cat note.txt"),
                done_step("wrote a note"),
            ]
        ),
        "babbler": Scripted([Text("I think we should refactor everything.")]),
        "sleepy": Scripted([Text("{}", delay=30)]),
        "broken": Scripted([HttpError(500, "out of memory")]),
    }
    with LabModelServer(models=models) as running:
        yield running


def test_a_scripted_model_drives_the_loop_to_done(server: LabModelServer, tmp_path: Path) -> None:
    chat = OllamaChat(server.url, "coder", timeout=10)
    result = run_loop(TASK, chat, Shell(tmp_path), Budget())
    assert result.done
    assert result.summary == "wrote a note"
    assert (tmp_path / "note.txt").read_text() == "hi\n"
    assert [s.output for s in result.steps] == ["", "hi\n"]
    assert result.tokens > 0  # the server's eval counts
    (request, *_) = server.requests()
    assert request.format == "schema"  # the loop asks for its reply schema


def test_unusable_replies_end_as_designed(server: LabModelServer, tmp_path: Path) -> None:
    result = run_loop(TASK, OllamaChat(server.url, "babbler", 10), Shell(tmp_path), Budget())
    assert result.ending is Ending.UNPARSABLE


def test_model_failures_end_the_loop_with_the_reason(
    server: LabModelServer, tmp_path: Path
) -> None:
    unknown = run_loop(TASK, OllamaChat(server.url, "nope", 10), Shell(tmp_path), Budget())
    assert unknown.ending is Ending.MODEL_FAILED
    assert "not found" in unknown.reason
    broken = run_loop(TASK, OllamaChat(server.url, "broken", 10), Shell(tmp_path), Budget())
    assert broken.ending is Ending.MODEL_FAILED
    assert "out of memory" in broken.reason
    hung = run_loop(TASK, OllamaChat(server.url, "sleepy", 0.5), Shell(tmp_path), Budget())
    assert hung.ending is Ending.MODEL_UNREACHABLE
    closed = run_loop(TASK, OllamaChat("http://127.0.0.1:9", "coder", 2), Shell(tmp_path), Budget())
    assert closed.ending is Ending.MODEL_UNREACHABLE


def test_the_model_is_the_tasks_then_the_configured_then_the_first_listed(
    server: LabModelServer,
) -> None:
    assert choose_model("qwen2.5-coder:7b", "lab", server.url, 5) == "qwen2.5-coder:7b"
    assert choose_model("ollama", "lab", server.url, 5) == "lab"
    assert choose_model("ollama", "", server.url, 5) == "babbler:latest"
    with pytest.raises(ModelUnreachable):
        choose_model("ollama", "", "http://127.0.0.1:9", 2)
    with LabModelServer(models={}) as empty, pytest.raises(ModelFailed, match="no models"):
        choose_model("ollama", "", empty.url, 5)
