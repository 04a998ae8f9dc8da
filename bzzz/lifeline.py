"""Processes that end with the process that started them: Linux's parent-death signal.

A process asks the kernel (`prctl(PR_SET_PDEATHSIG)`) for a signal when its parent exits,
however the parent ends: a signal it handles, SIGKILL, the out-of-memory killer, a crash.
Bzzz asks for SIGTERM, so that the child stops as it does on `kill`: a node says goodbye
to its peers, a worker pool stops its worker processes, a lab stops all of its own.

Who asks:

- each worker process of `bzzz worker`, for its supervisor, always (workers/pool.py): a
  worker process outliving its supervisor is never wanted;
- `bzzz worker`, `bzzz lab run` (and `bzzz lab forge|model serve`) and the compose peer,
  when started with BZZZ_DIE_WITH_PARENT set. Opt-in: a node or a pool that systemd or an
  operator's shell started must outlive whoever launched it;
- any command run as `python -m bzzz.lifeline COMMAND [ARG...]` with the variable set: the
  launcher asks in its own process, then execs COMMAND, which keeps the request (it
  survives exec). The lab, the tests and the compose peer start every `bzzz node` and
  `bzzz worker` so (`command()` and `child_env()` below).

BZZZ_DIE_WITH_PARENT=PID names the process that starts this one (`child_env` sets its own
pid); `1` means the parent this process has when it reads it. A process reads the
variable once, at start, and removes it from its environment: what it starts in turn does
not inherit it.

The classic race: the parent may die after starting the child and before the child asks.
After asking, the child checks that its parent is still the one named; if not, it ends at
once, as if the signal had come. A variable naming a live process that is not the parent
was inherited through a program that does not read it: it is ignored.

Limits: the signal comes when the *thread* that started the child ends, so start children
from a thread that lives as long as the process (the main thread); a change of user or
group ids, or exec of a set-user-ID program, clears the request. Outside Linux, a thread
watches the parent instead (in the process that asks; the launcher only runs COMMAND).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping, Sequence

ENV = "BZZZ_DIE_WITH_PARENT"
SIGNAL = signal.SIGTERM
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
WATCH_INTERVAL = 0.5  # seconds, where there is no parent-death signal


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) for a child that is to die with this
    process: BZZZ_DIE_WITH_PARENT set to this process's pid."""
    return {**(os.environ if env is None else env), ENV: str(os.getpid())}


def command(argv: Sequence[str]) -> list[str]:
    """`argv` run under the launcher, which honours BZZZ_DIE_WITH_PARENT, then execs it."""
    return [sys.executable, "-m", "bzzz.lifeline", *argv]


def arm_from_env(environ: MutableMapping[str, str] | None = None) -> bool:
    """Die with the parent if BZZZ_DIE_WITH_PARENT asks (and remove the variable); whether
    this process now will."""
    environ = os.environ if environ is None else environ
    value = environ.pop(ENV, "").strip()
    if value in ("", "0"):
        return False
    parent = os.getppid()
    if value.isdigit() and int(value) > 1:
        named = int(value)
        if named != parent and not _gone(named):
            return False  # inherited through a program that did not read it: not ours
        parent = named
    return die_with(parent)


def die_with(parent: int, sig: int = SIGNAL) -> bool:
    """Have this process get `sig` when its parent, pid `parent`, exits. If the parent is
    not `parent` any more (it exited before this was asked), `sig` comes now."""
    if not _set_parent_death_signal(sig):
        threading.Thread(target=_watch, args=(parent, sig), name="lifeline", daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True


def armed() -> int:
    """The parent-death signal this process has asked for (0: none, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    value = ctypes.c_int(0)
    if _libc().prctl(PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_PDEATHSIG) failed")
    return value.value


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    args = (ctypes.c_ulong(int(sig)), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    if _libc().prctl(PR_SET_PDEATHSIG, *args) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return True


def _watch(parent: int, sig: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL)  # a watcher's poll, where the kernel offers no signal
    os.kill(os.getpid(), sig)


def _gone(pid: int) -> bool:
    """Whether process `pid` has exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except FileNotFoundError:
        return True
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return state in (b"Z", b"X")


def main(argv: Sequence[str]) -> int:
    """`python -m bzzz.lifeline COMMAND [ARG...]`: honour BZZZ_DIE_WITH_PARENT, then become
    COMMAND (same process, same pid)."""
    if not argv:
        print("usage: python -m bzzz.lifeline COMMAND [ARG...]", file=sys.stderr)
        return 2
    arm_from_env()
    try:
        os.execvp(argv[0], list(argv))  # noqa: S606 - a command line, no shell
    except OSError as exc:
        print(f"bzzz.lifeline: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
