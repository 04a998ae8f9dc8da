"""Delivering the outbox: a trio loop that, every few seconds or when poked, hands the
due reports to their targets' deliverers in a thread, and records how each try went.
Trio owns the loop and the snapshot the status shows; the thread owns the outbox while
it delivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import trio

from bzzz.reports.outbox import Outbox, Problem, Report

log = logging.getLogger(__name__)

TICK = 5.0  # seconds between looks at the outbox when nothing pokes it


@dataclass(frozen=True)
class Tried:
    """How one delivery went: `ok`, or why not and whether it is `lasting` (a
    misconfiguration: retried only after the longest wait)."""

    ok: bool
    error: str = ""
    lasting: bool = False


Deliver = Callable[[Report], Tried]


@dataclass(frozen=True)
class Snapshot:
    waiting: int = 0
    delivered: int = 0  # since the node started
    problems: tuple[Problem, ...] = ()


class Sender:
    def __init__(self, outbox: Outbox, deliverers: Mapping[str, Deliver]) -> None:
        self.outbox = outbox
        self._deliverers = dict(deliverers)
        self._wake = trio.Event()
        self._delivered = 0
        self.snapshot = Snapshot()

    def poke(self) -> None:
        """Look at the outbox now (a report was added)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = trio.Event()
            try:
                self.snapshot = await trio.to_thread.run_sync(self._round)
            except Exception:  # a broken database file: say so, and try again later
                log.exception("the outbox could not be read")
            with trio.move_on_after(TICK):
                await self._wake.wait()

    def _round(self) -> Snapshot:
        failed: set[str] = set()  # targets that failed this round: their later reports wait
        for report in self.outbox.due():
            if report.target in failed:
                continue
            deliver = self._deliverers.get(report.target)
            if deliver is None:
                self.outbox.failed(report.key, f"no {report.target} is configured", lasting=True)
                continue
            try:
                tried = deliver(report)
            except Exception as exc:  # a deliverer's bug must not stop the others
                log.exception("delivering %s failed", report.key)
                tried = Tried(False, f"{type(exc).__name__}")
            if tried.ok:
                self.outbox.delivered(report.key)
                self._delivered += 1
                log.info("delivered %s to %s", report.key, report.target)
            else:
                if not tried.lasting:
                    failed.add(report.target)
                self.outbox.failed(report.key, tried.error, lasting=tried.lasting)
                log.warning(
                    "could not deliver %s to %s%s: %s",
                    report.key,
                    report.target,
                    " (a misconfiguration: tried again later)" if tried.lasting else "",
                    tried.error,
                )
        return Snapshot(self.outbox.waiting(), self._delivered, tuple(self.outbox.problems()))
