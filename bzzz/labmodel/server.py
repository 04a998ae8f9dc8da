"""`LabModelServer`: an ollama-compatible HTTP server in this process, for tests and the lab."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import TracebackType

from bzzz.labmodel.app import LabModelApp
from bzzz.labmodel.httpd import LabHTTPServer
from bzzz.labmodel.registry import LoggedRequest, ModelRegistry, RequestLog
from bzzz.labmodel.responders import Responder, Scripted, sample_playbook
from bzzz.labmodel.steps import Reply
from bzzz.labmodel.wire import ModelInfo

log = logging.getLogger(__name__)

LAB_MODEL = "lab"


def default_models() -> dict[str, Responder]:
    """The lab's model: `lab`, which plays the sample repository's playbook."""
    return {LAB_MODEL: sample_playbook()}


class LabModelServer:
    """ollama's HTTP API on `host:port` (0: a free port), answered by scripted responders.

    It is not a language model: every reply comes from a `Responder` (a script or a
    playbook). `models` maps model names to responders; None serves `default_models()`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Mapping[str, Responder] | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self._models = ModelRegistry()
        self._requests = RequestLog()
        self._stopping = threading.Event()
        for name, responder in (default_models() if models is None else models).items():
            self._models.register(name, responder)
        self._server: LabHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> LabModelServer:
        """Listen and serve in background threads; returns once the socket accepts."""
        if self._server is not None:
            raise RuntimeError("this lab model server is running already")
        self._stopping.clear()
        app = LabModelApp(self._models, self._requests, self._stopping)
        self._server = LabHTTPServer((self.host, self._port), app.handle)
        self._thread = self._server.serve_in_background(f"labmodel-{self.port}")
        return self

    def stop(self) -> None:
        """Stop serving, end scripted delays, close every connection. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        if not server.stop_serving(thread):
            log.warning("lab model server on port %s: connections still busy", self.port)
        self._server = self._thread = None

    def __enter__(self) -> LabModelServer:
        return self if self._server is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the lab model server is not running; start() it first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """What to give `ollama.Client(host=...)` or the node's `ollama_host`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def register(self, name: str, responder: Responder) -> ModelInfo:
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
