"""Publishing and receiving the Bzzz topics over GossipSub.

Validation runs as gossipsub topic validators, so a bad message is dropped
before it is delivered to us or forwarded to anyone else. Each drop is counted
by reason. Subscriptions are drained by their own tasks (py-libp2p's 32-slot
subscription channels drop on overflow) and publishing waits while any peer's
outbound queue is filling (py-libp2p drops RPCs from a full queue).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import trio
from libp2p.abc import ISubscriptionAPI
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from trio_typing import TaskStatus

from bzzz.protocol import DecodeError, DropReason, Message, Topic, decode, encode

log = logging.getLogger(__name__)

# Handles an accepted message; returns a drop reason if it is refused after all.
OnMessage = Callable[[ID, Message], DropReason | None]
SenderCheck = Callable[[ID, str], bool]

BACKPRESSURE_POLL = 0.005
BACKPRESSURE_PATIENCE = 2.0  # after this long one stuck peer no longer holds everyone back


class Gossip:
    def __init__(
        self,
        pubsub: Pubsub,
        *,
        max_message_bytes: int,
        queue_high_water: int,
        may_speak_for: SenderCheck,
        is_allowed: Callable[[ID], bool],
    ) -> None:
        self._pubsub = pubsub
        self._max_bytes = max_message_bytes
        self._high_water = queue_high_water
        self._may_speak_for = may_speak_for
        self._is_allowed = is_allowed
        self.dropped: Counter[str] = Counter()
        self._dropped_on: Counter[tuple[str, str]] = Counter()  # (topic, reason)
        self.received: Counter[str] = Counter()
        self.published: Counter[str] = Counter()

    def _validator(self, topic: Topic) -> Callable[[ID, rpc_pb2.Message], bool]:
        def validate(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            # py-libp2p does not catch exceptions from validators: never raise.
            try:
                return self._check(topic, forwarder, msg) is not None
            except Exception:
                log.exception("validator for %s failed", topic)
                self.dropped[DropReason.INTERNAL] += 1
                self._dropped_on[str(topic), str(DropReason.INTERNAL)] += 1
                return False

        return validate

    def _check(self, topic: Topic, forwarder: ID, msg: rpc_pb2.Message) -> Message | None:
        """Decode and vet one message; count and log a drop. Returns None if dropped."""
        origin = ID(msg.from_id)
        if not (self._is_allowed(origin) and self._is_allowed(forwarder)):
            self._drop(DropReason.SPOOFED, topic, origin, "peer not in network.allow_peers")
            return None
        try:
            message = decode(topic, msg.data, self._max_bytes)
        except DecodeError as exc:
            self._drop(exc.reason, topic, origin, exc.detail)
            return None
        if message.sender is not None and not self._may_speak_for(origin, message.sender):
            self._drop(DropReason.SPOOFED, topic, origin, f"speaks for {message.sender!r}")
            return None
        return message

    def _drop(self, reason: DropReason, topic: Topic, origin: ID, detail: str) -> None:
        self.dropped[reason] += 1
        self._dropped_on[str(topic), str(reason)] += 1
        log.debug("dropped %s message from %s: %s: %s", topic, origin, reason, detail[:200])

    def dropped_by_topic(self) -> dict[str, dict[str, int]]:
        by_topic: dict[str, dict[str, int]] = {}
        for (topic, reason), count in sorted(self._dropped_on.items()):
            by_topic.setdefault(topic, {})[reason] = count
        return by_topic

    async def run(
        self, on_message: OnMessage, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Subscribe to every topic and hand each accepted message to `on_message`
        until cancelled."""
        async with trio.open_nursery() as nursery:
            for topic in Topic:
                self._pubsub.set_topic_validator(topic, self._validator(topic), False)
                subscription = await self._pubsub.subscribe(topic)
                nursery.start_soon(self._drain, topic, subscription, on_message)
            task_status.started()

    async def _drain(
        self, topic: Topic, subscription: ISubscriptionAPI, on_message: OnMessage
    ) -> None:
        own_id = self._pubsub.my_id
        async for msg in subscription:
            origin = ID(msg.from_id)
            if origin == own_id:  # pubsub delivers our own publishes to us too
                continue
            # Validators ran already; decoding again is cheaper than caching
            # every validated message until it is delivered.
            try:
                message = decode(topic, msg.data, self._max_bytes)
            except DecodeError:  # pragma: no cover - the validator let it through
                continue
            self.received[topic] += 1
            try:
                refused = on_message(origin, message)
            except Exception:
                log.exception("handling %s message from %s failed", topic, origin)
                continue
            if refused is not None:
                self._drop(refused, topic, origin, "refused by its handler")

    async def publish(self, message: Message) -> None:
        await self._wait_for_queue_room()
        await self._pubsub.publish(message.topic, encode(message))
        self.published[message.topic] += 1

    async def _wait_for_queue_room(self) -> None:
        with trio.move_on_after(BACKPRESSURE_PATIENCE):
            while any(len(queue) > self._high_water for queue in self._pubsub.peer_queues.values()):
                await trio.sleep(BACKPRESSURE_POLL)

    def mesh_sizes(self) -> dict[str, int]:
        router = self._pubsub.router
        mesh = getattr(router, "mesh", {})
        return {str(topic): len(mesh.get(topic, ())) for topic in Topic}
