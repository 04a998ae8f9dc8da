"""`Paced`: a model that streams a fixed reply at a fixed rate, for measuring and for
faults (a peer killed mid-stream, a client that goes away).

It yields `tokens` pieces, one every `interval` seconds. `started` and `stopped_early`
count the replies it began and those whose reader went away before the end (closing the
iterator stops it, as a real model stops generating when its client disconnects).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from bzzz.lab.model.chat import ChatRequest
from bzzz.lab.model.generative import Finished, Generative


class Paced(Generative):
    def __init__(self, tokens: int = 50, interval: float = 0.01, word: str = "tok") -> None:
        self.tokens = tokens
        self.interval = interval
        self.word = word
        self._lock = threading.Lock()
        self.started = 0
        self.stopped_early = 0

    def generate(self, request: ChatRequest) -> Iterator[str | Finished]:
        with self._lock:
            self.started += 1
        return self._stream()

    def _stream(self) -> Iterator[str | Finished]:
        began = time.monotonic_ns()
        finished = False
        try:
            for n in range(self.tokens):
                time.sleep(self.interval)
                yield f"{self.word}{n} "
            finished = True
            yield Finished("stop", 1, self.tokens, 0, time.monotonic_ns() - began)
        finally:
            if not finished:
                with self._lock:
                    self.stopped_early += 1
