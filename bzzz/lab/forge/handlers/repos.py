"""Repositories: reading and forking them; their branches, read from the git repositories."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bzzz.lab.forge import views
from bzzz.lab.forge.access import find_repo
from bzzz.lab.forge.rest import (
    ApiError,
    Reply,
    Request,
    Services,
    invalid,
    not_found,
    page_of,
    paged,
)
from bzzz.lab.forge.router import route
from bzzz.lab.forge.store import repos, users
from bzzz.lab.forge.store.records import Repo, User


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        return Reply(200, views.repo(db, request.urls, find_repo(db, request), request.caller))


def owned(svc: Services, request: Request) -> Reply:
    page = page_of(request)
    with svc.store.read() as db:
        owner = request.user() if "login" not in request.params else None
        if owner is None:
            owner = users.by_login(db, request.params["login"])
            if owner is None:
                raise not_found()
        found = repos.owned_by(db, owner.id)
        chunk = found[page.offset : page.offset + page.size]
        items = [views.repo(db, request.urls, r, request.caller) for r in chunk]
    return paged(request, page, len(found), items)


def forks(svc: Services, request: Request) -> Reply:
    page = page_of(request)
    with svc.store.read() as db:
        found = repos.forks_of(db, find_repo(db, request).id)
        chunk = found[page.offset : page.offset + page.size]
        items = [views.repo(db, request.urls, r, request.caller) for r in chunk]
    return paged(request, page, len(found), items)


def create_fork(svc: Services, request: Request) -> Reply:
    """202 with the caller's fork; asking again answers the same fork (GitHub does too).

    The fork's git repository is a bare clone of the parent with all its branches, made
    before the reply, so it can be cloned as soon as the client has the answer.
    """
    caller = request.user()
    fields = request.fields()
    if fields.get("organization"):
        raise invalid("Fork", "organization", "invalid", value=fields["organization"])
    wanted = fields.get("name")
    if wanted is not None and (not isinstance(wanted, str) or not wanted.strip()):
        raise invalid("Fork", "name")
    with svc.fork_lock:
        with svc.store.read() as db:
            parent = find_repo(db, request)
            existing = repos.fork_in_network(db, caller.id, parent.network_id)
            if existing is None:
                name = _free_name(db, caller, wanted or parent.name)
        if existing is not None:
            with svc.store.read() as db:
                return Reply(202, views.repo(db, request.urls, existing, caller))
        target = svc.repos.path(caller.login, name)
        svc.repos.fork(svc.repos.path(parent.owner.login, parent.name), target)
        try:
            with svc.store.write() as db:
                fork = repos.create(
                    db,
                    caller,
                    name,
                    description=parent.description,
                    default_branch=parent.default_branch,
                    parent=parent,
                )
        except BaseException:
            svc.repos.remove(target)
            raise
    with svc.store.read() as db:
        return Reply(202, views.repo(db, request.urls, fork, caller))


def _free_name(db: sqlite3.Connection, owner: User, name: str) -> str:
    """`name`, or `name-1`, `name-2`... if the owner has a repository of that name already."""
    candidate, n = name, 0
    while repos.by_name(db, owner.login, candidate) is not None:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def branches(svc: Services, request: Request) -> Reply:
    page = page_of(request)
    with svc.store.read() as db:
        r = find_repo(db, request)
    found = svc.repos.branches(_path(svc, r))
    chunk = found[page.offset : page.offset + page.size]
    items = [views.branch(request.urls, r, name, sha) for name, sha in chunk]
    return paged(request, page, len(found), items)


def branch(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        r = find_repo(db, request)
    name = request.params["branch"]
    sha = svc.repos.branch_sha(_path(svc, r), name)
    if sha is None:
        raise ApiError(404, "Branch not found")
    return Reply(200, views.branch(request.urls, r, name, sha))


def git_ref(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        r = find_repo(db, request)
    ref = request.params["ref"]
    if not ref.startswith("heads/"):
        raise not_found()
    sha = svc.repos.branch_sha(_path(svc, r), ref.removeprefix("heads/"))
    if sha is None:
        raise not_found()
    return Reply(200, views.git_ref(request.urls, r, f"refs/{ref}", sha))


def _path(svc: Services, r: Repo) -> Path:
    return svc.repos.path(r.owner.login, r.name)


ROUTES = [
    route("GET", "/repos/{owner}/{repo}", one),
    route("GET", "/user/repos", owned),
    route("GET", "/users/{login}/repos", owned),
    route("GET", "/repos/{owner}/{repo}/forks", forks),
    route("POST", "/repos/{owner}/{repo}/forks", create_fork),
    route("GET", "/repos/{owner}/{repo}/branches", branches),
    route("GET", "/repos/{owner}/{repo}/branches/{branch*}", branch),
    route("GET", "/repos/{owner}/{repo}/git/ref/{ref*}", git_ref),
    route("GET", "/repos/{owner}/{repo}/git/refs/{ref*}", git_ref),
]
