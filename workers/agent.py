"""The executor that does the work: clone the task's repository, let a model solve the
issue one sandboxed command at a time, and leave the result on the forge.

Configure it with `workers.executor = "workers.agent:run"`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bzzz.config import Settings
from bzzz.control import ControlError, request
from bzzz.forge.api import ForgeError, Issue
from bzzz.forge.token import Token
from bzzz.work import TaskSpec
from workers.asking import NodeHelp
from workers.clis.executor import AgentCli, audit_entries, extras, find_cli, solve
from workers.clis.relay import ModelRelay
from workers.executors import Context, Outcome, declined
from workers.git_access import WorkspaceError, node_identity
from workers.handover import continued, hand_off
from workers.loop import (
    Budget,
    Cause,
    CommandResult,
    Ending,
    LoopResult,
    ModelFailed,
    ModelUnreachable,
    RunnerBroke,
    Step,
    TaskText,
    run_loop,
)
from workers.models import ModelChoice, OllamaChat, choose_model, fit_options
from workers.planning import (
    Reviewed,
    ollama_asker,
    plan_and_review,
    plan_note,
    transcript_markdown,
    wanted,
)
from workers.results import RunFacts, deliver, report_failure
from workers.sandbox import NO_EXTRAS, Sandbox, SandboxError, open_sandbox
from workers.workspace import Workspace, prepare

log = logging.getLogger(__name__)

HOLD_CHECK_INTERVAL = 30.0  # seconds between forge reads of the claim while the loop runs


class SandboxRunner:
    """The loop's CommandRunner on a sandbox: stdout, then stderr, as one output."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def run(self, command: str, timeout: float) -> CommandResult:
        try:
            ran = self._sandbox.exec(command, timeout)
        except SandboxError as exc:
            raise RunnerBroke(str(exc)) from None
        output = ran.stdout
        if ran.stderr:
            output += ("\n" if output and not output.endswith("\n") else "") + ran.stderr
        return CommandResult(ran.exit_code, output, ran.timed_out, ran.truncated)


def run(spec: TaskSpec, context: Context) -> Outcome:
    """The task solved by the reasoning loop, or by the agent CLI it asks for."""
    cli = find_cli(spec.agent, context.settings) if spec.agent else None
    if isinstance(cli, str):  # the node offered an agent it cannot drive now
        return declined(spec, f"cannot run the agent CLI {spec.agent}: {cli}")
    return _run(spec, context, cli)


def _run(spec: TaskSpec, context: Context, cli: AgentCli | None) -> Outcome:
    settings, forge = context.settings, context.forge
    started = time.monotonic()
    host = settings.model_url
    facts = RunFacts(settings.node.name, spec.model, 0.0)

    def failed(reason: str, steps: list[Step] | None = None) -> Outcome:
        if not context.still_holds():
            return Outcome(False, "failure", spec.issue_url, f"{reason} (and the claim is lost)")
        elapsed = replace(facts, seconds=time.monotonic() - started)
        return report_failure(forge, spec, reason, steps or [], elapsed)

    def unable(problem: str, workspace: Workspace | None = None) -> Outcome | str:
        """A problem of this node: hand the task on (with the work so far); the outcome,
        or why no peer took it."""
        log.warning("%s: %s; handing it on", spec.task_id, problem)
        return hand_off(
            spec,
            problem,
            socket_path=settings.control_socket,
            node=settings.node.name,
            still_holds=context.still_holds,
            workspace=workspace,
        )

    def let_go(problem: str, workspace: Workspace | None = None) -> Outcome:
        """Hand it on, or else decline it (let go, no attempt)."""
        handed = unable(problem, workspace)
        if isinstance(handed, Outcome):
            return handed
        return declined(spec, f"{problem}; no peer took it over: {handed}")

    try:
        choice = choose_model(
            spec.model, settings.agent.model, host, settings.agent.model_timeout, recheck=5.0
        )
    except (ModelUnreachable, ModelFailed) as exc:  # a problem of this node: let it go
        return let_go(f"no model to ask: {exc}")
    model = choice.name
    log.info("%s: model %s", spec.task_id, choice.describe())
    context.progress(f"model {choice.describe()}")
    run_by = f"; run by the agent CLI {cli.name}" if cli else ""
    facts = RunFacts(settings.node.name, model, 0.0, choice.why() + run_by)
    try:
        token = _token(context)
        issue = forge.get_issue(spec.repo, spec.number)
        identity = node_identity(settings)
        workspace = prepare(
            forge,
            token,
            spec,
            identity,
            settings.home / "workspaces",
            push_to=settings.git.push_to,
        )
    except (ForgeError, WorkspaceError) as exc:
        return let_go(f"could not set up the repository: {exc}")
    with workspace:
        try:
            loop, served_by, reviewed = _work(spec, context, issue, workspace, choice, cli=cli)
        except SandboxError as exc:  # a problem of this node, as the loop's are
            broke = LoopResult(Ending.SANDBOX_BROKE, f"the sandbox failed: {exc}")
            loop, served_by, reviewed = broke, {}, Reviewed()
        if loop is None:  # escalated by the node: a person looks first
            return declined(spec, f"held for a person: {reviewed.held}")
        if loop.cause is Cause.NODE:  # the model server, the sandbox, the agent CLI
            return let_go(loop.reason, workspace)
        facts = replace(
            facts,
            review=transcript_markdown(reviewed),
            seconds=time.monotonic() - started,
            served_by=served_by,
            provenance=_provenance(settings, spec.task_id),
        )
        log.info(
            "%s: %s after %d commands, %d model calls, %d tokens",
            spec.task_id,
            loop.reason,
            len(loop.steps),
            loop.model_calls,
            loop.tokens,
        )
        try:
            return deliver(
                forge,
                workspace,
                spec,
                loop,
                facts,
                draft=settings.agent.draft,
                still_holds=context.still_holds,
            )
        except (ForgeError, WorkspaceError) as exc:
            problem = f"could not deliver the result: {exc}"
            handed = unable(problem, workspace) if loop.done else problem
            return handed if isinstance(handed, Outcome) else failed(problem, loop.steps)


