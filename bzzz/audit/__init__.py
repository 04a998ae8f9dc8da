"""A tamper-evident audit log's pure core: no I/O, no network, no clock.

- merkle: RFC 6962 Merkle tree roots, inclusion and consistency proofs, and their checks;
- checkpoint: a node's signed statement of its log's size and root (C2SP signed note),
  checked with the public key inside the node's peer ID, and equivocation between two;
- entry: canonical JSON, the one byte string a log entry hashes as.
"""
