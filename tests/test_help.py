"""Help between peers: a node asks for a task, the nodes that can help offer, the asker
takes the best offer and the helper's model advises. Real nodes in separate processes,
each with its own model server; the asking side is the control command a worker sends."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bzzz.config import CONTROL_SOCKET, load_settings
from bzzz.control import request
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.model import LabModelServer, Scripted, Text, done_step, run_step
from bzzz.lab.model.paced import Paced
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.lab.sample import FILES
from tests.claimlab import REPO, Workers, claim_node, task_states, token
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive
from workers.sandbox import SandboxUnavailable, choose_backend

ADVICE = "Run `python3 -m pytest -x` first; the failing import is in hello.py line 3."
QUICK = {"bid_window": 1.0}
CONTEXT = {
    "repo": "lab/hello",
    "number": 3,
    "title": "Say goodbye",
    "body": "Add a farewell function.",
    "steps": [{"command": "python3 hello.py", "exit_code": 1, "output": "ImportError"}],
    "diff": "",
}


def models_of(node: NodeProcess) -> list[str]:
    report = node.status()
    caps = report.capabilities if report else None
    return list((caps or {}).get("models") or [])


def ask(node: NodeProcess, capability: str, question: str = "Why does the import fail?") -> Any:
    command = {
        "cmd": "help",
        "task_id": "lab/hello#3",
        "question": question,
        "capability": capability,
        "context": CONTEXT,
    }
    return request(node.home / CONTROL_SOCKET, command, timeout=120)


@pytest.fixture
def servers() -> Iterator[dict[str, LabModelServer]]:
    """Model servers: A and B have `lab`; only C has `lab-helper`; D's is slow."""
    made = {
        "a": LabModelServer(models={"lab": Scripted([Text("A")])}),
        "b": LabModelServer(models={"lab": Scripted([Text("B")])}),
        "c": LabModelServer(models={"lab-helper": Scripted([Text(ADVICE)])}),
    }
    with contextlib.ExitStack() as stack:
        for server in made.values():
            stack.enter_context(server)
        yield made


def mesh(make_node: NodeFactory, servers: dict[str, LabModelServer]) -> dict[str, NodeProcess]:
    a = make_node("a", capabilities={"ollama_host": servers["a"].url}, help=QUICK)
    nodes = {"a": a}
    for name in ("b", "c"):
        nodes[name] = make_node(
            name, [a.addr], capabilities={"ollama_host": servers[name].url}, help=QUICK
        )
    start_all(*nodes.values())
    wait_alive(a, {"b", "c"})
    for node in nodes.values():
        wait_for(lambda n=node: bool(models_of(n)), 20, f"{node.name} to read its models")  # type: ignore[misc]
    return nodes


def test_a_stuck_task_gets_advice_from_the_only_node_with_the_model(
    make_node: NodeFactory, servers: dict[str, LabModelServer]
) -> None:
    nodes = mesh(make_node, servers)
    answer = ask(nodes["a"], "lab-helper")
    assert answer["helped"] is True, answer
    assert (answer["node"], answer["model"], answer["advice"]) == ("c", "lab-helper:latest", ADVICE)
    assert answer["offers"] == ["c"]  # B has no lab-helper: it did not offer
    consulted = [r for r in servers["c"].requests() if r.path == "/api/chat"]
    assert [(r.model, r.messages, r.stream) for r in consulted] == [("lab-helper:latest", 2, False)]

    # Anyone's advice: B and C both may give it; one does, the other is told no.
    anyone = ask(nodes["a"], "advice")
    assert anyone["helped"] is True, anyone
    assert sorted(anyone["offers"]) == ["b", "c"]

    asked = nodes["a"].status_json()["help"]["asked"]  # type: ignore[index]
    assert [(x["helper"], x["outcome"], x["asks"]) for x in asked] == [
        ("c", "helped", 1),
        (anyone["node"], "helped", 1),
    ]
    given = nodes["c"].status_json()["help"]["given"]  # type: ignore[index]
    assert given[0]["outcome"] == "advice"
    assert given[0]["model"] == "lab-helper:latest"

    shown = bzzz("tasks", nodes["a"]) + bzzz("status", nodes["c"])
    assert "lab/hello#3  for lab-helper: 1 asks, offers from c; advice from c" in shown
    gave = 1 + (anyone["node"] == "c")
    assert f"help     asked 0 (helped 0); gave {gave} of {gave} consults" in shown


def bzzz(command: str, node: NodeProcess) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bzzz", command, "--home", str(node.home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_no_eligible_peer_means_three_asks_then_an_honest_answer(
    make_node: NodeFactory, servers: dict[str, LabModelServer]
) -> None:
    nodes = mesh(make_node, servers)
    answer = ask(nodes["a"], "claude")  # no node has that agent CLI
    assert answer == {
        "helped": False,
        "asks": 3,
        "offers": [],
        "reason": "no peer offered help after 3 asks",
    }
    dropped = nodes["b"].status_json()["messages"]["dropped"]  # type: ignore[index]
    assert not dropped.get("invalid"), dropped  # three asks, none past the hop limit


