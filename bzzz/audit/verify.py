"""Checking a node's own audit log against the checkpoints it signed: every entry's hash
is its content's, every checkpoint is signed by the node's key (read from its peer ID)
and its root is the root of the entries it covers. So a flipped byte, a dropped or
rewritten entry, a truncated log, or a checkpoint signed by another key is found; and
successive checkpoints are consistent, since each matches the same entries."""

from __future__ import annotations

from bzzz.audit.checkpoint import from_text, verify
from bzzz.audit.merkle import Frontier, leaf_hash
from bzzz.audit.store import AuditStore


def problems(store: AuditStore, origin: str, *, replica: bool = False) -> list[str]:
    """What is wrong with the log in `store` of the node `origin` (its peer ID); [] if
    nothing is. A replica may keep fewer entries than its checkpoints cover (it is
    bounded): those checkpoints were checked by consistency proofs when fetched."""
    size = store.size()
    leaves = store.leaves(0, size)
    stored = store.leaf_hashes(size)
    found: list[str] = []
    if len(leaves) != size or [i for i in range(len(leaves))] != list(range(size)):
        found.append(f"the log has {len(leaves)} entries but counts {size}")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    found += [
        f"entry {i}: its hash is not its content's (rewritten)"
        for i, (ours, kept) in enumerate(zip(hashes, stored, strict=False))
        if ours != kept
    ]
    tree = Frontier()  # grown checkpoint by checkpoint: O(entries), not O(entries x checkpoints)
    for checked, text in store.checkpoints():
        try:
            checkpoint = from_text(text)
        except ValueError as exc:
            found.append(f"checkpoint at size {checked}: unreadable ({exc})")
            continue
        where = f"checkpoint at size {checkpoint.size}"
        if checkpoint.origin != origin:
            found.append(f"{where}: made by {checkpoint.origin}, not by this node ({origin})")
        elif not verify(checkpoint):
            found.append(f"{where}: its signature is not this node's")
        if checkpoint.size > len(hashes):
            if not replica:
                found.append(f"{where}: the log has only {len(hashes)} entries (truncated)")
            continue
        tree.extend(hashes[tree.size : checkpoint.size])
        if tree.root() != checkpoint.root:
            found.append(f"{where}: the entries it covers are not those it signed (rewritten)")
    found += [
        f"two roots signed for size {size} (equivocation): {from_text(text).root.hex()}"
        for size, text in store.conflicts()
    ]
    return found
