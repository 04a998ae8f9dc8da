"""The loop's model: the official ollama client against the configured server, and which
of the server's models a task gets."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import ollama

from workers.ports import (
    ContextExceeded,
    ModelFailed,
    ModelReply,
    ModelSlow,
    ModelUnreachable,
)
from workers.replies import REPLY_SCHEMA

T = TypeVar("T")

GENERIC = ("", "any", "ollama")  # a task that names no model: any model the server has
CHAT = "completion"  # the capability ollama's /api/show reports for models that can chat
SERVED_BY = "x-bzzz-node"  # the header a Bzzz gateway names the answering node in
CONNECT_TIMEOUT = 10.0  # seconds to reach the server: longer is an unreachable server
DEFAULT_WINDOW = 2048  # a model whose server reports no context length: ollama's old default
MIN_REPLY_TOKENS = 128
# How servers say a prompt is longer than the context: llama.cpp's "the request exceeds
# the available context size", ollama's "input length exceeds the context length".
_CONTEXT_ERROR = re.compile(r"exceeds? (the )?(available )?context|context (size|length|window)")


@dataclass(frozen=True)
class ModelOptions:
    """What every request asks of the model (ollama's `options`)."""

    num_ctx: int = 8192  # the context window, in tokens
    num_predict: int = 1024  # the longest reply, in tokens
    temperature: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "num_ctx": self.num_ctx,
            "num_predict": self.num_predict,
            "temperature": self.temperature,
        }


