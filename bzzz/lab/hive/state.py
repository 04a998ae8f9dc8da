"""The stand-in's memory: its projects, and the claims, statuses and requests it received.

Requests are answered on many threads and the tests read from another: everything goes
through one lock, and what leaves it is a copy. The logs keep the latest MAX_LOG entries,
so a long lab run does not grow without bound.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from dataclasses import asdict, dataclass

MAX_LOG = 10_000


@dataclass(frozen=True)
class Project:
    """A Hive project with a git repository, as the active-repos listing shows it."""

    project_id: int
    name: str
    git_url: str
    owner: str
    repository: str
    branch: str
    bzzz_enabled: bool
    ready_to_claim: bool
    private_repo: bool = False
    github_token_required: bool = False


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int | None  # None: dropped without a reply (the stand-in was down)


class HiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[int, Project] = {}
        self._next_id = 1  # like a database's serial: an id is never given twice
        self._claims: deque[dict[str, object]] = deque(maxlen=MAX_LOG)
        self._statuses: deque[dict[str, object]] = deque(maxlen=MAX_LOG)
        self._requests: deque[LoggedRequest] = deque(maxlen=MAX_LOG)

    def add(
        self,
        owner: str,
        repository: str,
        *,
        enabled: bool,
        git_url: str,
        branch: str,
        ready_to_claim: bool,
    ) -> int:
        with self._lock:
            project_id = self._next_id
            self._next_id += 1
            self._projects[project_id] = Project(
                project_id=project_id,
                name=repository,
                git_url=git_url,
                owner=owner,
                repository=repository,
                branch=branch,
                bzzz_enabled=enabled,
                ready_to_claim=ready_to_claim,
            )
        return project_id

    def remove(self, project_id: int) -> bool:
        with self._lock:
            return self._projects.pop(project_id, None) is not None

    def known(self, project_id: int) -> bool:
        with self._lock:
            return project_id in self._projects

    def active_repos(self) -> list[dict[str, object]]:
        """The listing's entries: the real Hive lists only projects with bzzz_enabled."""
        with self._lock:
            projects = list(self._projects.values())
        return [asdict(project) for project in projects if project.bzzz_enabled]

    def record_claim(self, project_id: int, body: dict[str, object]) -> None:
        with self._lock:
            self._claims.append({**copy.deepcopy(body), "project_id": project_id})

    def record_status(self, project_id: int, body: dict[str, object]) -> None:
        with self._lock:
            self._statuses.append({**copy.deepcopy(body), "project_id": project_id})

    def record_request(self, method: str, path: str, status: int | None) -> None:
        with self._lock:
            self._requests.append(LoggedRequest(method, path, status))

    def claims(self) -> list[dict[str, object]]:
        with self._lock:
            return copy.deepcopy(list(self._claims))

    def statuses(self) -> list[dict[str, object]]:
        with self._lock:
            return copy.deepcopy(list(self._statuses))

    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)
