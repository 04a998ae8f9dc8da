"""One benchmark node process: a full Bzzz node, or raw py-libp2p at the same settings.

Run by bench/gossip.py, driven over stdin/stdout with one JSON object per line:
  {"cmd": "status"}                         -> {"heard": N, "subscribed": N}
  {"cmd": "publish", "count": N, "rate": R} -> {"published": N} when done
  {"cmd": "received", "run": "ID"}          -> {"count": N, "latencies_ms": [...]}
  {"cmd": "quit"}

"bzzz" mode measures the whole receive path: GossipSub, the topic validator, decoding,
the peer table and a node listener. "raw" mode is the same host and GossipSub settings
(bzzz.network.host.build_stack) with a bare subscription and no validation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from bzzz.config import GossipSettings, NetworkSettings, load_settings
from bzzz.identity import load_identity
from bzzz.network.host import build_stack
from bzzz.node.wiring import build_node
from bzzz.protocol import Message, PresencePing, Topic, utc_now

TOPIC = Topic.PRESENCE_PING


class Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)

    def record(self, payload: dict[str, Any]) -> None:
        if "bench_run" in payload:
            self.latencies[payload["bench_run"]].append(
                (time.time() - payload["bench_sent"]) * 1000
            )


async def serve_commands(publish: Any, status: Any, recorder: Recorder, stop: trio.Event) -> None:
    stdin = trio.wrap_file(sys.stdin)
    async for line in stdin:
        command = json.loads(line)
        match command["cmd"]:
            case "status":
                reply = status()
            case "publish":
                interval = 1.0 / command["rate"]
                start = trio.current_time()
                for seq in range(command["count"]):
                    await trio.sleep_until(start + seq * interval)
                    await publish(
                        {"bench_run": command["run"], "bench_seq": seq, "bench_sent": time.time()}
                    )
                reply = {"published": command["count"]}
            case "received":
                latencies = recorder.latencies.get(command["run"], [])
                reply = {"count": len(latencies), "latencies_ms": latencies}
            case _:
                stop.set()
                return
        print(json.dumps(reply), flush=True)


async def run_bzzz(home: Path) -> None:
    settings = load_settings(home)
    node = build_node(settings, load_identity(settings.identity_path))
    parts = node.parts
    recorder = Recorder()

    def listen(origin: ID, message: Message) -> None:
        recorder.record(message.model_extra or {})

    parts.dispatcher.listeners.append(listen)

    async def publish(extra: dict[str, Any]) -> None:
        await parts.gossip.publish(PresencePing(node_id=node.name, timestamp=utc_now(), **extra))

    def status() -> dict[str, Any]:
        return {
            "heard": len(parts.membership.peers.live_peer_ids(node.clock())),
            "subscribed": len(parts.stack.pubsub.peer_topics.get(TOPIC, ())),
        }

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        print(json.dumps({"ready": str(node.peer_id)}), flush=True)
        nursery.start_soon(serve_commands, publish, status, recorder, stop)
        await stop.wait()
        node.stop()


async def run_raw(home: Path, port: int, peers: list[str]) -> None:
    key_pair = load_identity(home / "identity.key")
    # Same GossipSub settings as the Bzzz nodes of the benchmark (spam limit off in both).
    stack = build_stack(
        key_pair, NetworkSettings(dht=False), GossipSettings(max_messages_per_second=0), psk=None
    )
    host, pubsub = stack.host, stack.pubsub
    recorder = Recorder()
    async with (
        background_trio_service(pubsub),
        background_trio_service(stack.gossipsub),
        host.run([Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")]),
    ):
        await pubsub.wait_until_ready()
        subscription = await pubsub.subscribe(TOPIC)
        print(json.dumps({"ready": str(host.get_id())}), flush=True)

        async def drain() -> None:
            while True:
                msg = await subscription.get()
                recorder.record(json.loads(msg.data))

        async def connect(addr: str) -> None:
            info = info_from_p2p_addr(Multiaddr(addr))
            network = host.get_network()
            while not network.get_connections(info.peer_id):
                network.unblock_peer(info.peer_id)  # type: ignore[attr-defined]  # 60 s negative cache
                try:
                    with trio.move_on_after(3):
                        await host.connect(info)
                except Exception:
                    await trio.sleep(0.2)

        async def publish(extra: dict[str, Any]) -> None:
            while any(len(q) > 16 for q in pubsub.peer_queues.values()):  # same back-pressure
                await trio.sleep(0.005)
            await pubsub.publish(TOPIC, json.dumps(extra).encode())

        def status() -> dict[str, Any]:
            subscribed = len(pubsub.peer_topics.get(TOPIC, ()))
            return {"heard": subscribed, "subscribed": subscribed}

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            for addr in peers:
                nursery.start_soon(connect, addr)
            nursery.start_soon(serve_commands, publish, status, recorder, stop)
            await stop.wait()
            nursery.cancel_scope.cancel()
        await host.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["bzzz", "raw"])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--peers", default="")
    args = parser.parse_args()
    if args.mode == "bzzz":
        trio.run(run_bzzz, args.home)
    else:
        trio.run(run_raw, args.home, args.port, [p for p in args.peers.split(",") if p])


if __name__ == "__main__":
    main()
