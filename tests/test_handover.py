"""A task handed on between real nodes in separate processes, with their worker pools,
their own scripted model servers and the local forge: the holder's model breaks after
it changed a file, and the one other node with the task's model takes the task over,
continues from the holder's branch and delivers the pull request. The claim history on
the forge shows the holder, then its successor, and nobody else."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from bzzz.claims.ledger import ClaimState
from bzzz.config import load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import HttpError, LabModelServer, Scripted, done_step, run_step
from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import Reply
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.lab.sample import FILES
from tests.claimlab import REPO, Workers, claim_node, claim_notes, task_states, token
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive
from workers.sandbox import SandboxUnavailable, choose_backend

TASK = f"{REPO}#1"
NODES = ("node-a", "node-b", "node-c")
WORLD = {
    "users": [{"login": login, "token": token(login)} for login in ("lab", *NODES)],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": FILES,
            "labels": ["bzzz-task", "model:coder"],
            "collaborators": list(NODES),
            "issues": [],
        }
    ],
}
FAREWELL = "printf '\\ndef farewell(name):\\n    return f\"Goodbye, {name}!\"\\n' >> hello.py"


class Gated:
    """A script that holds its reply at turn `at` until the test opens the gate; it
    keeps the task as the conversations' first user message gave it."""

    def __init__(self, steps: Sequence[Reply], at: int = 99) -> None:
        self.script, self.at = Scripted(steps), at
        self.reached, self.gate = threading.Event(), threading.Event()
        self.tasks: list[str] = []

    def __call__(self, request: ChatRequest) -> Reply:
        if request.assistant_turns == 0:
            self.tasks.append(request.first_user_message())
        if request.assistant_turns >= self.at:
            self.reached.set()
            self.gate.wait(60)
        return self.script(request)


@dataclass
class Lab:
    forge: LocalForge
    servers: dict[str, LabModelServer]
    nodes: dict[str, NodeProcess]
    workers: dict[str, Workers]
    holder: Gated  # node-a's model: it breaks at its second turn
    gates: list[Gated]  # opened at the end


HOLDER_SCRIPT: list[Reply] = [
    run_step(FAREWELL, "farewell() goes next to greet()."),
    HttpError(500, "crashed"),
]
SUCCESSOR_SCRIPT: list[Reply] = [
    run_step("grep -q farewell hello.py && printf 'farewell\\n' >> README.md", "It is there."),
    done_step("Added farewell() (started by node-a) and listed it in the README."),
]


@pytest.fixture
def lab(make_node: NodeFactory, pools: list[Workers], tmp_path: Path) -> Iterator[Lab]:
    """node-a alone has the task's model `coder` when the task opens: it claims it; B
    and C have another model."""
    holder = Gated(HOLDER_SCRIPT, at=1)
    with contextlib.ExitStack() as stack:
        forge = stack.enter_context(seeded_forge(WORLD, "bzzz-handover-"))
        servers = {
            "node-a": LabModelServer(models={"coder": holder}),
            "node-b": LabModelServer(models={"other": Scripted([done_step("B")])}),
            "node-c": LabModelServer(models={"other": Scripted([done_step("C")])}),
        }
        for server in servers.values():
            stack.enter_context(server)
        nodes: dict[str, NodeProcess] = {}
        for name in NODES:
            bootstrap = [nodes["node-a"].addr] if nodes else []
            nodes[name] = claim_node(
                make_node,
                forge,
                name,
                bootstrap,
                "/usr/local/bin:/usr/bin:/bin",
                executor="workers.agent:run",
                capabilities={"ollama_host": servers[name].url, "check_interval": 1.0},
                git={"author_name": name, "author_email": f"{name}@lab.invalid"},
                agent={"model_timeout": 90.0},
                gateway={"listen": ""},  # each node its own models
                help={"bid_window": 1.0},
            )
        try:
            choose_backend(load_settings(nodes["node-a"].home).sandbox)
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox here: {exc}")
        start_all(*nodes.values())
        wait_alive(nodes["node-a"], {"node-b", "node-c"})
        workers = {name: Workers(node, tmp_path / "unused.jsonl") for name, node in nodes.items()}
        pools += workers.values()
        gates = [holder]
        try:
            yield Lab(forge, servers, nodes, workers, holder, gates)
        finally:
            for gated in gates:
                gated.gate.set()


def open_task(forge: LocalForge) -> None:
    lab = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
    lab.create_issue(REPO, "Add farewell() next to greet()", "", ["bzzz-task", "model:coder"])


def models_of(node: NodeProcess) -> list[str]:
    report = node.status()
    return list(((report.capabilities if report else None) or {}).get("models") or [])


def give_c_the_model(lab: Lab, script: Gated) -> None:
    """Once node-a works on the task (its model waits at the gate), node-c gets `coder`."""
    assert lab.holder.reached.wait(90), "node-a's model was never asked a second time"
    lab.gates.append(script)
    lab.servers["node-c"].register("coder", script)
    wait_for(lambda: "coder:latest" in models_of(lab.nodes["node-c"]), 30, "node-c to see coder")


