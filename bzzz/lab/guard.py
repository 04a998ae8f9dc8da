"""The lab's guard: what cleans up after a lab that was killed outright (SIGKILL, the
out-of-memory killer, a crash) and so could not clean up itself.

`bzzz lab run` starts the guard first, as `python -m bzzz.lab.guard [--remove DIR]` in a
session of its own, and holds the write end of a pipe to its stdin. On that pipe the lab
names each process group it starts (`group PGID`), and says `done` once it has stopped
them all and removed its temporary homes itself. The guard needs no signal: when the lab
ends, however it ends, the kernel closes the lab's end of the pipe and the guard reads
EOF. Without `done`, the guard waits for the groups to end (their leaders have the
parent-death signal, see bzzz/lifeline.py), kills what is left of them after GRACE
seconds, and then removes DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

GRACE = 15.0  # seconds the lab's processes get to stop on their parent-death signal
KILLED_WITHIN = 5.0  # seconds for SIGKILLed processes to be gone
POLL = 0.1


class Guard:
    """The lab's side of the guard: start it, name the process groups, say done."""

    def __init__(self, remove: Path | None = None) -> None:
        command = [sys.executable, "-m", "bzzz.lab.guard"]
        if remove is not None:
            command += ["--remove", str(remove)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C and hangup are the lab's to handle
        )

    def watch(self, pgid: int) -> None:
        """Have the guard stop process group `pgid` if the lab dies."""
        self._say(f"group {pgid}")

    def release(self, timeout: float = 5.0) -> None:
        """The lab has cleaned up itself: let the guard go."""
        self._say("done")
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _say(self, line: str) -> None:
        if self.process.stdin is None or self.process.stdin.closed:
            return
        with contextlib.suppress(OSError):  # a guard that died cannot be told
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()


def alive_in(groups: Iterable[int]) -> list[psutil.Process]:
    """The processes of these process groups that have not exited (zombies have)."""
    wanted = set(groups)
    found: list[psutil.Process] = []
    if not wanted:
        return found
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) in wanted and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def wait_gone(groups: Iterable[int], timeout: float) -> bool:
    """Wait until no process of `groups` is left; whether none is."""
    groups = set(groups)
    deadline = time.monotonic() + timeout
    while alive_in(groups):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)  # polling the process table: there is nothing to wait on
    return True


def clean_up(groups: set[int], remove: Path | None, grace: float = GRACE) -> None:
    """Stop what is left of the lab's process groups, then remove its directory."""
    if not wait_gone(groups, grace):
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        wait_gone(groups, KILLED_WITHIN)
    if remove is not None:
        shutil.rmtree(remove, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bzzz.lab.guard", description=__doc__)
    parser.add_argument("--remove", type=Path, help="directory to remove after the lab")
    parser.add_argument("--grace", type=float, default=GRACE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # only the lab's end tells the guard to act
    groups: set[int] = set()
    done = False
    for line in sys.stdin.buffer:  # until the lab's end of the pipe closes
        word, _, value = line.decode(errors="replace").strip().partition(" ")
        if word == "group" and value.isdigit():
            groups.add(int(value))
        elif word == "done":
            done = True
    if not done:
        clean_up(groups, args.remove, args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
