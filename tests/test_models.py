"""The loop's model adapter with the real `ollama` client against the lab model server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from bzzz.lab.model import (
    Embedding,
    HttpError,
    LabModelServer,
    Responder,
    Scripted,
    Text,
    done_step,
    run_step,
)
from tests.test_loop import TASK, Shell
from workers.loop import Budget, Ending, ModelFailed, ModelUnreachable, run_loop
from workers.models import ModelChoice, OllamaChat, choose_model


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


@contextlib.contextmanager
def chooser(models: Mapping[str, Responder]) -> Iterator[Callable[[str, str], ModelChoice]]:
    """choose_model against a lab model server registering `models` in order (the last
    registered is the newest, and ollama lists the newest first)."""
    with LabModelServer(models=models) as running:
        yield lambda requested, configured: choose_model(requested, configured, running.url, 5)


CAN_CHAT = Scripted([done_step("ok")])


def test_the_tasks_model_comes_first_then_the_configured_one(server: LabModelServer) -> None:
    task = choose_model("coder", "babbler", server.url, 5)
    assert (task.name, task.reason, task.passed_over) == ("coder:latest", "the task's model", ())
    configured = choose_model("ollama", "babbler", server.url, 5)
    assert (configured.name, configured.reason) == ("babbler:latest", "agent.model")
    assert choose_model("any", "babbler:latest", server.url, 5).name == "babbler:latest"
    assert configured.describe() == "babbler:latest (agent.model)"


def test_without_a_preference_the_servers_order_is_kept() -> None:
    # ollama lists the newest model first: zeta, registered last, before alpha
    with chooser({"alpha": CAN_CHAT, "zeta": CAN_CHAT}) as choose:
        choice = choose("ollama", "")
        assert choice.name == "zeta:latest"
        assert choice.reason == "the first model the server lists that can chat"


def test_embedding_models_are_passed_over() -> None:
    # the embedder, registered last, is the newest: the server lists it first
    models: dict[str, Responder] = {"coder": CAN_CHAT, "nomic-embed-text": Embedding()}
    with chooser(models) as choose:
        first = choose("ollama", "")
        assert first.name == "coder:latest"
        assert first.passed_over == (
            "nomic-embed-text:latest (the first model the server lists that can chat):"
            " cannot chat (capabilities: embedding)",
        )
        assert "passed over nomic-embed-text:latest" in first.describe()
        # named by the task or the configuration, it is passed over all the same
        named = choose("nomic-embed-text", "nomic-embed-text:latest")
        assert named.name == "coder:latest"
        assert named.passed_over == (  # named twice, asked about once
            "nomic-embed-text:latest (the task's model): cannot chat (capabilities: embedding)",
        )
        configured = choose("ollama", "nomic-embed-text")
        assert configured.passed_over[0].startswith("nomic-embed-text:latest (agent.model):")


def test_missing_models_are_passed_over_with_the_reason() -> None:
    with chooser({"coder": CAN_CHAT}) as choose:
        choice = choose("qwen2.5-coder:7b", "llama3")
        assert choice.name == "coder:latest"
        assert choice.passed_over == (
            "qwen2.5-coder:7b (the task's model): not on the server",
            "llama3 (agent.model): not on the server",
        )


def test_no_model_that_can_chat_is_a_model_failure() -> None:
    with pytest.raises(ModelUnreachable):
        choose_model("ollama", "", "http://127.0.0.1:9", 2)
    nothing = r"no model that can chat \(it lists none\)"
    with chooser({}) as choose, pytest.raises(ModelFailed, match=nothing):
        choose("ollama", "")
    embedder = r"cannot chat \(capabilities: embedding\).*ollama pull"
    only_embeddings = {"nomic-embed-text": Embedding()}
    with chooser(only_embeddings) as choose, pytest.raises(ModelFailed, match=embedder):
        choose("ollama", "lab")
