"""Responders: how a lab model picks its reply. Stateless (but for a playbook's one-off
CRASH): the reply depends on the request.

A script's position is the number of assistant messages already in the conversation, so
the same request always gets the same reply, whichever server or thread answers it, and a
client that retries a turn gets that turn's reply again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bzzz.antennae.prompts import PLAN_SYSTEM, REVIEW_SYSTEM
from bzzz.help.consult import SYSTEM as CONSULT_SYSTEM
from bzzz.lab.model.agentic import file_listings, wants_file_listings
from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.steps import HttpError, Reply, Text, done_step
from bzzz.lab.sample import ISSUES, SAMPLE_PLAYBOOK
from bzzz.work import HANDED_ON

Responder = Callable[[ChatRequest], Reply]

CRASH = HttpError(503, "the lab model server crashed (scripted: the task is handed on)")
PLAN = "Read the files the issue names, make the smallest change that solves it, run the tests."
NO_PLAYBOOK_SUMMARY = (
    "The lab model has no playbook for this issue, so it changed nothing. "
    "(Bzzz's lab model server answers from scripts; it is not a language model.)"
)


def step_at(steps: Sequence[Reply], position: int) -> Reply:
    """The step at `position`; past the end of the script, the last one again."""
    return steps[min(position, len(steps) - 1)]


class Scripted:
    """Replies in order, one per turn; the last one repeats."""

    def __init__(self, steps: Iterable[Reply]) -> None:
        self.steps = tuple(steps)
        if not self.steps:
            raise ValueError("a script needs at least one step")

    def __call__(self, request: ChatRequest) -> Reply:
        return step_at(self.steps, request.assistant_turns)

    def __repr__(self) -> str:
        return f"Scripted({list(self.steps)!r})"


class Embedding:
    """An embedding model, such as ollama's `nomic-embed-text`: /api/show reports its
    capabilities as ["embedding"], and a chat or generate request for it gets ollama's 400
    ("... does not support chat"). It is never asked for a reply."""

    capabilities = ("embedding",)

    def __call__(self, request: ChatRequest) -> Reply:
        raise TypeError(f"{request.model} is an embedding model: it does not chat")

    def __repr__(self) -> str:
        return "Embedding()"


@dataclass(frozen=True)
class PlaybookEntry:
    """An issue's scripted steps. It is recognised by its title, else by all `keywords`."""

    title: str
    steps: tuple[Reply, ...]
    keywords: tuple[str, ...] = ()
    advice: str = ""  # what it answers a peer that consults it about the issue
    # What it plays when the task was handed on to the asking node by another (the task's
    # text says so: bzzz.work.HANDED_ON): the rest of the work; none: `steps` as for anyone.
    handed_steps: tuple[Reply, ...] = ()
    plan: str = ""  # what it answers when asked for its plan (antennae.review)
    # The changed files, whole, as the steps leave them: the reply to an agent CLI that
    # edits by whole files (aider's "file listings"); none: it gets `steps`.
    files: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"playbook entry {self.title!r} has no steps")


