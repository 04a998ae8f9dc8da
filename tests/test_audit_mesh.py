"""The audit logs replicated across the mesh: three real nodes run the sample tasks and
each ends up holding verified replicas of the other two logs; a restarted node keeps its
log and its peers find it consistent; a node whose log was cut back and rewritten is
caught by its peers; and an export verifies with docs/audit_verify.py alone."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from bzzz.lab.forge import LocalForge
from bzzz.lab.model import LabModelServer
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.node.status import AuditStatus
from tests import test_task_flow
from tests.claimlab import Workers
from tests.conftest import NodeFactory, wait_alive
from tests.test_audit_log import VERIFIER
from tests.test_task_flow import SOLVABLE, flow_mesh

AUDIT = {"announce_every": 2.0}
forge = test_task_flow.forge  # the sample tasks' world
model = test_task_flow.model


def audit_of(node: NodeProcess) -> AuditStatus | None:
    report = node.status()
    return report.audit if report else None


def bzzz(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bzzz", *args, "--home", str(node.home)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def replicas_caught_up(nodes: list[NodeProcess]) -> bool:
    """Every node holds every other's log up to that node's latest checkpoint."""
    audits = {node.name: audit_of(node) for node in nodes}
    if any(a is None or not a.checkpoint_size for a in audits.values()):
        return False
    for name, audit in audits.items():
        assert audit is not None
        held = {r.node_id: (r.checkpoint_size, r.kept) for r in audit.replicas}
        for other, theirs in audits.items():
            assert theirs is not None
            if other != name and held.get(other) != (theirs.checkpoint_size,) * 2:
                return False
    return True


def test_every_node_holds_verified_replicas_and_catches_a_rewritten_log(
    forge: LocalForge,
    model: LabModelServer,
    make_node: NodeFactory,
    pools: list[Workers],
    tmp_path: Path,
) -> None:
    nodes = flow_mesh(make_node, forge, model, audit=AUDIT)
    a = nodes[0]
    pools.extend(Workers(node, tmp_path / "unused.jsonl") for node in nodes)

    def pull_request_known() -> bool:
        report = a.status()
        return bool(report and any(t.task_id == SOLVABLE and t.result_url for t in report.tasks))

    wait_for(pull_request_known, 90, "the sample task's pull request")
    wait_for(lambda: replicas_caught_up(nodes), 60, "every node to replicate the others")
    for node in nodes:
        done = bzzz(node, "audit", "verify")
        assert done.returncode == 0, done.stdout
        assert done.stdout.count("ok    ") == 3  # its own log and two replicas
    # The node that ran the task has its worker's entries, and a's replica has them too.
    holder = next(
        n for n in nodes if "worker_command" in bzzz(n, "audit", "show", "--task", SOLVABLE).stdout
    )
    if holder is not a:
        replicated = bzzz(a, "audit", "show", "--node", holder.name, "--task", SOLVABLE)
        assert "worker_command" in replicated.stdout
    exported = tmp_path / "export.json"
    export = bzzz(a, "audit", "export", "--node", holder.name, "--task", SOLVABLE)
    exported.write_text(export.stdout)
    assert json.loads(export.stdout)["entries"]
    holder_id = holder.status().peer_id  # type: ignore[union-attr]
    checked = subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(exported), holder_id],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout

    # b restarts: it keeps its log, signs on from where it was, and its peers agree.
    b = nodes[1]
    before = audit_of(b)
    assert before is not None
    b.stop()
    b.start()
    wait_alive(b, {"node-a", "node-c"})
    after = audit_of(b)
    assert after is not None
    assert after.size >= before.size
    assert after.checkpoint_size >= before.checkpoint_size
    wait_for(lambda: replicas_caught_up(nodes), 60, "the peers to follow b's log on")
    for node in (a, nodes[2]):
        audit = audit_of(node)
        assert audit is not None
        assert audit.alarms == ()

    # c's log is cut back and rewritten while it is down: both peers find out.
    c = nodes[2]
    c_audit = audit_of(c)
    assert c_audit is not None
    c.stop()
    keep = c_audit.checkpoint_size // 2
    with sqlite3.connect(c.home / "audit.db") as db:
        db.execute("DELETE FROM entries WHERE seq >= ?", (keep,))
        db.execute("DELETE FROM checkpoints")
    c.start()

    def alarmed(node: NodeProcess) -> list[str]:
        audit = audit_of(node)
        return [x.fault for x in audit.alarms if x.node_id == "node-c"] if audit else []

    for node in (a, b):
        wait_for(lambda node=node: bool(alarmed(node)), 60, f"{node.name} to catch c's rewrite")  # type: ignore[misc]
        assert set(alarmed(node)) <= {"rolled_back", "inconsistent", "equivocation"}
        done = bzzz(node, "audit", "verify")
        assert done.returncode == 1
        assert "FAIL  replica of node-c: alarm:" in done.stdout
