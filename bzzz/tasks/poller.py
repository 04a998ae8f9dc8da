"""Polling the forge for tasks, in two halves.

`Poller` is trio-owned: it knows which repositories this node polls, when each is
due, its ETag and back-off, and whether the forge accepts our token. Each tick it
makes a `PollPlan`; `fetch` carries the plan out in a scheduler thread (the only part
that blocks) and returns `PollResults`, which `Poller.absorb` turns back into state
and the tasks found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bzzz.config import TaskSettings
from bzzz.forge.api import ErrorKind, Forge, ForgeError, IssuePage
from bzzz.protocol import TaskBroadcast, utc_now
from bzzz.tasks.intake import BROKEN_WAIT, RepoPoll, task_id, to_broadcast, why_not_a_task
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
    rate_remaining: int | None = None


@dataclass(frozen=True)
class Found:
    """A task found by a poll; `comments` > 0 means it may carry claims already."""

    task: TaskBroadcast
    comments: int


@dataclass(frozen=True)
class Ignored:
    """A listed issue that is not a task, and why."""

    task_id: str
    title: str
    reason: str


@dataclass(frozen=True)
class PollRequest:
    repo: str
    etag: str | None


@dataclass(frozen=True)
class PollPlan:
    requests: tuple[PollRequest, ...]
    recheck_token: bool  # ask the forge whether it accepts our token again


@dataclass(frozen=True)
class Polled:
    repo: str
    page: IssuePage | None  # None: the poll failed
    error: ForgeError | None = None


@dataclass(frozen=True)
class PollResults:
    polled: tuple[Polled, ...]
    login: str | None = None  # the token's login, when it was rechecked and accepted
    token_error: ForgeError | None = None  # why the recheck failed


def fetch(forge: Forge, label: str, plan: PollPlan) -> PollResults:
    """Carry out a plan against the forge (blocking: runs in a scheduler thread)."""
    login = token_error = None
    if plan.recheck_token:
        try:
            login = forge.login()
        except ForgeError as error:
            token_error = error
    polled = []
    for request in plan.requests:
        try:
            page = forge.list_open_issues(request.repo, label, request.etag)
            polled.append(Polled(request.repo, page))
        except ForgeError as error:
            polled.append(Polled(request.repo, None, error))
    return PollResults(tuple(polled), login, token_error)


class Poller:
    def __init__(
        self,
        *,
        settings: TaskSettings,
        source: RepositorySource,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._source = source
        self._clock = clock
        self._wall = wall
        self._polls: dict[str, RepoPoll] = {}
        # Per repository, the issues of its latest listing that are not tasks.
        self._ignored: dict[str, dict[str, Ignored]] = {}
        self.assigned: frozenset[str] = frozenset()  # the repositories this node polls
        self.credentials_ok = True  # False after the forge refused our token
        self._recheck_at = 0.0

    def repositories(self) -> tuple[str, ...]:
        """The repositories this node offers to poll (none while its token is refused)."""
        return self._source.repositories() if self.credentials_ok else ()

    def plan(self) -> PollPlan | None:
        now = self._clock()
        recheck = not self.credentials_ok and now >= self._recheck_at
        if recheck:
            self._recheck_at = now + BROKEN_WAIT
        requests = []
        for repo in self._source.repositories():
            poll = self._polls.setdefault(repo, RepoPoll(repo))
            if repo in self.assigned and poll.due(now, slack=TICK_SLACK):
                requests.append(PollRequest(repo, poll.etag))
        if not (requests or recheck):
            return None
        return PollPlan(tuple(requests), recheck)

    def absorb(self, results: PollResults) -> list[Found]:
        """Take in what a plan brought back; returns the tasks found."""
        if results.login is not None:
            log.info("the forge accepts our token again (as %s)", results.login)
            self.credentials_ok = True
        elif results.token_error is not None:
            log.debug("forge token still refused: %s", results.token_error)
        tasks: list[Found] = []
        for polled in results.polled:
            poll = self._polls.setdefault(polled.repo, RepoPoll(polled.repo))
            if polled.page is None:
                if polled.error is not None:
                    self._failed(poll, polled.error)
                continue
            if poll.error is not None:
                log.info("polling %s works again", poll.repo)
            self.credentials_ok = True
            poll.succeeded(polled.page, self._clock(), self._wall(), self._settings.poll_interval)
            if polled.page.issues is None:
                continue  # unchanged (304)
            ignored: dict[str, Ignored] = {}
            for issue in polled.page.issues:
                reason = why_not_a_task(issue, self._settings)
                if reason is None:
                    tasks.append(
                        Found(to_broadcast(issue, self._settings, utc_now()), issue.comments)
                    )
                else:
                    ignored[task_id(issue.repo, issue.number)] = Ignored(
                        task_id(issue.repo, issue.number), issue.title[:200], reason
                    )
            self._note_ignored(polled.repo, ignored)
        return tasks

    def _note_ignored(self, repo: str, ignored: dict[str, Ignored]) -> None:
        """Keep the latest listing's ignored issues; log each once (and again if its
        reason changes)."""
        before = self._ignored.get(repo, {})
        for key, entry in ignored.items():
            if before.get(key) != entry:
                log.info("%s is not a task: %s", key, entry.reason)
        self._ignored[repo] = ignored

    def ignored(self) -> list[Ignored]:
        return [entry for repo in sorted(self._ignored) for entry in self._ignored[repo].values()]

    def _failed(self, poll: RepoPoll, error: ForgeError) -> None:
        known = poll.error
        wait = poll.failed(error, self._clock(), self._wall(), self._settings.poll_interval)
        if poll.error != known:
            log.warning("polling %s failed: %s (next try in %.0f s)", poll.repo, error, wait)
        if error.kind is ErrorKind.AUTH:
            self.credentials_ok = False  # peers take over our repositories
            self._recheck_at = self._clock() + BROKEN_WAIT

    def views(self) -> list[PollView]:
        now = self._clock()
        return [
            PollView(
                p.repo,
                p.polls,
                p.not_modified,
                max(0.0, p.next_at - now),
                p.error,
                p.rate_remaining,
            )
            for p in self._polls.values()
        ]
