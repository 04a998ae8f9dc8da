"""The reasoning loop: a model proposes one shell command at a time, a sandbox runs it,
the output goes back, until the model says it is done or a budget runs out.

It knows nothing of git, forges or ollama: the model and the sandbox are passed in
(`ChatModel`, `CommandRunner`, in workers/ports.py), so the loop is tested against
scripted ones and run against `OllamaChat` and a real sandbox. What a reply must be
is in workers/replies.py; keeping the conversation within the model's context window,
in workers/context.py.

Every call is bounded: its reply by `reply_tokens` (num_predict), its prompt by the
context window, its time by the smaller of `model_timeout` and the wall time left. A
reply cut at the limit is answered "too long, be brief"; a `done` before any command
ran, or with nothing changed, goes back to the model once with the reason; a command
about to be repeated to no effect is pointed out before the loop gives up on it. Help
from peers (a `help` action, or the loop's own ask when stuck) is in workers/helping.py.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable

from workers.context import Turn, Window
from workers.helping import HelpDesk, prompt, refused
from workers.outcome import (
    Budget,
    Call,
    Cause,
    Ending,
    LoopResult,
    Step,
    TaskText,
    head_and_tail,
)
from workers.ports import (
    ChatModel,
    CommandResult,
    CommandRunner,
    ContextExceeded,
    Helper,
    ModelError,
    ModelFailed,
    ModelReply,
    ModelSlow,
    ModelUnreachable,
    RunnerBroke,
)
from workers.replies import (
    COMMAND_CHARS,
    REPLY_SCHEMA,
    Action,
    BadReply,
    Done,
    FollowUp,
    Help,
    Run,
    as_text,
    parse_reply,
)

MAX_COMMAND_CHARS = COMMAND_CHARS
LAST_REPLY_CHARS = 2000  # of the model's last reply, kept for the failure report

__all__ = [
    "MAX_COMMAND_CHARS",
    "REPLY_SCHEMA",
    "BadReply",
    "Budget",
    "Call",
    "Cause",
    "ChatModel",
    "CommandResult",
    "CommandRunner",
    "ContextExceeded",
    "Done",
    "Ending",
    "FollowUp",
    "Help",
    "Helper",
    "LoopResult",
    "ModelError",
    "ModelFailed",
    "ModelReply",
    "ModelSlow",
    "ModelUnreachable",
    "Run",
    "RunnerBroke",
    "Step",
    "TaskText",
    "head_and_tail",
    "parse_reply",
    "prompt",
    "run_loop",
]


def run_loop(
    task: TaskText,
    model: ChatModel,
    runner: CommandRunner,
    budget: Budget,
    *,
    clock: Callable[[], float] = time.monotonic,
    keep_going: Callable[[], bool] = lambda: True,
    on_step: Callable[[Step], None] = lambda step: None,
    changed: Callable[[], bool] | None = None,
    helper: Helper | None = None,
    diff: Callable[[], str] | None = None,
) -> LoopResult:
    """Ask, run, show, until done or a budget runs out. `keep_going` is asked before each
    command (the claim may have been lost); `changed` says whether the repository holds
    a change (a `done` without one goes back to the model once); `helper` asks peers
    for help, shown the repository's `diff`."""
    loop = _Loop(task, model, runner, budget, clock=clock, changed=changed, helper=helper)
    loop.keep_going, loop.on_step = keep_going, on_step
    loop.desk.diff = diff
    return loop.run()


Stop = tuple[Ending, str] | None  # why the loop ends (with details), or None: go on


