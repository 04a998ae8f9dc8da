"""Nothing left behind: the lab, the worker pools and the tests' helpers stop every
process they start, on SIGINT, SIGTERM and SIGHUP and when killed outright (SIGKILL); and
libraries' routine log lines stay out of the logs unless asked for.

Each test finds the processes of what it starts with psutil before it stops or kills
it, then waits (with a deadline) until none of them runs any more; whatever is left at
the end, pass or fail, is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bzzz import lifeline, logs
from bzzz.config import CONTROL_SOCKET
from bzzz.control import ControlError, request
from bzzz.lab.processes import WorkerPool, wait_for
from tests.conftest import NodeFactory

ROOT = Path(__file__).resolve().parent.parent
LAB_START = 60.0  # seconds for a lab of two nodes to come up on a loaded machine
GONE_WITHIN = 45.0  # seconds for everything to stop (the lab's guard waits up to 15)


def running(process: psutil.Process) -> bool:
    """Whether it runs still (a zombie has exited; a pid reused is another process)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def family(pid: int) -> list[psutil.Process]:
    """Process `pid` and all its descendants."""
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def named(processes: list[psutil.Process], text: str) -> list[psutil.Process]:
    return [p for p in processes if text in cmdline(p)]


def left(processes: list[psutil.Process]) -> list[str]:
    return [f"{p.pid} {cmdline(p)[:120]}" for p in processes if running(p)]


def wait_all_gone(processes: list[psutil.Process], what: str) -> None:
    try:
        wait_for(lambda: not left(processes), GONE_WITHIN, what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; still running: {left(processes)}") from None


@contextlib.contextmanager
def reaped(processes: list[psutil.Process]) -> Iterator[list[psutil.Process]]:
    """Kill whatever of `processes` (a list filled in meanwhile) still runs at the end."""
    try:
        yield processes
    finally:
        for process in processes:
            if running(process):
                with contextlib.suppress(psutil.Error):
                    process.kill()


def pool_ready(supervisor: psutil.Process, home: Path) -> bool:
    """A `bzzz worker` supervisor whose worker process (spawn_main) is up and taking tasks,
    its signal handlers in place."""
    out = home / "worker.out"
    up = out.exists() and "worker process up" in out.read_text(errors="replace")
    return up and bool(named(family(supervisor.pid)[1:], "spawn_main"))


# --- the parent-death signal, opt-in -----------------------------------------------

PROBE = (
    "import os; from bzzz import lifeline; "
    "armed = lifeline.arm_from_env(); "
    "print(armed, lifeline.armed(), os.environ.get(lifeline.ENV))"
)


def probe(env: dict[str, str], *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def without_lifeline() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != lifeline.ENV}


def test_a_process_dies_with_its_parent_only_when_started_so() -> None:
    asked = probe(lifeline.child_env(without_lifeline()))
    assert asked.stdout.split() == ["True", str(int(signal.SIGTERM)), "None"], asked.stderr
    # as an operator starts it (systemd, a shell): nothing asked, nothing armed
    assert probe(without_lifeline()).stdout.split() == ["False", "0", "None"]
    # the variable inherited through a program that did not read it names a live
    # process that is not the parent: not for this process
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        inherited = {**without_lifeline(), lifeline.ENV: str(other.pid)}
        assert probe(inherited).stdout.split() == ["False", "0", "None"]
    finally:
        other.kill()
        other.wait(10)
    # the launcher asks in its own process, then execs the command (same process)
    launched = probe(lifeline.child_env(without_lifeline()), *lifeline.command([]))
    assert launched.stdout.split() == ["False", str(int(signal.SIGTERM)), "None"]


def test_a_process_whose_parent_is_gone_before_it_asks_ends_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)  # reaped: its pid names no process now
    late = probe({**without_lifeline(), lifeline.ENV: str(gone.pid)})
    assert late.returncode == -signal.SIGTERM, late.stdout + late.stderr


# --- the tests' helpers and the worker pools ---------------------------------------

