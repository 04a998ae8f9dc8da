"""Where the list of repositories to watch comes from.

A static list in the config (`StaticRepositories`), or that list together with the
repositories Hive has enabled for Bzzz (`HiveRepositories`), refreshed as Hive is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from bzzz.hive.api import is_repo_name


class RepositorySource(Protocol):
    def repositories(self) -> tuple[str, ...]:
        """The repositories (owner/name) to take tasks from now. Called from a job thread."""
        ...


class StaticRepositories:
    def __init__(self, repositories: Iterable[str]) -> None:
        self._repositories = tuple(dict.fromkeys(repositories))

    def repositories(self) -> tuple[str, ...]:
        return self._repositories


@dataclass(frozen=True)
class _Listing:
    """One consistent view: the repositories and Hive's project ids (by casefolded name)."""

    repositories: tuple[str, ...]
    project_ids: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class HiveRepositories:
    """The static repositories first, then those Hive enables, in name order.

    Hive's part is sorted, so that the order does not move with the order Hive happens
    to list them in. GitHub's names are case-insensitive: a repository Hive lists in
    another case than the config is the config's. `update` and the readers run on
    different threads; each update builds a new `_Listing` and swaps it in with one
    assignment, so a reader sees one listing or the next, never a mix of them.
    """

    def __init__(self, static: Iterable[str]) -> None:
        self._static = StaticRepositories(static).repositories()
        self._listing = _Listing(self._static)

    def update(self, enabled: Mapping[str, int]) -> None:
        """Hive's latest "owner/repository" → project_id (`api.enabled_repositories`)."""
        taken = {repo.casefold() for repo in self._static}
        project_ids: dict[str, int] = {}
        extra: list[str] = []
        for repo in sorted(enabled, key=lambda name: (name.casefold(), name)):
            key = repo.casefold()
            if not is_repo_name(repo) or key in project_ids:
                continue
            project_ids[key] = enabled[repo]
            if key not in taken:
                extra.append(repo)
        self._listing = _Listing(self._static + tuple(extra), MappingProxyType(project_ids))

    def repositories(self) -> tuple[str, ...]:
        return self._listing.repositories

    def project_id(self, repo: str) -> int | None:
        """Hive's project for `repo`, for reports; None when Hive does not list it."""
        return self._listing.project_ids.get(repo.casefold())
