"""The server's state, shared by its connection threads: the models and the request log."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from bzzz.lab.model.generative import Generative
from bzzz.lab.model.responders import Responder
from bzzz.lab.model.wire import CHAT_CAPABILITIES, KEEP_ALIVE, ModelCard, ModelInfo, canonical

Backend = Responder | Generative  # a script or playbook, or a model that writes its replies


class ModelRegistry:
    """Models by ollama name; registering a name again replaces its responder (and makes it
    the newest). A responder's `capabilities` attribute, where it has one, is what
    /api/show reports (an `Embedding` model's is ["embedding"])."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[Backend, ModelInfo]] = {}
        self._order: dict[str, int] = {}  # registration order: ties of modified_at
        self._registered = itertools.count(1)
        self._last_used: dict[str, datetime] = {}

    def register(self, name: str, responder: Backend) -> ModelInfo:
        if not name.strip():
            raise ValueError("a model name may not be empty")
        capabilities = tuple(getattr(responder, "capabilities", CHAT_CAPABILITIES))
        card = getattr(responder, "card", ModelCard())
        kind = type(responder).__name__
        info = ModelInfo(canonical(name), datetime.now(UTC), kind, capabilities, card)
        with self._lock:
            self._models[info.name] = (responder, info)
            self._order[info.name] = next(self._registered)
        return info

    def unregister(self, name: str) -> bool:
        with self._lock:
            self._last_used.pop(canonical(name), None)
            self._order.pop(canonical(name), None)
            return self._models.pop(canonical(name), None) is not None

    def get(self, name: str) -> tuple[Backend, ModelInfo] | None:
        with self._lock:
            return self._models.get(canonical(name))

    def infos(self) -> list[ModelInfo]:
        """Newest first, as ollama lists its models (by modification time, latest first)."""
        with self._lock:
            infos = [info for _, info in self._models.values()]
            return sorted(infos, key=lambda i: (i.modified_at, self._order[i.name]), reverse=True)

    def mark_used(self, info: ModelInfo) -> None:
        with self._lock:
            self._last_used[info.name] = datetime.now(UTC)

    def loaded(self) -> list[tuple[ModelInfo, datetime]]:
        """Models used within ollama's keep-alive time, as `/api/ps` lists them."""
        now = datetime.now(UTC)
        with self._lock:
            return [
                (self._models[name][1], used)
                for name, used in sorted(self._last_used.items())
                if name in self._models and now - used < KEEP_ALIVE
            ]


@dataclass(frozen=True)
class LoggedRequest:
    """One request, logged once the server has decided its reply (before any delay)."""

    method: str
    path: str
    status: int  # the status the reply has or will have
    client: str
    model: str | None = None  # as the client named it
    messages: int = 0  # for /api/generate: the system text and the prompt, if given
    assistant_turns: int = 0
    stream: bool | None = None
    format: str | None = None  # "json", "schema" or None
    tools: int = 0
    reply: str | None = None  # text, tool_call, http_error, stream_error or load
    prompt_eval_count: int | None = None  # the counts and reason of a reply's final chunk
    eval_count: int | None = None
    done_reason: str | None = None
    seq: int = 0  # set by the log: 1, 2, ...
    time: float = 0.0  # set by the log: epoch seconds

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """In memory, oldest first; the newest `limit` entries are kept."""

    def __init__(self, limit: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
        self._seq = 0
        self._limit = limit

    def add(self, entry: LoggedRequest) -> LoggedRequest:
        """Log `entry`, numbered and timed now (its own `seq` and `time` are ignored)."""
        with self._lock:
            self._seq += 1
            entry = replace(entry, seq=self._seq, time=time.time())
            self._entries.append(entry)
            del self._entries[: -self._limit]
            return entry

    def entries(self, after: int = 0) -> list[LoggedRequest]:
        with self._lock:
            return [entry for entry in self._entries if entry.seq > after]
