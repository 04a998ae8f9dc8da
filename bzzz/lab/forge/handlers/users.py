"""`/user`, `/users/{login}` and `/rate_limit`."""

from __future__ import annotations

from bzzz.lab.forge import views
from bzzz.lab.forge.rest import Reply, Request, Services, not_found
from bzzz.lab.forge.router import route
from bzzz.lab.forge.store import users


def me(svc: Services, request: Request) -> Reply:
    caller = request.user()
    with svc.store.read() as db:
        return Reply(200, views.full_user(db, request.urls, caller))


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        found = users.by_login(db, request.params["login"])
        if found is None:
            raise not_found()
        return Reply(200, views.full_user(db, request.urls, found))


def rate_limit(svc: Services, request: Request) -> Reply:
    """The caller's budget; asking does not spend it (the pipeline knows this route)."""
    quota = svc.limiter.peek(request.quota_key, anonymous=request.caller is None).as_json()
    return Reply(
        200,
        {
            "resources": {"core": quota, "search": quota, "graphql": quota},
            "rate": quota,
        },
    )


ROUTES = [
    route("GET", "/user", me),
    route("GET", "/users/{login}", one),
    route("GET", "/rate_limit", rate_limit),
]
