"""A hostile libp2p peer for tests: it publishes whatever bytes it is told to, unvalidated.

Run as `python -m tests.hostile_peer TARGET_MULTIADDR`. It joins every Bzzz topic
with correctly signed GossipSub messages (the signature is real; the content is
not), so the target's own validators are all that stand between it and the mesh.

Protocol on stdin/stdout, one JSON object per line:
  in:  {"topic": "...", "data": "<base64>"}  or  {"flush": true}
  out: {"ready": "<peer id>"} once connected; {"flushed": N} after each flush.
"""

from __future__ import annotations

import base64
import json
import sys

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from bzzz.config import GossipSettings, NetworkSettings
from bzzz.network.host import build_stack
from bzzz.protocol import Topic

PACE = 1 / 150  # stay under the target's per-peer spam limit


async def main(target: str) -> None:
    key_pair = create_new_key_pair()
    stack = build_stack(key_pair, NetworkSettings(dht=False), GossipSettings(), psk=None)
    host, pubsub = stack.host, stack.pubsub
    async with (
        background_trio_service(pubsub),
        background_trio_service(stack.gossipsub),
        host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]),
    ):
        await pubsub.wait_until_ready()
        for topic in Topic:
            await pubsub.subscribe(topic)
        peer = info_from_p2p_addr(Multiaddr(target))
        await host.connect(peer)
        with trio.fail_after(20):
            while not all(peer.peer_id in pubsub.peer_topics.get(t, ()) for t in Topic):
                await trio.sleep(0.05)
        print(json.dumps({"ready": str(host.get_id())}), flush=True)
        stdin = trio.wrap_file(sys.stdin)
        sent = 0
        async for line in stdin:
            command = json.loads(line)
            if command.get("flush"):
                print(json.dumps({"flushed": sent}), flush=True)
                continue
            while any(len(queue) > 8 for queue in pubsub.peer_queues.values()):
                await trio.sleep(0.005)
            await pubsub.publish(command["topic"], base64.b64decode(command["data"]))
            sent += 1
            await trio.sleep(PACE)
        await host.close()


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
