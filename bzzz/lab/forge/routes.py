"""The REST API's route table, from the handler modules."""

from __future__ import annotations

from bzzz.lab.forge.handlers import comments, issues, labels, pulls, repos, users
from bzzz.lab.forge.router import Router


def api_router() -> Router:
    return Router(
        [
            *users.ROUTES,
            *repos.ROUTES,
            *issues.ROUTES,
            *labels.ROUTES,
            *comments.ROUTES,
            *pulls.ROUTES,
        ]
    )
