"""Agent CLIs as executors, on real parts: the real Claude Code and Codex CLIs (installed
by scripts/setup from npm), each in a real bubblewrap sandbox whose only way out is the
relay to the lab model server, which plays the sample playbook as the CLI's own tool
calls; the local forge takes the pull request."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bzzz.agents import CATALOGUE, SETUP_PATH, locate
from bzzz.config import load_settings
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.home import init_home
from bzzz.lab.forge import LocalForge
from bzzz.lab.model import (
    LAB_MODEL,
    ChatRequest,
    LabModelServer,
    Reply,
    Scripted,
    done_step,
    run_step,
)
from bzzz.lab.model import sample_playbook as playbook
from bzzz.lab.sample import SAMPLE_REPO
from tests.conftest import NodeFactory, start_all
from tests.test_agent import (
    NODE,
    SHOWN,
    TOKEN,
    Context,
    clone_branch,
    forge,  # noqa: F401 - a fixture
    spec,
)
from workers import agent
from workers.clis import executor
from workers.sandbox import SandboxUnavailable, choose_backend

TOOLS = list(SETUP_PATH)
HOST_ONLY = "host-only-0f3a"
HANG = "import time; time.sleep(300)"
SNOOP = Scripted(
    [
        # the token's pattern split, so that the command's own text (kept in the CLI's
        # session files under ~) does not match it
        run_step(
            'env; ls -la ~ /workspace; grep -rlF "$(printf tok-node)-a-secret" ~ /workspace'
            " || echo no-token-here"
        ),
        run_step("printf 'looked\\n' > looked.txt"),
        done_step("looked around"),
    ]
)  # what the host's loopback server answers, if reached


def installed(name: str) -> str:
    path = locate(CATALOGUE[name].executable, TOOLS)
    if path is None:
        pytest.skip(f"{name} is not installed: scripts/setup --dev installs it")
    return path


def recorded(script: Scripted) -> Callable[[ChatRequest], Reply]:
    """`script`, keeping what the model is shown (the commands' output) in SHOWN."""

    def reply(request: ChatRequest) -> Reply:
        SHOWN.extend(message.content for message in request.messages)
        return script(request)

    return reply


@pytest.fixture
def model() -> Iterator[LabModelServer]:
    SHOWN.clear()
    models = {
        LAB_MODEL: playbook(crash=False),
        "snoop": recorded(SNOOP),
        # not `sleep 300`: Claude Code refuses a standalone sleep
        "sleeper": Scripted([run_step(f"python3 -c '{HANG}'"), done_step("slept")]),
    }
    with LabModelServer(models=models) as running:
        yield running


def make_context(
    tmp_path: Path,
    lab_forge: LocalForge,
    model: LabModelServer,
    gateway_listen: str = "",
    **agent_settings: object,
) -> Context:
    """A worker's context; its model endpoint the lab model server, or the gateway at
    `gateway_listen` (a running node's)."""
    home = tmp_path / "home"
    init_home(
        home,
        NODE,
        extra={
            "forge": {"api_url": lab_forge.api_url, "seconds_between_writes": 0.0},
            "capabilities": {"ollama_host": model.url, "agent_path": TOOLS},
            "gateway": {"listen": gateway_listen},
            "agent": {"model": "lab", "model_timeout": 10.0, **agent_settings},
            "sandbox": {"backend": "bubblewrap"},
            "git": {"author_name": "Node A", "author_email": "node-a@lab.invalid"},
        },
        force=True,
    )
    settings = load_settings(home)
    try:
        choose_backend(settings.sandbox)
    except SandboxUnavailable as exc:
        pytest.skip(f"no bubblewrap sandbox here: {exc}")
    token = Token(TOKEN)
    return Context(settings, GitHubForge(lab_forge.api_url, token, seconds_between_writes=0), token)


# The API each CLI speaks, as the model server behind the gateway is asked: Gemini CLI's
# genai API is translated to ollama's chat by the gateway.
APIS = {
    "claude": "/v1/messages",
    "codex": "/v1/responses",
    "opencode": "/v1/chat/completions",
    "aider": "/v1/chat/completions",
    "gemini": "/api/chat",
}


@pytest.mark.parametrize("cli", list(APIS))
def test_an_agent_cli_solves_the_issue_in_the_sandbox_through_the_gateway(
    cli: str,
    make_node: NodeFactory,
    tmp_path: Path,
    forge: LocalForge,  # noqa: F811
    model: LabModelServer,
) -> None:
    installed(cli)
    node = make_node("a", capabilities={"ollama_host": model.url})
    start_all(node)
    context = make_context(
        tmp_path, forge, model, gateway_listen=node.gateway_url.removeprefix("http://")
    )
    outcome = agent.run(replace(spec(1), agent=cli), context)
    assert outcome.succeeded, outcome.reason
    assert outcome.result_type == "pull_request"

    (pull,) = GitHubForge(forge.api_url, Token(TOKEN), seconds_between_writes=0).list_pull_requests(
        SAMPLE_REPO
    )
    assert f"run by the agent CLI {cli}" in pull.body
    assert "farewell" in pull.body  # the CLI's commands, from its transcript
    assert "both tests pass" in pull.body  # its own summary
    assert "served by node **a**" in pull.body  # the relay read the x-bzzz-node header
    checkout = clone_branch(forge, pull.head.partition(":")[2], tmp_path / "check")
    assert 'return f"Goodbye, {name}!"' in (checkout / "hello.py").read_text()
    assert "def test_farewell" in (checkout / "test_hello.py").read_text()
    # it spoke its own API, carried by the gateway to the lab model
    answered = {r.path for r in model.requests() if r.reply in ("text", "tool_call")}
    assert answered == {APIS[cli]}
    commands = [e for e in context.audited if e["type"] == "command"]
    assert len(commands) >= (2 if cli == "aider" else 3)  # aider runs nothing: it edits
    (calls,) = [e for e in context.audited if e["type"] == "model_calls"]
    assert calls["agent"] == cli
    assert calls["served_by"]["a"] >= 1


def test_the_cli_reaches_the_model_and_nothing_else_and_never_the_token(
    tmp_path: Path,
    forge: LocalForge,  # noqa: F811
    model: LabModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed("claude")
    monkeypatch.setenv("BZZZ_FORGE_TOKEN", TOKEN)  # as a worker has it
    context = make_context(tmp_path, forge, model)
    outcome = agent.run(replace(spec(4, model="snoop"), agent="claude"), context)
    assert outcome.succeeded, outcome.reason
    shown = "\n".join(SHOWN)
    assert "PATH=" in shown, "the CLI ran the commands and the model saw their output"
    assert "no-token-here" in shown
    assert TOKEN not in shown
    # the host's loopback (where the forge and the model server listen) is out of reach
    reach = f"import urllib.request as u; u.urlopen({forge.api_url!r}, timeout=3)"
    probe = f'python3 -c "{reach}" || echo unreachable-{HOST_ONLY} | tee probe.txt'
    SHOWN.clear()
    model.register("prober", recorded(Scripted([run_step(probe), done_step("probed")])))
    outcome = agent.run(replace(spec(4, model="prober"), agent="claude"), context)
    assert outcome.succeeded, outcome.reason
    assert f"unreachable-{HOST_ONLY}" in "\n".join(SHOWN)


def test_the_time_limit_stops_the_cli_and_all_it_started(
    tmp_path: Path,
    forge: LocalForge,  # noqa: F811
    model: LabModelServer,
) -> None:
    installed("claude")
    context = make_context(tmp_path, forge, model, wall_time=6.0)
    started = time.monotonic()
    outcome = agent.run(replace(spec(2, model="sleeper"), agent="claude"), context)
    assert time.monotonic() - started < 30
    assert not outcome.succeeded
    assert "ran out of time (agent.wall_time)" in outcome.reason
    assert not sleeping(), "the CLI's command outlived the sandbox"


def test_a_lost_claim_stops_the_cli_at_once(
    tmp_path: Path,
    forge: LocalForge,  # noqa: F811
    model: LabModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed("claude")
    monkeypatch.setattr(agent, "HOLD_CHECK_INTERVAL", 0.2)
    context = make_context(tmp_path, forge, model)
    threading.Timer(4.0, lambda: setattr(context, "holds", False)).start()
    started = time.monotonic()
    outcome = agent.run(replace(spec(2, model="sleeper"), agent="claude"), context)
    assert time.monotonic() - started < 20
    assert not outcome.succeeded
    assert "claude was stopped: the claim was lost" in outcome.reason
    assert not sleeping()
    assert not GitHubForge(forge.api_url, Token(TOKEN)).list_pull_requests(SAMPLE_REPO)


def test_a_node_that_cannot_drive_the_cli_declines_the_task(
    tmp_path: Path,
    forge: LocalForge,  # noqa: F811
    model: LabModelServer,
) -> None:
    context = make_context(tmp_path, forge, model)
    outcome = agent.run(replace(spec(1), agent="goose"), context)  # no driver
    assert outcome.result_type == "declined"
    assert "no driver for goose" in outcome.reason
    outcome = agent.run(replace(spec(1), agent="nonesuch"), context)
    assert outcome.result_type == "declined"
    assert "no agent CLI is called 'nonesuch'" in outcome.reason


def sleeping() -> bool:
    found = subprocess.run(["pgrep", "-f", HANG], capture_output=True, check=False)
    return found.returncode == 0


def test_the_transcripts_read_back_as_commands_and_a_summary() -> None:
    claude = "\n".join(
        [
            '{"type":"system","subtype":"init"}',
            '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1",'
            '"name":"Bash","input":{"command":"ls"}}]}}',
            '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1",'
            '"content":"hello.py"}]}}',
            '{"type":"result","subtype":"success","is_error":false,"num_turns":2,'
            '"result":"Listed.","usage":{"input_tokens":10,"output_tokens":5}}',
        ]
    )
    read = executor.DRIVERS["claude"].read(claude)
    assert [(c.command, c.exit_code, c.output) for c in read.commands] == [("ls", 0, "hello.py")]
    assert (read.summary, read.turns, read.tokens, read.failed) == ("Listed.", 2, 15, "")
    codex = "\n".join(
        [
            '{"type":"item.completed","item":{"type":"command_execution","command":"ls",'
            '"aggregated_output":"a\\n","exit_code":2}}',
            '{"type":"item.completed","item":{"type":"agent_message","text":"Done."}}',
            '{"type":"turn.completed","usage":{"input_tokens":7,"output_tokens":3}}',
            "not json",
        ]
    )
    read = executor.DRIVERS["codex"].read(codex)
    assert [(c.command, c.exit_code) for c in read.commands] == [("ls", 2)]
    assert (read.summary, read.turns, read.tokens) == ("Done.", 1, 10)
    failed = executor.DRIVERS["codex"].read('{"type":"turn.failed","error":{"message":"boom"}}')
    assert failed.failed == "boom"
