"""The CLI against running nodes: status, peers, stop, and the lab."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from bzzz.lab.processes import wait_for
from tests.conftest import NodeFactory, start_all, wait_alive


def bzzz(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def test_status_peers_and_stop(make_node: NodeFactory) -> None:
    a = make_node("alpha")
    b = make_node("beta", bootstrap=[a.addr])
    start_all(a, b)
    wait_alive(a, {"beta"})

    result = bzzz("status", "--home", str(a.home), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"peer_id", "node_id", "addrs", "peers"}
    assert all(addr.endswith(f"/p2p/{a.peer_id}") for addr in report["addrs"])
    (peer,) = report["peers"]
    assert set(peer) >= {"peer_id", "node_id", "alive", "last_seen", "capabilities"}
    assert (peer["peer_id"], peer["node_id"], peer["alive"]) == (b.peer_id, "beta", True)

    text = bzzz("status", "--home", str(a.home)).stdout
    assert "alpha" in text
    assert a.addr in text
    assert "beta" in text
    assert "alive" in text

    peers = json.loads(bzzz("peers", "--home", str(a.home), "--json").stdout)
    assert [p["node_id"] for p in peers] == ["beta"]
    assert "alpha" in bzzz("peers", "--home", str(b.home)).stdout

    assert bzzz("stop", "--home", str(b.home)).returncode == 0
    wait_for(lambda: not b.running(), 15, "beta to exit after `bzzz stop`")
    assert b.process is not None
    assert b.process.returncode == 0


def test_lab_turns_the_sample_issues_into_pull_requests_and_stops_cleanly() -> None:
    result = bzzz("lab", "run", "--nodes", "3", "--until-done", "--duration", "90", timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mesh formed" in result.stdout
    assert "tasks announced: every node knows the 3 tasks" in result.stdout
    assert "tasks finished: every node knows each task's result" in result.stdout
    view = result.stdout.rpartition("tasks from lab/hello")[2]
    for number in (1, 2, 3):
        # lab-node-3 is the model host: it lends lab-coder, and takes no tasks.
        assert re.search(rf"lab/hello#{number} +done +lab-node-[12] +http://\S+/pull/\d+", view)
    # Issue 3 asks for lab-coder, which only lab-node-3 has, and for Claude Code (which
    # scripts/setup installs): the CLI ran in another node's sandbox with lab-node-3's
    # model, through that node's model gateway.
    assert "issue #3 is solved by the agent CLI claude" in result.stdout
    made_by = result.stdout.rpartition("who made them:")[2]
    assert re.search(
        r"Made by Bzzz node lab-node-[12] with model `lab-coder:latest` \(the task's model;"
        r" run by the agent CLI claude\), served by node lab-node-3 over the mesh",
        made_by,
    ), made_by
    # Issue 2's model asks the mesh for lab-coder's advice: the model host gives it.
    assert "Helped by node lab-node-3 (model `lab-coder:latest`)" in made_by, made_by
    assert "lab/hello#4" not in result.stdout  # no label
    assert "lab/hello#5" not in result.stdout  # untrusted author
    assert "3/3 nodes exited cleanly" in result.stdout