def test_a_helper_killed_mid_consult_leaves_the_asker_going_to_the_next(
    make_node: NodeFactory,
) -> None:
    slow = Paced(tokens=600, interval=0.05)  # 30 s of advice: C dies before it ends
    with (
        LabModelServer(models={"lab": Scripted([Text("A")])}) as own,
        LabModelServer(models={"lab-helper": slow}) as c_server,
        LabModelServer(models={"lab-helper": Scripted([Text(ADVICE)])}) as d_server,
    ):
        a = make_node("a", capabilities={"ollama_host": own.url}, help=QUICK)
        c = make_node("c", [a.addr], capabilities={"ollama_host": c_server.url}, help=QUICK)
        # D says it is slower, so C's offer ranks first.
        d = make_node(
            "d", [a.addr], capabilities={"ollama_host": d_server.url}, help={**QUICK, "eta": 90}
        )
        start_all(a, c, d)
        wait_alive(a, {"c", "d"})
        for node in (a, c, d):
            wait_for(lambda n=node: bool(models_of(n)), 20, f"{node.name} to read its models")  # type: ignore[misc]
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(ask, a, "lab-helper")
            wait_for(lambda: slow.started == 1, 30, "C's model to start advising")
            c.process.kill()  # type: ignore[union-attr]
            answer = pending.result(timeout=60)
    assert answer["helped"] is True, answer
    assert answer["node"] == "d"
    assert answer["offers"] == ["c", "d"]


ASKER_SCRIPT = [
    Text(
        json.dumps(
            {
                "thought": "I do not know where greet() lives; a model that knows asks.",
                "action": "help",
                "question": "Where should farewell() go?",
                "capability": "lab-helper",
            }
        )
    ),
    run_step(
        "printf '\\ndef farewell(name):\\n    return f\"Goodbye, {name}!\"\\n' >> hello.py",
        "The advice says: next to greet() in hello.py.",
    ),
    done_step("Added farewell() next to greet() in hello.py, as node c advised."),
]
HELP_WORLD = {
    "users": [{"login": login, "token": token(login)} for login in ("lab", "node-a", "node-c")],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": FILES,
            "labels": ["bzzz-task", "model:asker"],
            "collaborators": ["node-a", "node-c"],
            "issues": [
                {
                    "number": 1,
                    "title": "Add farewell() next to greet()",
                    "labels": ["bzzz-task", "model:asker"],
                }
            ],
        }
    ],
}


def test_a_task_finishes_with_a_peer_s_advice_and_the_pull_request_says_so(
    make_node: NodeFactory, pools: list[Workers], tmp_path: Path
) -> None:
    with (
        seeded_forge(HELP_WORLD, "bzzz-help-") as forge,
        LabModelServer(models={"asker": Scripted(ASKER_SCRIPT)}) as a_server,
        LabModelServer(models={"lab-helper": Scripted([Text(ADVICE)])}) as c_server,
    ):
        path = "/usr/local/bin:/usr/bin:/bin"
        common = {
            "agent": {"model_timeout": 20.0},
            "gateway": {"listen": ""},  # each node its own models: only C has lab-helper
            "help": QUICK,
        }
        a = claim_node(
            make_node,
            forge,
            "node-a",
            [],
            path,
            executor="workers.agent:run",
            capabilities={"ollama_host": a_server.url},
            git={"author_name": "node-a", "author_email": "node-a@lab.invalid"},
            **common,
        )
        try:
            choose_backend(load_settings(a.home).sandbox)
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox here: {exc}")
        c = claim_node(
            make_node,
            forge,
            "node-c",
            [a.addr],
            path,
            executor="workers.executors:decline",  # it takes no tasks; it only advises
            capabilities={"ollama_host": c_server.url},
            **common,
        )
        start_all(a, c)
        wait_alive(a, {"node-c"})
        pools.append(Workers(a, tmp_path / "unused.jsonl"))

        def done() -> bool:
            return task_states(a).get(f"{REPO}#1") == "done"

        wait_for(done, 90, "node-a to finish the task")
        reader = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
        (pull,) = reader.list_pull_requests(REPO)
        assert "Helped by node **node-c** (model `lab-helper:latest`)" in pull.body, pull.body
        (asked,) = a.status_json()["help"]["asked"]  # type: ignore[index]
        assert (asked["helper"], asked["outcome"]) == ("node-c", "helped")
        (given,) = c.status_json()["help"]["given"]  # type: ignore[index]
        assert given["outcome"] == "advice"
