"""Where the list of repositories to watch comes from.

Today a static list in the config; the Hive API's list of active repositories can
plug in later as another RepositorySource.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class RepositorySource(Protocol):
    def repositories(self) -> tuple[str, ...]:
        """The repositories (owner/name) to take tasks from now. Called from a job thread."""
        ...


class StaticRepositories:
    def __init__(self, repositories: Iterable[str]) -> None:
        self._repositories = tuple(dict.fromkeys(repositories))

    def repositories(self) -> tuple[str, ...]:
        return self._repositories
