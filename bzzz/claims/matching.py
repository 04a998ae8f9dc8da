"""Which peers may take a task, best first. Pure.

A task asks for a model (`qwen2.5-coder:7b`), a tool (`ollama`, `claude`), or nothing
in particular. A peer is eligible when it has what the task asks for and a free
worker slot. Eligible peers are ranked by weighted rendezvous hashing of the task ID
over their peer IDs: every peer computes the same order from the same view, the
order differs from task to task (so work spreads), and a peer with more free slots
is proportionally more likely to rank first. The best-ranked peer claims at once;
the others wait their rank's delay, so that normally only one peer ever claims.

A task may also ask for an agent CLI to run it (its `agent:NAME` label): then a peer
must offer that agent (it lists only the agents it can drive) as well as the model.
The claim machine carries both as one requirement string, `requirement(model, agent)`.

A model that a peer does not have but can reach through its model gateway (another
live node has it) makes the peer eligible too, ranked after every peer that has the
model itself (`claims.remote_models` switches this off).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace

from bzzz.rendezvous import ordered

ANY_MODEL = ("", "any", "ollama")  # a task that names no particular model
MAX_WEIGHT = 64  # a peer cannot claim the lion's share by announcing huge slot counts


@dataclass(frozen=True)
class Offer:
    """What a live peer offers, from its latest capabilities."""

    peer_id: str
    models: tuple[str, ...]
    installed: tuple[str, ...]
    free_slots: int
    node_id: str = ""  # the peer's node name: tasks name the nodes they failed on
    gateway: bool = False  # it reaches the mesh's models through its model gateway


@dataclass(frozen=True)
class Market:
    """Who could take tasks now, as this node last saw it: its own offer, whose
    `free_slots` is its capacity (the claim book subtracts the slots its claims use),
    and the offers of its live peers."""

    own: Offer
    peers: tuple[Offer, ...] = ()
    # The models some live node has, reachable through a gateway (empty: none counted).
    mesh_models: frozenset[str] = frozenset()


# This node's place among the peers that could take a task now (0 = best; None: it
# cannot), from the task's ID and model, the market, the nodes the task failed on and
# the slots this node's claims use. `position` is the real one; tests fix the place.
Ranking = Callable[[str, str, "Market", Collection[str], int], int | None]


def closed_market(peer_id: str = "", node_id: str = "") -> Market:
    """A market in which this node offers nothing: it never claims."""
    return Market(Offer(peer_id, (), (), 0, node_id))


AGENT_PREFIX = "agent:"


def requirement(model: str, agent: str | None = None) -> str:
    """What a task asks of a peer, as the claim machine carries it: the model, or
    `agent:NAME MODEL` for a task that asks for an agent CLI too."""
    return f"{AGENT_PREFIX}{agent} {model}" if agent else model


def split_requirement(wanted: str) -> tuple[str, str]:
    """The model and the agent CLI ("" for none) of a `requirement`."""
    if not wanted.startswith(AGENT_PREFIX):
        return wanted, ""
    agent, _, model = wanted[len(AGENT_PREFIX) :].partition(" ")
    return model, agent


def has_agent(wanted: str, offer: Offer) -> bool:
    """Whether the peer offers the agent CLI the requirement names (if any)."""
    _, agent = split_requirement(wanted)
    return not agent or agent in offer.installed


def can_run(wanted: str, offer: Offer) -> bool:
    """Whether the peer has what the requirement asks for: its agent CLI, if any, and
    the model itself."""
    model, _ = split_requirement(wanted)
    return has_agent(wanted, offer) and _has_model(model, offer)


def _has_model(model: str, offer: Offer) -> bool:
    wanted = _canonical(model)
    if wanted in ANY_MODEL:
        return "ollama" in offer.installed or bool(offer.models)
    if wanted in (_canonical(m) for m in offer.models):
        return True
    return wanted in offer.installed  # an agent CLI: claude, gemini, ...


def rank(
    task_id: str, model: str, offers: Iterable[Offer], mesh_models: Collection[str] = ()
) -> list[str]:
    """Peer IDs of the eligible peers, best first: those that have what the task asks
    for, then those that reach the model through their gateway."""
    offers = [o for o in offers if o.free_slots > 0]
    local = {o.peer_id: min(o.free_slots, MAX_WEIGHT) for o in offers if can_run(model, o)}
    remote = {
        o.peer_id: min(o.free_slots, MAX_WEIGHT)
        for o in offers
        if o.peer_id not in local
        and o.gateway
        and has_agent(model, o)
        and _on_mesh(split_requirement(model)[0], mesh_models)
    }
    return ordered(task_id, local) + ordered(task_id, remote)


def position(
    task_id: str, model: str, market: Market, failed_on: Collection[str], used_slots: int
) -> int | None:
    """This node's place among the peers that could take the task now (0 = best), or
    None if it cannot take it: not eligible, or no slot free once `used_slots` are
    subtracted from its capacity. Peers the task failed on are left out."""
    own = replace(market.own, free_slots=max(0, market.own.free_slots - used_slots))
    others = [o for o in market.peers if o.node_id not in failed_on and o.peer_id != own.peer_id]
    order = rank(task_id, model, [own, *others], market.mesh_models)
    return order.index(own.peer_id) if own.peer_id in order else None


def _on_mesh(model: str, mesh_models: Collection[str]) -> bool:
    wanted = _canonical(model)
    if wanted in ANY_MODEL:
        return bool(mesh_models)
    return wanted in {_canonical(m) for m in mesh_models}


def _canonical(model: str) -> str:
    name = model.strip().lower()
    return name.removesuffix(":latest")
