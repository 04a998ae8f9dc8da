"""Which peers may take a task, best first. Pure.

A task asks for a model (`qwen2.5-coder:7b`), a tool (`ollama`, `claude`), or nothing
in particular. A peer is eligible when it has what the task asks for and a free
worker slot. Eligible peers are ranked by weighted rendezvous hashing of the task ID
over their peer IDs: every peer computes the same order from the same view, the
order differs from task to task (so work spreads), and a peer with more free slots
is proportionally more likely to rank first. The best-ranked peer claims at once;
the others wait their rank's delay, so that normally only one peer ever claims.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

ANY_MODEL = ("", "any", "ollama")  # a task that names no particular model


@dataclass(frozen=True)
class Offer:
    """What a live peer offers, from its latest capabilities."""

    peer_id: str
    models: tuple[str, ...]
    installed: tuple[str, ...]
    free_slots: int


def can_run(model: str, offer: Offer) -> bool:
    wanted = _canonical(model)
    if wanted in ANY_MODEL:
        return "ollama" in offer.installed or bool(offer.models)
    if wanted in (_canonical(m) for m in offer.models):
        return True
    return wanted in offer.installed  # an agent CLI: claude, gemini, ...


def rank(task_id: str, model: str, offers: Iterable[Offer]) -> list[str]:
    """Peer IDs of the eligible peers, best first."""
    eligible = [o for o in offers if o.free_slots > 0 and can_run(model, o)]
    eligible.sort(key=lambda o: (-_score(task_id, o), o.peer_id))
    return [o.peer_id for o in eligible]


def claim_delay(position: int, step: float) -> float:
    """How long the peer at `position` (0 = best) waits before claiming."""
    return position * step


def _score(task_id: str, offer: Offer) -> float:
    digest = hashlib.sha256(f"{task_id}\x00{offer.peer_id}".encode()).digest()
    unit = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # strictly inside (0, 1)
    return -min(offer.free_slots, 64) / math.log(unit)


def _canonical(model: str) -> str:
    name = model.strip().lower()
    return name.removesuffix(":latest")
