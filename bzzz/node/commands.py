"""The control commands a worker sends its node about its task: `help` (advice from a
peer), `handoff` (pass the task on) and `review` (its plan, for peers to review). Each
checks the command and hands it to the node's part that answers it."""

from __future__ import annotations

import secrets
from typing import Any

from bzzz.help import HelpParts
from bzzz.help.consult import BadConsult, consult_from
from bzzz.help.handover import BadHandOver, case_from


async def worker_command(parts: HelpParts, command: dict[str, Any]) -> dict[str, Any]:
    match command.get("cmd"):
        case "help":
            return await _help(parts, command)
        case "handoff":
            return await _hand_off(parts, command)
        case _:
            return await _review(parts, command)


async def _help(parts: HelpParts, command: dict[str, Any]) -> dict[str, Any]:
    """A worker asks for help with its task (the control command `help`)."""
    task_id = command.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        return {"error": "help: task_id is needed"}
    try:
        consult = consult_from(
            secrets.token_hex(6),
            task_id[:256],
            command.get("question"),
            command.get("capability", ""),
            command.get("context"),
        )
    except BadConsult as exc:
        return {"error": f"help: {exc}"}
    return await parts.asker.ask(consult)


async def _review(parts: HelpParts, command: dict[str, Any]) -> dict[str, Any]:
    """A worker's plan for its task, for peers to review (or its model's question for
    a person, which escalates)."""
    proposer = parts.proposer
    task_id, claim = command.get("task_id"), command.get("claim")
    plan, person = command.get("plan", ""), command.get("person", "")
    if proposer is None:
        return {"error": "review: this node claims no tasks"}
    if not isinstance(task_id, str) or not isinstance(claim, int) or not task_id:
        return {"error": "review: task_id (text) and claim (a number) are needed"}
    if not isinstance(plan, str) or not isinstance(person, str) or not (plan or person):
        return {"error": "review: a plan (or a question for a person) is needed"}
    if person:
        return proposer.person(task_id[:256], claim, person[:1500])
    return await proposer.propose(task_id[:256], claim, plan[:3800])


async def _hand_off(parts: HelpParts, command: dict[str, Any]) -> dict[str, Any]:
    """A worker cannot finish its task here: hand it on (the control command
    `handoff`, with the capability it needs, why, and the branch of its work)."""
    handing = parts.handing
    if handing is None:
        return {"handed": False, "reason": "this node claims no tasks"}
    try:
        case = case_from(secrets.token_hex(6), command.get("task_id"), command)
    except BadHandOver as exc:
        return {"error": f"handoff: {exc}"}
    return await handing.hand_off(case)
