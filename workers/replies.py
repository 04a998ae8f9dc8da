"""What the model must say, and how its replies are read.

The reply schema goes to the server as `format`, where grammar-constrained decoding
(llama.cpp's, which ollama uses) writes the keys in the order given and the required
ones first: so the reasoning (`thought`) comes first, each action carries its own
fields as required (a `command` for run, a `summary` for done, a `question` for help),
and every string and list is bounded. A server that ignores `format` may send anything,
so `parse_reply` holds replies to the same rules and says what is wrong, for the model to
read.
"""

from __future__ import annotations

import difflib
import json
import re
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

THOUGHT_CHARS = 400
COMMAND_CHARS = 2000
SUMMARY_CHARS = 1000
TITLE_CHARS = 120
BODY_CHARS = 1500
MAX_ISSUES = 3
QUESTION_CHARS = 600
CAPABILITY_CHARS = 100

_THOUGHT = {"type": "string", "maxLength": THOUGHT_CHARS}
_ISSUE = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": TITLE_CHARS},
        "body": {"type": "string", "maxLength": BODY_CHARS},
    },
    "required": ["title", "body"],
    "additionalProperties": False,
}

REPLY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "thought": _THOUGHT,
                "action": {"const": "run"},
                "command": {"type": "string", "minLength": 1, "maxLength": COMMAND_CHARS},
            },
            "required": ["thought", "action", "command"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "thought": _THOUGHT,
                "action": {"const": "done"},
                "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_CHARS},
                "issues": {"type": "array", "items": _ISSUE, "maxItems": MAX_ISSUES},
            },
            "required": ["thought", "action", "summary"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "thought": _THOUGHT,
                "action": {"const": "help"},
                "question": {"type": "string", "minLength": 1, "maxLength": QUESTION_CHARS},
                "capability": {"type": "string", "maxLength": CAPABILITY_CHARS},
            },
            "required": ["thought", "action", "question"],
            "additionalProperties": False,
        },
    ]
}


@dataclass(frozen=True)
class FollowUp:
    title: str
    body: str


@dataclass(frozen=True)
class Run:
    command: str
    thought: str = ""


@dataclass(frozen=True)
class Done:
    summary: str
    issues: tuple[FollowUp, ...] = ()
    thought: str = ""


@dataclass(frozen=True)
class Help:
    """Ask peers for advice; `capability`: what this node lacks (e.g. a model), or ""."""

    question: str
    capability: str = ""
    thought: str = ""


Action = Run | Done | Help


class BadReply(ValueError):
    """A reply the loop cannot act on; the message is shown to the model."""


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)
# A placeholder copied from a prompt: "<one shell command>", "<what you changed>"
_PLACEHOLDER = re.compile(r"^\s*<[^<>\n]{2,80}>\s*$")


def parse_reply(text: str, examples: Collection[str] = ()) -> Action:
    """The action in `text`, or BadReply saying why there is none. `examples`: texts the
    prompts show as examples (a summary copied from them says nothing)."""
    fenced = _FENCE.match(text)
    try:  # not strict: a raw line break inside a string (as some grammars let through) is fine
        reply = json.loads(fenced.group(1) if fenced else text, strict=False)
    except ValueError:
        raise BadReply("it is not JSON") from None
    if not isinstance(reply, dict):
        raise BadReply("it is not a JSON object")
    thought = reply.get("thought", "")
    if not isinstance(thought, str):
        raise BadReply('"thought" must be a string')
    if repetitive(thought):
        raise BadReply('"thought" repeats itself: write one short sentence')
    action = reply.get("action")
    if action == "run":
        return Run(_command(reply.get("command")), thought[:THOUGHT_CHARS])
    if action == "done":
        summary = _summary(reply.get("summary"), examples)
        return Done(summary, _issues(reply.get("issues")), thought[:THOUGHT_CHARS])
    if action == "help":
        question = _question(reply.get("question"))
        return Help(question, _capability(reply.get("capability")), thought[:THOUGHT_CHARS])
    raise BadReply('"action" must be "run", "done" or "help"')


def as_text(action: Action) -> str:
    """The action as the model should have written it (thought first): how the
    conversation keeps a reply, whatever padding or fence came with it."""
    data: dict[str, Any] = {"thought": action.thought}
    if isinstance(action, Run):
        data |= {"action": "run", "command": action.command}
    elif isinstance(action, Help):
        data |= {"action": "help", "question": action.question}
        if action.capability:
            data["capability"] = action.capability
    else:
        data |= {"action": "done", "summary": action.summary}
        if action.issues:
            data["issues"] = [{"title": i.title, "body": i.body} for i in action.issues]
    return json.dumps(data, ensure_ascii=False)


def repetitive(text: str) -> bool:
    """Whether `text` is a runaway: long and made of one pattern repeated ("1.1.1.1...",
    a list of the same word), which compresses to almost nothing."""
    if len(text) < 160:
        return False
    data = text.encode()
    return len(zlib.compress(data, 9)) < 0.2 * len(data)


def placeholder(text: str) -> bool:
    return bool(_PLACEHOLDER.match(text))


def _alike(text: str, example: str) -> bool:
    """Whether `text` is `example` copied, give or take a few letters."""
    a, b = (" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in (text, example))
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def _command(command: object) -> str:
    if not isinstance(command, str) or not command.strip():
        raise BadReply('"run" needs a "command": one shell command, e.g. "ls -a"')
    if len(command) > COMMAND_CHARS:
        raise BadReply(f"the command is longer than {COMMAND_CHARS} characters")
    if placeholder(command):
        raise BadReply(
            f"{command.strip()!r} is a placeholder, not a command: write a real one, e.g. "
            '"cat README.md"'
        )
    return command


def _summary(summary: object, examples: Collection[str]) -> str:
    if not isinstance(summary, str) or not summary.strip():
        raise BadReply('"done" needs a "summary": what you changed and how you checked it')
    if placeholder(summary) or any(_alike(summary, example) for example in examples):
        raise BadReply(
            "the summary is copied from the instructions: say what you changed in this"
            " repository and how you checked it"
        )
    if repetitive(summary):
        raise BadReply('"summary" repeats itself: write one or two sentences')
    return summary[:SUMMARY_CHARS]


def _question(question: object) -> str:
    if not isinstance(question, str) or not question.strip():
        raise BadReply(
            '"help" needs a "question": what you are stuck on, e.g. "pytest cannot import'
            ' hello: where does the package live?"'
        )
    if placeholder(question) or repetitive(question):
        raise BadReply('the "question" must be a real one, in a sentence or two')
    return question.strip()[:QUESTION_CHARS]


def _capability(capability: object) -> str:
    if capability is None:
        return ""
    if not isinstance(capability, str):
        raise BadReply('"capability" must be a string, e.g. "qwen2.5-coder:7b"')
    return capability.strip()[:CAPABILITY_CHARS]


def _issues(issues: object) -> tuple[FollowUp, ...]:
    if issues is None:
        return ()
    if not isinstance(issues, list):
        raise BadReply('"issues" must be a list of {"title", "body"}')
    if len(issues) > MAX_ISSUES:
        raise BadReply(f"at most {MAX_ISSUES} follow-up issues")
    follow_ups = []
    for issue in issues:
        if not isinstance(issue, dict) or not isinstance(issue.get("title"), str):
            raise BadReply('each of "issues" needs a "title" string')
        title, body = issue["title"].strip(), issue.get("body", "")
        if not title or placeholder(title):
            raise BadReply("each follow-up issue needs a real title")
        follow_ups.append(FollowUp(title[:TITLE_CHARS], body if isinstance(body, str) else ""))
    return tuple(follow_ups)
