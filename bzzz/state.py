"""The node's view of its peers: names, latest capabilities, liveness. Pure: time is passed in.

A peer is known by its libp2p peer ID and speaks under one node name. The first
peer to use a name holds it while it is alive; another peer using that name is
refused (one node cannot speak for another). A name whose holder has died can
be taken by a new peer (a reinstalled machine with a new key).

A peer is dead after `dead_after` seconds of silence, or after three of its own
presence intervals if it announces a longer one (pings slow down as a mesh grows),
but never later than MAX_DEAD_AFTER: a peer cannot keep itself alive by claiming
a huge interval.

Times are monotonic seconds supplied by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bzzz.protocol import Capabilities, Message, PresencePing

MISSED_PINGS = 3
MAX_DEAD_AFTER = 300.0


class Observation(Enum):
    NEW = "new"  # first message from this peer
    REVIVED = "revived"  # a dead peer spoke again
    UPDATED = "updated"
    SPOOFED = "spoofed"  # the name belongs to another live peer; message ignored
    OWN = "own"  # our own message echoed back by pubsub
    ANONYMOUS = "anonymous"  # names no node, from a peer not yet known by name


@dataclass
class PeerRecord:
    peer_id: str
    node_id: str
    first_seen: float
    last_seen: float
    dead_after: float
    capabilities: Capabilities | None = None


@dataclass(frozen=True)
class PeerView:
    peer_id: str
    node_id: str
    alive: bool
    silence: float  # seconds since the last message
    capabilities: Capabilities | None


@dataclass(frozen=True)
class Sweep:
    died: list[PeerView]
    forgotten: list[PeerView]


class PeerTable:
    def __init__(
        self, own_peer_id: str, own_node_id: str, dead_after: float, forget_after: float
    ) -> None:
        if forget_after < dead_after:
            raise ValueError("forget_after must not be shorter than dead_after")
        self.own_peer_id = own_peer_id
        self.own_node_id = own_node_id
        self.dead_after = dead_after
        self.forget_after = forget_after
        self._peers: dict[str, PeerRecord] = {}
        self._holder: dict[str, str] = {own_node_id: own_peer_id}  # node name -> peer ID
        self._reported_dead: set[str] = set()

    def may_speak_for(self, peer_id: str, node_id: str, now: float) -> bool:
        """Whether `peer_id` may send messages naming `node_id`."""
        holder = self._holder.get(node_id)
        if holder is None or holder == peer_id:
            return True
        if holder == self.own_peer_id:
            return False
        return not self.is_alive(holder, now)

    def observe(self, peer_id: str, message: Message, now: float) -> Observation:
        if peer_id == self.own_peer_id:
            return Observation.OWN
        name = message.sender
        record = self._peers.get(peer_id)
        if name is None:  # a message that names no node still shows its peer is alive
            if record is None:
                return Observation.ANONYMOUS
            outcome = Observation.UPDATED if self.is_alive(peer_id, now) else Observation.REVIVED
            record.last_seen = max(record.last_seen, now)
            self._reported_dead.discard(peer_id)
            return outcome
        if not self.may_speak_for(peer_id, name, now):
            return Observation.SPOOFED
        if record is None:
            record = self._peers[peer_id] = PeerRecord(peer_id, name, now, now, self.dead_after)
            outcome = Observation.NEW
        else:
            outcome = Observation.UPDATED if self.is_alive(peer_id, now) else Observation.REVIVED
        if record.node_id != name and self._holder.get(record.node_id) == peer_id:
            del self._holder[record.node_id]  # the peer renamed itself
        previous_holder = self._holder.get(name)
        if previous_holder is not None and previous_holder != peer_id:
            # The old holder is dead (may_speak_for said so): forget it.
            self._peers.pop(previous_holder, None)
            self._reported_dead.discard(previous_holder)
        self._holder[name] = peer_id
        record.node_id = name
        record.last_seen = max(record.last_seen, now)
        if isinstance(message, Capabilities):
            record.capabilities = message
        elif isinstance(message, PresencePing) and message.interval_s is not None:
            announced = min(MAX_DEAD_AFTER, MISSED_PINGS * message.interval_s)
            record.dead_after = max(self.dead_after, announced)
        self._reported_dead.discard(peer_id)
        return outcome

    def is_alive(self, peer_id: str, now: float) -> bool:
        record = self._peers.get(peer_id)
        return record is not None and now - record.last_seen <= record.dead_after

    def get(self, peer_id: str) -> PeerRecord | None:
        return self._peers.get(peer_id)

    def peer_of(self, node_id: str) -> str | None:
        return self._holder.get(node_id)

    def live_peer_ids(self, now: float) -> list[str]:
        return sorted(peer_id for peer_id in self._peers if self.is_alive(peer_id, now))

    def views(self, now: float) -> list[PeerView]:
        return [
            self._view(record, now)
            for record in sorted(self._peers.values(), key=lambda r: r.node_id)
        ]

    def sweep(self, now: float) -> Sweep:
        """Report peers that died since the last sweep; forget peers dead for long."""
        died: list[PeerView] = []
        forgotten: list[PeerView] = []
        for peer_id, record in list(self._peers.items()):
            silence = now - record.last_seen
            if silence > max(self.forget_after, record.dead_after):
                forgotten.append(self._view(record, now))
                del self._peers[peer_id]
                if self._holder.get(record.node_id) == peer_id:
                    del self._holder[record.node_id]
                self._reported_dead.discard(peer_id)
            elif silence > record.dead_after and peer_id not in self._reported_dead:
                self._reported_dead.add(peer_id)
                died.append(self._view(record, now))
        return Sweep(died, forgotten)

    def _view(self, record: PeerRecord, now: float) -> PeerView:
        return PeerView(
            peer_id=record.peer_id,
            node_id=record.node_id,
            alive=self.is_alive(record.peer_id, now),
            silence=max(0.0, now - record.last_seen),
            capabilities=record.capabilities,
        )
