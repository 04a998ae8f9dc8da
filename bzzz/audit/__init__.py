"""A node's tamper-evident audit log (docs/audit.md).

The pure core (no I/O, no network, no clock):
- merkle: RFC 6962 Merkle tree roots, inclusion and consistency proofs, and their checks;
- checkpoint: a node's signed statement of its log's size and root (C2SP signed note),
  checked with the public key inside the node's peer ID, and equivocation between two;
- entry: canonical JSON, the one byte string a log entry hashes as.

On disk and at the command line:
- store: the entries and the signed checkpoints, in SQLite in the node's home;
- verify: the log checked against its checkpoints;
- cli: `bzzz audit show|verify`.
"""
