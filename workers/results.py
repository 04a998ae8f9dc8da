"""What a finished loop leaves on the forge: a pull request (updated, not duplicated,
when the task is retried), follow-up issues, or a failure report on the issue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from bzzz.forge.api import Forge, Issue, PullRequest
from bzzz.work import TaskSpec
from workers.executors import Outcome
from workers.loop import Cause, Ending, FollowUp, LoopResult, Step
from workers.outcome import HelpRecord
from workers.workspace import Workspace

log = logging.getLogger(__name__)

LAST_STEPS = 5
STEP_OUTPUT_CHARS = 600
LAST_REPLY_CHARS = 1500
NO_CHANGE = "the model finished without changing anything"
REPORT_CHARS = 60_000  # GitHub refuses comments over 65,536 characters
FENCE = "```"


def template(name: str) -> str:
    return resources.files("workers").joinpath("templates", f"{name}.md").read_text("utf-8")


@dataclass(frozen=True)
class RunFacts:
    """Facts about the run that the forge texts mention."""

    node: str
    model: str
    seconds: float
    model_note: str = ""  # why this model (workers.models.ModelChoice.why)
    served_by: Mapping[str, int] = field(default_factory=dict)  # answers per node's model
    review: str = ""  # the plan's review by peers, as markdown ("" for none)
    provenance: str = ""  # where the task's entries are in the node's audit log


def deliver(
    forge: Forge,
    workspace: Workspace,
    spec: TaskSpec,
    loop: LoopResult,
    run: RunFacts,
    *,
    draft: bool,
    still_holds: Callable[[], bool],
) -> Outcome:
    """Turn the loop's result into the task's result on the forge. Nothing is left there
    once the claim is lost: another node may hold the task now."""
    if not still_holds():
        return Outcome(False, "failure", spec.issue_url, f"lost the claim ({loop.reason})")
    if not loop.done:
        return report_failure(forge, spec, loop.reason, loop.steps, run, loop=loop)
    changed = workspace.changed()
    if not changed and not loop.issues:
        return report_failure(forge, spec, NO_CHANGE, loop.steps, run, loop=loop)
    issues = open_follow_ups(forge, spec, loop.issues)
    if not changed:
        return Outcome(True, "issue", issues[0].html_url)
    workspace.commit(f"{spec.input or f'Task #{spec.number}'}\n\nCloses #{spec.number}.")
    workspace.push()
    pull = open_or_update_pull_request(
        forge, workspace, spec, loop, run, issues=issues, draft=draft
    )
    return Outcome(True, "pull_request", pull.html_url)


def open_or_update_pull_request(
    forge: Forge,
    workspace: Workspace,
    spec: TaskSpec,
    loop: LoopResult,
    run: RunFacts,
    *,
    issues: Sequence[Issue],
    draft: bool,
) -> PullRequest:
    existing = forge.find_pull_request(spec.repo, head=workspace.head_label, base=workspace.base)
    if existing is not None:  # the push updated it
        log.info("%s: updated %s", spec.task_id, existing.html_url)
        return existing
    follow_ups = "".join(f"\nFollow-up: {i.html_url}" for i in issues)
    body = template("pull_request").format(
        number=spec.number,
        node=run.node,
        model=run.model,
        model_note=_note(run),
        served=served(run),
        handed=_handed(spec) + run.provenance,
        steps=len(loop.steps),
        duration=_duration(run.seconds),
        help=_help(loop.help),
        review=run.review,
        summary=loop.summary.strip() or "(no summary)",
        commands=_commands(loop.steps),
        follow_ups=f"\n## Follow-up issues{follow_ups}\n" if issues else "",
    )
    title = spec.input or f"Task #{spec.number}"
    pull = forge.create_pull_request(
        spec.repo,
        title=title,
        body=body[:REPORT_CHARS],
        head=workspace.pull_head,  # "branch" in the repository itself, else "owner:branch"
        base=workspace.base,
        draft=draft,
    )
    log.info("%s: opened %s", spec.task_id, pull.html_url)
    return pull


def open_follow_ups(forge: Forge, spec: TaskSpec, follow_ups: Sequence[FollowUp]) -> list[Issue]:
    made = []
    for follow_up in follow_ups:
        body = f"{follow_up.body}\n\nFollow-up of #{spec.number}, opened by Bzzz."
        made.append(forge.create_issue(spec.repo, follow_up.title, body[:REPORT_CHARS], []))
    return made


def report_failure(
    forge: Forge,
    spec: TaskSpec,
    reason: str,
    steps: Sequence[Step],
    run: RunFacts,
    *,
    loop: LoopResult | None = None,
) -> Outcome:
    """One comment on the issue: why, what the model did (its behaviour, its usage, its
    last reply) and the last commands with their output."""
    body = template("failure_report").format(
        node=run.node,
        reason=reason,
        behaviour=f"\n{behaviour(loop, reason)}\n" if loop is not None else "",
        model=run.model or "(none)",
        model_note=_note(run),
        served=served(run),
        handed=_handed(spec) + run.provenance,
        steps=len(steps),
        duration=_duration(run.seconds),
        help=_help(loop.help) if loop is not None else "",
        usage=f"\n{usage(loop)}" if loop is not None and loop.calls else "",
        last_reply=_last_reply(loop),
        last_steps=_last_steps(steps),
    )
    comment = forge.comment(spec.repo, spec.number, body[:REPORT_CHARS])
    return Outcome(False, "failure", comment.html_url or spec.issue_url, reason)


_BEHAVIOUR = {
    Ending.UNPARSABLE: "The model's replies were not the JSON action asked for, though each"
    " went back to it with the reason.",
    Ending.RUNAWAY: "The model's replies ran on to the reply limit of {reply_tokens} tokens"
    " (agent.num_predict) without finishing, though each was sent back as too long.",
    Ending.MODEL_SLOW: "The model did not finish a reply within agent.model_timeout.",
    Ending.CONTEXT: "The conversation did not fit the model's context window of"
    " {context_window} tokens (agent.num_ctx), even with old output shortened.",
    Ending.REPEATING: "The model kept running the same command with the same output, though"
    " it was told that this changed nothing.",
    Ending.AGENT_FAILED: "The agent CLI ended on an error after it had asked the model (its"
    " words are in the reason above).",
}


def behaviour(loop: LoopResult, reason: str) -> str:
    """What ended the attempt, in a sentence: the model's behaviour, or the budget."""
    if reason == NO_CHANGE:
        return (
            "**The model** said it was done but changed nothing, though it was told once"
            " that the repository had no change."
        )
    if loop.cause is Cause.MODEL:
        text = _BEHAVIOUR[loop.ending].format(
            reply_tokens=loop.reply_tokens, context_window=loop.context_window
        )
        return f"**The model's behaviour** ended the attempt, not this node: {text}"
    if loop.cause is Cause.BUDGET:
        return (
            "**The task's budget** ran out ([agent] max_steps, wall_time, max_tokens;"
            " [sandbox] command_timeout) before the model said it was done."
        )
    return ""


