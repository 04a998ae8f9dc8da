"""Building the libp2p stack: TCP + Noise (only) + yamux, GossipSub with strict signing.

py-libp2p's defaults are wrong for Bzzz in ways that silently lose messages
(see ../shared/notes/py-libp2p-0.8.1.md); every parameter that matters is set
here on purpose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from bzzz.config import GossipSettings, NetworkSettings
from bzzz.protocol import Topic

# py-libp2p's yamux answers every read with a WINDOW_UPDATE frame (one more encrypted
# write per message received); "0" batches updates at half the window, as go-yamux
# does. py-libp2p reads this tuning from the environment.
os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")


async def _never() -> None:
    return None


@dataclass
class Stack:
    host: IHost
    pubsub: Pubsub
    gossipsub: GossipSub
    dht: KadDHT | None


def build_stack(
    key_pair: KeyPair, network: NetworkSettings, gossip: GossipSettings, psk: str | None
) -> Stack:
    """Create (not start) the host, pubsub router and DHT of one node."""
    host = new_host(
        key_pair=key_pair,
        # Noise only: new_host() otherwise also offers TLS, SECIO and plaintext.
        sec_opt={
            TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(
                key_pair, noise_privkey=create_x25519_key_pair().private_key
            )
        },
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        psk=psk,
        connection_config=ConnectionConfig(
            dial_timeout=network.dial_timeout,
            outbound_upgrade_timeout=network.dial_timeout,
            inbound_upgrade_timeout=network.dial_timeout,
        ),
        # Our LAN peers are reachable at their listen addresses; addresses observed
        # through identify are ephemeral outbound ports, useless to dial.
        disable_identify_address_discovery=True,
    )
    swarm = host.get_network()
    # Bzzz's Dialer owns dialling. One quick try per dial: it retries itself. And
    # py-libp2p's AutoConnector would dial every address in the peerstore (DHT
    # results included, refused peers too) until it holds 150 connections.
    swarm.retry_config = RetryConfig(max_retries=0)  # type: ignore[attr-defined]
    swarm.auto_connector.maybe_connect = _never  # type: ignore[attr-defined]
    gossipsub = GossipSub(
        # GossipSub v1.1: v1.2 adds an IDONTWANT control message to every mesh peer
        # for every message received, a bandwidth saving for large messages that
        # costs small ones (all of Bzzz's) more CPU than it saves.
        protocols=[PROTOCOL_ID_V11],
        degree=gossip.degree,
        degree_low=gossip.degree_low,
        degree_high=gossip.degree_high,
        heartbeat_interval=gossip.heartbeat_interval,
        heartbeat_initial_delay=0.1,
        # Adaptive gossip stretches the heartbeat to 30-60 s when it thinks the
        # network is unhealthy, which is exactly when a small mesh needs it fast.
        adaptive_gossip_enabled=False,
        spam_protection_enabled=gossip.max_messages_per_second > 0,
        max_messages_per_topic_per_second=gossip.max_messages_per_second or 10.0,
        # All lab peers may share one IP; IP diversity grafting only churns the mesh.
        eclipse_protection_enabled=False,
    )
    pubsub = Pubsub(
        host,
        gossipsub,
        strict_signing=True,
        max_inbound_rpc_size=max(4 * gossip.max_message_bytes, 256 * 1024),
        allowed_topics={str(topic) for topic in Topic},
    )
    dht = KadDHT(host, DHTMode.SERVER) if network.dht else None
    return Stack(host=host, pubsub=pubsub, gossipsub=gossipsub, dht=dht)