class Playbook:
    """Plays the steps of the issue the conversation is about.

    The issue is found in the first user message: the entry whose title it contains
    (compared as lower-case words, so quoting and escaping do not matter), else the first
    entry whose keywords it all contains. When the first user message names none, the
    system and user messages together are searched the same way. A conversation about no
    known issue gets `unknown`: by default a `done` action whose summary says the lab
    model has no playbook for it, which leaves the repository unchanged.

    A CRASH step fails its request once per playbook (a model server that crashed and
    came back), so that a task's later runs get past it: the one stateful part.
    """

    def __init__(self, entries: Iterable[PlaybookEntry], unknown: Reply | None = None) -> None:
        self.entries = tuple(entries)
        self.unknown = unknown if unknown is not None else done_step(NO_PLAYBOOK_SUMMARY)
        self._crashed: set[str] = set()  # entries whose CRASH was played: not again

    def __call__(self, request: ChatRequest) -> Reply:
        entry = self.entry_for(request)
        if entry is None:
            return self.unknown
        if (other := _not_a_step(entry, request)) is not None:
            return other
        if entry.handed_steps and HANDED_ON in request.first_user_message():
            return step_at(entry.handed_steps, request.assistant_turns)
        if entry.title in self._crashed:  # the server "restarted": the play without it
            return step_at([s for s in entry.steps if s is not CRASH], request.assistant_turns)
        reply = step_at(entry.steps, request.assistant_turns)
        if reply is CRASH:
            self._crashed.add(entry.title)
        return reply

    def entry_for(self, request: ChatRequest) -> PlaybookEntry | None:
        if _asked(request, REVIEW_SYSTEM):  # a peer's plan: the lab's models approve it
            return APPROVING
        first = request.first_user_message()
        everything = "\n".join(m.content for m in request.messages if m.role in ("system", "user"))
        for text in (first, everything):
            if entry := self._match(_words(text)):
                return entry
        return None

    def _match(self, words: str) -> PlaybookEntry | None:
        for entry in self.entries:
            if _contains(words, _words(entry.title)):
                return entry
        for entry in self.entries:
            if entry.keywords and all(_contains(words, _words(k)) for k in entry.keywords):
                return entry
        return None


APPROVING = PlaybookEntry(
    title="(a peer's plan)",
    steps=(Text(json.dumps({"verdict": "approve", "text": "The plan fits the issue."})),),
)


def sample_playbook(*, crash: bool = True) -> Playbook:
    """The playbook for the lab's sample repository (`bzzz.lab.sample.SAMPLE_PLAYBOOK`);
    without `crash`, one that plays through its CRASH steps."""
    titles = {issue["number"]: issue["title"] for issue in ISSUES}
    return Playbook(
        PlaybookEntry(
            title=titles[number],
            steps=tuple(
                _reply(action)
                for action in play["steps"]
                if crash or action.get("action") != "crash"
            ),
            keywords=tuple(play.get("keywords", ())),
            advice=play.get("advice", ""),
            handed_steps=tuple(_reply(action) for action in play.get("handed_steps", ())),
            files=play.get("files", {}),
        )
        for number, play in SAMPLE_PLAYBOOK.items()
    )


def _reply(action: dict[str, Any]) -> Reply:
    """A playbook's step: the loop's JSON action, or "crash" (the model server fails)."""
    return CRASH if action.get("action") == "crash" else Text(json.dumps(action))


def _not_a_step(entry: PlaybookEntry, request: ChatRequest) -> Reply | None:
    """The reply to a request that is not for the next step: advice for a peer, the plan
    for review, or aider's whole files."""
    if _consulted(request):  # a peer's worker asks this model for advice
        return Text(entry.advice or "Read the issue again and try the simplest change.")
    if _asked(request, PLAN_SYSTEM):  # its plan, for peers to review
        return Text(json.dumps({"plan": entry.plan or PLAN, "question_for_person": ""}))
    if entry.files and wants_file_listings(request):
        return file_listings(entry.files, _summary(entry.steps))
    return None


def _summary(steps: Sequence[Reply]) -> str:
    """The summary of the script's `done` step ("" if it has none)."""
    for step in steps:
        if isinstance(step, Text) and '"done"' in step.content:
            action = json.loads(step.content)
            if action.get("action") == "done":
                return str(action.get("summary", ""))
    return ""


def _asked(request: ChatRequest, system: str) -> bool:
    first = next((m.content for m in request.messages if m.role == "system"), "")
    return first.startswith(system[:60])


def _consulted(request: ChatRequest) -> bool:
    system = next((m.content for m in request.messages if m.role == "system"), "")
    return system.startswith(CONSULT_SYSTEM[:60])


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _contains(words: str, phrase: str) -> bool:
    return bool(phrase) and f" {phrase} " in f" {words} "
