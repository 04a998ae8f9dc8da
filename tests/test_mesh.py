"""Real nodes in separate OS processes on loopback: discovery, capabilities, healing."""

from __future__ import annotations

import signal

from bzzz.lab.processes import wait_for
from tests.conftest import NodeFactory, alive_names, start_all, wait_alive


def test_three_nodes_in_a_chain_see_each_others_capabilities(make_node: NodeFactory) -> None:
    a = make_node("a")
    b = make_node("b", bootstrap=[a.addr])
    c = make_node("c", bootstrap=[b.addr])
    start_all(a, b, c)
    for node, others in ((a, {"b", "c"}), (b, {"a", "c"}), (c, {"a", "b"})):
        wait_alive(node, others)

    report = a.status()
    assert report is not None
    assert report.peer_id == a.peer_id
    assert report.node_id == "a"
    assert list(report.addrs) == [a.addr]
    by_name = {peer.node_id: peer for peer in report.peers}
    assert by_name["c"].peer_id == c.peer_id
    caps = by_name["c"].capabilities
    assert caps is not None
    assert caps["type"] == "capabilities"
    assert caps["node_id"] == "c"
    assert caps["status"] == "idle"
    assert 0.0 <= caps["cpu"] <= 100.0
    assert isinstance(caps["models"], list)
    assert isinstance(caps["installed"], list)
    assert report.messages.dropped == {}


def test_dht_finds_a_peer_that_was_never_dialled(make_node: NodeFactory) -> None:
    hub = make_node("hub")
    left = make_node("left", bootstrap=[hub.addr])
    right = make_node("right", bootstrap=[hub.addr])
    start_all(hub, left, right)

    def linked() -> bool:
        report = left.status()
        return report is not None and any(
            p.peer_id == right.peer_id and p.connected for p in report.peers
        )

    wait_for(linked, 30, "left to connect to right directly")

    def found_as_provider() -> bool:  # whichever looked first found the other
        reports = [left.status(), right.status()]
        return sum(r.discovery.dht_found or 0 for r in reports if r is not None) >= 1

    wait_for(found_as_provider, 30, "a provider lookup in the namespace to find the other side")
    # Proof that the link does not run through the hub: stop the hub, left still hears right.
    hub.stop()
    wait_for(lambda: "hub" not in alive_names(left), 15, "left to see the hub die")
    assert "right" in alive_names(left)


def test_restarted_node_keeps_its_peer_id_and_rejoins(make_node: NodeFactory) -> None:
    a = make_node("a")
    b = make_node("b", bootstrap=[a.addr])
    start_all(a, b)
    wait_alive(a, {"b"})
    first_id = b.peer_id

    assert b.stop() == 0
    wait_for(lambda: "b" not in alive_names(a), 15, "a to mark b dead")
    b.start()
    report = b.status()
    assert report is not None
    assert report.peer_id == first_id
    wait_alive(a, {"b"})
    wait_alive(b, {"a"})
    peers = {p.node_id: p for p in a.status().peers}  # type: ignore[union-attr]
    assert peers["b"].peer_id == first_id


def test_mesh_heals_after_the_bootstrap_node_is_killed_and_restarted(
    make_node: NodeFactory,
) -> None:
    boot = make_node("boot")
    x = make_node("x", bootstrap=[boot.addr])
    y = make_node("y", bootstrap=[boot.addr])
    start_all(boot, x, y)
    for node, others in ((boot, {"x", "y"}), (x, {"boot", "y"}), (y, {"boot", "x"})):
        wait_alive(node, others)

    boot.kill()  # SIGKILL: no goodbye, connections just drop
    wait_for(lambda: "boot" not in alive_names(x), 15, "x to see boot die")
    boot.start()
    for node, others in ((boot, {"x", "y"}), (x, {"boot", "y"}), (y, {"boot", "x"})):
        wait_alive(node, others, timeout=15)


def test_sigterm_shuts_down_cleanly_and_peers_see_the_link_close(make_node: NodeFactory) -> None:
    a = make_node("a")
    b = make_node("b", bootstrap=[a.addr])
    start_all(a, b)
    wait_alive(a, {"b"})

    assert b.stop(signal.SIGTERM) == 0
    output = b.output()
    assert "Traceback" not in output
    assert "node b stopped" in output
    assert not (b.home / "control.sock").exists()

    def link_closed() -> bool:
        report = a.status()
        return report is not None and report.connections == 0

    wait_for(link_closed, 10, "a to see b's connection closed")


def test_sigint_shuts_down_cleanly(make_node: NodeFactory) -> None:
    a = make_node("a")
    start_all(a)
    assert a.stop(signal.SIGINT) == 0
    assert "Traceback" not in a.output()
