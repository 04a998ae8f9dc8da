"""The model gateway's pure parts: where each endpoint goes, which node serves a model,
and merged model lists."""

from __future__ import annotations

import json

import pytest

from bzzz.gateway import api
from bzzz.gateway.api import Route
from bzzz.gateway.routing import ModelPeer, candidates, known_anywhere


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/", Route.HERE),
        ("GET", "/api/version", Route.HERE),
        ("POST", "/api/chat", Route.MODEL),
        ("POST", "/api/generate", Route.MODEL),
        ("POST", "/api/embed", Route.MODEL),
        ("POST", "/api/embeddings", Route.MODEL),
        ("POST", "/api/show", Route.MODEL),
        ("GET", "/api/tags", Route.MERGED),
        ("GET", "/api/ps", Route.MERGED),
        ("POST", "/api/pull", Route.REFUSED),
        ("DELETE", "/api/delete", Route.REFUSED),
        ("POST", "/api/blobs/sha256:abc", Route.REFUSED),
        ("GET", "/api/chat", Route.UNKNOWN),
        ("POST", "/v1/chat/completions", Route.MODEL),  # OpenAI's API, as ollama serves it
        ("POST", "/v1/messages", Route.MODEL),  # Anthropic's
        ("POST", "/v1/embeddings", Route.MODEL),
        ("GET", "/v1/models", Route.MERGED),
        ("GET", "/v1/chat/completions", Route.UNKNOWN),
        ("POST", "/v1/assistants", Route.UNKNOWN),
    ],
)
def test_each_endpoint_goes_where_it_belongs(method: str, path: str, route: Route) -> None:
    assert api.route(method, path) is route


def test_the_model_is_read_from_the_request() -> None:
    assert api.model_of(b'{"model": "qwen2.5-coder:7b"}') == "qwen2.5-coder:7b"
    assert api.model_of(b'{"name": "llama3"}') == "llama3"  # /api/show's older field
    assert api.model_of(b"not json") == ""
    assert api.model_of(b"[]") == ""


def peer(
    name: str,
    models: tuple[str, ...],
    *,
    slots: int = 2,
    in_flight: int = 0,
    latency_ms: float | None = None,
    connected: bool = True,
) -> ModelPeer:
    return ModelPeer(f"peer-{name}", name, models, slots, in_flight, latency_ms, connected)


def test_the_best_peer_is_connected_least_loaded_then_quickest() -> None:
    peers = [
        peer("far", ("m",), connected=False, in_flight=0),
        peer("loaded", ("m:latest",), in_flight=1, latency_ms=5.0),
        peer("slow", ("m",), latency_ms=80.0),
        peer("quick", ("M",), latency_ms=10.0),
        peer("other", ("x",)),
        peer("closed", ("m",), slots=0),
    ]
    order = [p.node_id for p in candidates("m", peers, {})]
    assert order == ["quick", "slow", "loaded", "far"]
    # A peer whose slots this node's own calls fill is left out; others are only ordered.
    assert [p.node_id for p in candidates("m", peers, {"peer-quick": 2})] == [
        "slow",
        "loaded",
        "far",
    ]
    assert known_anywhere("m", peers)
    assert not known_anywhere("y", peers)


def test_equal_peers_are_tried_in_the_same_order_everywhere() -> None:
    peers = [peer(n, ("m",)) for n in "abcdef"]
    first = candidates("m", peers, {})
    assert candidates("m", list(reversed(peers)), {}) == first


def test_model_lists_merge_and_name_where_each_model_lives() -> None:
    merged = json.loads(
        api.merge_models(
            [
                ("a", [{"name": "m:latest", "size": 1}, {"name": "a-only:latest"}]),
                ("c", [{"name": "m:latest", "size": 1}, {"model": "c-only:latest"}]),
            ],
            "models",
        )
    )
    where = {m.get("name") or m.get("model"): m["bzzz_nodes"] for m in merged["models"]}
    assert where == {"m:latest": ["a", "c"], "a-only:latest": ["a"], "c-only:latest": ["c"]}


def test_the_gateway_s_own_errors_speak_the_caller_s_api() -> None:
    said = api.not_found("nowhere")
    assert api.shaped("/api/chat", 404, said) == said  # ollama's own words
    openai_error = json.loads(api.shaped("/v1/chat/completions", 404, said))
    assert openai_error["error"]["message"] == "model 'nowhere' not found"
    assert openai_error["error"]["type"] == "not_found_error"
    anthropic_error = json.loads(api.shaped("/v1/messages", 503, api.BUSY))
    assert anthropic_error["type"] == "error"
    assert anthropic_error["error"]["type"] == "overloaded_error"
    assert api.error_line("gone", "/v1/messages").startswith(b"event: error\ndata: ")
    assert api.error_line("gone", "/v1/chat/completions").startswith(b'data: {"error"')
    assert api.error_line("gone", "/api/chat") == b'{"error": "gone"}\n'
