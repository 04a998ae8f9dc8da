"""The compose lab cluster's entry points (compose/docker-compose.yml runs them):

    python -m bzzz.lab.compose forge   # seed the sample world once, then serve the forge
    python -m bzzz.lab.compose peer    # become peer-K, write the node's home, run node + workers

Accounts: the forge service seeds `BZZZ_LAB_ACCOUNTS` node accounts, peer-1 .. peer-N, as
collaborators of the sample repository, and writes each one's token to the shared
`accounts` volume (ACCOUNTS_DIR/peer-K.token, mode 0600). A peer container is compose's
replica K of the service `peer` (`docker compose up --scale peer=N` makes replicas 1..N):
it learns K from its container name, which it asks Docker's embedded DNS server for (its
address's PTR record), and takes account peer-K: its node name, forge login and git
identity. `BZZZ_LAB_PEER` names the account instead (outside compose, or with a fixed
container name). Replicas beyond the accounts seeded stop with a message saying so.

Discovery: every peer listens on port 4001 of the compose network and finds the others by
mDNS there (the network is a private bridge; nothing is advertised beyond it); the DHT and
the reconnect supervisor do the rest. `BZZZ_LAB_BOOTSTRAP` adds bootstrap addresses.

The model: `OLLAMA_HOST` names an ollama server; empty, the peers ask the lab model server
(the `model` service, ollama's API answered from the sample repository's playbook) for
model `lab`. With a real ollama, `BZZZ_LAB_MODEL` picks the model (empty: the first one
the server lists). Any `BZZZ_<SECTION>_<KEY>` variable overrides the written settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from bzzz.lab.compose.forge import forge_main, seed_once
from bzzz.lab.compose.peer import (
    Supervisor,
    account_number,
    check_account,
    node_sections,
    own_addresses,
    peer_main,
    prepare_peer,
    replica_account,
    wait_for_forge,
)
from bzzz.lab.compose.settings import LabError, LabSettings

__all__ = [
    "LabError",
    "LabSettings",
    "Supervisor",
    "account_number",
    "check_account",
    "forge_main",
    "main",
    "node_sections",
    "own_addresses",
    "peer_main",
    "prepare_peer",
    "replica_account",
    "seed_once",
    "wait_for_forge",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    roles: dict[str, Callable[[LabSettings], int]] = {"forge": forge_main, "peer": peer_main}
    if len(args) != 1 or args[0] not in roles:
        print("usage: python -m bzzz.lab.compose forge|peer", file=sys.stderr)
        return 2
    try:
        return roles[args[0]](LabSettings.from_env(os.environ))
    except LabError as exc:
        print(f"bzzz-lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
