"""The mesh side of the settings: [node], [network], [gossip], [capabilities].

Each section checks itself (`check()` raises Invalid); what needs another section or
the home directory is checked by Settings.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass

from bzzz.addresses import AddressError, parse_bootstrap, parse_listen, parse_peer_id
from bzzz.config.base import Invalid, doc, positive
from bzzz.protocol import NODE_ID_PATTERN


@dataclass(frozen=True)
class NodeSettings:
    name: str = doc("This node's name in messages (node_id): letters, digits, '.', '_', '-'.")

    def check(self) -> None:
        if not re.fullmatch(NODE_ID_PATTERN, self.name):
            raise Invalid(
                "node.name",
                f"is {self.name!r}",
                "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )


@dataclass(frozen=True)
class NetworkSettings:
    listen: tuple[str, ...] = doc(
        "Multiaddrs to listen on (TCP; port 0 picks a free port).",
        default=("/ip4/0.0.0.0/tcp/4001",),
    )
    bootstrap: tuple[str, ...] = doc(
        "Peers to dial at start and whenever the link drops: /ip4/HOST/tcp/PORT/p2p/PEER_ID.",
        default=(),
    )
    mdns: bool = doc("Find peers on the local network by mDNS.", default=True)
    dht: bool = doc(
        "Find peers through the Kademlia DHT (peers of peers you never dialled).", default=True
    )
    namespace: str = doc(
        "Name of this mesh: peers advertise and look each other up under it in the DHT.",
        default="bzzz",
    )
    psk_file: str = doc(
        "Private network: file holding a 32-byte pre-shared key as 64 hex digits"
        " (go-libp2p swarm.key format accepted). Empty: no private network.",
        default="",
    )
    allow_peers: tuple[str, ...] = doc(
        "Peer IDs allowed to connect; empty allows any peer that can complete the handshake.",
        default=(),
    )
    reconnect_interval: float = doc(
        "Seconds between checks that redial lost bootstrap and known peers.", default=2.0
    )
    dial_timeout: float = doc("Seconds before a dial attempt is abandoned.", default=5.0)
    discovery_interval: float = doc(
        "Seconds between DHT lookups of other peers in the namespace (quicker while joining).",
        default=30.0,
    )

    def check(self) -> None:
        """Everything but network.psk_file, which Settings checks: it names a file in the
        home directory."""
        if not self.listen:
            raise Invalid(
                "network.listen", "is empty", 'listen on an address, e.g. "/ip4/0.0.0.0/tcp/4001"'
            )
        parsers: list[tuple[str, tuple[str, ...], typing.Callable[[str], object]]] = [
            ("network.listen", self.listen, parse_listen),
            ("network.bootstrap", self.bootstrap, parse_bootstrap),
            ("network.allow_peers", self.allow_peers, parse_peer_id),
        ]
        for key, values, parse in parsers:
            for value in values:
                try:
                    parse(value)
                except AddressError as exc:
                    raise Invalid(
                        key, f"has {value!r}: {exc}", "correct or remove that entry"
                    ) from None
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", self.namespace):
            raise Invalid(
                "network.namespace",
                f"is {self.namespace!r}",
                "use 1-64 letters, digits, '.', '_' or '-'",
            )
        positive("network.reconnect_interval", self.reconnect_interval)
        positive("network.dial_timeout", self.dial_timeout)
        positive("network.discovery_interval", self.discovery_interval)


@dataclass(frozen=True)
class GossipSettings:
    heartbeat_interval: int = doc(
        "GossipSub heartbeat, seconds (py-libp2p's 120 s default loses messages).", default=1
    )
    degree: int = doc(
        "Target number of mesh peers per topic (D). Each message reaches a node about D times"
        " (py-libp2p spends milliseconds on each), so a lab-sized mesh wants it small.",
        default=4,
    )
    degree_low: int = doc("Graft more peers below this many (D_lo).", default=3)
    degree_high: int = doc("Prune peers above this many (D_hi).", default=6)
    max_message_bytes: int = doc("Messages larger than this are dropped.", default=65536)
    max_messages_per_second: float = doc(
        "Per peer and topic, messages per second accepted before the rest are dropped as spam;"
        " 0 disables the limit (py-libp2p's default of 10 counts your own publishes too).",
        default=200.0,
    )
    publish_queue_high_water: int = doc(
        "Publishing waits while any peer's outbound queue (32 slots) holds more RPCs than this.",
        default=16,
    )

    def check(self) -> None:
        positive("gossip.heartbeat_interval", self.heartbeat_interval)
        positive("gossip.max_message_bytes", self.max_message_bytes)
        positive("gossip.publish_queue_high_water", self.publish_queue_high_water)
        if not 1 <= self.degree_low <= self.degree <= self.degree_high:
            raise Invalid(
                "gossip.degree",
                f"is {self.degree} with degree_low {self.degree_low}"
                f" and degree_high {self.degree_high}",
                "keep 1 <= degree_low <= degree <= degree_high",
            )
        if self.max_messages_per_second < 0:
            raise Invalid(
                "gossip.max_messages_per_second",
                f"is {self.max_messages_per_second}",
                "use 0 (no limit) or more",
            )
        if self.publish_queue_high_water >= 32:
            raise Invalid(
                "gossip.publish_queue_high_water",
                f"is {self.publish_queue_high_water}",
                "keep it below 32, the size of py-libp2p's per-peer queue",
            )


@dataclass(frozen=True)
class CapabilitySettings:
    check_interval: float = doc("Seconds between capability readings.", default=5.0)
    max_interval: float = doc(
        "Capabilities are published when they change and at least this often, seconds.",
        default=30.0,
    )
    load_change: float = doc(
        "A change of CPU, memory or GPU load by this many percentage points counts as a change.",
        default=25.0,
    )
    presence_interval: float = doc(
        "Seconds between presence pings in a small mesh (the shortest interval).", default=5.0
    )
    presence_per_peer: float = doc(
        "The presence interval grows to this many seconds per live peer, so that the pings"
        " a node hears per second stay bounded however large the mesh grows.",
        default=2.0,
    )
    peer_timeout: float = doc(
        "A peer silent this many seconds is marked dead (at least: a peer that pings less"
        " often gets three of its own intervals).",
        default=15.0,
    )
    ollama_host: str = doc(
        "Ollama server whose models this node offers.", default="http://127.0.0.1:11434"
    )
    ollama_timeout: float = doc(
        "Seconds to wait for the ollama server when listing models.", default=2.0
    )
    agent_clis: tuple[str, ...] = doc(
        "Agent command-line tools to look for on PATH.",
        default=("ollama", "gemini", "claude", "codex", "aider", "opencode", "goose", "qwen"),
    )
    agent_path: tuple[str, ...] = doc(
        "Directories searched for agent CLIs before PATH. scripts/setup installs them in"
        " the checkout's .tools/npm/bin and .tools/aider/bin. An agent CLI is offered only"
        " when Bzzz can drive it (`bzzz doctor` says why another is not).",
        default=(),
    )

    def check(self) -> None:
        for key in (
            "check_interval",
            "max_interval",
            "presence_interval",
            "presence_per_peer",
            "peer_timeout",
            "ollama_timeout",
        ):
            positive(f"capabilities.{key}", getattr(self, key))
        if self.peer_timeout <= self.presence_interval:
            raise Invalid(
                "capabilities.peer_timeout",
                f"is {self.peer_timeout}, not above presence_interval {self.presence_interval}",
                "make it at least twice the presence interval",
            )
        if not re.match(r"^https?://[^/\s]+", self.ollama_host):
            raise Invalid(
                "capabilities.ollama_host", f"is {self.ollama_host!r}", "use http://HOST:PORT"
            )


def host_port(listen: str) -> tuple[str, int]:
    """A loopback HOST:PORT setting's host (without brackets) and port."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def check_loopback(key: str, listen: str, empty: str) -> None:
    """A HOST:PORT setting that must be on loopback ("" allowed, meaning `empty`)."""
    if not listen:
        return
    match = re.fullmatch(r"(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})", listen)
    if match is None or not 0 <= int(match.group(2)) <= 65535:
        raise Invalid(
            key,
            f"is {listen!r}",
            f'use 127.0.0.1:PORT or [::1]:PORT (loopback only), or "" for {empty}',
        )


