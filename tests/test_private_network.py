"""Private networks (pre-shared key) and the peer-ID allowlist, with real node processes."""

from __future__ import annotations

import shutil
import time
from typing import Any

from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.psk import read_psk, write_psk
from tests.conftest import NodeFactory, alive_names, fast, start_all, wait_alive

PSK = {"network": {"psk_file": "swarm.key"}}


def with_key(
    make_node: NodeFactory, name: str, key_from: NodeProcess | None, **kwargs: object
) -> NodeProcess:
    """A node whose home holds swarm.key: a copy of `key_from`'s, or a new one."""
    node = make_node(name, **kwargs)  # a first init creates the home and identity
    key = node.home / "swarm.key"
    if key_from is None:
        write_psk(key)
    else:
        shutil.copy(key_from.home / "swarm.key", key)
    reinit(node, network={"psk_file": "swarm.key"})
    return node


def reinit(node: NodeProcess, bootstrap: tuple[str, ...] = (), **sections: dict[str, Any]) -> None:
    """Rewrite a node's config (its identity stays)."""
    node.init(list(bootstrap), **fast(sections))


def test_private_network_admits_only_nodes_with_its_key(make_node: NodeFactory) -> None:
    a = with_key(make_node, "a", None)
    b = with_key(make_node, "b", a)
    intruder = with_key(make_node, "intruder", None)  # a key of its own
    reinit(b, (a.addr,), network={"psk_file": "swarm.key"})
    reinit(intruder, (a.addr,), network={"psk_file": "swarm.key"})
    plain = make_node("plain", bootstrap=[a.addr])  # no key at all
    start_all(a, b, intruder, plain)
    wait_alive(a, {"b"})
    wait_alive(b, {"a"})

    started = time.monotonic()
    for outsider in (intruder, plain):

        def refused(node: NodeProcess = outsider) -> bool:
            report = node.status()
            return report is not None and report.discovery.dial_failures >= 1

        wait_for(refused, 10, f"{outsider.name}'s dial to be refused")
    assert time.monotonic() - started < 10
    for outsider in (intruder, plain):
        report = outsider.status()
        assert report is not None
        assert report.peers == ()
        assert report.connections == 0
    assert alive_names(a) == {"b"}
    assert (a.home / "swarm.key").stat().st_mode & 0o777 == 0o600
    secret = read_psk(a.home / "swarm.key")
    for node in (a, b):
        node.stop()
        assert secret not in node.output()
        assert secret not in (node.home / "logs" / "node.log").read_text()


def test_allowlist_refuses_unlisted_peers(make_node: NodeFactory) -> None:
    a = make_node("a")
    friend = make_node("friend", bootstrap=[a.addr])
    stranger = make_node("stranger", bootstrap=[a.addr])
    reinit(a, network={"allow_peers": [friend.peer_id]})
    start_all(a, friend, stranger)
    wait_alive(a, {"friend"})
    wait_alive(friend, {"a"})

    def refused() -> bool:
        report = a.status()
        return report is not None and report.discovery.refused >= 1

    wait_for(refused, 10, "a to refuse the stranger")
    report = stranger.status()
    assert report is not None
    assert "a" not in alive_names(stranger)
    assert "stranger" not in alive_names(a)
