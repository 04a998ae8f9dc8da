"""Weighted rendezvous (highest random weight) hashing. Pure.

Each member scores a key by a hash of the key and the member's name, scaled by the
member's weight; the members in order of score, best first, are the key's ranking.
Every node computes the same ranking from the same members; rankings differ from key
to key, so work spreads; a member comes first for a share of the keys proportional to
its weight; and when a member leaves, only the keys it ranked first for move, each to
the member that ranked second, while the others keep their relative order.

Nodes of one mesh must agree on these numbers: changing the hash splits the mesh.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

_SPAN = 2**64


def score(key: str, member: str, weight: float = 1.0) -> float:
    """The member's score for the key; the highest score ranks first.

    `-weight / ln(u)`, with `u` uniform in (0, 1) from the hash, makes a member's chance
    of the highest score its weight's share of the total weight.
    """
    digest = hashlib.sha256(f"{key}\x00{member}".encode()).digest()
    unit = (int.from_bytes(digest[:8], "big") + 1) / (_SPAN + 2)  # strictly inside (0, 1)
    return -weight / math.log(unit)


def ordered(key: str, members: Mapping[str, float]) -> list[str]:
    """The members (name -> weight), best first for the key; ties, which practically
    never happen, go by name. Members of weight 0 or less are left out."""
    return sorted(
        (member for member, weight in members.items() if weight > 0),
        key=lambda member: (-score(key, member, members[member]), member),
    )
