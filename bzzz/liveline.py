"""Progress for the commands people wait on (`bzzz sandbox build-image`, `bzzz systemd
install`): on a terminal, the step under way is redrawn every half second with the time
it has taken, and each finished step stays with its time; on a pipe or in a log, each
step is printed once, as said, and its time when it ends."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

FRAMES = "|/-\\"
REDRAW = 0.5  # seconds


class LiveLine:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stdout
        self._interactive = self._stream.isatty() if interactive is None else interactive
        self._clock = clock
        self._step = ""
        self._since = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def say(self, text: str) -> None:
        """A new step: the one under way is done."""
        with self._lock:
            self._finish()
            self._step, self._since = text, self._clock()
            if self._interactive:
                self._draw(0)
            else:
                self._write(f"{text}\n")
        if self._interactive and self._thread is None:
            self._thread = threading.Thread(target=self._redraw, name="live line", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * REDRAW)
        with self._lock:
            self._finish()

    def __enter__(self) -> LiveLine:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _finish(self) -> None:
        if not self._step:
            return
        took = self._clock() - self._since
        if self._interactive:
            done = f": done in {took:.0f} s" if took >= 1 else ""
            self._write(f"\r\x1b[K{self._step}{done}\n")
        elif took >= 1:
            self._write(f"  (done in {took:.0f} s)\n")
        self._step = ""

    def _redraw(self) -> None:
        frame = 0
        while not self._stop.wait(REDRAW):
            frame += 1
            with self._lock:
                if self._step:
                    self._draw(frame)

    def _draw(self, frame: int) -> None:
        took = self._clock() - self._since
        spinner = FRAMES[frame % len(FRAMES)]
        self._write(f"\r\x1b[K{spinner} {self._step} ({took:.0f} s)")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except OSError:  # the terminal went away: the command goes on
            pass