def test_a_task_is_handed_on_and_its_successor_delivers_from_the_holder_s_branch(
    lab: Lab,
) -> None:
    open_task(lab.forge)
    successor = Gated(SUCCESSOR_SCRIPT)
    give_c_the_model(lab, successor)
    lab.holder.gate.set()  # node-a's model breaks now
    c = lab.nodes["node-c"]
    wait_for(lambda: task_states(c).get(TASK) == "done", 120, "node-c to finish the task")

    notes = claim_notes(lab.forge, 1)
    assert [(n.node, n.state, n.successor, n.handed_by) for n in notes] == [
        ("node-a", ClaimState.RELEASED, "node-c", ""),
        ("node-c", ClaimState.DONE, "", "node-a"),
    ]
    reader = GitHubForge(lab.forge.api_url, Token(token("lab")), seconds_between_writes=0)
    (pull,) = reader.list_pull_requests(REPO)
    assert "It continues the work of node **node-a**, which handed the task on" in pull.body
    assert "Made by Bzzz node **node-c**" in pull.body
    assert "of node **node-c**'s log" in pull.body  # where its audit entries are
    assert "covered by its checkpoint at size" in pull.body
    said = [c.body for c in reader.get_comments(REPO, 1) if "bzzz-claim" not in c.body]
    assert len(said) == 1
    assert "node **node-a** handed this task on to node **node-c**" in said[0], said
    assert "`node-a/app:bzzz/task-1-" in said[0]

    # The pull request's branch: node-a's commit, then node-c's on top of it.
    owner, _, branch = pull.head.partition(":")
    git = pygit2.Repository(str(lab.forge.root / "git" / owner / "app.git"))
    head = git.references[f"refs/heads/{branch}"].peel(pygit2.Commit)
    authors = [head.author.name, *(p.author.name for p in head.parents)]
    assert authors == ["node-c", "node-a"]
    assert b"def farewell" in git[head.tree["hello.py"].id].data
    assert b"farewell" in git[head.tree["README.md"].id].data

    # node-c's model was shown node-a's work; node-b took no part.
    (task,) = successor.tasks
    assert "Node node-a started this task and handed it on to you" in task
    assert "+def farewell(name):" in task  # node-a's diff
    assert not [r for r in lab.servers["node-b"].requests() if r.path == "/api/chat"]
    (asked,) = lab.nodes["node-a"].status_json()["help"]["asked"]  # type: ignore[index]
    assert (asked["kind"], asked["helper"], asked["outcome"]) == ("handoff", "node-c", "handed on")
    assert asked["offers"] == ["node-c"]  # node-b lacks the model: it did not offer

    # node-c's audit log: the takeover, its worker's commands (exit codes, output hashes),
    # its model calls and its diff; the log verifies against its checkpoints.
    def logged() -> str:
        return bzzz("audit", c, "show", "--task", TASK)

    wait_for(lambda: "worker_diff" in logged(), 30, "node-c's worker's entries")
    audited = logged()
    for kind in ("task_takeover", "task_claimed", "worker_command", "worker_model_calls"):
        assert kind in audited, audited
    assert "exit_code=0" in audited
    assert "output_sha256=" in audited
    wait_for(lambda: "ok    " in bzzz("audit", c, "verify", check=False), 30, "a checkpoint")
    shown = bzzz("tasks", lab.nodes["node-a"]) + bzzz("status", c)
    assert "for a node to take it over (coder): 1 asks, offers from node-c; handed on" in shown
    assert "took 1 tasks over" in shown


def bzzz(command: str, node: NodeProcess, *more: str, check: bool = True) -> str:
    return subprocess.run(
        [sys.executable, "-m", "bzzz", command, *more, "--home", str(node.home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=check,
    ).stdout


def test_a_successor_that_dies_is_taken_over_after_its_lease(lab: Lab) -> None:
    open_task(lab.forge)
    stalled = Gated([done_step("never")], at=0)  # node-c's model never answers in time
    give_c_the_model(lab, stalled)
    lab.holder.gate.set()
    assert stalled.reached.wait(90), "node-c never started on the task"
    lab.workers["node-c"].stop()  # node-c's machine dies
    lab.nodes["node-c"].process.kill()  # type: ignore[union-attr]
    # node-a's model answers again from the start; node-a takes over once node-c's
    # lease is out, and finishes.
    lab.servers["node-a"].register("coder", Scripted([HOLDER_SCRIPT[0], *SUCCESSOR_SCRIPT]))
    a = lab.nodes["node-a"]
    wait_for(lambda: task_states(a).get(TASK) == "done", 150, "node-a to take the task back")
    notes = claim_notes(lab.forge, 1)
    assert [(n.node, n.state) for n in notes] == [
        ("node-a", ClaimState.DONE),  # its comment, claimed again after node-c's lease
        ("node-c", ClaimState.CLAIM),  # expired: node-c died holding it
    ]
    assert notes[0].takes_over == "node-c"
