"""Google's genai API (all that Gemini CLI speaks), carried by a real node's gateway as
ollama's chat to the lab model server: whole, streamed, counted, and its errors in
genai's words. Gemini CLI itself solving a task through it: tests/test_agent_clis.py."""

from __future__ import annotations

import json

import httpx

from bzzz.gateway import genai
from bzzz.lab.model import LabModelServer
from tests.conftest import NodeFactory, start_all
from tests.test_agent import forge as forge  # noqa: PLC0414 - a fixture
from tests.test_agent_clis import model as model  # noqa: PLC0414 - a fixture


def test_the_gateway_answers_genai_whole_streamed_and_in_its_error_shape(
    make_node: NodeFactory, model: LabModelServer
) -> None:
    node = make_node("a", capabilities={"ollama_host": model.url})
    start_all(node)
    base = f"{node.gateway_url}/v1beta/models"
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Add farewell() next to greet()"}]}],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "run_shell_command",
                        "parametersJsonSchema": {
                            "type": "object",
                            "properties": {"command": {"type": "string"}},
                        },
                    }
                ]
            }
        ],
    }
    whole = httpx.post(f"{base}/lab:generateContent", json=body, timeout=30).json()
    (part,) = whole["candidates"][0]["content"]["parts"]
    assert part["functionCall"] == {
        "name": "run_shell_command",
        "args": {"command": "cat hello.py test_hello.py"},
    }
    with httpx.stream("POST", f"{base}/lab:streamGenerateContent?alt=sse", json=body) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in sse.iter_lines() if line.startswith("data: ")]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "usageMetadata" in events[-1]
    missing = httpx.post(f"{base}/nowhere:generateContent", json=body, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"
    bad = httpx.post(f"{base}/lab:generateContent", content=b"[]", timeout=30)
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    counted = httpx.post(f"{base}/lab:countTokens", json=body, timeout=30).json()
    assert counted["totalTokens"] > 0


def test_an_answer_of_the_wrong_shape_becomes_an_empty_turn_not_an_error() -> None:
    hostile = {"message": "text", "done": True, "eval_count": "many"}
    assert genai.from_chat(hostile, "lab")["candidates"][0]["content"]["parts"] == []
    assert genai.from_chat(hostile, "lab")["usageMetadata"]["totalTokenCount"] == 0
    calls = {"message": {"content": "hi", "tool_calls": ["x", {"function": "y"}, {}]}}
    assert genai.from_chat(calls, "lab")["candidates"][0]["content"]["parts"] == [{"text": "hi"}]
