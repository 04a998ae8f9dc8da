"""Help between peers: a task's node asks the mesh for advice, or for a node to take the
task over, and peers that can offer; the asker takes the best offer and the helper's
model answers over a stream (or the helper claims the task in the holder's place).

matching  who may offer, and which offer an asker takes (pure)
asking    the asker's side: ask, gather offers, accept one, wait for the advice
giving    the helper's side: offer when it can, give the advice with its model, or take
          a task over
handover  handing a task on: the case, and the holder's side (the claim passes on)
"""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.antennae.meeting import Proposer, Reviewer
from bzzz.gateway.upstream import Upstream
from bzzz.help.asking import Asker
from bzzz.help.giving import Giver
from bzzz.help.handover import HandingOver


@dataclass
class HelpParts:
    """A node's help: asking for its tasks, giving to its peers' (with its model server)."""

    asker: Asker
    giver: Giver
    upstream: Upstream
    handing: HandingOver | None = None  # a node that claims tasks may hand them on
    proposer: Proposer | None = None  # its tasks' plans reviewed by peers (Antennae)
    reviewer: Reviewer | None = None  # it reviews peers' plans