class _Loop:
    def __init__(
        self,
        task: TaskText,
        model: ChatModel,
        runner: CommandRunner,
        budget: Budget,
        *,
        clock: Callable[[], float],
        changed: Callable[[], bool] | None,
        helper: Helper | None = None,
    ) -> None:
        self.model, self.runner, self.budget, self.clock = model, runner, budget, clock
        self.changed = changed
        self.keep_going: Callable[[], bool] = lambda: True
        self.on_step: Callable[[Step], None] = lambda step: None
        self.started = clock()
        self.result = LoopResult(
            Ending.DONE, "", context_window=budget.context_window, reply_tokens=budget.reply_tokens
        )
        self.window = Window(budget.context_window, budget.reply_tokens)
        self.bad_replies = 0
        self.timeouts = 0
        self.pushed_back: set[str] = set()
        self.seen: Counter[tuple[str, int, str]] = Counter()
        self.turns: list[Turn] = []
        self.desk = HelpDesk(helper, task, budget.max_steps, self.result.help)
        system = prompt("system")
        example = prompt("example")
        if self.window.tokens([{"content": system + example}]) <= self.window.room // 3:
            system = f"{system}\n{example}"  # a worked run, where the window has room for it
        self.examples = _example_summaries(system)
        body, _ = head_and_tail(
            task.body or "(no description)", self.window.chars(self.window.room // 4)
        )
        self.head = [
            {"role": "system", "content": system},
            {
                "role": "user",
                "content": prompt("task").format(
                    repo=task.repo,
                    number=task.number,
                    title=task.title[:300],
                    body=body,
                    branch=task.branch,
                    base=task.base,
                    files=_files(task.files, self.window.chars(self.window.room // 10)),
                    handed=head_and_tail(task.handed, self.window.chars(self.window.room // 8))[0]
                    + "\n\n"
                    if task.handed
                    else "",
                ),
            },
        ]

    def run(self) -> LoopResult:
        while True:
            stop = self._budget_spent() or self._step()
            if stop is not None:
                ending, detail = stop
                self.result.ending = ending
                self.result.reason = f"{ending.value}: {detail}" if detail else ending.value
                return self.result

    def _left(self) -> float:
        return self.budget.wall_time - (self.clock() - self.started)

    def _budget_spent(self) -> Stop:
        budget, result = self.budget, self.result
        if len(result.steps) >= budget.max_steps:
            return Ending.STEPS, f"{budget.max_steps} commands"
        if self._left() <= 0:
            return Ending.WALL_TIME, f"{budget.wall_time:.0f} s"
        if result.tokens >= budget.max_tokens:
            return Ending.TOKENS, f"{result.tokens} of {budget.max_tokens} tokens"
        return None

    def _ask(self) -> ModelReply | Stop:
        stop: Stop = None
        for _ in range(2):  # once more after the server found the prompt too long
            messages = self.window.fit(self.head, self.turns, prompt("earlier").strip())
            if messages is None:
                return Ending.CONTEXT, (
                    f"the instructions and the issue (about {self.window.tokens(self.head)}"
                    f" tokens) leave no room in a window of {self.window.size} tokens with"
                    f" {self.window.reply_room} for the reply"
                )
            left = self._left()
            if left < 1:
                return Ending.WALL_TIME, f"{self.budget.wall_time:.0f} s"
            answer = self._call(messages, min(self.budget.model_timeout, left))
            if isinstance(answer, ModelReply) or answer is None or answer[0] is not Ending.CONTEXT:
                return answer
            stop = answer
        return stop

    def _call(self, messages: list[dict[str, str]], timeout: float) -> ModelReply | Stop:
        started = time.monotonic()
        try:
            reply = self.model.chat(messages, timeout)
        except ContextExceeded as exc:
            self.window.shrink()  # estimate more cautiously from now on
            return Ending.CONTEXT, str(exc)
        except ModelSlow as exc:
            if timeout < self.budget.model_timeout:
                return Ending.WALL_TIME, f"{self.budget.wall_time:.0f} s, during a model call"
            return Ending.MODEL_SLOW, f"no reply within {timeout:.0f} s ({exc})"
        except ModelUnreachable as exc:
            return Ending.MODEL_UNREACHABLE, str(exc)
        except ModelFailed as exc:
            return Ending.MODEL_FAILED, str(exc)
        seconds = reply.seconds or time.monotonic() - started
        estimate = self.window.tokens(messages)
        self.window.calibrate(messages, reply.prompt_tokens)
        call = Call(
            reply.prompt_tokens,
            reply.reply_tokens,
            seconds,
            reply.cut,
            estimate,
            reply.reply_seconds,
        )
        self.result.calls.append(call)
        return reply

    def _step(self) -> Stop:
        reply = self._ask()
        if not isinstance(reply, ModelReply):
            return reply
        result = self.result
        result.model_calls += 1
        result.tokens += reply.tokens
        result.last_reply = reply.content[:LAST_REPLY_CHARS]
        try:
            action = parse_reply(reply.content, self.examples)
        except BadReply as exc:
            if reply.cut:
                note = prompt("too_long").format(limit=self.budget.reply_tokens).strip()
                return self._unusable(reply.content, note, cut=True)
            return self._unusable(reply.content, prompt("bad_reply").format(error=exc).strip())
        return self._act(reply.content, action)

    def _act(self, content: str, action: Action) -> Stop:
        if isinstance(action, Help) and (refusal := self.desk.refusal(self._left())):
            return self._unusable(content, refused(refusal))  # asked in vain: as unusable
        self.bad_replies = 0
        if isinstance(action, Done):
            return self._done(action)
        if not self.keep_going():
            return Ending.STOPPED, ""
        if isinstance(action, Help):
            steps, limit = self.result.steps, self.window.output_chars(self.budget.output_chars)
            left = self.budget.max_steps - len(steps)
            self.turns.append(self.desk.answer(action, as_text(action), steps, limit, left))
            return None
        return self._run(action)

    def _unusable(self, content: str, answer: str, *, cut: bool = False) -> Stop:
        self.bad_replies += 1
        if self.bad_replies > self.budget.max_bad_replies:
            ending = Ending.RUNAWAY if cut else Ending.UNPARSABLE
            return ending, f"{self.bad_replies} in a row; the last: {answer.splitlines()[0]}"
        short = answer.splitlines()[0]
        kept = content if len(content) <= 300 else f"{content[:300]}…"
        self.turns.append(
            Turn(((kept, answer), (kept[:100], short)), "- (a reply that could not be used)")
        )
        return None

    def _done(self, action: Done) -> Stop:
        reply = as_text(action)
        if not self.result.steps and "nothing ran" not in self.pushed_back:
            self.pushed_back.add("nothing ran")
            self.turns.append(
                Turn(((reply, prompt("done_too_soon").strip()),), "- (done too soon)")
            )
            return None
        if not action.issues and "no change" not in self.pushed_back and not self._changed():
            self.pushed_back.add("no change")
            self.turns.append(Turn(((reply, prompt("no_change").strip()),), "- (done, no change)"))
            return None
        self.result.summary, self.result.issues = action.summary, action.issues
        return Ending.DONE, ""

    def _changed(self) -> bool:
        if self.changed is None:
            return True  # nothing to check with
        try:
            return self.changed()
        except Exception:  # a check that cannot tell holds nothing back
            return True

    def _run(self, action: Run) -> Stop:
        budget, command = self.budget, action.command
        try:
            ran = self.runner.run(command, max(1.0, min(budget.command_timeout, self._left())))
        except RunnerBroke as exc:
            return Ending.SANDBOX_BROKE, str(exc)
        limit = self.window.output_chars(budget.output_chars)
        shown, cut = head_and_tail(ran.output, limit)
        step = Step(command, ran.exit_code, shown, ran.timed_out)
        self.result.steps.append(step)
        self.on_step(step)
        self.timeouts = self.timeouts + 1 if ran.timed_out else 0
        if self.timeouts >= budget.max_timeouts:
            return Ending.TIMEOUTS, f"{self.timeouts} in a row; the last: {command}"
        key = (command, ran.exit_code, ran.output)
        self.seen[key] += 1
        if self.seen[key] >= budget.max_repeats:
            return Ending.REPEATING, f"{self.seen[key]} times: {command}"
        note = ""
        if self.seen[key] == budget.max_repeats - 1:
            note = prompt("repeating").format(times=self.seen[key]).strip() + "\n"
        note += self.desk.unstick(self.result.steps, bool(note), self._changed, self._left(), limit)
        steps_left = budget.max_steps - len(self.result.steps)
        flags = (" (timed out)" if ran.timed_out else "") + (
            " (output cut)" if cut or ran.truncated else ""
        )
        reply = as_text(action)

        def observation(output: str) -> str:
            return prompt("observation").format(
                exit_code=ran.exit_code,
                flags=flags,
                output=output or "(no output)",
                note=note,
                steps_left=steps_left,
            )

        short, _ = head_and_tail(ran.output, 400)
        brief = f'{{"action": "run", "command": {json.dumps(command[:200])}}}'
        size = f"{len(ran.output)} characters of output" if ran.output else "no output"
        self.turns.append(
            Turn(
                (
                    (reply, observation(shown)),
                    (reply, observation(short)),
                    (brief, f"Exit code: {ran.exit_code}{flags}; {size} (shown before)."),
                ),
                f"- `{_inline(command)}` -> exit {ran.exit_code}{flags}",
            )
        )
        return None


def _files(files: tuple[str, ...], limit: int) -> str:
    """The repository's files, as many as `limit` characters hold."""
    if not files:
        return ""
    shown: list[str] = []
    for name in files:
        if sum(len(n) + 1 for n in shown) + len(name) > limit:
            shown.append(f"... and {len(files) - len(shown)} more")
            break
        shown.append(name)
    return f"Files in the repository: {' '.join(shown)}\n"


def _inline(command: str) -> str:
    line = command.replace("\n", " ")
    return line if len(line) <= 150 else f"{line[:150]}…"


_SUMMARY = re.compile(r'"summary":\s*("(?:[^"\\]|\\.)*")')


def _example_summaries(text: str) -> frozenset[str]:
    """The summaries the prompt shows as examples: a reply that copies one says nothing."""
    found = set()
    for match in _SUMMARY.finditer(text):
        try:
            found.add(str(json.loads(match.group(1))).strip())
        except ValueError:
            continue
    return frozenset(found)
