"""The lab's sample repository on the local forge: a tiny project and issues to work on.

Three issues are tasks; one has no label and one was opened by somebody without access
to the repository, so neither is. Issue 3 asks for any model, or for the one model the
lab lends over the mesh (LENT_MODEL: only one node has it). `SAMPLE_PLAYBOOK` is what
the lab model server (`bzzz.lab.model`, a scripted stand-in for ollama, not a language
model) answers for each task, step by step, in the reasoning loop's reply format.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SAMPLE_OWNER = "lab"
SAMPLE_NAME = "hello"
SAMPLE_REPO = f"{SAMPLE_OWNER}/{SAMPLE_NAME}"
LENT_MODEL = "lab-coder"

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


AGENT_ISSUE = 3  # the issue an agent CLI solves in the lab, where one is installed


def sample_issues(task_model: str = "ollama", agent: str | None = None) -> list[dict[str, Any]]:
    """The sample issues, issue 3 asking for `task_model` ("ollama": any model) and, with
    `agent`, for that agent CLI to solve it."""
    return [
        {
            **issue,
            "labels": [
                f"model:{task_model}" if "model:" in label else label for label in issue["labels"]
            ]
            + ([f"agent:{agent}"] if agent and issue["number"] == AGENT_ISSUE else []),
        }
        for issue in ISSUES
    ]


def sample_world(
    node_accounts: Sequence[str], task_model: str = "ollama", agent: str | None = None
) -> dict[str, Any]:
    """A forge seed: the sample repository, its owner, a passer-by, one account per node.
    The node accounts are collaborators: only trusted accounts' claim comments count.
    Issue 3 asks for `task_model`, and for the agent CLI `agent` if given."""
    users = [SAMPLE_OWNER, "passer-by", *node_accounts]
    return {
        "users": [{"login": login} for login in users],
        "repos": [
            {
                "owner": SAMPLE_OWNER,
                "name": SAMPLE_NAME,
                "files": FILES,
                "labels": ["bzzz-task", f"model:{task_model}"]
                + ([f"agent:{agent}"] if agent else []),
                "collaborators": list(node_accounts),
                "issues": sample_issues(task_model, agent),
            }
        ],
    }


# Each step is one assistant reply of the reasoning loop: {"thought", "action": "run",
# "command"} or {"thought", "action": "done", "summary"} (or "crash": the model server
# fails the request). Commands run with `sh -c` in the
# clone's /workspace, where only POSIX sh, coreutils, git and python3 exist. `python3 -B`
# keeps __pycache__ out of the working tree, and so out of the pull request.
# Issue 1's last steps, whoever plays them: test farewell(), run the tests, done.
FAREWELL_TESTED: list[dict[str, Any]] = [
    {
        "thought": "Import farewell in the test module and test it.",
        "action": "run",
        "command": r"""python3 -B - <<'EOF'
from pathlib import Path

path = Path("test_hello.py")
old, new = "from hello import greet\n", "from hello import farewell, greet\n"
test = '\n\ndef test_farewell():\n    assert farewell("Bzzz") == "Goodbye, Bzzz!"\n'
path.write_text(path.read_text().replace(old, new, 1) + test)
EOF""",
    },
    {
        "thought": "Run both tests.",
        "action": "run",
        "command": """python3 -B - <<'EOF'
import test_hello

