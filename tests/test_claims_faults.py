"""No claimed task is lost, and none runs twice, when parts die or are cut off.

Real nodes, their SQLite queues and `bzzz worker` pools, against the local forge: a
worker killed mid-task, a node killed with its workers mid-task (then restarted), a
node cut off from the mesh and the forge mid-task (frozen; or its host's network link
cut, in network namespaces), then back, and many tasks at once.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from bzzz.claims.ledger import ClaimNote, ClaimState
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.forge.faults import Fault
from bzzz.lab.processes import NodeProcess, wait_for
from tests.claimlab import (
    CLAIMS,
    REPO,
    Workers,
    claim_node,
    claim_notes,
    hosted_nodes,
    ran,
    runs,
    task_states,
    token,
    world,
)
from tests.conftest import NodeFactory, seeded_forge, start_all, start_all_in, wait_alive
from tests.netns import HUB_ADDRESS, call_in, entered, hub_of, lan, set_link

NODES = ["node-a", "node-b", "node-c"]
TASK = f"{REPO}#1"
FAIL = "workers.executors:fail"  # fails every task
# Long enough for a takeover to be possible while the first run is still going.
TAKEOVER_TIMEOUT = CLAIMS["lease"] + CLAIMS["clock_skew"] + 30


def mesh(
    make_node: NodeFactory, forge: LocalForge, names: list[str], path: str, threads: int = 2
) -> dict[str, NodeProcess]:
    first = claim_node(make_node, forge, names[0], [], path, threads=threads)
    rest = [claim_node(make_node, forge, n, [first.addr], path, threads=threads) for n in names[1:]]
    nodes = [first, *rest]
    start_all(*nodes)
    for node in nodes:
        wait_alive(node, {n.name for n in nodes} - {node.name})
    return {node.name: node for node in nodes}


def running_on(nodes: dict[str, NodeProcess], task: str = TASK) -> str:
    """The node whose worker runs `task`, once one does."""
    found: list[str] = []

    def running() -> bool:
        found[:] = [n for n, node in nodes.items() if task_states(node).get(task) == "running"]
        return bool(found)

    wait_for(running, 30, f"a worker to start {task}")
    (holder,) = found
    return holder


def standing(notes: list[ClaimNote]) -> list[ClaimNote]:
    """The claims that count: not those withdrawn after losing a race for the task (peers
    may race when a task_claim is slow to arrive; the forge decides, the loser releases)."""
    return [n for n in notes if n.state is not ClaimState.RELEASED]


def worker_log(pool: Workers) -> str:
    path = pool.node.home / "worker.out"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_task_whose_worker_is_killed_is_redelivered_and_runs_once(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    record = tmp_path / "ran.jsonl"
    with seeded_forge(world(NODES, 1), "bzzz-faults-") as forge:
        nodes = mesh(make_node, forge, NODES, tool_path)
        pools.extend(Workers(node, record, seconds=5) for node in nodes.values())
        holder = running_on(nodes)
        (pool,) = [p for p in pools if p.node.name == holder]
        (victim,) = pool.children()
        victim.kill()  # SIGKILL mid-task: its delivery is only leased, not acknowledged
        wait_for(
            lambda: any(c.pid != victim.pid for c in pool.children()),
            15,
            "the pool to restart its worker process",
        )

        wait_for(lambda: bool(ran(record)), 60, "the redelivered task to finish")
        assert ran(record) == [(TASK, holder)]  # same node: its claim held all along
        wait_for(
            lambda: any(n.state is ClaimState.DONE for n in claim_notes(forge, 1)),
            10,
            "the forge to record it done",
        )
        notes = standing(claim_notes(forge, 1))
        assert [(n.node, n.state) for n in notes] == [(holder, ClaimState.DONE)]


def test_a_killed_node_is_taken_over_and_does_not_run_the_task_again_on_restart(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    record = tmp_path / "ran.jsonl"
    with seeded_forge(world(NODES, 1), "bzzz-faults-") as forge:
        nodes = mesh(make_node, forge, NODES, tool_path)
        pools.extend(Workers(n, record, seconds=60, retry_seconds=1) for n in nodes.values())
        holder = running_on(nodes)
        (pool,) = [p for p in pools if p.node.name == holder]
        killed_at = time.monotonic()
        nodes[holder].kill()
        pool.stop()

        wait_for(lambda: bool(ran(record)), TAKEOVER_TIMEOUT, "another node to take over")
        took = time.monotonic() - killed_at
        ((task, taker),) = ran(record)
        assert task == TASK
        assert taker != holder
        # The lease (plus the skew allowance) had to run out first.
        assert took >= CLAIMS["lease"] - 2 * CLAIMS["gossip_renew"], took
        wait_for(
            lambda: any(n.state is ClaimState.DONE for n in claim_notes(forge, 1)),
            10,
            "the forge to record it done",
        )
        notes = {n.node: n for n in standing(claim_notes(forge, 1))}
        assert notes[taker].state is ClaimState.DONE
        assert notes[taker].takes_over == holder  # said so on the issue
        assert notes[holder].state is ClaimState.CLAIM  # ran out, never finished

        # Back from the dead: its queue still holds the task, which must not run again.
        nodes[holder].start()
        pool.start()
        wait_for(lambda: "no longer held" in worker_log(pool), 40, "the stale delivery to drop")
        wait_for(lambda: task_states(nodes[holder]).get(TASK) == "done", 20, "it to learn the end")
        assert ran(record) == [(TASK, taker)]


def test_a_node_cut_off_mid_task_loses_its_lease_and_does_not_finish_it(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    """Cut off from the mesh (its node process frozen) and from the forge (every request
    of its account fails): its worker runs on, but must not deliver once the lease is
    gone, while another node takes the task over."""
    record = tmp_path / "ran.jsonl"
    with seeded_forge(world(NODES, 1), "bzzz-faults-") as forge:
        nodes = mesh(make_node, forge, NODES, tool_path)
        pools.extend(Workers(n, record, seconds=30, retry_seconds=1) for n in nodes.values())
        holder = running_on(nodes)
        (pool,) = [p for p in pools if p.node.name == holder]
        forge.add_fault(Fault(kind="server_error", status=503, user=holder))
        nodes[holder].send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: bool(ran(record)), TAKEOVER_TIMEOUT, "another node to take over")
            wait_for(
                lambda: "lost the claim before finishing" in worker_log(pool),
                40,
                "the cut-off worker to give up",
            )
        finally:
            forge.clear_faults()
            nodes[holder].send_signal(signal.SIGCONT)
        ((_, taker),) = ran(record)
        assert taker != holder
        wait_for(lambda: task_states(nodes[holder]).get(TASK) == "done", 30, "it to learn the end")
        wait_for(
            lambda: (
                {n.node: n.state for n in claim_notes(forge, 1) if n.node in (holder, taker)}
                == {holder: ClaimState.RELEASED, taker: ClaimState.DONE}
            ),
            20,
            "the forge to show the lost lease released and the takeover done",
        )
        assert ran(record) == [(TASK, taker)]


def test_five_nodes_share_fifty_tasks_each_run_exactly_once(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    names = [f"node-{i}" for i in range(5)]
    tasks = 50
    record = tmp_path / "ran.jsonl"
    with seeded_forge(world(names, tasks), "bzzz-fifty-") as forge:
        nodes = mesh(make_node, forge, names, tool_path, threads=4)
        pools.extend(Workers(node, record, seconds=0.5) for node in nodes.values())
        wait_for(lambda: len(ran(record)) >= tasks, 120, f"{tasks} tasks to run")
        runs = ran(record)
        assert sorted(Counter(task for task, _ in runs).values()) == [1] * tasks
        spread = Counter(node for _, node in runs)
        assert len(spread) >= 3, f"work did not spread: {spread}"
        for node in nodes.values():
            wait_for(
                lambda node=node: (
                    len(task_states(node)) == tasks  # type: ignore[misc]
                    and set(task_states(node).values()) == {"done"}
                ),
                2 * CLAIMS["lease"] + 10,
                f"{node.name} to see every task done",
            )
        by_task = dict(runs)
        for number in range(1, tasks + 1):
            done = [n.node for n in claim_notes(forge, number) if n.state is ClaimState.DONE]
            assert done == [by_task[f"{REPO}#{number}"]]


def test_a_node_partitioned_mid_task_loses_it_and_nothing_is_lost_after_the_link_heals(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    """Each node and its workers on their own host (network namespace), the forge on the
    hub of their segment. The test cuts the holder's link mid-task, then restores it."""
    record = tmp_path / "ran.jsonl"
    with lan(3) as hosts:
        hub = hub_of(hosts[0][0])
        with entered(hub):  # the forge listens on the segment, where every host reaches it
            forge = LocalForge(tmp_path / "forge", host=HUB_ADDRESS).start()
        try:
            forge.seed(world(NODES, 1))
            hosted = hosted_nodes(make_node, forge, NODES, hosts, tool_path)
            nodes = {node.name: node for node in hosted}
            namespaces = {name: ns for name, (ns, _) in zip(NODES, hosts, strict=True)}
            start_all_in(list(nodes.values()), list(namespaces.values()))
            for node in nodes.values():
                wait_alive(node, set(nodes) - {node.name}, timeout=20)
            pools.extend(
                Workers(
                    node,
                    record,
                    seconds=30,
                    retry_seconds=1,
                    prefix=["ip", "netns", "exec", namespaces[name]],
                )
                for name, node in nodes.items()
            )
            holder = running_on(nodes)
            (pool,) = [p for p in pools if p.node.name == holder]
            set_link(namespaces[holder], up=False)
            cut_at = time.time()
            try:
                wait_for(lambda: bool(ran(record)), TAKEOVER_TIMEOUT, "another node to take over")
                wait_for(
                    lambda: "lost the claim before finishing" in worker_log(pool),
                    40,
                    "the cut-off worker to give up",
                )
            finally:
                set_link(namespaces[holder], up=True)
            ((finished,),) = [runs(record)]
            assert finished["node"] != holder
            # The copy that completed did so only after the holder's lease had ended on
            # the forge: its last renewal before the cut, plus the lease.
            renewals = [
                r.time
                for r in forge.requests()
                if r.user == holder and r.method in ("POST", "PATCH") and r.status < 300
                if r.time < cut_at
            ]
            assert finished["time"] > max(renewals) + CLAIMS["lease"]
            # Healed: nothing lost, nothing run twice, and the holder learns the end.
            wait_for(
                lambda: task_states(nodes[holder]).get(TASK) == "done", 40, "it to learn the end"
            )
            notes = {n.node: n.state for n in call_in(hub, lambda: claim_notes(forge, 1))}
            assert notes[finished["node"]] is ClaimState.DONE
            assert notes[holder] in (ClaimState.CLAIM, ClaimState.RELEASED)  # ran out
            assert ran(record) == [(TASK, finished["node"])]
        finally:
            for node in nodes.values():
                node.stop()
            forge.stop()


