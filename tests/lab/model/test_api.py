"""The real ollama client against the lab model server: ollama's API where Bzzz uses it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest

from bzzz.lab.model import Embedding, Scripted, Text, ToolCall
from tests.lab.model.conftest import ClientFactory, ServerFactory

SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string"}, "command": {"type": "string"}},
    "required": ["action"],
}
RUN_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "run",
        "description": "Run one shell command in the workspace.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "the command"}},
            "required": ["command"],
        },
    },
}
HELLO = [{"role": "user", "content": "Say hello, please."}]


def test_version_list_show_and_ps(serve: ServerFactory, connect: ClientFactory) -> None:
    server = serve({"lab": Scripted([Text("hi")]), "qwen2.5-coder:7b": Scripted([Text("hi")])})
    client = connect(server)

    assert httpx.get(f"{server.url}/api/version", timeout=5).json()["version"]
    listed = client.list().models
    # as ollama names and orders them: the newest (registered last) first
    assert [m.model for m in listed] == ["qwen2.5-coder:7b", "lab:latest"]
    assert all(m.digest and m.modified_at and m.details for m in listed)
    assert listed[1].details is not None
    assert listed[1].details.family == "bzzz-lab"

    shown = client.show("lab")
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None
    assert shown.details is not None
    assert "not an LLM" in (shown.modelfile or "")
    assert client.show("lab:latest").modified_at == shown.modified_at  # one model, two names

    assert client.ps().models == []
    client.chat("lab", messages=HELLO)
    assert [m.model for m in client.ps().models] == ["lab:latest"]


def test_an_embedding_model_cannot_chat(serve: ServerFactory, connect: ClientFactory) -> None:
    server = serve({"lab": Scripted([Text("hi")]), "nomic-embed-text": Embedding()})
    client = connect(server)

    assert client.show("nomic-embed-text").capabilities == ["embedding"]
    assert client.show("lab").capabilities == ["completion", "tools"]
    with pytest.raises(ollama.ResponseError) as chat:
        client.chat("nomic-embed-text", messages=HELLO)
    assert chat.value.status_code == 400
    assert chat.value.error == '"nomic-embed-text" does not support chat'
    with pytest.raises(ollama.ResponseError, match="does not support generate"):
        client.generate("nomic-embed-text:latest", prompt="hello")
    # re-registering a model makes it the newest
    server.register("lab", Scripted([Text("hi again")]))
    assert [m.model for m in client.list().models] == ["lab:latest", "nomic-embed-text:latest"]


def test_chat_without_streaming(serve: ServerFactory, connect: ClientFactory) -> None:
    server = serve({"lab": Scripted([Text("Hello there, human.")])})
    reply = connect(server).chat("lab", messages=HELLO, options={"temperature": 0, "seed": 1})

    assert reply.done
    assert reply.done_reason == "stop"
    assert reply.model == "lab"
    assert reply.message.role == "assistant"
    assert reply.message.content == "Hello there, human."
    assert reply.message.tool_calls is None
    assert (reply.prompt_eval_count, reply.eval_count) == (3, 3)  # words
    assert reply.total_duration is not None
    assert reply.total_duration > 0
    assert reply.load_duration is not None
    assert reply.eval_duration is not None


def test_chat_streams_ndjson_chunks_ending_in_done(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    content = 'Line one\n  {"json": true}  '
    server = serve({"lab": Scripted([Text(content)])})
    chunks = list(connect(server).chat("lab", messages=HELLO, stream=True))

    assert len(chunks) > 2
    assert not any(chunk.done for chunk in chunks[:-1])
    assert "".join(chunk.message.content or "" for chunk in chunks) == content
    last = chunks[-1]
    assert last.done
    assert last.done_reason == "stop"
    assert last.message.content == ""
    assert (last.prompt_eval_count, last.eval_count) == (3, 4)


def test_stream_is_the_default_without_the_field(serve: ServerFactory) -> None:
    server = serve({"lab": Scripted([Text("a b")])})
    response = httpx.post(f"{server.url}/api/chat", json={"model": "lab", "messages": HELLO})

    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["done"] for line in lines] == [False, False, True]


def test_chat_accepts_a_schema_format_and_json(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve({"lab": Scripted([Text('{"action": "done"}')])})
    client = connect(server)

    assert json.loads(client.chat("lab", messages=HELLO, format=SCHEMA).message.content or "")
    streamed = client.chat("lab", messages=HELLO, format="json", stream=True)
    assert json.loads("".join(chunk.message.content or "" for chunk in streamed))
    assert [r.format for r in server.requests()] == ["schema", "json"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_comes_back_with_arguments_as_a_dict(
    serve: ServerFactory, connect: ClientFactory, stream: bool
) -> None:
    server = serve({"lab": Scripted([ToolCall("run", {"command": "ls -l", "timeout": 5})])})
    client = connect(server)
    if stream:
        chunks = list(client.chat("lab", messages=HELLO, tools=[RUN_TOOL], stream=True))
    else:
        chunks = [client.chat("lab", messages=HELLO, tools=[RUN_TOOL])]
    calls = [call for chunk in chunks for call in chunk.message.tool_calls or []]
    assert len(calls) == 1
    assert calls[0].function.name == "run"
    assert calls[0].function.arguments == {"command": "ls -l", "timeout": 5}
    assert chunks[-1].done
    assert server.requests()[-1].tools == 1


def test_generate_streaming_and_not(serve: ServerFactory, connect: ClientFactory) -> None:
    server = serve({"lab": Scripted([Text("It is sunny.")])})
    client = connect(server)

    whole = client.generate("lab", "What is the weather?", system="Be brief.")
    assert (whole.response, whole.done, whole.prompt_eval_count) == ("It is sunny.", True, 6)
    chunks = list(client.generate("lab", "What is the weather?", stream=True))
    assert "".join(chunk.response or "" for chunk in chunks) == "It is sunny."
    assert chunks[-1].done
    assert chunks[-1].eval_count == 3


def test_a_chat_without_messages_only_loads_the_model(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve({"lab": Scripted([Text("never said")])})
    reply = connect(server).chat("lab", messages=[])

    assert (reply.done, reply.done_reason, reply.message.content) == (True, "load", "")


def test_an_unknown_model_is_a_404_response_error(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    client = connect(serve({"lab": Scripted([Text("hi")])}))

    for ask in (
        lambda: client.chat("nope", messages=HELLO),
        lambda: list(client.chat("nope", messages=HELLO, stream=True)),
        lambda: client.generate("nope", "hi"),
        lambda: client.show("nope"),
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            ask()
        assert caught.value.status_code == 404
        assert caught.value.error == "model 'nope' not found"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "model is required"),
        (b'{"model": "lab", "messages": {"role": "user"}}', "messages must be a list"),
        (b'{"model": "lab", "messages": [{"content": "no role"}]}', "needs a role"),
        (b'{"model": "lab", "stream": "yes"}', "stream must be"),
        (b'{"model": "lab", "format": "yaml"}', "format must be"),
        (b'{"model": "lab", "tools": "run"}', "tools must be"),
        (b'{"model": "lab", "options": [1]}', "options must be"),
    ],
)
def test_malformed_requests_get_400(serve: ServerFactory, body: bytes, error: str) -> None:
    server = serve({"lab": Scripted([Text("hi")])})
    response = httpx.post(f"{server.url}/api/chat", content=body, timeout=5)

    assert response.status_code == 400
    assert error in response.json()["error"]


def test_unknown_paths_and_methods(serve: ServerFactory) -> None:
    server = serve({"lab": Scripted([Text("hi")])})

    assert httpx.get(f"{server.url}/api/pull", timeout=5).status_code == 404
    assert httpx.get(f"{server.url}/api/chat", timeout=5).status_code == 405
    root = httpx.get(server.url, timeout=5)
    assert root.status_code == 200
    assert "not an LLM" in root.text


def test_models_registered_over_http_answer_at_once(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve()
    script = {"coder": ["first", {"run": "ls", "thought": "look"}, {"done": "ok"}]}
    registered = httpx.post(f"{server.url}/_lab/models", json=script, timeout=5)

    assert registered.json() == {"registered": ["coder:latest"]}
    client = connect(server)
    assert {m.model for m in client.list().models} == {"lab:latest", "coder:latest"}
    assert client.chat("coder", messages=HELLO).message.content == "first"
    bad = httpx.post(f"{server.url}/_lab/models", json={"coder": [{"bogus": 1}]}, timeout=5)
    assert bad.status_code == 400
    assert "unknown keys" in bad.json()["error"]


def test_the_request_log_says_which_model_and_how_many_messages(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve({"lab": Scripted([Text("hi")])})
    client = connect(server)
    client.list()
    seen = server.requests()[-1].seq
    conversation = [*HELLO, {"role": "assistant", "content": "hi"}, *HELLO]
    list(client.chat("lab", messages=conversation, tools=[RUN_TOOL], stream=True))

    [entry] = server.requests(after=seen)
    assert (entry.path, entry.model, entry.messages, entry.assistant_turns) == (
        "/api/chat",
        "lab",
        3,
        1,
    )
    assert (entry.stream, entry.tools, entry.status, entry.reply) == (True, 1, 200, "text")
    over_http = httpx.get(f"{server.url}/_lab/requests?after={seen}", timeout=5).json()
    assert over_http["requests"] == [entry.as_json()]


def test_any_model_embeds_and_texts_sharing_words_come_out_close(
    serve: ServerFactory, connect: ClientFactory
) -> None:
    server = serve({"lab": Scripted([Text("hi")])})
    client = connect(server)

    answer = client.embed("lab", ["a mesh of peers", "peers of a mesh", "ollama serves models"])
    same, reordered, other = answer.embeddings
    assert len(same) == 256
    assert abs(sum(x * x for x in same) - 1.0) < 1e-9  # scaled to length 1, as ollama does
    assert sum(a * b for a, b in zip(same, reordered, strict=True)) > 0.99  # the same words
    assert abs(sum(a * b for a, b in zip(same, other, strict=True))) < 0.5
    assert len(client.embed("lab", "one text", dimensions=64).embeddings[0]) == 64
    assert client.embeddings("lab", "a mesh of peers").embedding == same  # the older API
    assert client.embeddings("lab", "").embedding == []
    with pytest.raises(ollama.ResponseError) as missing:
        client.embed("nowhere", "text")
    assert missing.value.status_code == 404
    bad = httpx.post(f"{server.url}/api/embed", json={"model": "lab", "input": [1]}, timeout=5)
    assert bad.status_code == 400
    assert "input must be a string or a list of strings" in bad.json()["error"]