def usage(loop: LoopResult) -> str:
    """The model calls in one line: prompt and reply sizes against their limits, time."""
    calls = loop.calls
    prompts = [c.prompt_tokens for c in calls]
    replies = [c.reply_tokens for c in calls]
    cut = sum(c.cut for c in calls)
    seconds = sum(c.seconds for c in calls) / len(calls)
    return (
        f"{len(calls)} model calls: prompts of {min(prompts)}-{max(prompts)} tokens"
        f" (window {loop.context_window}), replies of {min(replies)}-{max(replies)} tokens"
        f" (limit {loop.reply_tokens}; {cut} cut there), {seconds:.1f} s a call."
    )


def helped(records: Sequence[HelpRecord]) -> str:
    """Who helped and how, a line an ask; or that help was sought and why none came."""
    lines = []
    for record in records:
        answer = record.answer
        when = f"step {record.at_step}" if record.at_step else "the start"
        by = "asked for the model, which looked stuck" if record.automatic else "asked by the model"
        if answer.helped:
            model = f" (model `{_inline(answer.model)}`)" if answer.model else ""
            node = _inline(answer.node)
            lines.append(f"Helped by node **{node}**{model}: advice at {when} ({by}).")
            continue
        offers = ", ".join(f"**{_inline(node)}**" for node in answer.offers)
        offered = f" Offers came from {offers}." if offers else ""
        lines.append(
            f"Help was sought at {when} ({by}); no peer could help ({answer.reason}).{offered}"
        )
    return "\n\n".join(lines)


def _help(records: Sequence[HelpRecord]) -> str:
    return f"\n{helped(records)}\n" if records else ""


def _last_reply(loop: LoopResult | None) -> str:
    if loop is None or not loop.last_reply:
        return ""
    text = loop.last_reply[:LAST_REPLY_CHARS].replace(FENCE, "'" * 3)
    return f"\n## The model's last reply\n{FENCE}\n{text}\n{FENCE}\n"


def _handed(spec: TaskSpec) -> str:
    if not spec.handed_by:
        return ""
    why = f": {spec.handed_reason[:300]}" if spec.handed_reason else ""
    return f"\nIt continues the work of node **{spec.handed_by}**, which handed the task on{why}.\n"


def _note(run: RunFacts) -> str:
    return f" ({run.model_note})" if run.model_note else ""


def served(run: RunFacts) -> str:
    """Which nodes' model servers answered, where another node's did (over the mesh)."""
    if not run.served_by or set(run.served_by) == {run.node}:
        return ""
    if len(run.served_by) == 1:
        return f", served by node **{next(iter(run.served_by))}** over the mesh"
    ranked = sorted(run.served_by.items(), key=lambda item: (-item[1], item[0]))
    nodes = ", ".join(f"**{node}** ({calls} call{'s' * (calls != 1)})" for node, calls in ranked)
    return f", served by nodes {nodes} over the mesh"


def _commands(steps: Sequence[Step]) -> str:
    if not steps:
        return "(none)"
    return "\n".join(f"1. `{_inline(s.command)}` → exit {s.exit_code}" for s in steps)


def _last_steps(steps: Sequence[Step]) -> str:
    if not steps:
        return "(no command ran)"
    shown = []
    for step in steps[-LAST_STEPS:]:
        output = step.output[-STEP_OUTPUT_CHARS:]
        flag = " (timed out)" if step.timed_out else ""
        shown.append(f"`{_inline(step.command)}` → exit {step.exit_code}{flag}\n```\n{output}\n```")
    return "\n\n".join(shown)


def _inline(command: str) -> str:
    return command.replace("`", "'").replace("\n", " ")[:300]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
