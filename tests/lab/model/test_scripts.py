"""Scripted models: errors, delays and the script position, through the real client."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import ollama
import pytest

from bzzz.lab.model import (
    ChatRequest,
    HttpError,
    Message,
    Reply,
    Scripted,
    ScriptError,
    StreamError,
    Text,
    ToolCall,
    done_step,
    load_script,
    parse_script,
    parse_step,
    run_step,
    step_as_json,
)
from tests.lab.model.conftest import ClientFactory, ServerFactory

USER = {"role": "user", "content": "go"}


def turns(assistant_messages: int) -> list[dict[str, str]]:
    """A conversation holding `assistant_messages` assistant replies so far."""
    messages = [USER]
    for n in range(assistant_messages):
        messages += [{"role": "assistant", "content": f"reply {n}"}, USER]
    return messages


def test_the_script_position_is_the_number_of_assistant_messages(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    client = connect(serve({"lab": Scripted([Text("zero"), Text("one"), Text("two")])}))

    said = [client.chat("lab", messages=turns(n)).message.content for n in (2, 0, 1, 2, 7)]
    assert said == ["two", "zero", "one", "two", "two"]  # no server state; the last repeats


def test_tool_and_system_messages_do_not_move_the_script() -> None:
    script = Scripted([Text("zero"), Text("one")])
    request = ChatRequest(
        "lab",
        (Message("system", "s"), Message("user", "u"), Message("tool", "t"), Message("user", "u")),
    )
    assert script(request) == Text("zero")


def test_a_scripted_http_error_is_a_response_error(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    client = connect(serve({"lab": Scripted([HttpError(500, "out of memory")])}))

    with pytest.raises(ollama.ResponseError) as caught:
        client.chat("lab", messages=turns(0))
    assert (caught.value.status_code, caught.value.error) == (500, "out of memory")
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.chat("lab", messages=turns(0), stream=True))
    assert (streamed.value.status_code, streamed.value.error) == (500, "out of memory")


def test_a_mid_stream_error_is_a_response_error_after_partial_output(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    client = connect(serve({"lab": Scripted([StreamError("model crashed", "half a")])}))

    received: list[str] = []

    def read_stream() -> None:
        for chunk in client.chat("lab", messages=turns(0), stream=True):
            received.append(chunk.message.content or "")

    with pytest.raises(ollama.ResponseError) as caught:
        read_stream()
    assert caught.value.error == "model crashed"
    assert "".join(received) == "half a"
    with pytest.raises(ollama.ResponseError) as whole:  # without streaming: a plain 500
        client.chat("lab", messages=turns(0))
    assert (whole.value.status_code, whole.value.error) == (500, "model crashed")


def test_a_hung_model_times_the_client_out_and_the_server_goes_on(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve({"hung": Scripted([Text("too late", delay=60)]), "ok": Scripted([Text("ok")])})
    impatient = connect(server, timeout=0.5)

    began = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        impatient.chat("hung", messages=turns(0))
    assert time.monotonic() - began < 5
    with pytest.raises(httpx.TimeoutException):
        list(impatient.chat("hung", messages=turns(0), stream=True))

    began = time.monotonic()
    assert impatient.chat("ok", messages=turns(0)).message.content == "ok"  # same client
    assert connect(server).chat("ok", messages=turns(0)).message.content == "ok"
    assert time.monotonic() - began < 5

    began = time.monotonic()
    server.stop()  # the delayed replies are still waiting: stopping ends them
    assert time.monotonic() - began < 5


def test_a_delay_shorter_than_the_timeout_only_slows_the_reply(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    client = connect(serve({"lab": Scripted([Text("slow", delay=0.3)])}), timeout=10)

    began = time.monotonic()
    reply = client.chat("lab", messages=turns(0))
    assert reply.message.content == "slow"
    assert time.monotonic() - began >= 0.3
    assert reply.prompt_eval_duration is not None
    assert reply.prompt_eval_duration >= 300_000_000


def test_many_clients_at_once(serve: ServerFactory, connect: ClientFactory) -> None:
    server = serve({"lab": Scripted([Text("a"), Text("b"), Text("c")])})
    results: dict[int, str] = {}

    def ask(n: int) -> None:
        results[n] = connect(server).chat("lab", messages=turns(n % 3)).message.content or ""

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {n: "abc"[n % 3] for n in range(12)}


STEPS: list[Reply] = [
    Text("plain"),
    Text("", delay=2.5),
    ToolCall("run", {"command": "ls", "nested": {"a": [1, 2]}}),
    HttpError(503, "busy", delay=1),
    StreamError("crash", "part"),
]


@pytest.mark.parametrize("step", STEPS)
def test_steps_round_trip_through_json(step: Reply) -> None:
    assert parse_step(json.loads(json.dumps(step_as_json(step)))) == step


def test_the_json_script_format(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps(
            {
                "coder": [
                    "hello",
                    {"json": {"action": "done"}},
                    {"run": "ls -a", "thought": "look", "delay": 0.5},
                    {"done": "finished"},
                    {"tool_call": {"name": "run", "arguments": {"command": "ls"}}},
                    {"error": "no", "status": 429},
                    {"error": "boom"},
                    {"stream_error": "cut", "partial": "abc"},
                    {"delay": 3},
                ]
            }
        )
    )
    assert load_script(path) == {
        "coder": [
            Text("hello"),
            Text('{"action": "done"}'),
            run_step("ls -a", "look", delay=0.5),
            done_step("finished"),
            ToolCall("run", {"command": "ls"}),
            HttpError(429, "no"),
            HttpError(500, "boom"),
            StreamError("cut", "abc"),
            Text("", delay=3),
        ]
    }
    assert json.loads(run_step("ls -a", "look").content) == {
        "thought": "look",
        "action": "run",
        "command": "ls -a",
    }
    assert json.loads(done_step("ok").content) == {"thought": "", "action": "done", "summary": "ok"}


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ([], "JSON object"),
        ({}, "JSON object"),
        ({"m": []}, "non-empty list"),
        ({" ": ["x"]}, "may not be empty"),
        ({"m": [3]}, "string or an object"),
        ({"m": [{"content": "a", "done": "b"}]}, "has one of"),
        ({"m": [{"content": "a", "extra": 1}]}, "unknown keys"),
        ({"m": [{"content": 1}]}, "must be a string"),
        ({"m": [{"delay": -1}]}, "delay must be"),
        ({"m": [{"delay": "1"}]}, "delay must be"),
        ({"m": [{"error": "x", "status": 200}]}, "400-599"),
        ({"m": [{"tool_call": {"name": "f", "arguments": []}}]}, "must be an object"),
        ({"m": [{"tool_call": "f"}]}, "a tool call is"),
    ],
)
def test_bad_scripts_are_refused_with_a_reason(script: object, error: str) -> None:
    with pytest.raises(ScriptError, match=error):
        parse_script(script)


def test_an_unreadable_script_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "bad.json")
    with pytest.raises(ScriptError, match="cannot read"):
        load_script(tmp_path / "missing.json")