def fit_options(
    num_ctx: int, num_predict: int, temperature: float, model_context: int | None
) -> ModelOptions:
    """The options for a model whose server reports `model_context` tokens of context:
    `num_ctx` where the model has that much (0: all the model has), and a reply limit
    of at most a quarter of the window, so that a small window keeps room for a prompt."""
    if num_ctx <= 0:
        window = model_context or DEFAULT_WINDOW
    else:
        window = min(num_ctx, model_context) if model_context else num_ctx
    reply = min(num_predict, max(MIN_REPLY_TOKENS, window // 4))
    return ModelOptions(window, reply, temperature)


class OllamaChat:
    """The loop's ChatModel: one ollama `/api/chat` request per call, not streamed, with
    the reply schema as `format` and the options. A call is given its own timeout (the
    smaller of `timeout` and what the loop has left); reaching the server may take at
    most CONNECT_TIMEOUT of it. A read that times out is a slow model (ModelSlow), a
    connection that fails an unreachable server (ModelUnreachable). Behind a Bzzz
    gateway, `served_by` counts the answers per node whose model gave them."""

    def __init__(
        self, host: str, model: str, timeout: float, options: ModelOptions | None = None
    ) -> None:
        self.name = model
        self.host = host
        self.timeout = timeout
        self.options = options or ModelOptions()
        self.served_by: Counter[str] = Counter()

    def _note_server(self, response: httpx.Response) -> None:
        node = response.headers.get(SERVED_BY)
        if node and response.is_success:
            self.served_by[node] += 1

    def chat(
        self, messages: Sequence[Mapping[str, str]], timeout: float | None = None
    ) -> ModelReply:
        limit = min(self.timeout, timeout) if timeout is not None else self.timeout
        limits = httpx.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
        started = time.monotonic()
        try:
            hooks = {"response": [self._note_server]}
            with ollama.Client(host=self.host, timeout=limits, event_hooks=hooks) as client:
                response = client.chat(
                    model=self.name,
                    messages=[dict(m) for m in messages],
                    format=REPLY_SCHEMA,
                    options=self.options.as_json(),
                    stream=False,
                )
        except ollama.ResponseError as exc:
            message = f"{self.name} at {self.host}: {exc.error} ({exc.status_code})"
            if _CONTEXT_ERROR.search(str(exc.error).lower()):
                raise ContextExceeded(message) from None
            raise ModelFailed(message) from None
        except httpx.ConnectTimeout as exc:
            raise ModelUnreachable(f"{self.host}: no connection within {limits.connect} s") from exc
        except httpx.TimeoutException:
            raise ModelSlow(f"{self.name} at {self.host}: no reply within {limit:.0f} s") from None
        except (ConnectionError, httpx.HTTPError) as exc:
            raise ModelUnreachable(f"{self.host}: {type(exc).__name__}: {exc}") from None
        return ModelReply(
            response.message.content or "",
            prompt_tokens=response.prompt_eval_count or 0,
            reply_tokens=response.eval_count or 0,
            cut=response.done_reason == "length",
            seconds=time.monotonic() - started,
            reply_seconds=(response.eval_duration or 0) / 1e9,
        )


@dataclass(frozen=True)
class ModelChoice:
    """The model a task gets, why, and the models passed over on the way (with why)."""

    name: str  # as the server lists it, e.g. "qwen2.5-coder:7b"
    reason: str
    passed_over: tuple[str, ...] = ()
    context_length: int | None = None  # the model's context, as /api/show reports it

    def why(self) -> str:
        skipped = f"; passed over {'; '.join(self.passed_over)}" if self.passed_over else ""
        return self.reason + skipped

    def describe(self) -> str:
        """One line for logs and progress: the name and why."""
        return f"{self.name} ({self.why()})"


def choose_model(
    requested: str, configured: str, host: str, timeout: float, *, recheck: float = 0.0
) -> ModelChoice:
    """The model to ask, of those the server at `host` has that can chat (ollama's
    `/api/show` reports "completion" among their capabilities; an embedding model does
    not): the task's own, else the configured `agent.model`, else the first the server
    lists, in the server's order. Raises ModelUnreachable when the server does not
    answer, ModelFailed when it has no model that can chat.

    `recheck`: seconds to wait before listing again when the task's own model is
    missing (a gateway's list lacks a peer's models while that peer seems gone for a
    moment; the task was claimed because the mesh had its model)."""
    limit = min(timeout, 60.0)  # listing and describing models is quick
    client = ollama.Client(
        host=host, timeout=httpx.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
    )
    listed = [m.model for m in _ask(host, client.list).models if m.model]
    candidates: list[tuple[str, str]] = []
    if requested.strip().lower() not in GENERIC:
        candidates.append((requested, "the task's model"))
        if recheck > 0 and not _listed_as(requested, listed):
            time.sleep(recheck)
            listed = [m.model for m in _ask(host, client.list).models if m.model]
    if configured:
        candidates.append((configured, "agent.model"))
    candidates += [(name, "the first model the server lists that can chat") for name in listed]
    passed_over: list[str] = []
    tried: set[str] = set()
    for wanted, why in candidates:
        # A model named but not listed may still be there: a gateway's list merges its
        # peers' within a few seconds, and a slow peer's may be missing; show is exact.
        name = _listed_as(wanted, listed) or _shown_as(host, client, wanted)
        if name is None:
            passed_over.append(f"{wanted} ({why}): not on the server")
            continue
        if name in tried:
            continue
        tried.add(name)
        problem, context = _describe(host, client, name)
        if problem is not None:
            passed_over.append(f"{name} ({why}): {problem}")
            continue
        return ModelChoice(name, why, tuple(passed_over), context)
    detail = "; ".join(passed_over) if passed_over else "it lists none"
    raise ModelFailed(
        f"{host} has no model that can chat ({detail}). Fix: pull one there"
        " (e.g. `ollama pull qwen2.5-coder`) or set agent.model"
    )


def _listed_as(wanted: str, listed: Sequence[str]) -> str | None:
    """`wanted` as the server lists it: ollama calls `name` `name:latest`."""
    key = _canonical(wanted)
    return next((name for name in listed if _canonical(name) == key), None)


def _shown_as(host: str, client: ollama.Client, wanted: str) -> str | None:
    """`wanted` as the server calls it, if the server can describe it though it did not
    list it."""
    try:
        _ask(host, lambda: client.show(wanted))
    except ModelFailed:
        return None
    return wanted if ":" in wanted.rsplit("/", 1)[-1] else f"{wanted}:latest"


def _canonical(name: str) -> str:
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _describe(host: str, client: ollama.Client, name: str) -> tuple[str | None, int | None]:
    """Why `name` cannot serve the loop's chat (None when it can), and its context length
    (None when the server does not say). A server that reports no capabilities (ollama
    before 0.6) is taken at its word that the model exists."""
    try:
        shown = _ask(host, lambda: client.show(name))
    except ModelFailed as exc:
        return f"the server cannot describe it: {exc}", None
    capabilities = list(shown.capabilities or ())
    if capabilities and CHAT not in capabilities:
        return f"cannot chat (capabilities: {', '.join(capabilities)})", None
    return None, context_length(shown.modelinfo or {})


def context_length(model_info: Mapping[str, Any]) -> int | None:
    """The context length in ollama's `model_info`: `<architecture>.context_length`."""
    architecture = model_info.get("general.architecture")
    value = model_info.get(f"{architecture}.context_length")
    if value is None:
        value = next((v for k, v in model_info.items() if k.endswith(".context_length")), None)
    try:
        length = int(value) if value is not None else 0
    except (TypeError, ValueError):
        return None
    return length if length > 0 else None


def _ask(host: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ollama.ResponseError as exc:
        raise ModelFailed(f"{host}: {exc.error} ({exc.status_code})") from None
    except (ConnectionError, httpx.HTTPError) as exc:
        raise ModelUnreachable(f"{host}: {type(exc).__name__}: {exc}") from None
