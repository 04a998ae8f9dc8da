"""Late joiners and stranded tasks: a node that joins, restarts or heals from a partition
learns the open tasks and their states from a peer's table, claims a task no live node
could take as soon as it can, and never claims a task it learnt is held."""

from __future__ import annotations

from pathlib import Path

import github

from bzzz.claims.ledger import ClaimState
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, wait_for
from tests.claimlab import (
    REPO,
    Workers,
    claim_node,
    claim_notes,
    hosted_nodes,
    number_of,
    open_task,
    ran,
    task_states,
    token,
    world,
)
from tests.conftest import NodeFactory, seeded_forge, start_all, start_all_in, wait_alive
from tests.netns import HUB_ADDRESS, call_in, entered, hub_of, lan, set_link

DECLINE = "workers.executors:decline"


def close_issue(forge: LocalForge, task_id: str) -> None:
    """As merging the task's pull request does."""
    lab = github.Github(base_url=forge.api_url, auth=github.Auth.Token(token("lab")))
    lab.get_repo(REPO).get_issue(number_of(task_id)).edit(state="closed")


def learnt_from(node: NodeProcess, peer: NodeProcess) -> int:
    report = node.status()
    entry = report.sync.get(peer.peer_id) if report else None
    return entry.learnt if entry else 0


def published(node: NodeProcess, topic: str) -> int:
    report = node.status()
    return report.messages.published.get(topic, 0) if report else 0


def test_late_joiners_learn_the_tasks_from_a_peer_and_claim_only_what_is_free(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    record = tmp_path / "record.jsonl"
    with seeded_forge(world(["watcher", "able", "late"], 0), "bzzz-sync-") as forge:
        watcher = claim_node(make_node, forge, "watcher", [], tool_path, executor=DECLINE)
        start_all(watcher)
        first = open_task(forge, "Nobody here can run this")
        wait_for(lambda: first in task_states(watcher), 20, "the watcher to announce it")
        assert published(watcher, "task_broadcast") == 1
        # Long enough for the announcement to leave GossipSub's message cache (a few
        # heartbeats), so a node that joins now cannot hear it.
        pings = published(watcher, "presence_ping")
        wait_for(lambda: published(watcher, "presence_ping") >= pings + 8, 30, "8 more pings")

        # A node that can run it joins later: it learns it from the watcher's table (the
        # announcement is long gone) and runs it, with no new announcement.
        able = claim_node(make_node, forge, "able", [watcher.addr], tool_path)
        start_all(able)
        pools.append(Workers(able, record, seconds=12.0))
        wait_for(lambda: learnt_from(able, watcher) >= 1, 20, "able to learn the task")
        wait_for(lambda: task_states(able).get(first) == "running", 30, "able to run it")
        assert published(watcher, "task_broadcast") == 1

        # Another joins while able holds it: it learns the task is held, and does not
        # claim it, though it could run it.
        late = claim_node(make_node, forge, "late", [watcher.addr], tool_path)
        start_all(late)
        pools.append(Workers(late, record))
        wait_for(lambda: task_states(late).get(first) == "held", 20, "late to learn it is held")

        # The watcher restarts while a second task is run: it learns what it missed.
        watcher.stop()
        second = open_task(forge, "Opened while the watcher was away")
        wait_for(lambda: len(ran(record)) == 2, 60, "both tasks to run")
        watcher.start()
        wait_alive(watcher, {"able", "late"})
        for node in (watcher, able, late):
            wait_for(
                lambda node=node: (
                    [task_states(node).get(t) for t in (first, second)]  # type: ignore[misc]
                    == ["done", "done"]
                ),
                30,
                f"{node.name} to know both tasks are done",
            )
        assert {n.node for n in claim_notes(forge, number_of(first))} == {"able"}  # late: none


def test_after_a_partition_heals_both_sides_agree_on_every_task(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path, tool_path: str
) -> None:
    """Each node on its own host (network namespace), the forge on the segment's hub. The
    test cuts one node off; the other runs the tasks opened meanwhile, whose issues are
    then closed (their pull requests merged), so no poll lists them again; after the link
    is back, the cut-off node learns how they ended from its peer's table."""
    record = tmp_path / "ran.jsonl"
    names = ["east", "west"]
    with lan(2) as hosts:
        hub = hub_of(hosts[0][0])
        with entered(hub):  # the forge listens on the segment, where every host reaches it
            forge = LocalForge(tmp_path / "forge", host=HUB_ADDRESS).start()
        try:
            forge.seed(world(names, 1))
            nodes = hosted_nodes(make_node, forge, names, hosts, tool_path)
            east, west = nodes
            start_all_in(nodes, [ns for ns, _ in hosts])
            wait_alive(east, {"west"})
            pools.extend(
                Workers(node, record, prefix=["ip", "netns", "exec", ns])
                for node, (ns, _) in zip(nodes, hosts, strict=True)
            )
            wait_for(lambda: len(ran(record)) == 1, 40, "the first task to run")
            set_link(hosts[1][0], up=False)  # west is cut off: from east and the forge
            try:
                opened = [
                    call_in(hub, lambda n=n: open_task(forge, f"While west is away {n}"))  # type: ignore[misc]
                    for n in (1, 2)
                ]
                wait_for(lambda: len(ran(record)) == 3, 60, "east to run the new tasks")
                wait_for(
                    lambda: all(task_states(east).get(t) == "done" for t in opened),
                    30,
                    "east to finish them",
                )
                for task in opened:
                    call_in(hub, lambda task=task: close_issue(forge, task))  # type: ignore[misc]
            finally:
                set_link(hosts[1][0], up=True)
            wait_for(lambda: learnt_from(west, east) >= 2, 40, "west to learn from east")
            wait_for(
                lambda: task_states(west) == task_states(east),
                30,
                "both sides to agree on every task",
            )
            assert all(task_states(west).get(t) == "done" for t in opened)
            for task in opened:
                notes = call_in(hub, lambda task=task: claim_notes(forge, number_of(task)))  # type: ignore[misc]
                assert {n.state for n in notes} == {ClaimState.DONE}
        finally:
            forge.stop()
