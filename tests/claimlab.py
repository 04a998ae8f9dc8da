"""Helpers for claim tests across processes: a seeded forge world, nodes that claim,
their `bzzz worker` pools, and the witnesses (the record the workers keep of who ran
what, the forge's claim comments, the nodes' task tables)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bzzz.claims import ledger
from bzzz.claims.ledger import ClaimNote
from bzzz.forge.github import GitHubForge
from bzzz.forge.token import Token
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, WorkerPool
from tests.conftest import NodeFactory

REPO = "lab/app"
# Short leases so that takeovers happen within a test's patience.
CLAIMS = {"lease": 20.0, "gossip_renew": 2.0, "rank_delay": 1.0, "margin": 6.0, "clock_skew": 2.0}


def token(login: str) -> str:
    return f"tok-{login}-0123456789"


def world(nodes: list[str], tasks: int) -> dict[str, Any]:
    """A forge with `tasks` task issues in lab/app, whose collaborators are the nodes."""
    return {
        "users": [{"login": login, "token": token(login)} for login in ("lab", *nodes)],
        "repos": [
            {
                "owner": "lab",
                "name": "app",
                "files": {"README.md": "# app\n"},
                "labels": ["bzzz-task"],
                "collaborators": nodes,
                "issues": [
                    {"number": n, "title": f"Task {n}", "labels": ["bzzz-task"]}
                    for n in range(1, tasks + 1)
                ],
            }
        ],
    }


def claim_node(
    make_node: NodeFactory,
    forge: LocalForge,
    login: str,
    bootstrap: list[str],
    path: str,
    *,
    threads: int = 2,
    executor: str = "workers.executors:record",
    **sections: dict[str, Any],
) -> NodeProcess:
    settings: dict[str, dict[str, Any]] = {
        "forge": {"api_url": forge.api_url, "seconds_between_writes": 0.0, "timeout": 3.0},
        "tasks": {"repositories": [REPO], "poll_interval": 1.0},
        "claims": dict(CLAIMS),
        "workers": {"threads": threads, "heartbeat": 1.0, "executor": executor},
    }
    for section, values in sections.items():  # on top of the defaults above
        settings.setdefault(section, {}).update(values)
    return make_node(
        login,
        bootstrap=bootstrap,
        env={"BZZZ_FORGE_TOKEN": token(login), "PATH": path},
        **settings,
    )


class Workers(WorkerPool):
    """`bzzz worker` for a node (the record executor), started at once and killed at the
    end of the test."""

    def __init__(
        self,
        node: NodeProcess,
        record: Path,
        seconds: float = 1.0,
        retry_seconds: float = 1.0,
        prefix: Sequence[str] = (),
    ) -> None:
        env = {
            "BZZZ_RECORD_FILE": str(record),
            "BZZZ_RECORD_SECONDS": str(seconds),
            "BZZZ_RECORD_RETRY_SECONDS": str(retry_seconds),
        }
        super().__init__(node, env, prefix)
        self.start()

    def children(self) -> list[psutil.Process]:
        """The worker processes under the pool's supervisor (not multiprocessing's
        resource tracker)."""
        assert self.process is not None
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []
        workers = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(child.cmdline()):
                    workers.append(child)
        return workers

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def ran(record: Path) -> list[tuple[str, str]]:
    """(task, node) for every run that finished holding its claim."""
    return [(r["task_id"], r["node"]) for r in runs(record)]


def runs(record: Path) -> list[dict[str, Any]]:
    """The record executor's lines: task_id, node, pid, time (epoch, when it finished)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def task_states(node: NodeProcess) -> dict[str, str]:
    report = node.status()
    return {t.task_id: t.state for t in report.tasks} if report else {}


def hosted_nodes(
    make_node: NodeFactory,
    forge: LocalForge,
    names: Sequence[str],
    hosts: Sequence[tuple[str, str]],
    path: str,
    **sections: dict[str, Any],
) -> list[NodeProcess]:
    """Claiming nodes, one per host (network namespace, address) of tests.netns.lan, each
    listening on its host's address and bootstrapping to the first (not started)."""
    nodes: list[NodeProcess] = []
    bootstrap: list[str] = []
    for name, (_, address) in zip(names, hosts, strict=True):
        listen = {"listen": [f"/ip4/{address}/tcp/4001"]}
        node = claim_node(make_node, forge, name, bootstrap, path, network=listen, **sections)
        bootstrap = bootstrap or [f"/ip4/{address}/tcp/4001/p2p/{node.peer_id}"]
        nodes.append(node)
    return nodes


def open_task(forge: LocalForge, title: str) -> str:
    """A new task issue in lab/app, opened by the repository's owner; its task ID."""
    lab = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
    return f"{REPO}#{lab.create_issue(REPO, title, '', ['bzzz-task']).number}"


def number_of(task_id: str) -> int:
    return int(task_id.rpartition("#")[2])


def claim_notes(forge: LocalForge, number: int) -> list[ClaimNote]:
    reader = GitHubForge(forge.api_url, Token(token("lab")), seconds_between_writes=0)
    return ledger.claims(reader.get_comments(REPO, number), {"COLLABORATOR"}, ())
