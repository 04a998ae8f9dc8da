"""The lab's stop signals: SIGINT, SIGTERM and SIGHUP end a lab run once, cleanly."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopping(BaseException):
    """A stop signal came (a BaseException, as KeyboardInterrupt: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals() -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP raise Stopping in the main thread, the first one only
    and only until the list yielded has an entry (the lab is stopping): a second signal
    does not cut the cleanup short. A hangup ignored from the start (`nohup`) stays
    ignored. The previous handlers come back after."""
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        first = not received
        received.append(signum)
        if first:
            raise Stopping(signum)

    wanted = [
        signum
        for signum in STOP_SIGNALS
        if signum != signal.SIGHUP or signal.getsignal(signum) != signal.SIG_IGN
    ]
    previous = {signum: signal.signal(signum, on_signal) for signum in wanted}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
