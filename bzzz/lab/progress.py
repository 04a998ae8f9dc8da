"""What `bzzz lab run` shows while it runs: each node's state, the tasks, and what the
lab has reached so far."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING

from bzzz.lab.sample import EXPECTED_TASKS, SAMPLE_REPO
from bzzz.node.status import NodeStatus
from bzzz.render import table

if TYPE_CHECKING:
    from bzzz.lab.run import Lab


def render_lab(lab: Lab, reports: list[NodeStatus | None], elapsed: float) -> str:
    rows: list[list[object]] = []
    for node, report in zip(lab.nodes, reports, strict=True):
        if report is None:
            state = (
                "running"
                if node.running()
                else f"exited {node.process.returncode if node.process else '-'}"
            )
            rows.append([node.name, node.peer_id[-8:], state, *["-"] * 9])
            continue
        caps = report.capabilities or {}
        rows.append(
            [
                node.name,
                node.peer_id[-8:],
                report.status,
                f"{len(report.alive_peers())}/{len(lab.nodes) - 1}",
                report.connections,
                report.mesh.get("capabilities", 0),
                f"{caps.get('cpu', '-')}",
                ",".join(caps.get("models") or ["-"]),
                _mesh_calls(report),
                len(report.tasks),
                sum(report.messages.dropped.values()),
                _work(report),
            ]
        )
    headers = (
        "NODE",
        "PEER",
        "STATE",
        "PEERS ALIVE",
        "LINKS",
        "MESH",
        "CPU%",
        "MODELS",
        "MODEL CALLS",
        "TASKS",
        "DROPPED",
        "WORK",
    )
    view = f"Bzzz lab: {len(lab.nodes)} nodes on loopback, forge {lab.forge.url}, {elapsed:.0f}s"
    lines = [view, "", table(headers, rows)]
    known = next((r for r in reports if r is not None and r.tasks), None)
    if known is not None:
        polling = known.polling.get(SAMPLE_REPO)
        poller = polling.poller if polling else "-"
        lines += ["", f"tasks from {SAMPLE_REPO} (polled by {poller}):"]
        lines += [
            f"  {t.task_id:<14} {t.state:<9} {t.holder or '-':<12} {t.result_url or t.title}"
            for t in known.tasks
        ]
    return "\n".join(lines)


def _mesh_calls(report: NodeStatus) -> str:
    """Model calls through the gateway: to peers' models (out), from peers (in)."""
    gateway = report.gateway
    if gateway is None:
        return "no gateway"
    return f"{gateway.local_calls} here, {gateway.remote_calls} out, {gateway.served} in"


def _work(report: NodeStatus) -> str:
    """Whether the node takes tasks: its free slots, or why it takes none."""
    ready = report.readiness
    if ready.takes_tasks:
        return f"{ready.free_slots}/{ready.capacity} slots free"
    return "takes none: " + "; ".join((report.capabilities or {}).get("cannot_run") or ["-"])


def say(text: str) -> None:
    """Print, unless the terminal is gone (a hangup): the lab stops all the same."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


class Progress:
    """What the lab has reached so far, and when; shows the live view."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.formed_at: float | None = None
        self.tasks_at: float | None = None
        self.finished_at: float | None = None
        self.pulls: dict[str, str] = {}  # the sample tasks that have their pull request
        self.made_by: list[str] = []  # who made each pull request, with whose model
        self.last_view = ""
        self._interactive = sys.stdout.isatty()
        self._printed_at = -1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, lab: Lab, reports: list[NodeStatus | None]) -> None:
        if self.formed_at is None and lab.mesh_complete(reports):
            self.formed_at = self.elapsed()
        if self.tasks_at is None and lab.tasks_known(reports):
            self.tasks_at = self.elapsed()
        if self.finished_at is None and lab.tasks_finished(reports):
            self.finished_at = self.elapsed()
        self.pulls = lab.pull_requests(reports) or self.pulls
        self.last_view = render_lab(lab, reports, self.elapsed())

    def ready(self) -> bool:
        return self.formed_at is not None and self.tasks_at is not None

    def show(self) -> None:
        text = "\n\n".join([self.last_view, *self.status_lines()])
        if self._interactive:
            say("\x1b[2J\x1b[H" + text + "\n\nCtrl-C stops the lab.")
        elif int(self.elapsed()) // 5 != self._printed_at:  # a snapshot every 5 s in a log
            self._printed_at = int(self.elapsed()) // 5
            say(text + "\n")

    def bar(self, width: int = 30) -> str:
        """How far the lab is: the mesh formed, the tasks known, each pull request, and
        every result known, as a bar."""
        reached = [self.formed_at is not None, self.tasks_at is not None]
        reached += [task in self.pulls for task in sorted(EXPECTED_TASKS)]
        reached.append(self.finished_at is not None)
        done = sum(reached)
        filled = width * done // len(reached)
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{len(reached)}"

    def status_lines(self) -> list[str]:
        lines = [f"progress {self.bar()}"]
        if self.formed_at is None:
            lines.append(
                "the mesh has not formed (node logs: each home's node.out; keep them with --keep)"
            )
        else:
            lines.append(
                f"mesh formed: every node hears every other, {self.formed_at:.1f}s after start"
            )
        if self.tasks_at is None:
            lines.append("not every node knows the sample tasks yet")
        else:
            lines.append(
                f"tasks announced: every node knows the {len(EXPECTED_TASKS)} tasks,"
                f" {self.tasks_at:.1f}s after start"
            )
        if self.finished_at is not None:
            lines.append(
                f"tasks finished: every node knows each task's result,"
                f" {self.finished_at:.1f}s after start"
            )
            missing = sorted(EXPECTED_TASKS - set(self.pulls))
            lines.append(
                f"pull requests: {len(self.pulls)} of {len(EXPECTED_TASKS)} tasks"
                + (
                    f"; none for {', '.join(missing)} (see their failure reports)"
                    if missing
                    else ""
                )
            )
        if self.made_by:
            lines += ["who made them:", *self.made_by]
        return lines
