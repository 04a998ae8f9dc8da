"""Polling the forge for tasks: the blocking side of intake, run in a scheduler thread.

Each tick polls the repositories this node is the poller of (see intake.poller_for)
when they are due, conditionally, and hands every task found to `announce`, which
runs on the trio side and announces only tasks it does not know yet.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bzzz.config import TaskSettings
from bzzz.forge.api import ErrorKind, Forge, ForgeError
from bzzz.protocol import TaskBroadcast, utc_now
from bzzz.tasks.intake import BROKEN_WAIT, RepoPoll, is_task, to_broadcast
from bzzz.tasks.sources import RepositorySource

log = logging.getLogger(__name__)

TICK_SLACK = 0.5  # half the poll job's 1 s tick


@dataclass(frozen=True)
class PollView:
    repo: str
    polls: int
    not_modified: int
    next_in_s: float
    error: str | None


class Poller:
    def __init__(
        self,
        forge: Forge,
        *,
        settings: TaskSettings,
        source: RepositorySource,
        announce: Callable[[TaskBroadcast], None],
        assigned: Callable[[], frozenset[str]],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._forge = forge
        self._settings = settings
        self._source = source
        self._announce = announce
        self._assigned = assigned
        self._clock = clock
        self._wall = wall
        self._polls: dict[str, RepoPoll] = {}
        self.credentials_ok = True  # False after the forge refused our token
        self._recheck_at = 0.0

    def repositories(self) -> tuple[str, ...]:
        """The repositories this node offers to poll (none while its token is refused)."""
        return self._source.repositories() if self.credentials_ok else ()

    def tick(self) -> None:
        if not self.credentials_ok:
            self._recheck_credentials()
        mine = self._assigned()
        for repo in self._source.repositories():
            poll = self._polls.setdefault(repo, RepoPoll(repo))
            if repo in mine and poll.due(self._clock(), slack=TICK_SLACK):
                self._poll(poll)

    def _recheck_credentials(self) -> None:
        if self._clock() < self._recheck_at:
            return
        self._recheck_at = self._clock() + BROKEN_WAIT
        try:
            login = self._forge.login()
        except ForgeError as error:
            log.debug("forge token still refused: %s", error)
            return
        log.info("the forge accepts our token again (as %s)", login)
        self.credentials_ok = True

    def _poll(self, poll: RepoPoll) -> None:
        repo, settings = poll.repo, self._settings
        try:
            page = self._forge.list_open_issues(repo, settings.label, poll.etag)
        except ForgeError as error:
            known = poll.error
            wait = poll.failed(error, self._clock(), self._wall(), settings.poll_interval)
            if poll.error != known:
                log.warning("polling %s failed: %s (next try in %.0f s)", repo, error, wait)
            if error.kind is ErrorKind.AUTH:
                self.credentials_ok = False  # peers take over our repositories
                self._recheck_at = self._clock() + BROKEN_WAIT
            return
        if poll.error is not None:
            log.info("polling %s works again", repo)
        self.credentials_ok = True
        poll.succeeded(page, self._clock(), self._wall(), settings.poll_interval)
        for issue in page.issues or ():
            if is_task(issue, settings):
                self._announce(to_broadcast(issue, settings, utc_now()))

    def views(self) -> list[PollView]:
        now = self._clock()
        return [
            PollView(p.repo, p.polls, p.not_modified, max(0.0, p.next_at - now), p.error)
            for p in list(self._polls.values())
        ]
