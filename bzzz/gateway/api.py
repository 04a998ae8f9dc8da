"""The ollama API as the gateway carries it: which endpoint goes where, and ollama's own
words for errors. Pure.
"""

from __future__ import annotations

import json
from enum import StrEnum

NDJSON = "application/x-ndjson"
JSON = "application/json; charset=utf-8"
VERSION = "0.6.3-bzzz"  # the ollama API version the gateway speaks


class Route(StrEnum):
    MODEL = "model"  # to whichever node has the request's model
    MERGED = "merged"  # this machine's answer and the mesh's, merged
    HERE = "here"  # answered by the gateway itself
    REFUSED = "refused"  # model administration: not over the mesh
    UNKNOWN = "unknown"


# Endpoints and the method each takes.
MODEL_ENDPOINTS = {
    "/api/chat": "POST",
    "/api/generate": "POST",
    "/api/embed": "POST",
    "/api/embeddings": "POST",
    "/api/show": "POST",
    # What ollama serves for OpenAI's and Anthropic's clients (agent CLIs): routed by
    # model like the rest; they stream server-sent events instead of NDJSON.
    "/v1/chat/completions": "POST",
    "/v1/responses": "POST",  # OpenAI's Responses API: all that Codex CLI speaks
    "/v1/completions": "POST",
    "/v1/embeddings": "POST",
    "/v1/messages": "POST",
}
OPENAI_MODELS = "/v1/models"  # answered here, from the mesh's merged /api/tags
MERGED_ENDPOINTS = {"/api/tags": "GET", "/api/ps": "GET"}
ADMIN = ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs")
# What a peer may ask of this node's model server over the mesh.
MESH_ENDPOINTS = {**MODEL_ENDPOINTS, **MERGED_ENDPOINTS}


def route(method: str, path: str) -> Route:
    if path in ("/", "/api/version") and method in ("GET", "HEAD"):
        return Route.HERE
    if path == OPENAI_MODELS and method == "GET":
        return Route.MERGED
    if MODEL_ENDPOINTS.get(path) == method:
        return Route.MODEL
    if MERGED_ENDPOINTS.get(path) == method:
        return Route.MERGED
    if path.startswith(ADMIN):
        return Route.REFUSED
    return Route.UNKNOWN


def model_of(body: bytes) -> str:
    """The request's model (`model`, or the legacy `name`), or "" if it names none."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    model = data.get("model") or data.get("name") or ""
    return model if isinstance(model, str) else ""


def canonical(model: str) -> str:
    name = model.strip().lower()
    return name if ":" in name else f"{name}:latest"


def error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def error_line(message: str, path: str = "") -> bytes:
    """An error after a stream has begun: ollama sends it as the last NDJSON line; on
    the OpenAI and Anthropic endpoints, as the last server-sent event, in their words."""
    if path == "/v1/messages":
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return f"event: error\ndata: {json.dumps(body)}\n\n".encode()
    if path.startswith("/v1/"):
        body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
        return f"data: {json.dumps(body)}\n\n".encode()
    return error(message) + b"\n"


ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 503: "overloaded_error"}


def shaped(path: str, status: int, body: bytes) -> bytes:
    """An error the gateway itself gives ({"error": message}, ollama's shape), in the
    shape of the API the path belongs to: OpenAI's or Anthropic's for /v1."""
    if not path.startswith("/v1/"):
        return body
    try:
        message = str(json.loads(body).get("error", "failed"))
    except (ValueError, AttributeError):
        return body
    kind = ERROR_TYPES.get(status, "api_error")
    if path == "/v1/messages":
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}
    ).encode()


def openai_models(tags: bytes) -> bytes:
    """`/v1/models` from a merged `/api/tags`: OpenAI's list, with the nodes that have
    each model."""
    try:
        models = json.loads(tags).get("models", [])
    except (ValueError, AttributeError):
        models = []
    return json.dumps(
        {
            "object": "list",
            "data": [
                {
                    "id": str(m.get("name") or m.get("model")),
                    "object": "model",
                    "created": 0,
                    "owned_by": "library",
                    "bzzz_nodes": m.get("bzzz_nodes", []),
                }
                for m in models
                if isinstance(m, dict) and (m.get("name") or m.get("model"))
            ],
        }
    ).encode()


def not_found(model: str) -> bytes:
    return error(f"model '{model}' not found")


BUSY = error("server busy, please try again.  maximum pending requests exceeded")
REFUSED = error(
    "model administration (pull, push, create, copy, delete, blobs) does not travel over"
    " the Bzzz mesh: run it against the ollama server of the machine concerned"
)


def unknown(method: str, path: str) -> bytes:
    return error(f"the Bzzz gateway does not carry {method} {path}")


def merge_models(lists: list[tuple[str, list[dict[str, object]]]], key: str) -> bytes:
    """`/api/tags` or `/api/ps` answers, merged: each model once (the first node's entry),
    with `bzzz_nodes` naming every node that has it."""
    merged: dict[str, dict[str, object]] = {}
    for node, models in lists:
        for model in models:
            name = str(model.get("name") or model.get("model") or "")
            if not name:
                continue
            entry = merged.setdefault(name, {**model, "bzzz_nodes": []})
            nodes = entry["bzzz_nodes"]
            if isinstance(nodes, list) and node not in nodes:
                nodes.append(node)
    return json.dumps({key: list(merged.values())}).encode()
