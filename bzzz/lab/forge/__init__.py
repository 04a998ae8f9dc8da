"""Bzzz's local GitHub-compatible forge: the REST API subset Bzzz and PyGithub use, and git
smart HTTP, served from a directory by the standard library's HTTP server.

GitHub cannot be reached from the lab, and no installable server speaks GitHub's API where
a task agent depends on it (labels filtered as ALL, 422 for a duplicate pull request,
pull requests in the issue list). Tests and `bzzz lab run` drive unmodified PyGithub and
pygit2 against this one, with rate limits and faults that can be switched on.

    with LocalForge(root=path, admin_token="...") as forge:
        made = forge.seed({"users": [...], "repos": [...]})
        gh = github.Github(base_url=forge.api_url, auth=github.Auth.Token(token))
"""

from bzzz.lab.forge.faults import Fault, FaultError
from bzzz.lab.forge.forge import LocalForge
from bzzz.lab.forge.reqlog import LoggedRequest
from bzzz.lab.forge.seed import SeedError

__all__ = ["Fault", "FaultError", "LocalForge", "LoggedRequest", "SeedError"]
