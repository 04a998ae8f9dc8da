"""Plans reviewed by peers (Antennae), with real nodes in separate processes, their own
scripted model servers, the local forge and the lab's n8n and Hive stand-ins: node-a holds the
task; node-b and node-c review its plans. An objection makes node-a's model revise the
plan, then work starts with the agreed plan and the pull request carries the review; a
review that never converges escalates once and leaves the task for a person."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bzzz.antennae.prompts import PLAN_SYSTEM, REVIEW_SYSTEM
from bzzz.config import load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.hive import LabHive
from bzzz.lab.model import LabModelServer, Text, done_step, run_step
from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import Reply
from bzzz.lab.n8n import LabWebhook
from bzzz.lab.processes import NodeProcess, wait_for
from bzzz.lab.sample import FILES
from tests.claimlab import REPO, Workers, claim_node, task_states, token
from tests.conftest import NodeFactory, seeded_forge, start_all, wait_alive
from workers.sandbox import SandboxUnavailable, choose_backend

NODES = ("node-a", "node-b", "node-c")
TASK = f"{REPO}#1"
WORLD = {
    "users": [{"login": login, "token": token(login)} for login in ("lab", *NODES)],
    "repos": [
        {
            "owner": "lab",
            "name": "app",
            "files": FILES,
            "labels": ["bzzz-task", "model:coder"],
            "collaborators": list(NODES),
            "issues": [
                {"number": 1, "title": "Add farewell()", "labels": ["bzzz-task", "model:coder"]}
            ],
        }
    ],
}
BOLD = "Rewrite hello.py in C."
MODEST = "Add farewell() next to greet() in hello.py, then run it."
FAREWELL = "printf '\\ndef farewell(name):\\n    return f\"Goodbye, {name}!\"\\n' >> hello.py"


def system_of(request: ChatRequest) -> str:
    return next((m.content for m in request.messages if m.role == "system"), "")


class Holder:
    """node-a's model: a bold plan first, a modest one once told of an objection; then
    the loop's steps. It keeps the loop's first task text."""

    def __init__(self) -> None:
        self.tasks: list[str] = []
        self.steps = [run_step(FAREWELL, "As planned."), done_step("Added farewell().")]

    def __call__(self, request: ChatRequest) -> Reply:
        if system_of(request).startswith(PLAN_SYSTEM[:60]):
            objected = "objected" in request.first_user_message()
            return Text(json.dumps({"plan": MODEST if objected else BOLD}))
        if request.assistant_turns == 0:
            self.tasks.append(request.first_user_message())
        return self.steps[min(request.assistant_turns, len(self.steps) - 1)]


class Critic:
    """A reviewer's model: objects to rewriting in C (always, when `stubborn`)."""

    def __init__(self, stubborn: bool = False) -> None:
        self.stubborn = stubborn

    def __call__(self, request: ChatRequest) -> Reply:
        assert system_of(request).startswith(REVIEW_SYSTEM[:60])
        if self.stubborn or BOLD in request.first_user_message():
            review = {"verdict": "objection", "text": "Rewriting it in C is out of scope."}
        else:
            review = {"verdict": "approve", "text": "That is all the issue asks."}
        return Text(json.dumps(review))


@dataclass
class Lab:
    forge: LocalForge
    nodes: dict[str, NodeProcess]
    holder: Holder
    hook: LabWebhook
    hive: LabHive