def test_a_task_that_fails_on_every_node_is_quarantined_with_a_report(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    with seeded_forge(world(NODES, 1), "bzzz-quarantine-") as forge:
        first = claim_node(make_node, forge, NODES[0], [], tool_path, executor=FAIL)
        rest = [
            claim_node(make_node, forge, n, [first.addr], tool_path, executor=FAIL)
            for n in NODES[1:]
        ]
        nodes = [first, *rest]
        start_all(*nodes)
        for node in nodes:
            wait_alive(node, {n.name for n in nodes} - {node.name})
        pools.extend(Workers(node, tmp_path / "unused.jsonl") for node in nodes)

        reader = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
        wait_for(
            lambda: "bzzz-quarantined" in reader.get_issue(REPO, 1).labels,
            60,
            "the task to be quarantined",
        )
        notes = claim_notes(forge, 1)
        failures = sorted(n.node for n in notes if n.state is ClaimState.FAILED)
        assert failures == sorted(NODES)  # one attempt per node
        assert not standing(notes) or {n.state for n in standing(notes)} == {ClaimState.FAILED}
        said = [c.body for c in reader.get_comments(REPO, 1)]
        assert len([b for b in said if b.startswith("Bzzz quarantined this task")]) == 1
        # and it asks a person to look, once (docs/escalation.md)
        wait_for(
            lambda: (
                len([b for b in reader.get_comments(REPO, 1) if "asks a person" in b.body]) == 1
            ),
            30,
            "the escalation's comment",
        )
        for node in nodes:
            wait_for(
                lambda node=node: task_states(node).get(TASK) == "quarantined",  # type: ignore[misc]
                30,
                f"{node.name} to see it quarantined",
            )
