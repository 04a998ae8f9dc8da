"""Shared fixtures: real `bzzz node` processes on loopback, always cleaned up.

Nothing the tests start outlives the test run, even one killed outright: the nodes and
worker pools (bzzz.lab.processes) die with the process that started them, and
BZZZ_DIE_WITH_PARENT, set here for the whole run, makes what the tests start by hand and
honours it (`bzzz worker`, `bzzz lab run`, `bzzz lab forge|model serve`) die with it too
(bzzz/lifeline.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bzzz import lifeline
from bzzz.lab.forge import LocalForge
from bzzz.lab.processes import NodeProcess, free_port, wait_for

os.environ[lifeline.ENV] = str(os.getpid())

# Fast liveness for tests: pings every second, dead after three silent seconds.
FAST: dict[str, dict[str, Any]] = {
    "capabilities": {
        "check_interval": 1.0,
        "presence_interval": 1.0,
        "presence_per_peer": 0.2,
        "peer_timeout": 3.0,
    },
    "network": {"reconnect_interval": 0.5, "discovery_interval": 2.0, "dial_timeout": 3.0},
}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary directory: unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="bzzz-t-"))
    yield path
    if os.environ.get("BZZZ_TEST_KEEP"):  # for debugging: keep the nodes' homes and logs
        print(f"kept {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def fast(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`sections` on top of the FAST test settings."""
    merged = {section: dict(values) for section, values in FAST.items()}
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return merged


NodeFactory = Callable[..., NodeProcess]


@pytest.fixture
def make_node(short_tmp: Path, request: pytest.FixtureRequest) -> Iterator[NodeFactory]:
    """Create (not start) nodes; every one is killed at the end of the test, pass or fail."""
    nodes: list[NodeProcess] = []

    def factory(
        name: str,
        bootstrap: list[str] | tuple[str, ...] = (),
        port: int | None = None,
        env: dict[str, str] | None = None,
        **sections: dict[str, Any],
    ) -> NodeProcess:
        node = NodeProcess(short_tmp / name, name, port or free_port(), env=env)
        node.init(list(bootstrap), **fast(sections))
        nodes.append(node)
        return node

    yield factory
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for node in nodes:
        node.stop(timeout=10)
        if failed:
            print(f"----- {node.name} output -----\n{node.output()[-4000:]}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests run in parallel (pytest-xdist, --dist loadgroup: most of them wait on other
    processes); those that start a private dockerd share one worker, so that only one
    engine runs at a time; and the heaviest (the whole lab, a browser on three nodes)
    share another, so that they never load the two cores at once and starve the nodes'
    liveness."""
    for item in items:
        if "sandbox" in item.path.parts or item.path.name == "test_compose.py":
            item.add_marker(pytest.mark.xdist_group("docker"))
        elif any(name in item.nodeid for name in HEAVY):
            item.add_marker(pytest.mark.xdist_group("heavy"))


HEAVY = ("test_dashboard_browser.py", "test_lab_turns_the_sample_issues", "test_audit_mesh.py")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def alive_names(node: NodeProcess) -> set[str]:
    report = node.status()
    return set() if report is None else {p.node_id for p in report.alive_peers()}


def wait_alive(node: NodeProcess, names: set[str], timeout: float = 20.0) -> None:
    wait_for(lambda: names <= alive_names(node), timeout, f"{node.name} to hear {sorted(names)}")


def start_all(*nodes: NodeProcess) -> None:
    for node in nodes:
        node.start(wait=False)
    for node in nodes:
        node.wait_ready()


def start_all_in(nodes: list[NodeProcess], namespaces: list[str]) -> None:
    """Start each node inside its network namespace."""
    for node, namespace in zip(nodes, namespaces, strict=True):
        node.start(wait=False, command_prefix=["ip", "netns", "exec", namespace])
    for node in nodes:
        node.wait_ready()


@contextlib.contextmanager
def seeded_forge(world: dict[str, Any], prefix: str) -> Iterator[LocalForge]:
    """A local forge in a fresh directory, seeded with `world`; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    forge = LocalForge(root).start()
    try:
        forge.seed(world)
        yield forge
    finally:
        forge.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pools() -> Iterator[list[Any]]:
    """The worker pools a test starts (tests.claimlab.Workers): each stopped at the end."""
    started: list[Any] = []
    yield started
    for pool in started:
        pool.stop()


@pytest.fixture
def tool_path(tmp_path: Path) -> str:
    """A PATH on which nodes find an `ollama` CLI: tasks that ask for no particular model
    need a node that has one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "ollama"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
