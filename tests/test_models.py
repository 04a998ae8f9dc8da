"""The loop's model adapter with the real `ollama` client against the lab model server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from bzzz.lab.model import (
    ChatRequest,
    Embedding,
    HttpError,
    LabModelServer,
    Reply,
    Responder,
    Scripted,
    Text,
    done_step,
    run_step,
)
from tests.test_loop import RUNAWAY, TASK, Shell
from workers.loop import Budget, Cause, Ending, ModelFailed, ModelUnreachable, run_loop
from workers.models import ModelChoice, ModelOptions, OllamaChat, choose_model, fit_options

SEEN: list[ChatRequest] = []


def recording(request: ChatRequest) -> Reply:
    SEEN.append(request)
    return Scripted([run_step("true"), done_step("ran true")])(request)


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
        "runaway": Scripted([Text(RUNAWAY + " test.php" * 300)]),
        "overflow": Scripted(
            [HttpError(400, "the request exceeds the available context size, try increasing it")]
        ),
        "recording": recording,
    }
    SEEN.clear()
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
    assert hung.ending is Ending.MODEL_SLOW  # the server took the request: a slow model
    assert hung.cause is Cause.MODEL
    closed = run_loop(TASK, OllamaChat("http://127.0.0.1:9", "coder", 2), Shell(tmp_path), Budget())
    assert closed.ending is Ending.MODEL_UNREACHABLE  # no server: this node's problem
    assert closed.cause is Cause.NODE
    overflow = run_loop(TASK, OllamaChat(server.url, "overflow", 10), Shell(tmp_path), Budget())
    assert overflow.ending is Ending.CONTEXT
    assert len([r for r in server.requests() if r.model == "overflow"]) == 2  # fitted again once


def test_every_call_carries_the_options_and_a_cut_reply_is_known(
    server: LabModelServer, tmp_path: Path
) -> None:
    options = ModelOptions(num_ctx=4096, num_predict=64, temperature=0.2)
    result = run_loop(
        TASK, OllamaChat(server.url, "recording", 10, options), Shell(tmp_path), Budget()
    )
    assert result.done
    assert [dict(r.options) for r in SEEN] == [options.as_json()] * 2
    assert all(r.format is not None and "anyOf" in r.format for r in SEEN)
    # a reply longer than num_predict is cut by the server, done_reason "length"
    chat = OllamaChat(server.url, "runaway", 10, options)
    reply = chat.chat([{"role": "user", "content": "go"}], timeout=5)
    assert reply.cut
    assert reply.reply_tokens == 64
    (logged,) = [r for r in server.requests() if r.model == "runaway"]
    assert (logged.done_reason, logged.eval_count) == ("length", 64)
    runaway = run_loop(TASK, chat, Shell(tmp_path), Budget(max_bad_replies=1))
    assert runaway.ending is Ending.RUNAWAY


def test_options_fit_the_models_context() -> None:
    assert fit_options(8192, 1024, 0.0, 32768) == ModelOptions(8192, 1024, 0.0)
    assert fit_options(8192, 1024, 0.0, 2048) == ModelOptions(2048, 512, 0.0)  # a small model
    assert fit_options(0, 1024, 0.0, 131072) == ModelOptions(131072, 1024, 0.0)  # all it has
    assert fit_options(0, 1024, 0.0, None) == ModelOptions(2048, 512, 0.0)  # nothing reported
    assert fit_options(1024, 1024, 0.0, None).num_predict == 256


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
    assert task.context_length == 32768  # from /api/show's model_info
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
