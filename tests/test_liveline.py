"""Progress for long commands: a live line on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from bzzz.liveline import LiveLine


def test_plain_lines_when_not_on_a_terminal() -> None:
    out, now = io.StringIO(), [0.0]
    with LiveLine(out, interactive=False, clock=lambda: now[0]) as line:
        line.say("building a root file system")
        now[0] = 31.0
        line.say("importing it")
        now[0] = 31.2
    assert out.getvalue() == "building a root file system\n  (done in 31 s)\nimporting it\n"


def test_a_live_line_on_a_terminal_keeps_each_finished_step() -> None:
    out, now = io.StringIO(), [0.0]
    with LiveLine(out, interactive=True, clock=lambda: now[0]) as line:
        line.say("building a root file system")
        now[0] = 31.0
        line.say("importing it")
        now[0] = 31.5
    text = out.getvalue()
    assert "\r\x1b[K| building a root file system (0 s)" in text
    assert "\r\x1b[Kbuilding a root file system: done in 31 s\n" in text
    assert text.endswith("\r\x1b[Kimporting it\n")  # under a second: no time
