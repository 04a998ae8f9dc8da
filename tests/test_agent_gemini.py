"""Gemini CLI as an executor: it speaks only Google's genai API, which the node's gateway
carries as ollama's chat. The real CLI (from npm, by scripts/setup) runs in a bubblewrap
sandbox whose only way out is the relay to a real node's gateway; the lab model server
behind it plays the sample playbook as the CLI's own tool calls; the local forge takes
the pull request."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx

from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import LabModelServer
from bzzz.lab.sample import SAMPLE_REPO
from tests.conftest import NodeFactory, start_all
from tests.test_agent import TOKEN, clone_branch, spec
from tests.test_agent import forge as forge  # noqa: PLC0414 - a fixture
from tests.test_agent_clis import installed, make_context
from tests.test_agent_clis import model as model  # noqa: PLC0414 - a fixture
from workers import agent


def test_gemini_cli_solves_the_issue_through_the_gateways_genai_api(
    make_node: NodeFactory, tmp_path: Path, forge: LocalForge, model: LabModelServer
) -> None:
    installed("gemini")
    node = make_node("a", capabilities={"ollama_host": model.url})
    start_all(node)
    listen = node.gateway_url.removeprefix("http://")
    context = make_context(tmp_path, forge, model, gateway_listen=listen)
    assert context.settings.model_url == node.gateway_url

    outcome = agent.run(replace(spec(1), agent="gemini"), context)
    assert outcome.succeeded, outcome.reason
    (pull,) = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).list_pull_requests(
        SAMPLE_REPO
    )
    assert "run by the agent CLI gemini" in pull.body
    assert "both tests pass" in pull.body
    commands = [e["command"] for e in context.audited if e["type"] == "command"]
    assert any("farewell" in command for command in commands), commands
    checkout = clone_branch(forge, pull.head.partition(":")[2], tmp_path / "check")
    assert 'return f"Goodbye, {name}!"' in (checkout / "hello.py").read_text()
    # the gateway asked the model server in ollama's own API, with the CLI's tools
    asked = [r for r in model.requests() if r.path == "/api/chat" and r.tools]
    assert len(asked) >= 4


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
