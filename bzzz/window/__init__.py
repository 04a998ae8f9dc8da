"""The operator's window: each node's dashboard (a live web page of the mesh as this node
sees it) and its Prometheus metrics, served on loopback from the node's own trio loop."""
