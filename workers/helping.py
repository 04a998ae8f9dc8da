"""Help between peers, in the reasoning loop: the model may ask (a `help` action), and the
loop asks on its own, once, when the model looks stuck: three failing commands in a
row, a command about to be repeated to no effect, or two thirds of the steps spent with
nothing changed. At most `MAX_ASKS` asks a run, the loop's own included; the advice,
or why none came, is what answers the model next. Asking costs no step, but its time
counts against the wall time. The asker stays the task's owner.

Who answers is a `Helper` (workers/ports.py): the node, through `workers.asking.NodeHelp`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from importlib import resources

from workers.context import Turn
from workers.outcome import HelpAnswer, HelpRecord, Step, TaskText, head_and_tail
from workers.ports import Helper
from workers.replies import QUESTION_CHARS, Help

MAX_ASKS = 2  # a run, the loop's own ask included
MIN_SECONDS = 120.0  # of the wall time left, to ask: the node answers within about 150 s
FAILING_IN_A_ROW = 3
SHORT_ADVICE_CHARS = 600


def prompt(name: str) -> str:
    """A prompt template shipped in workers/prompts/."""
    return resources.files("workers").joinpath("prompts", f"{name}.md").read_text("utf-8")


class HelpDesk:
    """Whether help may be asked, asking it, and what the model is told; each ask is
    appended to `records` (the loop's result)."""

    def __init__(
        self,
        helper: Helper | None,
        task: TaskText,
        max_steps: int,
        records: list[HelpRecord],
        diff: Callable[[], str] | None = None,
    ) -> None:
        self.helper, self.task, self.max_steps = helper, task, max_steps
        self.records, self.diff = records, diff
        self.asked_alone = False

    def refusal(self, left: float) -> str | None:
        """Why help cannot be asked now (with `left` seconds of wall time), or None."""
        if self.helper is None:
            return "this node has no peers to ask"
        if len(self.records) >= MAX_ASKS:
            return f"help was asked {len(self.records)} times already, the most a task may"
        if left < MIN_SECONDS:
            return f"only {left:.0f} s of the task's time are left"
        return None

    def stuck(
        self, steps: Sequence[Step], repeating: bool, changed: Callable[[], bool], left: float
    ) -> str | None:
        """The loop's own question when the model looks stuck (once a run), else None."""
        if self.asked_alone or self.refusal(left) is not None:
            return None
        last = steps[-FAILING_IN_A_ROW:]
        if len(last) == FAILING_IN_A_ROW and all(s.exit_code != 0 for s in last):
            tried = "; ".join(f"`{_inline(s.command)}` (exit {s.exit_code})" for s in last)
            situation = f"My last {len(last)} commands failed: {tried}."
        elif repeating and steps:
            situation = f"I keep running `{_inline(steps[-1].command)}` with the same output."
        elif (
            self.max_steps >= FAILING_IN_A_ROW
            and len(steps) == math.ceil(self.max_steps * 2 / 3)
            and not changed()
        ):
            situation = f"I have run {len(steps)} of {self.max_steps} commands and changed nothing."
        else:
            return None
        task = self.task
        question = (
            f"I am stuck on {task.repo}#{task.number}: {task.title[:120]}. {situation}"
            " What should I try next?"
        )
        return question[:QUESTION_CHARS]

    def unstick(
        self,
        steps: Sequence[Step],
        repeating: bool,
        changed: Callable[[], bool],
        left: float,
        limit: int,
    ) -> str:
        """Ask on the model's behalf if it looks stuck: the advice, to add to what it is
        told of its last command, or "" (when not asked, or when no help came: the model
        did not ask, so only advice is worth its words)."""
        question = self.stuck(steps, repeating, changed, left)
        if question is None:
            return ""
        record = self._ask(question, "", steps, automatic=True)
        return f"{self._told(record, limit)}\n\n" if record.answer.helped else ""

    def answer(
        self, action: Help, reply: str, steps: Sequence[Step], limit: int, steps_left: int
    ) -> Turn:
        """Ask for the model's help action (`refusal` said yes): the action and its
        answer, as a turn of the conversation, the advice cut to `limit` characters."""
        record = self._ask(action.question, action.capability, steps, automatic=False)
        after = f"\n\nSteps left: {steps_left}. Reply with the next JSON action."
        answer = record.answer
        brief = json.dumps({"action": "help", "question": action.question[:200]})
        if answer.helped:
            seen = f"Advice from node {answer.node} (shown before)."
            line = f"- asked for help -> advice from node {answer.node}"
        else:
            seen = refused(answer.reason).splitlines()[0]
            line = "- asked for help -> none came"
        return Turn(
            (
                (reply, self._told(record, limit) + after),
                (reply, self._told(record, min(limit, SHORT_ADVICE_CHARS)) + after),
                (brief, seen + after),
            ),
            line,
        )

    def _ask(
        self, question: str, capability: str, steps: Sequence[Step], *, automatic: bool
    ) -> HelpRecord:
        if self.helper is None:
            answer = HelpAnswer(False, reason="this node has no peers to ask")
        else:
            try:
                answer = self.helper.ask(question, capability, tuple(steps), self._diff())
            except Exception as exc:  # a Helper should not raise; if one does, the task goes on
                answer = HelpAnswer(False, reason=f"asking failed: {exc}")
        record = HelpRecord(question, automatic, answer, len(steps))
        self.records.append(record)
        self.asked_alone = self.asked_alone or automatic
        return record

    def _told(self, record: HelpRecord, limit: int) -> str:
        answer = record.answer
        if not answer.helped:
            return refused(answer.reason)
        advice, _ = head_and_tail(answer.advice, limit)
        asked = (
            f"You seem stuck, so peers were asked: {json.dumps(record.question)}\n"
            if record.automatic
            else ""
        )
        model = f" (model {answer.model})" if answer.model else ""
        return (
            prompt("advice").format(asked=asked, node=answer.node, model=model, advice=advice)
        ).strip()

    def _diff(self) -> str:
        if self.diff is None:
            return ""
        try:
            return self.diff()
        except Exception:  # the ask goes without it
            return ""


def refused(reason: str) -> str:
    """What the model is told when no help came."""
    return prompt("no_help").format(reason=reason.rstrip(".")).strip()


def _inline(command: str) -> str:
    line = command.replace("\n", " ").replace("`", "'")
    return line if len(line) <= 80 else f"{line[:80]}…"