@contextlib.contextmanager
def antennae_lab(
    make_node: NodeFactory, pools: list[Workers], *, stubborn: bool, rounds: int = 3
) -> Iterator[Lab]:
    holder = Holder()
    with contextlib.ExitStack() as stack:
        forge = stack.enter_context(seeded_forge(WORLD, "bzzz-antennae-"))
        hook = stack.enter_context(LabWebhook())
        hive = stack.enter_context(LabHive())
        hive.add_repo("lab", "app")  # beside tasks.repositories: the nodes report to it
        servers = {
            "node-a": LabModelServer(models={"coder": holder}),
            "node-b": LabModelServer(models={"critic": Critic(stubborn)}),
            "node-c": LabModelServer(models={"critic": Critic(stubborn)}),
        }
        for server in servers.values():
            stack.enter_context(server)
        nodes: dict[str, NodeProcess] = {}
        for name in NODES:
            nodes[name] = claim_node(
                make_node,
                forge,
                name,
                [nodes["node-a"].addr] if nodes else [],
                "/usr/local/bin:/usr/bin:/bin",
                # only node-a takes tasks; node-b and node-c review
                executor="workers.agent:run" if name == "node-a" else "workers.executors:decline",
                capabilities={"ollama_host": servers[name].url},
                gateway={"listen": ""},
                agent={"model_timeout": 30.0},
                antennae={"review": "always", "window": 20.0, "max_rounds": rounds},
                escalation={"webhook_url": hook.hook_url()},
                hive={"url": hive.url, "refresh": 1.0},
            )
        try:
            choose_backend(load_settings(nodes["node-a"].home).sandbox)
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox here: {exc}")
        start_all(*nodes.values())
        wait_alive(nodes["node-a"], {"node-b", "node-c"})
        wait_for(
            lambda: reviewers_known(nodes["node-a"]), 30, "node-a to know the reviewers' models"
        )
        pools.append(Workers(nodes["node-a"], nodes["node-a"].home / "unused.jsonl"))
        yield Lab(forge, nodes, holder, hook, hive)


def reviewers_known(node: NodeProcess) -> bool:
    report = node.status_json() or {}
    peers = report.get("peers") or []
    return sum(1 for p in peers if (p.get("capabilities") or {}).get("models")) >= 2


def lab_reader(forge: LocalForge) -> GitHubForge:
    return GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)


def test_an_objection_leads_to_a_revised_plan_then_work_and_the_review_in_the_pull_request(
    make_node: NodeFactory, pools: list[Workers]
) -> None:
    with antennae_lab(make_node, pools, stubborn=False) as lab:
        a = lab.nodes["node-a"]
        wait_for(lambda: task_states(a).get(TASK) == "done", 90, "node-a to finish the task")
        (pull,) = lab_reader(lab.forge).list_pull_requests(REPO)
        assert "## The plan's review (Antennae)" in pull.body
        review = pull.body.split("## The plan's review (Antennae)")[1].split("##")[0]
        lines = [line for line in review.splitlines() if line.startswith("- **")]
        assert lines[0] == f"- **node-a** (plan): {BOLD}"
        assert sorted(lines[1:3]) == [
            "- **node-b** (objection): Rewriting it in C is out of scope.",
            "- **node-c** (objection): Rewriting it in C is out of scope.",
        ]
        assert lines[3] == f"- **node-a** (plan): {MODEST}"
        assert len(lines) == 6
        (first,) = lab.holder.tasks
        assert f"Your plan, agreed with your peers (reviewed by node-b, node-c):\n{MODEST}" in first
        assert lab.hook.received() == []  # it converged: nobody was asked


def test_a_review_that_does_not_converge_escalates_once_and_the_task_waits(
    make_node: NodeFactory, pools: list[Workers]
) -> None:
    with antennae_lab(make_node, pools, stubborn=True, rounds=2) as lab:
        wait_for(lambda: len(lab.hook.received()) == 1, 90, "the escalation's webhook POST")
        body = lab.hook.received()[0].body
        assert (body["task"], body["trigger"], body["escalation_agent"]) == (
            TASK,
            "no_consensus",
            "node-a",
        )
        assert body["session_id"].startswith("s")
        assert sorted(body["participants"]) == list(NODES)
        kinds = [said["kind"] for said in body["conversation"]]
        assert kinds == ["plan", "objection", "objection", "plan", "objection", "objection"]
        reader = lab_reader(lab.forge)
        wait_for(lambda: "bzzz-needs-human" in reader.get_issue(REPO, 1).labels, 30, "the label")
        asked = [c for c in reader.get_comments(REPO, 1) if "asks a person" in c.body]
        assert len(asked) == 1
        assert "(no consensus)" in asked[0].body
        wait_for(
            lambda: any(s["status"] == "escalated" for s in lab.hive.statuses()), 30, "Hive to hear"
        )
        (escalated,) = [s for s in lab.hive.statuses() if s["status"] == "escalated"]
        assert escalated["task_number"] == 1
        assert escalated["results"]["trigger"] == "no_consensus"
        assert escalated["metadata"]["session_id"] == body["session_id"]
        a = lab.nodes["node-a"]
        wait_for(lambda: task_states(a).get(TASK) in ("seen", "closed"), 60, "node-a to let it go")
        assert reader.list_pull_requests(REPO) == []
        assert lab.holder.tasks == []  # the loop never ran
