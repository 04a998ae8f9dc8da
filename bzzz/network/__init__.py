"""The libp2p side of a node: host, gossip, discovery, connection gate."""
