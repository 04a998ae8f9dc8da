"""A log's entries with the proofs that a third party checks offline, without Bzzz
(docs/audit.md, "Export"): the latest checkpoint (its signed text), and for each entry it
covers, the entry as canonical JSON and its RFC 6962 inclusion proof against the
checkpoint's root."""

from __future__ import annotations

import base64
from typing import Any

from bzzz.audit.checkpoint import from_text, verify
from bzzz.audit.merkle import inclusion_proofs, leaf_hash, verify_inclusion
from bzzz.audit.store import AuditStore

FORMAT = "bzzz-audit-export/1"


def export(store: AuditStore, *, task: str = "", type_: str = "") -> dict[str, Any]:
    """The entries (all, or a task's or type's) covered by the latest checkpoint, each with
    its inclusion proof. Entries since that checkpoint are not covered by any: left out."""
    checkpoints = store.checkpoints()
    if not checkpoints:
        return {"format": FORMAT, "checkpoint": None, "entries": []}
    size, text = checkpoints[-1]
    chosen = [e for e in store.entries(task=task, type=type_, limit=size) if e.index < size]
    proofs = inclusion_proofs([e.index for e in chosen], size, store.leaf_hashes(size))
    return {
        "format": FORMAT,
        "checkpoint": text,
        "entries": [
            {
                "index": e.index,
                "entry": e.leaf.decode("utf-8"),
                "proof": [base64.b64encode(h).decode() for h in proof],
            }
            for e, proof in zip(chosen, proofs, strict=True)
        ],
    }


def check(exported: dict[str, Any]) -> list[str]:
    """What is wrong with an export (the checks a third party makes); [] if nothing."""
    if exported.get("format") != FORMAT or not isinstance(exported.get("checkpoint"), str):
        return ["not a bzzz audit export with a checkpoint"]
    checkpoint = from_text(exported["checkpoint"])
    found = [] if verify(checkpoint) else ["the checkpoint's signature does not hold"]
    for item in exported.get("entries", []):
        proof = [base64.b64decode(p) for p in item["proof"]]
        leaf = leaf_hash(item["entry"].encode("utf-8"))
        if not verify_inclusion(leaf, item["index"], checkpoint.size, proof, checkpoint.root):
            found.append(f"entry {item['index']}: not in the checkpoint's tree")
    return found
