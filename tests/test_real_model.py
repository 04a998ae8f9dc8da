"""The reasoning loop with a real model: SmolLM2-135M-Instruct, run by llama.cpp behind
the lab model server's ollama API, driven through the real `ollama` client, its commands
run in a real bubblewrap sandbox on a toy git repository.

A 135M model rarely solves the issue; what is checked is that the loop holds: every
reply within num_predict, every prompt within num_ctx (the server's own counts), the
run within its wall time, and an ending that names what happened. It takes about 15 s
of wall time and 20 s of CPU on two cores (one llama.cpp thread; the model loads in
0.3 s). The model, llama-cpp-python and bubblewrap come with `./scripts/setup --dev`:
without them this test skips on a developer's machine and fails in CI.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bzzz.lab.model import GgufNotFound, LabModelServer, gguf_models
from tests.sandbox.support import TEST_SETTINGS
from workers.agent import SandboxRunner
from workers.loop import Budget, Cause, Ending, TaskText, run_loop
from workers.models import ModelOptions, OllamaChat
from workers.results import behaviour, usage
from workers.sandbox import open_sandbox
from workers.sandbox.bubblewrap_backend import bubblewrap_problem

NUM_CTX = 2048
NUM_PREDICT = 96
WALL_TIME = 45.0
TASK = TaskText(
    "lab/toy",
    7,
    "Add a line 'Run python3 hello.py to greet.' to README.md",
    "The README should say how to run the program.",
    "bzzz/task-7-readme",
    "main",
)


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs it: ./scripts/setup --dev)")
    pytest.skip(reason)


@pytest.fixture
def smollm2() -> Iterator[LabModelServer]:
    from bzzz.lab.model.llama import LlamaUnavailable  # noqa: PLC0415

    try:
        models = gguf_models(["smollm2"], threads=1)
    except (LlamaUnavailable, GgufNotFound) as exc:
        unavailable(str(exc))
    with LabModelServer(models=dict(models)) as server:
        yield server


def toy_repository(path: Path) -> Path:
    path.mkdir()
    (path / "README.md").write_text("# toy\n\nA toy project.\n")
    (path / "hello.py").write_text('print("Hello!")\n')
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "."],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy"],
    ):
        subprocess.run(command, cwd=path, check=True, capture_output=True)
    return path


def changed(repository: Path) -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repository, capture_output=True, text=True, check=True
    )
    return bool(status.stdout.strip())


@pytest.mark.timeout(180)
def test_a_real_small_model_stays_within_its_bounds(
    smollm2: LabModelServer, tmp_path: Path
) -> None:
    settings = replace(TEST_SETTINGS, backend="bubblewrap", command_timeout=10.0)
    if (problem := bubblewrap_problem(settings)) is not None:
        unavailable(problem)
    repository = toy_repository(tmp_path / "toy")
    options = ModelOptions(num_ctx=NUM_CTX, num_predict=NUM_PREDICT, temperature=0.0)
    chat = OllamaChat(smollm2.url, "smollm2", timeout=20.0, options=options)
    budget = Budget(
        max_steps=4,
        wall_time=WALL_TIME,
        command_timeout=10.0,
        max_bad_replies=2,
        model_timeout=20.0,
        context_window=NUM_CTX,
        reply_tokens=NUM_PREDICT,
        output_chars=2000,
    )
    began = time.monotonic()
    with open_sandbox(settings, repository) as sandbox:
        result = run_loop(
            TASK, chat, SandboxRunner(sandbox), budget, changed=lambda: changed(repository)
        )
    took = time.monotonic() - began

    assert result.calls, result.reason
    assert took <= WALL_TIME + 5.0, (took, result.reason)
    # every reply within num_predict, every prompt within num_ctx, by the server's counts
    answered = [r for r in smollm2.requests() if r.path == "/api/chat" and r.status == 200]
    assert len(answered) == len(result.calls)
    for logged, call in zip(answered, result.calls, strict=True):
        assert logged.eval_count is not None
        assert logged.prompt_eval_count is not None
        assert logged.eval_count <= NUM_PREDICT
        assert logged.prompt_eval_count + NUM_PREDICT <= NUM_CTX
        assert (logged.eval_count, logged.prompt_eval_count) == (
            call.reply_tokens,
            call.prompt_tokens,
        )
        assert call.cut == (logged.done_reason == "length")
    # the ending names what happened: done, or the model's behaviour, or the budget
    assert result.cause in {Cause.DONE, Cause.MODEL, Cause.BUDGET}, result.reason
    if result.cause is Cause.MODEL:
        assert "**The model's behaviour** ended the attempt" in behaviour(result, result.reason)
    if result.ending is not Ending.DONE:
        assert result.last_reply
    print(f"\n{result.reason}; {len(result.steps)} commands in {took:.1f} s; {usage(result)}")
