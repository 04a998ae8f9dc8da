"""OpenAI's and Anthropic's APIs, as ollama serves them to agent CLIs: the official
`openai` and `anthropic` Python clients, pointed at one node's gateway, use a model that
only a peer has, whole and streamed, with tool calls; errors come in each API's words.
The lab model server answers both APIs from its scripts (first alone, then through the
mesh)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import anthropic
import openai
import pytest

from bzzz.lab.model import LabModelServer, Scripted, Text
from bzzz.lab.model.steps import ToolCall
from bzzz.lab.processes import wait_for
from tests.conftest import NodeFactory, start_all, wait_alive
from tests.test_gateway import peer_models

TOOL = {
    "type": "function",
    "function": {
        "name": "write_file",
        "description": "Write a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
}
SCRIPT = [ToolCall("write_file", {"path": "hello.py"}), Text("Wrote hello.py with farewell().")]


@pytest.fixture
def servers() -> Iterator[dict[str, LabModelServer]]:
    made = {
        "a": LabModelServer(models={"lab-a": Scripted([Text("A answers")])}),
        "b": LabModelServer(models={"coder": Scripted(SCRIPT)}),
    }
    with contextlib.ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server)
        yield made


def converse(base: str) -> None:
    """Both clients, whole and streamed, against `base` (a model server or a gateway)."""
    oa = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=30)
    asked = [{"role": "user", "content": "Add farewell() to hello.py"}]
    first = oa.chat.completions.create(model="coder", messages=asked, tools=[TOOL])  # type: ignore[arg-type, list-item]
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "write_file"  # type: ignore[union-attr]
    assert first.choices[0].finish_reason == "tool_calls"
    answered = [
        *asked,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "ok"},
    ]
    second = oa.chat.completions.create(model="coder", messages=answered)  # type: ignore[arg-type]
    assert second.choices[0].message.content == "Wrote hello.py with farewell()."
    streamed = oa.chat.completions.create(model="coder", messages=answered, stream=True)  # type: ignore[arg-type]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    assert text == "Wrote hello.py with farewell()."
    with pytest.raises(openai.NotFoundError, match="model 'nowhere' not found"):
        oa.chat.completions.create(model="nowhere", messages=asked)  # type: ignore[arg-type]
    # OpenAI's Responses API (all that Codex CLI speaks): a function call, then the text.
    tools = [{"type": "function", **TOOL["function"]}]  # type: ignore[dict-item]
    called = oa.responses.create(model="coder", input=asked, tools=tools)  # type: ignore[arg-type]
    (function_call,) = [item for item in called.output if item.type == "function_call"]
    assert function_call.name == "write_file"  # type: ignore[union-attr]
    replied = [
        *asked,
        function_call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": function_call.call_id, "output": "ok"},  # type: ignore[union-attr]
    ]
    assert oa.responses.create(model="coder", input=replied).output_text == SCRIPT[1].content  # type: ignore[arg-type, union-attr]
    with oa.responses.stream(model="coder", input=replied) as events:  # type: ignore[arg-type]
        assert events.get_final_response().output_text == SCRIPT[1].content  # type: ignore[union-attr]
    assert "coder:latest" in {model.id for model in oa.models.list()}

    an = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0, timeout=30)
    tool = {
        "name": "write_file",
        "description": "Write a file",
        "input_schema": TOOL["function"]["parameters"],
    }  # type: ignore[index]
    said = an.messages.create(model="coder", max_tokens=200, messages=asked, tools=[tool])  # type: ignore[arg-type, list-item]
    assert said.stop_reason == "tool_use"
    (used,) = [block for block in said.content if block.type == "tool_use"]
    assert (used.name, used.input) == ("write_file", {"path": "hello.py"})  # type: ignore[union-attr]
    after = [
        *asked,
        {"role": "assistant", "content": [used.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": used.id, "content": "ok"}],
        },  # type: ignore[union-attr]
    ]
    with an.messages.stream(model="coder", max_tokens=200, messages=after) as stream:  # type: ignore[arg-type]
        assert stream.get_final_text() == "Wrote hello.py with farewell()."
    with pytest.raises(anthropic.NotFoundError, match="model 'nowhere' not found"):
        an.messages.create(model="nowhere", max_tokens=10, messages=asked)  # type: ignore[arg-type]


def test_the_lab_model_server_speaks_openai_and_anthropic(
    servers: dict[str, LabModelServer],
) -> None:
    converse(servers["b"].url)


def test_a_gateway_carries_them_to_the_node_that_has_the_model(
    make_node: NodeFactory, servers: dict[str, LabModelServer]
) -> None:
    a = make_node("a", capabilities={"ollama_host": servers["a"].url})
    b = make_node("b", [a.addr], capabilities={"ollama_host": servers["b"].url})
    start_all(a, b)
    wait_alive(a, {"b"})
    wait_for(lambda: "coder:latest" in peer_models(a, "b"), 20, "a to hear b's models")
    converse(a.gateway_url)
    served = openai.OpenAI(base_url=f"{a.gateway_url}/v1", api_key="unused", max_retries=0)
    raw = served.chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-bzzz-node"] == "b"  # the answer came from b's model, over the mesh
    listed = served.models.list().model_dump()["data"]
    assert {"coder:latest": ["b"]}.items() <= {m["id"]: m["bzzz_nodes"] for m in listed}.items()
