"""Routing each accepted message from another peer to the part of the node it concerns.

Runs on the trio thread, called by `Gossip` for every message that passed the topic
validators. Returns a drop reason when the peer table refuses the message after all
(a name that another live peer holds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from libp2p.peer.id import ID

from bzzz.node.membership import Membership
from bzzz.node.tasks import Tasks
from bzzz.protocol import (
    Capabilities,
    DropReason,
    Message,
    TaskBroadcast,
    TaskClaim,
    TaskResult,
)
from bzzz.state import Observation

log = logging.getLogger(__name__)

Listener = Callable[[ID, Message], None]


class Dispatcher:
    def __init__(
        self,
        membership: Membership,
        tasks: Tasks,
        *,
        on_capabilities: Callable[[], None],
        on_return: Callable[[ID], None],
        clock: Callable[[], float],
    ) -> None:
        self._membership = membership
        self._tasks = tasks
        self._on_capabilities = on_capabilities
        self._on_return = on_return
        self._clock = clock
        self.listeners: list[Listener] = []  # called with every accepted message

    def on_message(self, origin: ID, message: Message) -> DropReason | None:
        membership = self._membership
        outcome = membership.peers.observe(str(origin), message, self._clock())
        if outcome is Observation.OWN:
            return None
        if outcome is Observation.SPOOFED:
            return DropReason.SPOOFED
        claims = self._tasks.claims
        match message:
            case TaskBroadcast():
                self._tasks.heard(membership.node_name(str(origin)), message)
            case TaskClaim() if claims is not None:
                claims.heard_claim(message)
            case TaskResult() if claims is not None:
                claims.heard_result(message)
            case Capabilities():
                self._on_capabilities()
            case _:
                pass
        for listener in self.listeners:
            listener(origin, message)
        if outcome in (Observation.NEW, Observation.REVIVED):
            membership.newcomer.set()
            self._on_return(origin)  # it may know what this node missed, and vice versa
            state = "alive" if outcome is Observation.NEW else "alive again"
            log.info("peer %s (%s) is %s", membership.node_name(str(origin)), origin, state)
        return None
