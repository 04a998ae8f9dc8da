"""The loop's model: the official ollama client against the configured server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx
import ollama

from workers.loop import REPLY_SCHEMA, ModelFailed, ModelReply, ModelUnreachable

GENERIC = "ollama"  # a task that names no model: any model the server has


class OllamaChat:
    def __init__(self, host: str, model: str, timeout: float) -> None:
        self.name = model
        self.host = host
        self._client = ollama.Client(host=host, timeout=timeout)

    def chat(self, messages: Sequence[Mapping[str, str]]) -> ModelReply:
        try:
            response = self._client.chat(
                model=self.name,
                messages=[dict(m) for m in messages],
                format=REPLY_SCHEMA,
                options={"temperature": 0},
                stream=False,
            )
        except ollama.ResponseError as exc:
            raise ModelFailed(
                f"{self.name} at {self.host}: {exc.error} ({exc.status_code})"
            ) from None
        except (ConnectionError, httpx.HTTPError) as exc:
            raise ModelUnreachable(f"{self.host}: {type(exc).__name__}: {exc}") from None
        tokens = (response.prompt_eval_count or 0) + (response.eval_count or 0)
        return ModelReply(response.message.content or "", tokens)


def choose_model(requested: str, configured: str, host: str, timeout: float) -> str:
    """The model to ask: the task's own, else the configured one, else the first the
    server lists. Raises ModelUnreachable or ModelFailed when it cannot tell."""
    if requested and requested != GENERIC:
        return requested
    if configured:
        return configured
    try:
        listed = ollama.Client(host=host, timeout=timeout).list()
    except ollama.ResponseError as exc:
        raise ModelFailed(f"{host}: {exc.error} ({exc.status_code})") from None
    except (ConnectionError, httpx.HTTPError) as exc:
        raise ModelUnreachable(f"{host}: {type(exc).__name__}: {exc}") from None
    names = sorted(m.model for m in listed.models if m.model)
    if not names:
        raise ModelFailed(f"{host} has no models; pull one or set agent.model")
    return names[0]
