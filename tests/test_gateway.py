"""The model gateway: the official ollama client, pointed at one node, uses the models of
the whole mesh. Real nodes in separate processes, each with its own model server."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest

from bzzz.lab.model import LabModelServer, Scripted, Text
from bzzz.lab.model.paced import Paced
from bzzz.lab.processes import NodeProcess, wait_for
from tests.conftest import NodeFactory, alive_names, start_all, wait_alive

TIMES = ("created_at", "total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def same(answer: Any) -> Any:
    """An answer without what differs from call to call (its times)."""
    data = answer.model_dump() if hasattr(answer, "model_dump") else dict(answer)
    return {k: v for k, v in data.items() if k not in TIMES}


def connected(node: NodeProcess) -> set[str]:
    report = node.status()
    return {p.node_id for p in report.peers if p.connected} if report else set()


def peer_models(node: NodeProcess, peer: str) -> list[str]:
    report = node.status()
    for view in report.peers if report else ():
        if view.node_id == peer and view.capabilities:
            return list(view.capabilities.get("models") or [])
    return []


@pytest.fixture
def servers() -> Iterator[dict[str, LabModelServer]]:
    """A model server per node: only C's has the model `only-c`."""
    made = {
        "a": LabModelServer(models={"lab-a": Scripted([Text("A answers")])}),
        "b": LabModelServer(models={"lab-b": Scripted([Text("B answers")])}),
        "c": LabModelServer(models={"only-c": Scripted([Text("C answers, through the mesh")])}),
    }
    with contextlib.ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server)
        yield made


def mesh(make_node: NodeFactory, servers: dict[str, LabModelServer]) -> dict[str, NodeProcess]:
    a = make_node("a", capabilities={"ollama_host": servers["a"].url})
    nodes = {
        "a": a,
        "b": make_node("b", [a.addr], capabilities={"ollama_host": servers["b"].url}),
        "c": make_node("c", [a.addr], capabilities={"ollama_host": servers["c"].url}),
    }
    start_all(*nodes.values())
    wait_alive(nodes["a"], {"b", "c"})
    wait_for(lambda: "only-c:latest" in peer_models(a, "c"), 20, "a to hear c's models")
    return nodes


