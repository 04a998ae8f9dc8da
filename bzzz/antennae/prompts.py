"""What the models are asked in a plan's review, and how their replies are read. Pure.

The holder's model writes the plan (PLAN_SYSTEM, a JSON reply with `plan` and, when only
a person can settle something, `question_for_person`); each reviewer's model answers it
(REVIEW_SYSTEM, a JSON reply with `verdict` and `text`). Asking for a person is an
explicit field, never a keyword in the text: "happy to help" asks nobody.
"""

from __future__ import annotations

import json
from typing import Any

PLAN_CHARS = 3000
REVIEW_CHARS = 1500
VERDICTS = ("approve", "objection", "suggestion", "person")

PLAN_SYSTEM = (
    "You are a coding agent about to work on a GitHub issue in a repository. Before you"
    " run anything, write your plan: the files you will read and change, what you will"
    " change, and how you will check it, in at most ten short lines. Peers review it."
    ' Reply with JSON: {"plan": "...", "question_for_person": ""}. Fill'
    " question_for_person only if the issue cannot be solved without a person's answer."
)
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"plan": {"type": "string"}, "question_for_person": {"type": "string"}},
    "required": ["plan"],
}
REVIEW_SYSTEM = (
    "You review another coding agent's plan for a GitHub issue before it starts work."
    ' Reply with JSON: {"verdict": "approve" | "objection" | "suggestion" |'
    ' "person", "text": "..."}. approve: the plan solves the issue safely.'
    " objection: only for a real flaw (it misses the point, breaks something, is unsafe);"
    " say what to change. suggestion: it is fine, with an improvement. person: only a"
    " person can settle something; put the question in text. At most five lines."
)
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": list(VERDICTS)},
        "text": {"type": "string"},
    },
    "required": ["verdict", "text"],
}


def review_request(model: str, plan_text: str) -> bytes:
    """ollama's /api/chat request for a review of `plan_text` (the plan message's text)."""
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": REVIEW_SYSTEM},
            {"role": "user", "content": plan_text[: PLAN_CHARS + 500]},
        ],
        "stream": False,
        "format": REVIEW_SCHEMA,
        "options": {"num_predict": 300, "temperature": 0},
    }
    return json.dumps(body).encode()


def read_review(reply: bytes) -> tuple[str, str]:
    """(verdict, text) from ollama's answer; ValueError if it holds no review."""
    content = _content(reply)
    try:
        review = json.loads(content)
    except ValueError:
        raise ValueError("the review is not JSON") from None
    verdict = review.get("verdict") if isinstance(review, dict) else None
    if verdict not in VERDICTS:
        raise ValueError(f"no verdict of {', '.join(VERDICTS)}")
    text = review.get("text")
    return str(verdict), (text.strip() if isinstance(text, str) else "")[:REVIEW_CHARS]


def read_plan(content: str) -> tuple[str, str]:
    """(plan, question for a person) from the holder's model's reply text."""
    try:
        reply = json.loads(content)
    except ValueError:
        return content.strip()[:PLAN_CHARS], ""  # a model that ignored the format: its text
    if not isinstance(reply, dict):
        return str(reply)[:PLAN_CHARS], ""
    plan, question = reply.get("plan"), reply.get("question_for_person")
    return (
        (plan.strip() if isinstance(plan, str) else "")[:PLAN_CHARS],
        (question.strip() if isinstance(question, str) else "")[:REVIEW_CHARS],
    )


def _content(reply: bytes) -> str:
    try:
        answer = json.loads(reply)
    except ValueError:
        raise ValueError("the model server's answer is not JSON") from None
    if not isinstance(answer, dict) or "error" in answer:
        said = answer.get("error") if isinstance(answer, dict) else answer
        raise ValueError(f"the model server said: {str(said)[:300]}")
    content = (answer.get("message") or {}).get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError("the model wrote nothing")
    return content
