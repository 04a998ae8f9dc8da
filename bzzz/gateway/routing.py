"""Which node serves a model call. Pure.

This machine's model server when it has the model; otherwise the live peers that
advertise it and serve mesh calls, best first: connected ones before those that need a
dial, then fewest calls in flight, then the quickest to answer lately, then rendezvous
order (so that callers spread over equals the same way everywhere).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bzzz.gateway.api import canonical
from bzzz.rendezvous import score


@dataclass(frozen=True)
class ModelPeer:
    """A live peer's models and gateway load, from its capabilities."""

    peer_id: str
    node_id: str
    models: tuple[str, ...]
    slots: int  # mesh calls it serves at once (0: none)
    in_flight: int
    latency_ms: float | None = None  # how long it took to answer lately, as seen here
    connected: bool = True  # this node has a connection to it (others need a dial first)


def has_model(models: Iterable[str], model: str) -> bool:
    wanted = canonical(model)
    return any(canonical(m) == wanted for m in models)


def candidates(
    model: str, peers: Iterable[ModelPeer], own_calls: Mapping[str, int]
) -> list[ModelPeer]:
    """The peers that could serve `model`, best first. A peer's gossiped load may be
    stale, so it only orders them; a peer is left out when this node's own calls fill its
    slots (a peer that is busy all the same says so, and the next one is tried)."""
    able = [
        p for p in peers if own_calls.get(p.peer_id, 0) < p.slots and has_model(p.models, model)
    ]
    return sorted(
        able,
        key=lambda p: (
            not p.connected,
            max(p.in_flight, own_calls.get(p.peer_id, 0)),
            p.latency_ms if p.latency_ms is not None else float("inf"),
            -score(canonical(model), p.peer_id),
        ),
    )


def known_anywhere(model: str, peers: Iterable[ModelPeer]) -> bool:
    return any(has_model(p.models, model) for p in peers)