def _work(
    spec: TaskSpec,
    context: Context,
    issue: Issue,
    workspace: Workspace,
    choice: ModelChoice,
    *,
    cli: AgentCli | None,
) -> tuple[LoopResult | None, dict[str, int], Reviewed]:
    """The task solved in a sandbox, by the loop or by the agent CLI it asks for: the
    result (None when its plan is held for a person), the answers each node's model gave
    (behind a gateway), and the plan's review."""
    settings = context.settings
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(ModelRelay(settings.model_url)) if cli else None
        room = extras(cli, relay) if cli and relay else NO_EXTRAS
        sandbox = stack.enter_context(open_sandbox(settings.sandbox, workspace.path, room))
        task, reviewed = _task(spec, context, issue, workspace, choice.name)
        if reviewed.held:
            return None, {}, reviewed
        if cli and relay:
            context.progress(f"{cli.name} at work")
            loop = solve(
                cli,
                task,
                model=choice.name,
                settings=settings,
                sandbox=sandbox,
                relay=relay,
                still_holds=context.still_holds,
                check_every=HOLD_CHECK_INTERVAL,
            )
            for entry in audit_entries(loop, cli.name, choice.name, dict(relay.served_by)):
                context.audit(entry)
            _audit_diff(context, workspace)
            return loop, dict(relay.served_by), reviewed
        helper = NodeHelp(
            settings.control_socket,
            spec.task_id,
            repo=spec.repo,
            number=spec.number,
            title=issue.title,
            body=issue.body,
        )
        loop, served_by = _reason(task, context, choice, sandbox, workspace, helper=helper)
        return loop, served_by, reviewed


def _token(context: Context) -> Token:
    if context.token is None:
        raise WorkspaceError("this node has no forge token to push with (forge.token_file)")
    return context.token


def _task(
    spec: TaskSpec, context: Context, issue: Issue, workspace: Workspace, model: str
) -> tuple[TaskText, Reviewed]:
    """The task as the loop's model sees it: the issue, the files, whose work it
    continues, and the plan peers reviewed, if antennae.review wants one for it."""
    task = TaskText(
        spec.repo,
        spec.number,
        issue.title,
        issue.body,
        workspace.branch,
        workspace.base,
        files=_files(workspace.path),
        handed=continued(spec, workspace),
    )
    settings = context.settings
    if not wanted(settings.antennae, issue.labels):
        return task, Reviewed()
    context.progress("plan under review")
    reviewed = plan_and_review(
        task,
        spec.task_id,
        spec.comment_id,
        ask=ollama_asker(settings.model_url, model, settings.agent.model_timeout),
        socket_path=settings.control_socket,
        rounds=settings.antennae.max_rounds,
    )
    notes = "\n\n".join(n for n in (task.handed, plan_note(reviewed)) if n)
    return replace(task, handed=notes), reviewed


