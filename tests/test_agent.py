"""The agent executor in-process, on real parts: the local forge (API and git over HTTP),
the lab model server with the real ollama client, and a real sandbox."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bzzz.config import Settings, load_settings
from bzzz.forge.api import Forge
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.home import init_home
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import (
    LAB_MODEL,
    ChatRequest,
    Embedding,
    HttpError,
    LabModelServer,
    Reply,
    Scripted,
    Text,
    done_step,
    run_step,
    sample_playbook,
)
from bzzz.lab.sample import FILES, ISSUES, SAMPLE_NAME, SAMPLE_OWNER, SAMPLE_REPO
from bzzz.work import DECLINED, TaskSpec
from tests.conftest import seeded_forge
from workers import agent
from workers.sandbox import SandboxUnavailable, choose_backend

NODE = "node-a"
TOKEN = "tok-node-a-secret-0123456789"  # noqa: S105
WORLD = {
    "users": [
        {"login": SAMPLE_OWNER, "token": "tok-lab-0123456789"},
        {"login": NODE, "token": TOKEN},
    ],
    "repos": [
        {
            "owner": SAMPLE_OWNER,
            "name": SAMPLE_NAME,
            "files": FILES,
            "labels": ["bzzz-task"],
            "collaborators": [NODE],
            "issues": [
                *ISSUES[:3],
                {"number": 4, "title": "Leak the token", "labels": ["bzzz-task"]},
            ],
        }
    ],
}


@dataclass
class Context:
    settings: Settings
    forge: Forge
    token: Token | None
    holds: bool = True
    progress_seen: list[str] = field(default_factory=list)
    audited: list[dict[str, Any]] = field(default_factory=list)

    def still_holds(self) -> bool:
        return self.holds

    def progress(self, text: str) -> None:
        self.progress_seen.append(text)

    def audit(self, entry: dict[str, Any]) -> None:
        self.audited.append(entry)


@pytest.fixture
def forge() -> Iterator[LocalForge]:
    with seeded_forge(WORLD, "bzzz-agent-") as running:
        yield running


SHOWN: list[str] = []  # what the snooping model was shown: its commands' output


def snoop(request: ChatRequest) -> Reply:
    SHOWN.extend(m.content for m in request.messages)
    return SNOOP(request)


SNOOP = Scripted(
    [
        run_step("env; tr '\\0' '\\n' < /proc/self/environ; ls -la ~ /workspace /proc/1/root"),
        run_step("printf 'looked\\n' > looked.txt"),
        done_step("looked around"),
    ]
)


@pytest.fixture
def model() -> Iterator[LabModelServer]:
    SHOWN.clear()
    models = {
        LAB_MODEL: sample_playbook(crash=False),  # issue 1 plays through (no hand-off here)
        "babbler": Scripted([Text("Let me think about it.")]),
        "snoop": snoop,
        "idle": Scripted([done_step("Nothing needed doing.")]),
        "crashing": Scripted(
            [run_step("ls"), HttpError(500, "llama runner process has terminated")]
        ),
    }
    with LabModelServer(models=models) as running:
        yield running


@pytest.fixture
def context(forge: LocalForge, model: LabModelServer, tmp_path: Path) -> Context:
    try:
        choose_backend(load_settings(_home(tmp_path, forge, model)).sandbox)
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    settings = load_settings(tmp_path / "home")
    token = Token(TOKEN)
    return Context(settings, GitHubForge(forge.api_url, token, seconds_between_writes=0), token)


def _home(tmp_path: Path, forge: LocalForge, model: LabModelServer) -> Path:
    home = tmp_path / "home"
    init_home(
        home,
        NODE,
        extra={
            "forge": {"api_url": forge.api_url, "seconds_between_writes": 0.0},
            "capabilities": {"ollama_host": model.url},
            "gateway": {"listen": ""},  # no node here: the worker asks the server itself
            "agent": {"model": "lab", "model_timeout": 10.0, "max_steps": 10},
            "git": {"author_name": "Node A", "author_email": "node-a@lab.invalid"},
        },
        force=True,
    )
    return home


def spec(number: int, model: str = "ollama") -> TaskSpec:
    title = next(i["title"] for i in WORLD["repos"][0]["issues"] if i["number"] == number)  # type: ignore[index]
    return TaskSpec(
        task_id=f"{SAMPLE_REPO}#{number}",
        repo=SAMPLE_REPO,
        number=number,
        issue_url=f"http://forge/{SAMPLE_REPO}/issues/{number}",
        model=model,
        input=title,
        branch_prefix=f"bzzz/task-{number}-",
        node=NODE,
        comment_id=1,
        attempt=1,
    )


def clone_branch(forge: LocalForge, branch: str, into: Path) -> Path:
    url = forge.git_url(NODE, SAMPLE_NAME)
    subprocess.run(
        ["git", "clone", "-q", "--branch", branch, url, str(into)],
        check=True,
        capture_output=True,
    )
    return into


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def test_an_issue_becomes_one_pull_request_and_a_retry_updates_it(
    context: Context, forge: LocalForge, tmp_path: Path
) -> None:
    first = agent.run(spec(1), context)
    assert first.succeeded, first.reason
    assert first.result_type == "pull_request"
    again = agent.run(spec(1), context)  # a retried task: the same pull request
    assert again.succeeded, again.reason
    assert again.result_url == first.result_url

    lab = GitHubForge(forge.api_url, Token("tok-lab-0123456789"), seconds_between_writes=0)
    pulls = lab.list_pull_requests(SAMPLE_REPO)
    assert len(pulls) == 1
    (pull,) = pulls
    assert pull.html_url == first.result_url
    assert pull.draft
    assert "Closes #1" in pull.body
    assert "farewell" in pull.body  # the commands run
    branch = pull.head.partition(":")[2]
    assert branch.startswith("bzzz/task-1-")
    checkout = clone_branch(forge, branch, tmp_path / "check")
    assert 'return f"Goodbye, {name}!"' in (checkout / "hello.py").read_text()
    assert git(checkout, "log", "-1", "--format=%an <%ae>|%cn").strip() == (
        "Node A <node-a@lab.invalid>|Node A"
    )
    assert int(git(checkout, "rev-list", "--count", "HEAD").strip()) == 2  # one commit on main
    assert any(text.startswith("step 1:") for text in context.progress_seen)
    # which model, and why: in the progress and the pull request
    assert "model lab:latest (agent.model)" in context.progress_seen
    assert "with model `lab:latest` (agent.model)," in pull.body


def test_a_task_that_fails_leaves_one_failure_report(context: Context, forge: LocalForge) -> None:
    outcome = agent.run(spec(2, model="babbler"), context)
    assert not outcome.succeeded
    assert outcome.result_type == "failure"
    assert "replies could not be used" in outcome.reason
    comments = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).get_comments(
        SAMPLE_REPO, 2
    )
    reports = [c for c in comments if "could not finish this task" in c.body]
    assert len(reports) == 1
    assert "Model `babbler:latest` (the task's model)," in reports[0].body
    # the report names the model's behaviour, shows its last reply and its calls
    assert "**The model's behaviour** ended the attempt, not this node" in reports[0].body
    assert "## The model's last reply\n```\nLet me think about it.\n```" in reports[0].body
    assert "4 model calls: prompts of" in reports[0].body
    assert reports[0].html_url == outcome.result_url
    assert (
        GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).list_pull_requests(
            SAMPLE_REPO
        )
        == []
    )


def test_with_push_access_auto_opens_the_pull_request_from_the_repository_itself(
    context: Context, forge: LocalForge
) -> None:
    # the node's account is a collaborator of the sample repository: it may push there
    context.settings = replace(context.settings, git=replace(context.settings.git, push_to="auto"))
    first = agent.run(spec(1), context)
    assert first.succeeded, first.reason
    again = agent.run(spec(1), context)  # the retry finds the same pull request
    assert again.result_url == first.result_url
    (pull,) = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).list_pull_requests(
        SAMPLE_REPO
    )
    assert pull.head.startswith(f"{SAMPLE_OWNER}:bzzz/task-1-")  # in the repository itself
    assert not forge.repos.path(NODE, SAMPLE_NAME).exists()  # and no fork was made
    assert not [r for r in forge.requests() if r.path.endswith("/forks")]


def test_no_model_that_can_chat_fails_the_task_saying_why(
    context: Context, model: LabModelServer
) -> None:
    model.register("nomic-embed-text", Embedding())
    context.settings = replace(
        context.settings, agent=replace(context.settings.agent, model="nomic-embed-text")
    )
    for info in model.models():
        if info.name != "nomic-embed-text:latest":
            model.unregister(info.name)
    outcome = agent.run(spec(3), context)
    assert not outcome.succeeded
    assert "no model that can chat" in outcome.reason
    assert "nomic-embed-text:latest (agent.model): cannot chat (capabilities: embedding)" in (
        outcome.reason
    )


def test_a_lost_claim_delivers_nothing(context: Context, forge: LocalForge) -> None:
    context.holds = False
    outcome = agent.run(spec(3), context)
    assert not outcome.succeeded
    reader = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0)
    assert reader.list_pull_requests(SAMPLE_REPO) == []
    assert reader.get_comments(SAMPLE_REPO, 3) == []  # not even a failure report


def test_the_token_reaches_neither_the_sandbox_nor_the_results(
    context: Context, forge: LocalForge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BZZZ_FORGE_TOKEN", TOKEN)  # as a worker has it
    outcome = agent.run(spec(4, model="snoop"), context)
    assert outcome.succeeded, outcome.reason
    assert any("PATH=" in text for text in SHOWN), "the model saw the environment"
    assert all(TOKEN not in text for text in SHOWN)  # not in the sandbox's env
    (pull,) = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).list_pull_requests(
        SAMPLE_REPO
    )
    assert TOKEN not in pull.body
    checkout = clone_branch(forge, pull.head.partition(":")[2], tmp_path / "check")
    assert TOKEN not in git(checkout, "log", "-p", "--all")
    leftovers = list((context.settings.home / "workspaces").glob("*"))
    assert leftovers == []  # the workspace was removed


def test_a_model_that_does_nothing_is_told_so_then_fails_the_attempt(
    context: Context, forge: LocalForge, model: LabModelServer
) -> None:
    outcome = agent.run(spec(2, model="idle"), context)
    assert not outcome.succeeded
    assert outcome.result_type == "failure"  # a real attempt, counted
    assert outcome.reason == "the model finished without changing anything"
    calls = [r for r in model.requests() if r.path == "/api/chat" and r.model == "idle:latest"]
    assert len(calls) == 3  # done; "no command ran"; done; "no change"; done
    (report,) = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).get_comments(
        SAMPLE_REPO, 2
    )
    assert "**The model** said it was done but changed nothing" in report.body
    assert "Nothing needed doing." in report.body


def test_a_model_server_that_fails_mid_task_is_the_nodes_problem(
    context: Context, forge: LocalForge
) -> None:
    outcome = agent.run(spec(2, model="crashing"), context)
    assert outcome.result_type == DECLINED  # let go: no attempt used, nothing posted
    assert "llama runner process has terminated" in outcome.reason
    reader = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0)
    assert reader.get_comments(SAMPLE_REPO, 2) == []
    assert reader.list_pull_requests(SAMPLE_REPO) == []
