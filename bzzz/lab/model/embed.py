"""The lab model server's embeddings: `/api/embed` and the older `/api/embeddings`.

Not a language model's embeddings, but vectors with their shape and the property clients
rely on: texts that share words come out close. Each word is hashed to one of DIMENSIONS
places, with a sign, and the vector is scaled to length 1, as ollama's `/api/embed`
returns it. Any model embeds, as with ollama. Pure.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from bzzz.lab.model.chat import BadRequest, model_name

DIMENSIONS = 256
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: tuple[str, ...]
    dimensions: int | None = None  # /api/embed may ask for fewer


def parse_embed(body: Any) -> EmbedRequest:
    """`/api/embed`: {model, input: str | [str], dimensions?, truncate?, options?}."""
    model = model_name(body)
    raw = body.get("input", [])
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
        raise BadRequest("invalid input type: input must be a string or a list of strings")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
        raise BadRequest("dimensions must be a positive integer")
    return EmbedRequest(model, tuple(inputs), dimensions)


def parse_embeddings(body: Any) -> EmbedRequest:
    """The older `/api/embeddings`: {model, prompt}."""
    model = model_name(body)
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    return EmbedRequest(model, (prompt,) if prompt else ())


def embed(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=5).digest()
        place = int.from_bytes(digest[:4], "big") % dimensions
        vector[place] += 1.0 if digest[4] & 1 else -1.0
    length = math.sqrt(sum(value * value for value in vector))
    return [value / length for value in vector] if length else vector


def embed_body(request: EmbedRequest, nanoseconds: int) -> dict[str, Any]:
    dimensions = min(request.dimensions or DIMENSIONS, DIMENSIONS)
    return {
        "model": request.model,
        "embeddings": [embed(text, dimensions) for text in request.inputs],
        "total_duration": nanoseconds,
        "load_duration": 0,
        "prompt_eval_count": sum(len(_WORD.findall(text)) for text in request.inputs),
    }


def embeddings_body(request: EmbedRequest) -> dict[str, Any]:
    """The older answer: one vector, empty for an empty prompt."""
    return {"embedding": embed(request.inputs[0]) if request.inputs else []}
