"""What runs a task inside a worker. An executor is a function `(spec, context) -> Outcome`,
chosen by `workers.executor` (module:function).

The real one is `workers.agent:run` (clone, reason with a model, sandboxed commands,
pull request). A node whose executor is `decline` takes no tasks (it offers no worker
slots); should one reach it anyway, it fails. Tests use `record`, which notes which
node ran which task, `fail`, which fails every task, and `unfit`, which declines every
task as a node that lacks something would.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bzzz.config import Settings
from bzzz.forge.api import Forge
from bzzz.forge.token import Token
from bzzz.work import DECLINED, TaskSpec

RECORD_FILE_ENV = "BZZZ_RECORD_FILE"
RECORD_SECONDS_ENV = "BZZZ_RECORD_SECONDS"
RECORD_RETRY_SECONDS_ENV = "BZZZ_RECORD_RETRY_SECONDS"  # for attempts after the first


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    result_type: str  # pull_request, issue or failure; or DECLINED (a problem of the node)
    result_url: str
    reason: str = ""


def declined(spec: TaskSpec, reason: str) -> Outcome:
    """This node cannot run the task (no git identity, model server, sandbox...): a
    problem of the node, not of the task. The node lets the task go at once, uses no
    attempt, posts nothing on the issue, and says why in its status."""
    return Outcome(False, DECLINED, spec.issue_url, reason)


class Context(Protocol):
    settings: Settings
    forge: Forge
    token: Token | None  # the node's forge token: for git pushes only, never in the sandbox

    def still_holds(self) -> bool:
        """Whether the forge still says this node holds the task: check before any
        step that others would see (a push, a pull request)."""
        ...

    def progress(self, text: str) -> None: ...

    def audit(self, entry: dict[str, Any]) -> None:
        """An entry for the node's audit log: `type` and short fields (no outputs)."""
        ...


Executor = Callable[[TaskSpec, Context], Outcome]


def load_executor(path: str) -> Executor:
    module_name, _, function = path.partition(":")
    executor: Executor = getattr(importlib.import_module(module_name), function)
    return executor


def decline(spec: TaskSpec, context: Context) -> Outcome:
    return Outcome(
        succeeded=False,
        result_type="failure",
        result_url=spec.issue_url,
        reason="this node has no task executor configured (workers.executor)",
    )


def unfit(spec: TaskSpec, context: Context) -> Outcome:
    """For tests: decline every task, as a node that lacks something (a git identity, its
    model server) does: the task is let go, with no attempt used and nothing reported."""
    return declined(spec, "this node is unfit for tasks (workers.executors:unfit)")


def fail(spec: TaskSpec, context: Context) -> Outcome:
    """For tests: run, and fail, every task (a task no node can solve)."""
    return Outcome(
        succeeded=False,
        result_type="failure",
        result_url=spec.issue_url,
        reason="the task failed on this node (workers.executors:fail fails every task)",
    )


def record(spec: TaskSpec, context: Context) -> Outcome:
    """For tests: take BZZZ_RECORD_SECONDS (BZZZ_RECORD_RETRY_SECONDS for a later
    attempt, if set), then, if the claim still holds, append who ran what to
    BZZZ_RECORD_FILE."""
    seconds = os.environ.get(RECORD_SECONDS_ENV, "0")
    if spec.attempt > 1:
        seconds = os.environ.get(RECORD_RETRY_SECONDS_ENV, seconds)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        context.progress("working")
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    if not context.still_holds():
        return Outcome(False, "failure", spec.issue_url, "lost the claim before finishing")
    line = json.dumps(
        {"task_id": spec.task_id, "node": spec.node, "pid": os.getpid(), "time": time.time()}
    )
    with open(os.environ[RECORD_FILE_ENV], "a", encoding="utf-8") as out:
        out.write(line + "\n")
    return Outcome(True, "pull_request", f"{spec.issue_url}#done-by-{spec.node}")
