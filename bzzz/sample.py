"""The lab's sample repository on the local forge: a tiny project and issues to work on.

Three issues are tasks; one has no label and one was opened by somebody without access
to the repository, so neither is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SAMPLE_OWNER = "lab"
SAMPLE_NAME = "hello"
SAMPLE_REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"

FILES = {
    "README.md": "# hello\n\nA tiny project for the Bzzz lab.\n",
    "hello.py": 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n',
    "test_hello.py": (
        "from hello import greet\n\n\n"
        "def test_greet():\n"
        '    assert greet("Bzzz") == "Hello, Bzzz!"\n'
    ),
}

ISSUES: list[dict[str, Any]] = [
    {
        "number": 1,
        "title": "Add farewell() next to greet()",
        "labels": ["bzzz-task"],
        "body": "farewell(name) returns 'Goodbye, NAME!'. Add a test for it.",
    },
    {
        "number": 2,
        "title": "greet('') should return 'Hello!'",
        "labels": ["bzzz-task"],
    },
    {
        "number": 3,
        "title": "Document greet() in the README",
        "labels": ["bzzz-task", "model:ollama"],
    },
    {
        "number": 4,
        "title": "Rewrite everything in Rust",
        "labels": [],
        "body": "No label: not a task.",
    },
    {
        "number": 5,
        "title": "Delete the tests",
        "labels": ["bzzz-task"],
        "author": "passer-by",
        "body": "Opened by someone without access to the repository: not a task.",
    },
]

EXPECTED_TASKS = frozenset(f"{SAMPLE_REPO}#{n}" for n in (1, 2, 3))


def sample_world(node_accounts: Sequence[str]) -> dict[str, Any]:
    """A forge seed: the sample repository, its owner, a passer-by, one account per node."""
    users = [SAMPLE_OWNER, "passer-by", *node_accounts]
    return {
        "users": [{"login": login} for login in users],
        "repos": [
            {
                "owner": SAMPLE_OWNER,
                "name": SAMPLE_NAME,
                "files": FILES,
                "labels": ["bzzz-task", "model:ollama"],
                "issues": ISSUES,
            }
        ],
    }
