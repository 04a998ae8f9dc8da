"""What this node offers: whether it takes tasks (and why not), its free slots, the
market its claim machine ranks itself in, and the capabilities it publishes. Trio-owned.

Inputs arrive from the scheduler's jobs (capability readings), the workers' beats, peers'
capabilities and claims changing; each recomputes the offer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from bzzz.capabilities import Reading
from bzzz.claims.driver import ClaimDriver
from bzzz.claims.matching import Market, Offer
from bzzz.node import readiness
from bzzz.node.announcer import Announcer, Self
from bzzz.node.membership import Membership
from bzzz.node.readiness import Facts
from bzzz.node.status import Readiness
from bzzz.node.workforce import Workforce
from bzzz.protocol import Message
from bzzz.tasks.poller import Poller
from bzzz.work import WorkerBeat


class Offering:
    def __init__(
        self,
        *,
        peer_id: str,
        name: str,
        facts: Facts,
        announcer: Announcer,
        workforce: Workforce,
        membership: Membership,
        claims: ClaimDriver | None,
        poller: Poller | None,
        publish: Callable[[Message], Awaitable[None]],
    ) -> None:
        self._peer_id = peer_id
        self._name = name
        self.facts = facts
        self.announcer = announcer
        self.workforce = workforce
        self._membership = membership
        self._claims = claims
        self._poller = poller
        self._publish = publish
        self.readiness: Readiness = readiness.assess(facts)
        # The model gateway's load, (mesh slots, calls served now); None: no gateway.
        self.gateway_load: Callable[[], tuple[int, int]] | None = None
        self.remote_models = True  # claims.remote_models: claim tasks for the mesh's models
        # Whether this node is connected to a peer now: a peer's models count as reachable
        # through the gateway only then (its calls would otherwise wait on a dial).
        self.connected: Callable[[str], bool] = lambda _: True

    async def on_reading(self, reading: Reading) -> None:
        """A capability reading from the scheduler's thread."""
        self.facts = replace(self.facts, models=reading.models)
        await self.changed(reading)

    async def on_beat(self, beat: WorkerBeat) -> None:
        """A worker process says it is alive (and what it can do)."""
        known = self.facts.worker_threads, self.facts.worker_problems
        self.workforce.beat(beat)
        self.refresh()
        if (self.facts.worker_threads, self.facts.worker_problems) != known:
            await self.changed()

    def declined(self, reason: str) -> None:
        """A worker could not run a task because of a problem of this node."""
        self.workforce.declined(reason)
        self.refresh()

    async def changed(self, reading: Reading | None = None) -> None:
        """Recompute the offer and publish our capabilities if they changed enough."""
        self.refresh()
        message = self.announcer.capabilities(reading, self.own_state())
        if message is not None:
            await self._publish(message)

    def refresh(self) -> None:
        """Recompute whether this node takes tasks and what it offers the claim machine."""
        claims = self._claims
        reading = self.announcer.reading
        peers = self._membership.offers()
        # Other nodes' models, which this node reaches through its gateway (if it may), from
        # the peers it is connected to.
        reach = self.gateway_load is not None and self.remote_models
        mesh = (
            frozenset(m for o in peers if self.connected(o.peer_id) for m in o.models)
            if reach
            else frozenset()
        )
        self.facts = replace(
            self.facts,
            mesh_models=tuple(sorted(mesh)),
            worker_threads=self.workforce.threads(),
            worker_problems=self.workforce.problems(),
        )
        own = Offer(
            self._peer_id,
            reading.models if reading else (),
            reading.installed if reading else (),
            readiness.capacity(self.facts),
            self._name,
            self.gateway_load is not None,
        )
        if claims is not None:
            claims.set_market(Market(own, peers, mesh | set(own.models) if mesh else mesh))
        free = claims.book.free_slots() if claims is not None else 0
        self.readiness = readiness.assess(self.facts, free)

    def own_state(self) -> Self:
        claims = self._claims
        free = claims.book.free_slots() if claims is not None else None
        return Self(
            status="busy" if self.readiness.capacity and free == 0 else "idle",
            polls=self._poller.repositories() if self._poller is not None else (),
            slots=free,
            cannot_run=tuple(readiness.short_reasons(self.facts)),
            gateway=self.gateway_load() if self.gateway_load is not None else None,
        )
