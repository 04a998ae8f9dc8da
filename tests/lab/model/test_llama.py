"""A real model behind the lab model server: SmolLM2-135M-Instruct (and Gemma 3 270M) run
by llama.cpp, answering the real `ollama` client as ollama does. The models and
llama-cpp-python come with the `dev` extras; without them these tests skip, except in CI,
where they fail."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import ollama
import pytest

from bzzz.lab.model import LabModelServer
from bzzz.lab.model.llama import _fold_system
from tests.lab.model.test_cli import DEADLINE, bzzz_model_serve, first_line

GO = [
    {"role": "system", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What is a git branch?"},
]
ANSWER = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 40}},
    "required": ["answer"],
}


def needed(spec: str) -> dict[str, object]:
    """The GGUF models of `spec`, or a skip (a failure in CI) saying what is missing."""
    from bzzz.lab.model import GgufNotFound, gguf_models  # noqa: PLC0415
    from bzzz.lab.model.llama import LlamaUnavailable  # noqa: PLC0415

    try:
        return dict(gguf_models([spec], threads=1))
    except (LlamaUnavailable, GgufNotFound) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI installs the dev extras: ./scripts/setup --dev)")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def smollm2() -> Iterator[ollama.Client]:
    with (
        LabModelServer(models=needed("smollm2")) as server,  # type: ignore[arg-type]
        ollama.Client(host=server.url, timeout=60) as client,
    ):
        yield client


def test_it_is_listed_and_described_as_ollama_describes_a_model(smollm2: ollama.Client) -> None:
    (listed,) = smollm2.list().models
    assert listed.model == "smollm2:latest"
    assert listed.size is not None
    assert listed.size > 90_000_000
    assert listed.details is not None
    assert (listed.details.format, listed.details.family) == ("gguf", "llama")
    assert (listed.details.parameter_size, listed.details.quantization_level) == ("135M", "Q4_1")
    shown = smollm2.show("smollm2")
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo is not None
    assert shown.modelinfo["llama.context_length"] == 8192
    assert "<|im_start|>" in (shown.template or "")


def test_num_predict_cuts_the_reply_with_done_reason_length(smollm2: ollama.Client) -> None:
    cut = smollm2.chat(
        "smollm2", messages=GO, options={"num_predict": 8, "temperature": 0}, stream=False
    )
    assert (cut.done_reason, cut.eval_count) == ("length", 8)
    assert cut.prompt_eval_count is not None
    assert 20 < cut.prompt_eval_count < 60
    assert cut.message.content
    assert cut.eval_duration is not None
    assert cut.eval_duration > 0
    streamed = list(
        smollm2.chat(
            "smollm2", messages=GO, options={"num_predict": 8, "temperature": 0}, stream=True
        )
    )
    *pieces, last = streamed
    assert len(pieces) >= 4
    assert not any(p.done for p in pieces)
    assert last.done
    assert last.done_reason == "length"
    assert last.eval_count == 8
    assert last.prompt_eval_count == cut.prompt_eval_count


def test_a_json_schema_is_enforced_by_a_grammar(smollm2: ollama.Client) -> None:
    said = smollm2.chat(
        "smollm2",
        messages=GO,
        format=ANSWER,
        options={"num_predict": 48, "temperature": 0},
        stream=False,
    )
    assert said.done_reason == "stop"
    reply = json.loads(said.message.content or "")
    assert set(reply) == {"answer"}
    assert len(reply["answer"]) <= 40
    plain_json = smollm2.generate(
        "smollm2", prompt="Name a colour.", format="json", options={"num_predict": 24}
    )
    assert plain_json.response.lstrip().startswith("{")
    with pytest.raises(ollama.ResponseError) as refused:
        smollm2.chat("smollm2", messages=GO, format={"type": "nonsense"}, stream=False)
    assert refused.value.status_code == 400


def test_a_prompt_longer_than_num_ctx_loses_its_oldest_messages(smollm2: ollama.Client) -> None:
    history = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"Message {n}: " + "word " * 60}
        for n in range(12)
    ]
    messages = [GO[0], *history, GO[1]]
    said = smollm2.chat(
        "smollm2", messages=messages, options={"num_ctx": 256, "num_predict": 4}, stream=False
    )
    assert said.prompt_eval_count is not None
    assert said.prompt_eval_count < 256
    assert said.eval_count == 4
    whole = smollm2.chat(
        "smollm2", messages=messages, options={"num_ctx": 2048, "num_predict": 4}, stream=False
    )
    assert whole.prompt_eval_count is not None
    assert whole.prompt_eval_count > 800


def test_a_system_message_is_folded_into_the_first_user_turn() -> None:
    folded = _fold_system(
        [
            {"role": "system", "content": "Rules."},
            {"role": "user", "content": "Task."},
            {"role": "assistant", "content": "Reply."},
        ]
    )
    assert folded == [
        {"role": "user", "content": "Rules.\n\nTask."},
        {"role": "assistant", "content": "Reply."},
    ]


def test_gemma3_without_a_chat_template_still_answers() -> None:
    with (
        LabModelServer(models=needed("gemma3-270m")) as server,  # type: ignore[arg-type]
        ollama.Client(host=server.url, timeout=60) as client,
    ):
        shown = client.show("gemma3-270m")
        assert shown.modelinfo is not None
        assert shown.modelinfo["gemma3.context_length"] == 32768
        said = client.chat(
            "gemma3-270m",
            messages=GO,
            format=ANSWER,
            options={"num_predict": 32, "temperature": 0},
            stream=False,
        )
        assert said.prompt_eval_count is not None
        assert said.prompt_eval_count > 10
        assert "answer" in json.loads(said.message.content or "{}")


def test_bzzz_lab_model_serve_serves_a_packaged_gguf_model() -> None:
    needed("smollm2")
    server = bzzz_model_serve("--gguf", "smollm2", "--threads", "1")
    try:
        line = first_line(server)
        assert "scripted and GGUF models" in line
        url = line.split(" at ", 1)[1].split(";", 1)[0]
        with ollama.Client(host=url, timeout=30) as client:
            assert {m.model for m in client.list().models} == {"lab:latest", "smollm2:latest"}
            said = client.chat("smollm2", messages=GO, options={"num_predict": 4}, stream=False)
            assert said.eval_count == 4
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=DEADLINE) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=DEADLINE)
        for stream in (server.stdout, server.stderr):
            if stream is not None:
                stream.close()
