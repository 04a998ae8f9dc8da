"""Help between peers: a task's node asks the mesh for advice, and peers that can give it
offer; the asker takes the best offer and the helper's model answers over a stream.

matching  who may offer, and which offer an asker takes (pure)
wire      the help stream's frames, `/bzzz/help/1.0.0`
asking    the asker's side: ask, gather offers, accept one, wait for the advice
giving    the helper's side: offer when it can, and give the advice with its model
"""

from __future__ import annotations

from dataclasses import dataclass

from bzzz.gateway.upstream import Upstream
from bzzz.help.asking import Asker
from bzzz.help.giving import Giver


@dataclass
class HelpParts:
    """A node's help: asking for its tasks, giving to its peers' (with its model server)."""

    asker: Asker
    giver: Giver
    upstream: Upstream
