"""A node's audit log on disk and its check against the checkpoints it signed: a flipped
byte, a dropped entry, a truncated log and a checkpoint signed by another key are each
found by `bzzz audit verify`'s check."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bzzz.audit.checkpoint import Checkpoint, body, sign, to_text
from bzzz.audit.export import check, export
from bzzz.audit.merkle import leaf_hash, root_of_hashes
from bzzz.audit.store import AuditStore
from bzzz.audit.verify import problems
from bzzz.identity import create_identity, peer_id_of


@pytest.fixture
def log(tmp_path: Path) -> tuple[AuditStore, str, object]:
    keys = create_identity(tmp_path / "identity.key")
    origin = peer_id_of(keys).to_base58()
    store = AuditStore(tmp_path / "audit.db")
    for batch in range(3):
        store.append(
            [
                {
                    "type": "task_claimed",
                    "at": f"2026-12-06T20:0{batch}:0{i}",
                    "task": f"lab/app#{i}",
                }
                for i in range(4)
            ]
        )
        size = store.size()
        checkpoint = sign(
            keys.private_key, origin, size, root_of_hashes(store.leaf_hashes()), 1000 + size
        )
        store.keep_checkpoint(size, to_text(checkpoint))
    return store, origin, keys


def test_an_untouched_log_verifies(log: tuple[AuditStore, str, object]) -> None:
    store, origin, _ = log
    assert problems(store, origin) == []
    assert [size for size, _ in store.checkpoints()] == [4, 8, 12]
    assert [e.index for e in store.entries(task="lab/app#2")] == [2, 6, 10]


def edit(store: AuditStore, sql: str, *values: object) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute(sql, values)


def test_a_flipped_byte_is_found(log: tuple[AuditStore, str, object]) -> None:
    store, origin, _ = log
    (leaf,) = store.leaves(5, 6)
    edit(
        store, "UPDATE entries SET leaf = ? WHERE seq = 5", leaf.replace(b"lab/app#1", b"lab/app#9")
    )
    assert problems(store, origin) == ["entry 5: its hash is not its content's (rewritten)"] + [
        f"checkpoint at size {n}: the entries it covers are not those it signed (rewritten)"
        for n in (8, 12)
    ]


def test_a_rewritten_entry_with_its_hash_is_found(log: tuple[AuditStore, str, object]) -> None:
    store, origin, _ = log
    forged = b'{"at":"2026-12-06T20:00:00","task":"lab/app#0","type":"task_failed"}'
    edit(store, "UPDATE entries SET leaf = ?, hash = ? WHERE seq = 0", forged, leaf_hash(forged))
    found = problems(store, origin)
    assert found == [
        f"checkpoint at size {n}: the entries it covers are not those it signed (rewritten)"
        for n in (4, 8, 12)
    ]


def test_a_truncated_log_is_found(log: tuple[AuditStore, str, object]) -> None:
    store, origin, _ = log
    edit(store, "DELETE FROM entries WHERE seq >= 10")
    assert problems(store, origin) == [
        "checkpoint at size 12: the log has only 10 entries (truncated)"
    ]


def test_a_checkpoint_signed_by_another_key_is_found(
    log: tuple[AuditStore, str, object], tmp_path: Path
) -> None:
    store, origin, _ = log
    other = create_identity(tmp_path / "other.key")
    root = root_of_hashes(store.leaf_hashes())
    forged = Checkpoint(
        origin, 12, root, 2000, other.private_key.sign(body(origin, 12, root, 2000))
    )
    edit(store, "UPDATE checkpoints SET text = ? WHERE size = 12", to_text(forged))
    assert problems(store, origin) == ["checkpoint at size 12: its signature is not this node's"]
    own = sign(other.private_key, peer_id_of(other).to_base58(), 12, root, 2000)
    edit(store, "UPDATE checkpoints SET text = ? WHERE size = 12", to_text(own))
    (found,) = problems(store, origin)
    assert found.startswith("checkpoint at size 12: made by ")


def test_an_export_is_checked_offline_and_a_forged_entry_fails(
    log: tuple[AuditStore, str, object],
) -> None:
    store, _, _ = log
    exported = json.loads(json.dumps(export(store, task="lab/app#3")))  # as written to a file
    assert [e["index"] for e in exported["entries"]] == [3, 7, 11]
    assert check(exported) == []
    forged = exported["entries"][1]
    forged["entry"] = forged["entry"].replace("task_claimed", "task_failed")
    assert check(exported) == ["entry 7: not in the checkpoint's tree"]


VERIFIER = Path(__file__).parent.parent / "docs" / "audit_verify.py"


def test_the_documented_verifier_checks_an_export_without_bzzz(
    log: tuple[AuditStore, str, object], tmp_path: Path
) -> None:
    """docs/audit_verify.py, run as a plain script (the standard library and an Ed25519
    library), agrees with bzzz's own check, for every entry and for a forged one."""
    store, origin, _ = log
    path = tmp_path / "export.json"

    def verifier(exported: dict[str, object], *peer: str) -> subprocess.CompletedProcess[str]:
        path.write_text(json.dumps(exported))
        command = [sys.executable, "-I", str(VERIFIER), str(path), *peer]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd=tmp_path)

    exported = export(store)
    assert len(exported["entries"]) == 12
    done = verifier(exported, origin)
    assert (done.returncode, done.stdout) == (
        0,
        "ok    12 entries in the signed checkpoint's tree\n",
    )
    assert verifier(exported, "12D3KooWSomeoneElse").returncode == 1
    exported["entries"][4]["entry"] = exported["entries"][4]["entry"].replace("#0", "#9")
    done = verifier(exported)
    assert (done.returncode, done.stdout) == (1, "FAIL  entry 4 is not in the checkpoint's tree\n")
    exported["checkpoint"] = exported["checkpoint"].replace("\n12\n", "\n11\n")
    assert "signature does not hold" in verifier(exported).stdout