@dataclass(frozen=True)
class GatewaySettings:
    listen: str = doc(
        "The model gateway: ollama's API for the mesh's models, on loopback (HOST:PORT;"
        " 127.0.0.1 or [::1] only). Empty: no gateway, and no mesh model calls served.",
        default="127.0.0.1:11435",
    )
    mesh_slots: int = doc(
        "Peers' model calls this node serves from its model server at once; 0 serves none.",
        default=2,
    )
    first_byte_timeout: float = doc(
        "Seconds a model call may take to start answering (a model server loading a model"
        " takes a while) before the next node that has the model is tried.",
        default=120.0,
    )
    idle_timeout: float = doc(
        "Seconds a streaming answer may go silent before it ends with an error line.",
        default=60.0,
    )
    max_request_bytes: int = doc(
        "Largest model request the gateway takes, or serves for a peer.", default=4 * 1024 * 1024
    )

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.listen)

    def check(self) -> None:
        check_loopback("gateway.listen", self.listen, "no gateway")
        if self.mesh_slots < 0:
            raise Invalid("gateway.mesh_slots", f"is {self.mesh_slots}", "use 0 or more")
        positive("gateway.first_byte_timeout", self.first_byte_timeout)
        positive("gateway.idle_timeout", self.idle_timeout)
        if self.max_request_bytes < 1024:
            raise Invalid(
                "gateway.max_request_bytes", f"is {self.max_request_bytes}", "use 1024 or more"
            )


@dataclass(frozen=True)
class DashboardSettings:
    listen: str = doc(
        "The operator's window: the dashboard page and /metrics, on loopback (HOST:PORT;"
        " 127.0.0.1 or [::1] only; port 0 picks a free one). Empty: none.",
        default="127.0.0.1:8735",
    )
    token_file: str = doc(
        "A file, relative to the home, holding a token the window asks for (?token= or"
        ' Authorization: Bearer), for when an operator forwards its port; "" for none.',
        default="",
    )

    @property
    def host_port(self) -> tuple[str, int]:
        return host_port(self.listen)

    def check(self) -> None:
        check_loopback("dashboard.listen", self.listen, "none")