def _reason(
    task: TaskText,
    context: Context,
    choice: ModelChoice,
    sandbox: Sandbox,
    workspace: Workspace,
    *,
    helper: NodeHelp,
) -> tuple[LoopResult, dict[str, int]]:
    """The loop's result, and how many answers each node's model gave (behind a gateway).
    Peers are asked for help through the node (`helper`), shown the work tree's diff."""
    agent = context.settings.agent
    options = fit_options(
        agent.num_ctx, agent.num_predict, agent.temperature, choice.context_length
    )
    log.info(
        "%s#%d: context window %d tokens (model: %s), replies up to %d tokens",
        task.repo,
        task.number,
        options.num_ctx,
        choice.context_length or "not reported",
        options.num_predict,
    )
    budget = Budget(
        max_steps=agent.max_steps,
        wall_time=agent.wall_time,
        max_tokens=agent.max_tokens,
        command_timeout=context.settings.sandbox.command_timeout,
        max_timeouts=agent.max_timeouts,
        max_repeats=agent.max_repeats,
        max_bad_replies=agent.max_bad_replies,
        output_chars=agent.output_chars,
        model_timeout=agent.model_timeout,
        context_window=options.num_ctx,
        reply_tokens=options.num_predict,
    )
    chat = OllamaChat(context.settings.model_url, choice.name, agent.model_timeout, options)
    steps = 0

    def progress(step: Step) -> None:
        nonlocal steps
        steps += 1
        context.progress(f"step {steps}: {step.command[:100]} -> {step.exit_code}")
        context.audit(step.audit_entry(steps))

    loop = run_loop(
        task,
        chat,
        SandboxRunner(sandbox),
        budget,
        keep_going=_at_most_every(HOLD_CHECK_INTERVAL, context.still_holds),
        on_step=progress,
        changed=workspace.changed,
        helper=helper,
        diff=workspace.diff,
    )
    context.audit(
        {
            "type": "model_calls",
            "model": choice.name,
            "calls": loop.model_calls,
            "tokens": loop.tokens,
            "served_by": dict(chat.served_by) or {context.settings.node.name: loop.model_calls},
        }
    )
    _audit_diff(context, workspace)
    return loop, dict(chat.served_by)


def _audit_diff(context: Context, workspace: Workspace) -> None:
    diff = workspace.diff().encode("utf-8", "replace")
    context.audit({"type": "diff", "sha256": hashlib.sha256(diff).hexdigest(), "bytes": len(diff)})


def _provenance(settings: Settings, task_id: str) -> str:
    """Where this task's entries are in the node's audit log, and the checkpoint that
    covers them (asked of the node; "" if it cannot say)."""
    try:
        where = request(settings.control_socket, {"cmd": "audit", "task_id": task_id}, 30.0)
    except (ControlError, OSError, ValueError):
        return ""
    entries, size = where.get("entries") or [], where.get("checkpoint_size") or 0
    if not isinstance(entries, list) or not entries or not isinstance(size, int) or not size:
        return ""
    return (
        f"\nAudit: entries {entries[0]} to {entries[-1]} of node **{settings.node.name}**'s log"
        f" ({len(entries)} for this task), covered by its checkpoint at size {size}"
        f" (root `{str(where.get('checkpoint_root', ''))[:16]}…`, signed by"
        f" `{where.get('origin', '')}`); `bzzz audit export --task {task_id}` on that node"
        " gives them with their proofs.\n"
    )


def _files(root: Path, limit: int = 300) -> tuple[str, ...]:
    """The work tree's files (not git's), at most `limit`, directory by directory: shown to
    the model, which then need not spend a step listing them."""
    found: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d != ".git")
        base = Path(directory).relative_to(root)
        found += [(base / name).as_posix() for name in sorted(names)]
        if len(found) >= limit:
            break
    return tuple(found[:limit])


def _at_most_every(seconds: float, check: Callable[[], bool]) -> Callable[[], bool]:
    """`check`, asked again only once `seconds` have passed since it last said yes.
    Commands run with no network, so a few more after a lease is lost harm nothing;
    the check before delivering is always fresh."""
    last_yes = -seconds

    def throttled() -> bool:
        nonlocal last_yes
        if time.monotonic() - last_yes < seconds:
            return True
        if check():
            last_yes = time.monotonic()
            return True
        return False

    return throttled
