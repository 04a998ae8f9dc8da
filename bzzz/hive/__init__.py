"""Hive: the original project's backend, a source of repositories and a place to report to.

`api` is the contract as plain data and pure functions (the active-repos listing, the
claim and status bodies, HiveError); `client` speaks it over HTTP. Hive is advisory: a
node works without it, so every failure is a HiveError that says whether trying again
later can help. The lab's stand-in server is `bzzz.lab.hive`; see docs/hive.md.
"""

from bzzz.hive.api import (
    STATUSES,
    HiveError,
    HiveRepo,
    claim_body,
    enabled_repositories,
    is_repo_name,
    parse_active_repos,
    status_body,
)
from bzzz.hive.client import HiveClient

__all__ = [
    "STATUSES",
    "HiveClient",
    "HiveError",
    "HiveRepo",
    "claim_body",
    "enabled_repositories",
    "is_repo_name",
    "parse_active_repos",
    "status_body",
]
