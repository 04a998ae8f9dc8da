"""The loop's model: the official ollama client against the configured server, and which
of the server's models a task gets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx
import ollama

from workers.loop import REPLY_SCHEMA, ModelFailed, ModelReply, ModelUnreachable

T = TypeVar("T")

GENERIC = ("", "any", "ollama")  # a task that names no model: any model the server has
CHAT = "completion"  # the capability ollama's /api/show reports for models that can chat


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


@dataclass(frozen=True)
class ModelChoice:
    """The model a task gets, why, and the models passed over on the way (with why)."""

    name: str  # as the server lists it, e.g. "qwen2.5-coder:7b"
    reason: str
    passed_over: tuple[str, ...] = ()

    def why(self) -> str:
        skipped = f"; passed over {'; '.join(self.passed_over)}" if self.passed_over else ""
        return self.reason + skipped

    def describe(self) -> str:
        """One line for logs and progress: the name and why."""
        return f"{self.name} ({self.why()})"


def choose_model(requested: str, configured: str, host: str, timeout: float) -> ModelChoice:
    """The model to ask, of those the server at `host` has that can chat (ollama's
    `/api/show` reports "completion" among their capabilities; an embedding model does
    not): the task's own, else the configured `agent.model`, else the first the server
    lists, in the server's order. Raises ModelUnreachable when the server does not
    answer, ModelFailed when it has no model that can chat."""
    client = ollama.Client(host=host, timeout=timeout)
    listed = [m.model for m in _ask(host, client.list).models if m.model]
    candidates: list[tuple[str, str]] = []
    if requested.strip().lower() not in GENERIC:
        candidates.append((requested, "the task's model"))
    if configured:
        candidates.append((configured, "agent.model"))
    candidates += [(name, "the first model the server lists that can chat") for name in listed]
    passed_over: list[str] = []
    tried: set[str] = set()
    for wanted, why in candidates:
        name = _listed_as(wanted, listed)
        if name is None:
            passed_over.append(f"{wanted} ({why}): not on the server")
            continue
        if name in tried:
            continue
        tried.add(name)
        problem = _cannot_chat(host, client, name)
        if problem is not None:
            passed_over.append(f"{name} ({why}): {problem}")
            continue
        return ModelChoice(name, why, tuple(passed_over))
    detail = "; ".join(passed_over) if passed_over else "it lists none"
    raise ModelFailed(
        f"{host} has no model that can chat ({detail}). Fix: pull one there"
        " (e.g. `ollama pull qwen2.5-coder`) or set agent.model"
    )


def _listed_as(wanted: str, listed: Sequence[str]) -> str | None:
    """`wanted` as the server lists it: ollama calls `name` `name:latest`."""
    key = _canonical(wanted)
    return next((name for name in listed if _canonical(name) == key), None)


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _cannot_chat(host: str, client: ollama.Client, name: str) -> str | None:
    """Why `name` cannot serve the loop's chat, or None when it can. A server that reports
    no capabilities (ollama before 0.6) is taken at its word that the model exists."""
    try:
        shown = _ask(host, lambda: client.show(name))
    except ModelFailed as exc:
        return f"the server cannot describe it: {exc}"
    capabilities = list(shown.capabilities or ())
    if not capabilities or CHAT in capabilities:
        return None
    return f"cannot chat (capabilities: {', '.join(capabilities)})"


def _ask(host: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ollama.ResponseError as exc:
        raise ModelFailed(f"{host}: {exc.error} ({exc.status_code})") from None
    except (ConnectionError, httpx.HTTPError) as exc:
        raise ModelUnreachable(f"{host}: {type(exc).__name__}: {exc}") from None