def test_one_node_s_gateway_answers_with_another_node_s_model(
    make_node: NodeFactory, servers: dict[str, LabModelServer]
) -> None:
    nodes = mesh(make_node, servers)
    through_a = ollama.Client(host=nodes["a"].gateway_url, timeout=30)
    direct_c = ollama.Client(host=servers["c"].url, timeout=30)
    messages = [{"role": "user", "content": "Say hello"}]

    assert same(through_a.chat("only-c", messages)) == same(direct_c.chat("only-c", messages))
    streamed = list(through_a.chat("only-c", messages, stream=True))
    direct = list(direct_c.chat("only-c", messages, stream=True))
    assert [same(chunk) for chunk in streamed] == [same(chunk) for chunk in direct]
    assert len(streamed) > 1  # it streamed, chunk by chunk
    assert same(through_a.generate("only-c", "Say hello")) == same(
        direct_c.generate("only-c", "Say hello")
    )
    assert same(through_a.show("only-c")) == same(direct_c.show("only-c"))
    embedded = through_a.embed("only-c", ["a mesh of peers", "one pool of models"])
    assert same(embedded) == same(
        direct_c.embed("only-c", ["a mesh of peers", "one pool of models"])
    )
    assert len(embedded.embeddings) == 2
    assert (
        through_a.embeddings("only-c", "hello").embedding
        == direct_c.embeddings("only-c", "hello").embedding
    )
    served_by = httpx.post(
        f"{nodes['a'].gateway_url}/api/chat",
        json={"model": "only-c", "messages": messages, "stream": False},
        timeout=30,
    )
    assert served_by.headers["x-bzzz-node"] == "c"  # the node whose model answered
    assert through_a.chat("lab-a", messages).message.content == "A answers"  # its own model

    listed = {m.model: m for m in through_a.list().models}
    assert set(listed) >= {"lab-a:latest", "lab-b:latest", "only-c:latest"}
    raw = httpx.get(f"{nodes['a'].gateway_url}/api/tags", timeout=10).json()
    where = {m["name"]: m["bzzz_nodes"] for m in raw["models"]}
    assert where["only-c:latest"] == ["c"]
    assert where["lab-a:latest"] == ["a"]

    with pytest.raises(ollama.ResponseError) as missing:
        through_a.chat("nowhere", messages)
    assert missing.value.status_code == 404
    assert "model 'nowhere' not found" in str(missing.value)
    with pytest.raises(ollama.ResponseError) as refused:
        through_a.delete("only-c")
    assert refused.value.status_code == 403
    assert "does not travel over the Bzzz mesh" in str(refused.value)

    listing = subprocess.run(
        [sys.executable, "-m", "bzzz", "models", "--home", str(nodes["a"].home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[2:]}
    assert "c (0 calls)" in rows["only-c:latest"]
    assert "a (0 calls)" in rows["lab-a:latest"]

    report = nodes["a"].status_json()
    assert report is not None
    assert report["gateway"]["remote_calls"] >= 4
    served = nodes["c"].status_json()
    assert served is not None
    assert served["gateway"]["served"] >= 4
    assert json.dumps(report).count("only-c") >= 1  # a's view names where the model lives

    # C restarts. A's spare stream to C (opened while C's last answer streamed) belonged
    # to the old connection: the next call opens a fresh one, and C answers it.
    nodes["c"].stop()
    nodes["c"].start()
    a = nodes["a"]
    wait_for(lambda: "c" in connected(a), 30, "a to reconnect to c")
    # (it may have counted c dead meanwhile: then until c is alive again with its model)
    wait_for(lambda: "c" in alive_names(a), 30, "a to hear c again")
    # and its model: a restarted c's first capabilities may come before it read its models
    wait_for(lambda: "only-c:latest" in peer_models(a, "c"), 30, "a to see c's model again")
    assert through_a.chat("only-c", messages).message.content == "C answers, through the mesh"
    after = a.status_json()
    assert after is not None
    assert after["gateway"]["failovers"] == 0
    assert after["gateway"]["unavailable"] == report["gateway"]["unavailable"]


def test_a_call_survives_busy_and_dead_peers_and_a_client_that_leaves(
    make_node: NodeFactory,
) -> None:
    """B and C have the model `shared` (streaming a token every 50 ms) and serve one mesh
    call at a time; A and D do not have it."""
    paced = {name: Paced(tokens=120, interval=0.05) for name in ("b", "c")}
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(LabModelServer(models={"shared": model})).url
            for name, model in paced.items()
        }
        quick = {"gateway": {"idle_timeout": 3.0, "max_request_bytes": 65536}}
        a = make_node("a", **quick)
        nodes = {"a": a}
        for name in ("b", "c"):
            nodes[name] = make_node(
                name,
                [a.addr],
                capabilities={"ollama_host": urls[name]},
                gateway={"mesh_slots": 1},
            )
        nodes["d"] = make_node("d", [a.addr], **quick)
        start_all(*nodes.values())
        for caller in ("a", "d"):
            wait_alive(nodes[caller], {"b", "c"})
            wait_for(
                lambda c=caller: connected(nodes[c]) >= {"b", "c"},  # type: ignore[misc]
                30,
                f"{caller} to connect to the nodes with the model",
            )
            for server in ("b", "c"):
                wait_for(
                    lambda c=caller, s=server: "shared:latest" in peer_models(nodes[c], s),  # type: ignore[misc]
                    20,
                    f"{caller} to hear {server}'s models",
                )
        body = json.dumps({"model": "shared", "prompt": "count"}).encode()

        def stream(caller: str) -> Iterator[bytes]:
            with httpx.stream(
                "POST", f"{nodes[caller].gateway_url}/api/generate", content=body, timeout=30
            ) as response:
                assert response.status_code == 200
                yield from response.iter_lines()

        # A busy node sends a call to the other: A's stream takes one server's only slot;
        # D, which chose that server too, is turned away and served by the other.
        first = stream("a")
        next(first)
        serving = next(name for name, model in paced.items() if model.started == 1)
        other = "c" if serving == "b" else "b"
        second = stream("d")
        next(second)
        assert paced[other].started == 1

        # The client that leaves stops the generation at the serving node's model server.
        second.close()
        wait_for(lambda: paced[other].stopped_early == 1, 10, "the model to stop")

        # The serving node dies mid-stream: the client gets an error line, not a hang.
        nodes[serving].process.kill()  # type: ignore[union-attr]
        lines = list(first)
        assert lines, "the stream ended with nothing"
        assert "error" in json.loads(lines[-1]), lines[-1]

        # The next call goes to the node that is left.
        answer = httpx.post(
            f"{a.gateway_url}/api/generate",
            content=json.dumps({"model": "shared", "prompt": "count", "stream": False}),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"].startswith("tok0 tok1")
        assert paced[other].started == 2

        # An oversized request gets a clear error.
        huge = json.dumps({"model": "shared", "prompt": "x" * 100_000})
        refused = httpx.post(f"{a.gateway_url}/api/generate", content=huge, timeout=10)
        assert refused.status_code == 413
        assert refused.json() == {"error": "request too large"}
