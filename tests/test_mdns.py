"""mDNS discovery between nodes on a LAN of network namespaces the test creates."""

from __future__ import annotations

from bzzz.lab.processes import NodeProcess, wait_for
from tests.conftest import NodeFactory, start_all_in, wait_alive
from tests.netns import lan


def test_nodes_on_one_lan_find_each_other_by_mdns(make_node: NodeFactory) -> None:
    with lan(3) as hosts:
        nodes = [
            make_node(
                f"m{i}", network={"listen": ["/ip4/0.0.0.0/tcp/4001"], "mdns": True, "dht": False}
            )
            for i in range(len(hosts))
        ]
        try:
            start_all_in(nodes, [ns for ns, _ in hosts])
            names = {node.name for node in nodes}
            for node in nodes:
                wait_alive(node, names - {node.name}, timeout=20)
            for node, (_, address) in zip(nodes, hosts, strict=True):
                report = node.status()
                assert report is not None
                assert f"/ip4/{address}/tcp/4001/p2p/{node.peer_id}" in report.addrs

                def found_by_mdns(node: NodeProcess = node) -> bool:
                    report = node.status()
                    return report is not None and (report.discovery.mdns_found or 0) >= 1

                wait_for(found_by_mdns, 15, f"{node.name} to see a peer's mDNS announcement")
        finally:
            for node in nodes:
                node.stop()