HELPER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bzzz.lab.processes import NodeProcess, WorkerPool, free_port

    home = Path(sys.argv[1])
    node = NodeProcess(home, "orphan", free_port())
    node.init()
    node.start(wait=True)
    WorkerPool(node).start()
    (home / "helper.ready").touch()
    sys.stdin.read()  # until the test kills this process
    """
)


def test_a_helper_that_started_a_node_and_its_pool_and_is_killed_leaves_none(
    short_tmp: Path,
) -> None:
    home = short_tmp / "orphan"
    helper = subprocess.Popen(
        [sys.executable, "-c", HELPER, str(home)], cwd=ROOT, stdin=subprocess.PIPE
    )
    with reaped(family(helper.pid)) as started:

        def up() -> bool:
            started[:] = family(helper.pid)
            pools = named(started, "bzzz worker")
            ready = (home / "helper.ready").exists()
            return ready and bool(pools) and pool_ready(pools[0], home)

        wait_for(up, LAB_START, "the helper's node and pool", check=lambda: _alive(helper))
        assert named(started, "bzzz node")
        helper.kill()
        helper.wait(10)
        wait_all_gone(started, "the killed helper's node and pool")


def test_a_pools_worker_processes_end_with_their_supervisor(
    make_node: NodeFactory,
) -> None:
    node = make_node("lonely")
    pool = WorkerPool(node)
    pool.start()
    assert pool.process is not None
    supervisor = psutil.Process(pool.process.pid)
    with reaped([supervisor]) as started:
        wait_for(lambda: pool_ready(supervisor, node.home), LAB_START, "the worker process")
        started[:] = family(supervisor.pid)
        assert named(started, "spawn_main")
        supervisor.kill()  # SIGKILL: the supervisor cannot stop them itself
        pool.process.wait(10)
        wait_all_gone(started, "the worker processes of a killed supervisor")


def _alive(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"exited with {process.returncode}")


# --- the lab -----------------------------------------------------------------------


def lab_up(lab: subprocess.Popen[bytes], out: Path, nodes: int) -> bool:
    """Its nodes answer and each of its pools has its worker process."""
    said = out.read_text(errors="replace")
    if lab.poll() is not None:
        raise RuntimeError(f"the lab exited with {lab.returncode}:\n{said[-3000:]}")
    found = re.search(r"lab homes in ([^\s;]+)", said)
    if found is None:
        return False
    root = Path(found[1])
    for number in range(1, nodes + 1):
        try:
            request(root / f"node-{number}" / CONTROL_SOCKET, {"cmd": "status"}, timeout=2)
        except ControlError:
            return False
    pools = named(family(lab.pid), "bzzz worker")
    homes = [Path(cmdline(pool).rpartition(" ")[2]) for pool in pools]  # ... --home HOME
    return len(pools) == nodes and all(map(pool_ready, pools, homes))


@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL],
    ids=lambda sig: signal.Signals(sig).name,
)
def test_a_lab_stopped_or_killed_leaves_no_process_and_no_home(
    sig: signal.Signals, short_tmp: Path
) -> None:
    tmp = short_tmp / "tmp"  # the lab's temporary homes go here, and nothing else
    tmp.mkdir()
    out = short_tmp / "lab.out"
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "bzzz", "lab", "run", "--nodes", "2", "--duration", "600"]
    # as from a terminal, even where this test run ignores hangups (`nohup`, which the lab
    # respects)
    hangup = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN and sig == signal.SIGHUP
    with out.open("wb") as log:
        lab = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_hangup_by_default if hangup else None,  # noqa: PLW1509
        )
    with reaped([psutil.Process(lab.pid)]) as started:
        wait_for(lambda: lab_up(lab, out, 2), LAB_START, "the lab to start")
        started[:] = family(lab.pid)
        assert len(named(started, "bzzz node")) == 2
        assert len(named(started, "bzzz.lab.guard")) == 1

        lab.send_signal(sig)
        wait_all_gone(started, f"a lab sent {sig.name}")
        wait_for(lambda: not list(tmp.iterdir()), 10, "the lab's temporary homes to go")
        code = lab.wait(10)
        said = out.read_text(errors="replace")
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert f"stopping the lab ({sig.name})" in said
            assert re.search(r"lab stopped: 2/2 nodes exited cleanly; removed \S+", said), said


def _hangup_by_default() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# --- logs --------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def logged(path: Path) -> str:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text() if path.exists() else ""


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("level", ["info", "debug"])
def test_libraries_log_warnings_only_unless_named(tmp_path: Path, level: str) -> None:
    path = tmp_path / f"{level}.log"
    logs.setup(level, path, libraries=())
    for name in ("pika.adapters.blocking_connection", "dramatiq.worker", "some_new_library"):
        logging.getLogger(name).info("routine %s", name)
        logging.getLogger(name).warning("trouble %s", name)
    logging.getLogger("bzzz.node").info("ours")
    text = logged(path)
    assert "routine" not in text
    assert text.count("trouble") == 3
    assert "ours" in text

    logs.setup(level, path, libraries=logs.shown_libraries({logs.LIBRARIES_ENV: "pika, x"}))
    logging.getLogger("pika.connection").info("connecting")
    logging.getLogger("dramatiq.broker").info("still quiet")
    assert "connecting" in logged(path)
    assert "still quiet" not in logged(path)

    logs.setup(level, path, libraries=["all"])
    logging.getLogger("some_new_library").info("now shown")
    assert "now shown" in logged(path)
