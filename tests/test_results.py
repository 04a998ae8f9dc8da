"""What the forge is told about a run: which nodes' models did the work, and who helped."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from bzzz.forge.api import Forge
from bzzz.work import TaskSpec
from workers.loop import Ending, LoopResult
from workers.outcome import HelpAnswer, HelpRecord
from workers.results import (
    RunFacts,
    helped,
    open_or_update_pull_request,
    report_failure,
    served,
)
from workers.workspace import Workspace

ADVICE = HelpAnswer(True, node="c", model="lab-helper:latest", advice="Run it.", asks=1)
NO_PEER = HelpAnswer(False, asks=3, reason="no peer offered help after 3 asks")
SILENT = HelpAnswer(False, asks=1, offers=("c", "b"), reason="c accepted but went silent")


def facts(**served_by: int) -> RunFacts:
    return RunFacts(node="a", model="lab-coder", seconds=1.0, served_by=served_by)


def test_a_run_on_the_nodes_own_model_says_nothing_more() -> None:
    assert served(facts()) == ""
    assert served(facts(a=5)) == ""


def test_a_peers_model_is_named_and_several_are_counted() -> None:
    assert served(facts(c=5)) == ", served by node **c** over the mesh"
    assert served(facts(a=1, c=4, b=4)) == (
        ", served by nodes **b** (4 calls), **c** (4 calls), **a** (1 call) over the mesh"
    )


def test_who_helped_and_how_is_said_in_a_line_an_ask() -> None:
    assert helped([]) == ""
    assert helped([HelpRecord("Why?", False, ADVICE, 2)]) == (
        "Helped by node **c** (model `lab-helper:latest`): advice at step 2 (asked by the model)."
    )
    assert helped([HelpRecord("Why?", True, NO_PEER, 0)]) == (
        "Help was sought at the start (asked for the model, which looked stuck); no peer could"
        " help (no peer offered help after 3 asks)."
    )
    two = helped([HelpRecord("Why?", True, SILENT, 3), HelpRecord("And?", False, ADVICE, 5)])
    assert two == (
        "Help was sought at step 3 (asked for the model, which looked stuck); no peer could"
        " help (c accepted but went silent). Offers came from **c**, **b**.\n\n"
        "Helped by node **c** (model `lab-helper:latest`): advice at step 5 (asked by the model)."
    )


class Comments:
    """The forge calls results.py makes, noting each text."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def comment(self, repo: str, number: int, body: str) -> Any:
        self.bodies.append(body)
        return SimpleNamespace(html_url="https://forge/c/1")

    def find_pull_request(self, repo: str, head: str, base: str) -> Any:
        return None

    def create_pull_request(self, repo: str, *, body: str, **_: object) -> Any:
        self.bodies.append(body)
        return SimpleNamespace(html_url="https://forge/p/2")


SPEC = TaskSpec("t", "lab/hello", 1, "https://forge/i/1", "", "", "bzzz/", "a", 9, 1)


def test_the_pull_request_says_who_helped() -> None:
    loop = LoopResult(Ending.DONE, "done", summary="Added farewell().")
    loop.help.append(HelpRecord("Why?", False, ADVICE, 2))
    forge = Comments()
    workspace = SimpleNamespace(head_label="a:b", pull_head="b", base="main")
    open_or_update_pull_request(
        cast(Forge, forge), cast(Workspace, workspace), SPEC, loop, facts(), issues=[], draft=True
    )
    helped_line = "Helped by node **c** (model `lab-helper:latest`): advice at step 2"
    assert f"0 commands, 1 s.\n\n{helped_line}" in forge.bodies[0]


def test_the_failure_report_says_that_help_was_sought() -> None:
    spec = SPEC
    loop = LoopResult(Ending.STEPS, "step budget spent: 30 commands")
    loop.help.append(HelpRecord("Why?", True, NO_PEER, 4))
    forge = Comments()
    report_failure(cast(Forge, forge), spec, loop.reason, [], facts(), loop=loop)
    assert "\n\nHelp was sought at step 4 (asked for the model" in forge.bodies[0]
    report_failure(cast(Forge, forge), spec, "x", [], facts(), loop=LoopResult(Ending.STEPS, "x"))
    assert "Help" not in forge.bodies[1]
