"""`LabModelServer`: an ollama-compatible HTTP server in this process, for tests and the lab."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from bzzz.lab.httpserver import BackgroundServer
from bzzz.lab.model.app import LabModelApp
from bzzz.lab.model.httpd import LabHTTPServer
from bzzz.lab.model.registry import Backend, LoggedRequest, ModelRegistry, RequestLog
from bzzz.lab.model.responders import Scripted, sample_playbook
from bzzz.lab.model.steps import Reply
from bzzz.lab.model.wire import ModelInfo

LAB_MODEL = "lab"


def default_models() -> dict[str, Backend]:
    """The lab's model: `lab`, which plays the sample repository's playbook."""
    return {LAB_MODEL: sample_playbook()}


class LabModelServer(BackgroundServer):
    """ollama's HTTP API on `host:port` (0: a free port), answered by its models.

    A model is scripted (a `Responder`: a script or a playbook, not a language model) or
    `Generative`: a real one, such as a GGUF file run by llama.cpp
    (`bzzz.lab.model.llama`). `models` maps model names to them; None serves
    `default_models()`. `url` is what to give `ollama.Client(host=...)` or a node's
    `ollama_host`.
    """

    kind = "lab model server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Mapping[str, Backend] | None = None,
    ) -> None:
        super().__init__(host, port)
        self._models = ModelRegistry()
        self._requests = RequestLog()
        self._stopping_event = threading.Event()
        for name, responder in (default_models() if models is None else models).items():
            self._models.register(name, responder)

    def _listen(self) -> LabHTTPServer:
        self._stopping_event.clear()
        app = LabModelApp(self._models, self._requests, self._stopping_event)
        return LabHTTPServer((self.host, self._port), app.handle)

    def _stopping(self) -> None:
        """Scripted delays end now, so that their connections can close."""
        self._stopping_event.set()

    def register(self, name: str, responder: Backend) -> ModelInfo:
        """Serve `responder` as model `name` (replacing any model of that name)."""
        return self._models.register(name, responder)

    def register_script(self, name: str, steps: list[Reply]) -> ModelInfo:
        return self._models.register(name, Scripted(steps))

    def unregister(self, name: str) -> bool:
        return self._models.unregister(name)

    def models(self) -> list[ModelInfo]:
        return self._models.infos()

    def requests(self, after: int = 0) -> list[LoggedRequest]:
        """The requests answered or being answered, oldest first (`after`: a `seq` seen)."""
        return self._requests.entries(after)
