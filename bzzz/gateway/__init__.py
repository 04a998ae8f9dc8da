"""The model gateway: ollama's API on loopback for the models of the whole mesh.

httpd     a small HTTP/1.1 server on trio (h11)
api       the endpoints, where each goes, and ollama's error words (pure)
routing   which node serves a model call (pure)
upstream  this machine's model server, through httpx
mesh      model calls between nodes over a libp2p stream protocol
streams   the streams for calls to peers, one kept ready per peer called lately
gateway   the gateway: local first, then the best peer, failing over before a byte
"""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.gateway.gateway import Gateway
from bzzz.gateway.mesh import MeshServer
from bzzz.gateway.upstream import Upstream


@dataclass
class GatewayParts:
    """A node's gateway: its HTTP face, its mesh service, and the model server behind."""

    gateway: Gateway
    mesh: MeshServer
    upstream: Upstream
    host: str
    port: int
    max_body: int
    bound: int = 0  # the port actually listened on, once up
