"""Lab model servers on loopback, always stopped, and real `ollama` clients for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import ollama
import pytest

from bzzz.lab.model import LabModelServer, Responder

ServerFactory = Callable[..., LabModelServer]
ClientFactory = Callable[..., ollama.Client]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """Start a server (default models unless `models` is given); stopped after the test."""
    servers: list[LabModelServer] = []

    def start(models: Mapping[str, Responder] | None = None) -> LabModelServer:
        server = LabModelServer(models=models)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def connect() -> Iterator[ClientFactory]:
    """A real ollama client for a server; always with a timeout (its default is none)."""
    clients: list[ollama.Client] = []

    def client(server: LabModelServer, timeout: float = 10.0) -> ollama.Client:
        made = ollama.Client(host=server.url, timeout=timeout)
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()  # type: ignore[no-untyped-call]
