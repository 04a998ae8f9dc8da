"""Handing a task on, from the worker: this node cannot finish it (its model or sandbox
broke, or the pull request cannot be opened from here), so the work so far is pushed to
the task's branch and the node is asked (control command `handoff`) to pass the claim
to a peer that can take the task. The peer continues from that branch and delivers.

A hand-off is not a failed attempt, and nothing is reported on the issue but the node's
note that it handed the task on. No taker: the caller goes on as it would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bzzz.control import ControlError, request
from bzzz.work import HANDED, HANDED_ON, TaskSpec
from workers.executors import Outcome
from workers.git_access import WorkspaceError
from workers.workspace import Workspace

log = logging.getLogger(__name__)

CONTROL_TIMEOUT = 300.0  # the node's asks and the successor's claim take up to 240 s
REASON_CHARS = 500
NODE_CHARS = 100

Send = Callable[[Path, dict[str, Any], float], dict[str, Any]]


def hand_off(
    spec: TaskSpec,
    reason: str,
    *,
    socket_path: Path,
    node: str,
    still_holds: Callable[[], bool],
    workspace: Workspace | None = None,
    send: Send = request,
) -> Outcome | str:
    """Hand the task on: the outcome (handed on, or the claim lost), or why no peer took
    it (the caller then ends the task as it would have)."""
    if not still_holds():
        return Outcome(False, "failure", spec.issue_url, f"{reason} (and the claim is lost)")
    branch = _push_work(workspace, spec, node, reason) if workspace is not None else ""
    command = {
        "cmd": "handoff",
        "task_id": spec.task_id,
        "capability": spec.model,
        "reason": reason[:REASON_CHARS],
        "branch": branch,
    }
    log.info("%s: handing it on: %s", spec.task_id, reason)
    try:
        reply = send(socket_path, command, CONTROL_TIMEOUT)
    except (ControlError, OSError, ValueError) as exc:
        log.warning("%s: the node could not hand it on: %s", spec.task_id, exc)
        return "the node could not ask its peers"
    successor = reply.get("node") if isinstance(reply, dict) else None
    if reply.get("handed") is True and isinstance(successor, str) and successor:
        successor = successor[:NODE_CHARS]
        log.info("%s: handed on to %s", spec.task_id, successor)
        return Outcome(False, HANDED, spec.issue_url, f"handed on to {successor}: {reason}")
    why = str(reply.get("reason") or reply.get("error") or "no answer")[:REASON_CHARS]
    log.info("%s: no peer took it over: %s", spec.task_id, why)
    return why


def _push_work(workspace: Workspace, spec: TaskSpec, node: str, reason: str) -> str:
    """Commit and push the work so far; its branch as "owner/repository:branch", or ""
    when there is nothing to push or the push fails (the successor starts afresh)."""
    if not workspace.changed():
        return ""
    try:
        workspace.commit(
            f"Work in progress on #{spec.number}, handed on by node {node}\n\n{reason[:300]}"
        )
        workspace.push()
    except WorkspaceError as exc:
        log.warning("%s: could not push the work so far: %s", spec.task_id, exc)
        return ""
    return f"{workspace.fork}:{workspace.branch}"


def continued(spec: TaskSpec, workspace: Workspace, limit: int = 3000) -> str:
    """What the model is told of the work it continues, for a task handed on to this node."""
    if not spec.handed_by:
        return ""
    why = f" ({spec.handed_reason[:300]})" if spec.handed_reason else ""
    if not workspace.continued:
        return (
            f"Node {spec.handed_by} started this task and {HANDED_ON}{why}; its work could"
            " not be fetched, so you start afresh."
        )
    diff = workspace.diff()
    shown = diff if len(diff) <= limit else f"{diff[:limit]}\n[... the rest cut ...]"
    return (
        f"Node {spec.handed_by} started this task and {HANDED_ON}{why}. Its work so far is"
        f" already in the files; continue from it. Its changes:\n```diff\n{shown}\n```"
    )
