"""Task intake, pure: which issues are tasks, who polls which repository, when to poll.

No I/O and no clock reads: times are passed in (`now` monotonic seconds, `wall` epoch
seconds for the forge's rate-limit reset times).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bzzz.config import TaskSettings
from bzzz.forge.api import ErrorKind, ForgeError, Issue, IssuePage
from bzzz.protocol import TaskBroadcast, TaskParams
from bzzz.rendezvous import ordered

MAX_INPUT_CHARS = 32_000  # keeps a broadcast well under the 64 KiB message limit
MODEL_LABEL = "model:"
AGENT_LABEL = "agent:"  # the agent CLI to run the task (none: the reasoning loop)

QUOTA_RESERVE = 10  # requests left for writes when a poller stops polling until the reset
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: without Retry-After, wait at least a minute
MAX_BACKOFF = 900.0
BROKEN_WAIT = 600.0  # bad token, no such repository, no access: look again in 10 minutes


def task_id(repo: str, number: int) -> str:
    return f"{repo}#{number}"


def is_task(issue: Issue, settings: TaskSettings) -> bool:
    """Open, labelled, not a pull request, not locked, by a trusted author.

    Issue text is untrusted input: who opened the issue decides, not what it says.
    """
    return why_not_a_task(issue, settings) is None


def why_not_a_task(issue: Issue, settings: TaskSettings) -> str | None:
    """Why an issue is not a task (None: it is one), in words for the operator."""
    reasons = (
        (issue.state != "open", "closed"),
        (settings.label not in issue.labels, f"no {settings.label} label"),
        (
            settings.hold_label in issue.labels,
            f"waiting for a person: remove the {settings.hold_label} label to release it",
        ),
        (issue.is_pull_request, "a pull request"),
        (issue.locked, "locked"),
    )
    if reason := next((why for applies, why in reasons if applies), None):
        return reason
    trusted = (
        issue.author_association in settings.trusted_associations
        or issue.author in settings.trusted_authors
    )
    if not trusted:
        return (
            f"opened by {issue.author or 'an unknown author'} ({issue.author_association}), who"
            " is not trusted: see tasks.trusted_associations and tasks.trusted_authors"
        )
    return None


def requested_model(issue: Issue, default: str) -> str:
    for label in issue.labels:
        if label.startswith(MODEL_LABEL) and label[len(MODEL_LABEL) :].strip():
            return label[len(MODEL_LABEL) :].strip()
    return default


def requested_agent(issue: Issue) -> str | None:
    for label in issue.labels:
        if label.startswith(AGENT_LABEL) and label[len(AGENT_LABEL) :].strip():
            return label[len(AGENT_LABEL) :].strip().lower()
    return None


def to_broadcast(issue: Issue, settings: TaskSettings, timestamp: datetime) -> TaskBroadcast:
    text = issue.title if not issue.body else f"{issue.title}\n\n{issue.body}"
    return TaskBroadcast(
        task_id=task_id(issue.repo, issue.number),
        repo=issue.repo,
        issue_url=issue.html_url,
        model=requested_model(issue, settings.default_model),
        input=text[:MAX_INPUT_CHARS],
        params=TaskParams(
            branch_prefix=settings.branch_prefix.replace("{number}", str(issue.number))
        ),
        comments=issue.comments,
        agent=requested_agent(issue),
        timestamp=timestamp,
    )


def poller_for(repo: str, candidates: Iterable[str]) -> str | None:
    """The peer that polls `repo`: rendezvous (highest random weight) hashing.

    Every peer computes the same answer from the same set of candidates, and when the
    chosen peer leaves only its repositories move to other peers.
    """
    order = ordered(repo, dict.fromkeys(candidates, 1.0))
    return order[0] if order else None


def assign_pollers(
    own_peer: str, own_repos: Iterable[str], peer_repos: Mapping[str, Iterable[str]]
) -> dict[str, str]:
    """Who polls each repository: for every repository that this node or a live peer
    offers to poll (`peer_repos`: live peer ID -> its offered repositories), the poller
    among those that offer it."""
    offers: dict[str, list[str]] = {repo: [own_peer] for repo in own_repos}
    for peer_id, repos in peer_repos.items():
        for repo in repos:
            offers.setdefault(repo, []).append(peer_id)
    return {repo: poller_for(repo, peers) or "" for repo, peers in offers.items()}


@dataclass
class RepoPoll:
    """When one repository may be polled next, and the conditional-request state."""

    repo: str
    etag: str | None = None
    next_at: float = 0.0
    failures: int = 0
    error: str | None = None  # the current problem, to log once rather than every poll
    polls: int = 0
    not_modified: int = 0
    rate_remaining: int | None = None  # the forge's rate limit left, after the last poll

    def due(self, now: float, slack: float = 0.0) -> bool:
        """Whether to poll now; `slack` lets a ticking scheduler poll on time, not a tick late."""
        return now >= self.next_at - slack

    def succeeded(self, page: IssuePage, now: float, wall: float, interval: float) -> None:
        self.polls += page.requests
        self.failures = 0
        self.error = None
        if page.issues is None:
            self.not_modified += 1
        else:
            self.etag = page.etag
        wait = interval
        rate = page.rate
        self.rate_remaining = rate.remaining
        if (
            rate.remaining is not None
            and rate.remaining <= QUOTA_RESERVE
            and rate.reset_at is not None
        ):
            wait = max(wait, rate.reset_at - wall)  # keep the last requests for writes
        self.next_at = now + wait

    def failed(self, error: ForgeError, now: float, wall: float, interval: float) -> float:
        """Record a failed poll; returns how long polling this repository now waits."""
        self.polls += 1
        self.failures += 1
        self.error = str(error)
        backoff = min(MAX_BACKOFF, interval * 2 ** min(self.failures - 1, 10))
        if error.kind is ErrorKind.RATE_LIMITED:
            if error.retry_after is not None:
                wait = error.retry_after
            elif error.reset_at is not None:
                wait = error.reset_at - wall
            else:
                wait = SECONDARY_LIMIT_WAIT * 2 ** min(self.failures - 1, 4)
            wait = max(wait, 1.0)
        elif error.kind is ErrorKind.UNAVAILABLE:
            wait = backoff
        else:  # auth, forbidden, not found, invalid: nothing changes soon
            wait = BROKEN_WAIT
        self.next_at = now + wait
        return wait