test_hello.test_greet()
test_hello.test_farewell()
print("2 tests pass")
EOF""",
    },
    {
        "thought": "The function exists and its test passes.",
        "action": "done",
        "summary": "Added farewell(name) to hello.py, returning 'Goodbye, NAME!', "
        "and test_farewell to test_hello.py; both tests pass.",
    },
]

SAMPLE_PLAYBOOK: dict[int, dict[str, Any]] = {
    1: {
        # The model server "crashes" once farewell() is written (once per server: see
        # CRASH in bzzz.lab.model.responders). The node hands the task on with its work
        # so far, and the successor's model plays `handed_steps` from that work.
        "keywords": ["farewell"],
        # For an agent CLI that edits by whole files (aider): the files as the steps
        # leave them (tests/test_lab_model.py checks they match).
        "files": {
            "hello.py": FILES["hello.py"]
            + '\n\ndef farewell(name: str) -> str:\n    return f"Goodbye, {name}!"\n',
            "test_hello.py": FILES["test_hello.py"].replace(
                "from hello import greet", "from hello import farewell, greet"
            )
            + '\n\ndef test_farewell():\n    assert farewell("Bzzz") == "Goodbye, Bzzz!"\n',
        },
        "steps": [
            {
                "thought": "Read the code and its test before changing them.",
                "action": "run",
                "command": "cat hello.py test_hello.py",
            },
            {
                "thought": "Add farewell() after greet(), in the same style.",
                "action": "run",
                "command": """cat >> hello.py <<'EOF'


def farewell(name: str) -> str:
    return f"Goodbye, {name}!"
EOF""",
            },
            {"action": "crash"},
            *FAREWELL_TESTED,
        ],
        "handed_steps": [
            {
                "thought": "farewell() is written already; what is left is its test.",
                "action": "run",
                "command": "cat hello.py test_hello.py",
            },
            *FAREWELL_TESTED,
        ],
    },
    2: {
        # The model asks the mesh: only the lab's model host has LENT_MODEL, and advises.
        "advice": "Return 'Hello!' early in greet() when name is empty, before the"
        " f-string, and add test_greet_empty() to test_hello.py.",
        "steps": [
            {
                "thought": "See how greet() builds its greeting.",
                "action": "run",
                "command": "cat hello.py test_hello.py",
            },
            {
                "thought": "An empty name is an edge case; ask a peer's model how to treat it.",
                "action": "help",
                "question": "How should greet('') behave, and where should its test go?",
                "capability": LENT_MODEL,
            },
            {
                "thought": "Return 'Hello!' early when the name is empty, and test it.",
                "action": "run",
                "command": r"""python3 -B - <<'EOF'
from pathlib import Path

code = Path("hello.py")
old = '    return f"Hello, {name}!"\n'
new = '    if not name:\n        return "Hello!"\n' + old
assert old in code.read_text(), "greet() does not look as expected"
code.write_text(code.read_text().replace(old, new, 1))
tests = Path("test_hello.py")
test = '\n\ndef test_greet_empty():\n    assert greet("") == "Hello!"\n'
tests.write_text(tests.read_text() + test)
EOF""",
            },
            {
                "thought": "Run the tests.",
                "action": "run",
                "command": """python3 -B - <<'EOF'
import test_hello

test_hello.test_greet()
test_hello.test_greet_empty()
print("2 tests pass")
EOF""",
            },
            {
                "thought": "greet('') now returns 'Hello!'; other names are greeted as before.",
                "action": "done",
                "summary": "greet('') now returns 'Hello!' (hello.py), with test_greet_empty "
                "in test_hello.py; both tests pass.",
            },
        ],
    },
    3: {
        "keywords": ["document", "readme"],
        "steps": [
            {
                "thought": "Read the README and the function it should document.",
                "action": "run",
                "command": "cat README.md hello.py",
            },
            {
                "thought": "Add a section on greet() with an example that doctest can check.",
                "action": "run",
                "command": """cat >> README.md <<'EOF'

## greet()

`greet(name)` in `hello.py` returns a greeting for `name`:

    >>> from hello import greet
    >>> greet("Bzzz")
    'Hello, Bzzz!'
EOF""",
            },
            {
                "thought": "Check that the README's example is right.",
                "action": "run",
                "command": "python3 -B -m doctest README.md && echo 'the example passes'",
            },
            {
                "thought": "The README documents greet() with a checked example.",
                "action": "done",
                "summary": "Documented greet() in README.md: what it returns, with an "
                "example that python3 -m doctest checks.",
            },
        ],
    },
}
