"""The audit log's costs: appending an entry and signing a checkpoint, verifying a log of
10,000 entries, and replicating 10,000 entries between two real nodes.

- Append and sign: what the node does per flush (bzzz.node.audit), in the worst case of
  one entry per flush and a checkpoint per entry (the node signs at most every 10 s),
  and in batches of 100 with one checkpoint each.
- Verify: `bzzz audit verify`'s check (every entry rehashed, every checkpoint's signature
  and root) of 10,000 entries with a checkpoint every 100; and checking an export of all
  of them with docs/audit_verify.py (an inclusion proof per entry).
- Replicate: two node processes on loopback; `known` starts with 10,000 entries and a
  checkpoint in its home, `joiner` starts empty and fetches, verifies and keeps them (its
  status' fetch_ms: from the first page asked to the last kept). Rounds start a fresh
  joiner each time.

    .venv/bin/python -m bench.audit [--entries 10000] [--rounds 3] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.gossip import write_section
from bzzz.audit.checkpoint import sign, to_text
from bzzz.audit.export import export
from bzzz.audit.merkle import Frontier
from bzzz.audit.store import AuditStore
from bzzz.audit.verify import problems
from bzzz.identity import create_identity, load_identity, peer_id_of
from bzzz.lab.processes import NodeProcess, free_port, wait_for

VERIFIER = Path(__file__).parent.parent / "docs" / "audit_verify.py"


def entry(number: int) -> dict[str, object]:
    """An entry of the size the node logs: a worker's command."""
    return {
        "type": "worker_command",
        "at": "2026-12-06T20:00:00.000+00:00",
        "task": f"lab/app#{number % 50}",
        "worker": "worker-1",
        "step": number % 30,
        "command": f"python -m pytest -q tests/test_module_{number}.py -k 'not slow'",
        "exit_code": number % 2,
        "output_sha256": f"{number:064x}",
    }


def fill(store: AuditStore, key: object, origin: str, count: int, every: int) -> None:
    tree = Frontier()
    for start in range(0, count, every):
        store.append([entry(n) for n in range(start, min(count, start + every))])
        tree.extend(store.hashes_between(start, store.size()))
        signed = sign(key, origin, tree.size, tree.root(), 1_765_000_000 + start)  # type: ignore[arg-type]
        store.keep_checkpoint(tree.size, to_text(signed))


def append_and_sign(root: Path, count: int, batch: int) -> float:
    """Microseconds per entry, appended `batch` at a time, one checkpoint per batch."""
    where = Path(tempfile.mkdtemp(dir=root))
    keys = create_identity(where / "identity.key")
    store = AuditStore(where / "audit.db")
    started = time.perf_counter()
    fill(store, keys.private_key, peer_id_of(keys).to_base58(), count, batch)
    return (time.perf_counter() - started) / count * 1e6


def verify_times(root: Path, count: int) -> tuple[float, float, float]:
    keys = create_identity(root / "key-verify")
    origin = peer_id_of(keys).to_base58()
    store = AuditStore(root / "verify.db")
    fill(store, keys.private_key, origin, count, 100)
    started = time.perf_counter()
    assert problems(store, origin) == []
    own = time.perf_counter() - started
    started = time.perf_counter()
    exported = export(store)
    exporting = time.perf_counter() - started
    path = root / "export.json"
    path.write_text(json.dumps(exported))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", str(VERIFIER), str(path), origin], check=True)
    return own, exporting, time.perf_counter() - started


def replicate(root: Path, count: int, rounds: int) -> list[tuple[float, float]]:
    """(fetch ms, seconds from the joiner's start) per round."""
    known = NodeProcess(root / "known", "known", free_port())
    known.init(audit={"announce_every": 1.0}, log={"level": "warning"})
    keys = load_identity(known.home / "identity.key")
    fill(AuditStore(known.home / "audit.db"), keys.private_key, known.peer_id, count, count)
    results = []
    known.start()
    try:
        for number in range(rounds):
            joiner = NodeProcess(root / f"joiner-{number}", "joiner", free_port())
            joiner.init([known.addr], audit={"announce_every": 1.0}, log={"level": "warning"})
            started = time.monotonic()
            joiner.start()
            try:

                def kept(joiner: NodeProcess = joiner) -> float:
                    report = joiner.status()
                    audit = report.audit if report else None
                    done = [r for r in audit.replicas if r.kept >= count] if audit else []
                    return done[0].fetch_ms if done else 0.0

                wait_for(lambda: kept() > 0, 120, "the joiner to replicate the log")
                results.append((kept(), time.monotonic() - started))
            finally:
                joiner.stop(timeout=20)
    finally:
        known.stop(timeout=20)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bzzz-bench-audit-"))
    try:
        one = statistics.median(append_and_sign(root, 500, 1) for _ in range(3))
        hundred = statistics.median(append_and_sign(root, 5000, 100) for _ in range(3))
        own, exporting, offline = verify_times(root, args.entries)
        replicated = replicate(root, args.entries, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    fetch = statistics.median(ms for ms, _ in replicated)
    whole = statistics.median(s for _, s in replicated)
    n = f"{args.entries:,}"
    section = "\n".join(
        [
            "## Audit log (`bench/audit.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} on 2 cores; SQLite in a temporary"
            " directory, entries of a worker's command (about 300 bytes).",
            "",
            "| what | time |",
            "|---|---|",
            f"| append one entry and sign a checkpoint of the log (median of 3 x 500) |"
            f" {one:.0f} µs per entry |",
            f"| append 100 entries and sign one checkpoint (median of 3 x 5,000) |"
            f" {hundred:.0f} µs per entry |",
            f"| `bzzz audit verify`'s check of {n} entries, 100 checkpoints |"
            f" {own * 1000:.0f} ms |",
            f"| export {n} entries with their inclusion proofs | {exporting * 1000:.0f} ms |",
            f"| docs/audit_verify.py on that export (a process, proofs checked) |"
            f" {offline * 1000:.0f} ms |",
            f"| replicate {n} entries between two nodes: fetch, verify, keep"
            f" (median of {len(replicated)}) | {fetch:.0f} ms |",
            "",
            f"From a fresh joiner's start to its replica holding all {n} entries:"
            f" {whole:.1f} s (process start, mesh join, the announcement and the fetch).",
        ]
    )
    print(section)
    write_section(args.out, section + "\n")


if __name__ == "__main__":
    main()
