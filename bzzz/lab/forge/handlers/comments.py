"""Issue comments. Ids only grow, so a reader can resume after the last one it saw."""

from __future__ import annotations

import sqlite3

from bzzz.lab.forge import views
from bzzz.lab.forge.access import access, find_repo
from bzzz.lab.forge.handlers.issues import find_issue, parse_time
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
from bzzz.lab.forge.store import comments, issues
from bzzz.lab.forge.store.records import Comment, Repo


def of_issue(svc: Services, request: Request) -> Reply:
    since = parse_time(request.query["since"], "since") if "since" in request.query else None
    page = page_of(request)
    with svc.store.read() as db:
        repo, issue = find_issue(db, request)
        total, found = comments.of_issue(db, issue.id, since, page.size, page.offset)
        items = [views.comment(db, request.urls, repo, c) for c in found]
    return paged(request, page, total, items)


def create(svc: Services, request: Request) -> Reply:
    caller = request.user()
    body = _body(request)
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        if issue.locked and not access(db, repo, caller).push:
            raise ApiError(403, "Unable to create comment because issue is locked.")
        comment = comments.create(db, issue.id, caller.id, body)
        issues.touch(db, issue.id)
        return Reply(201, views.comment(db, request.urls, repo, comment))


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        repo, comment = _find(db, request)
        return Reply(200, views.comment(db, request.urls, repo, comment))


def edit(svc: Services, request: Request) -> Reply:
    body = _body(request)
    with svc.store.write() as db:
        repo, comment = _find_own(db, request)
        comment = comments.update(db, comment, body)
        return Reply(200, views.comment(db, request.urls, repo, comment))


def delete(svc: Services, request: Request) -> Reply:
    with svc.store.write() as db:
        _repo, comment = _find_own(db, request)
        comments.delete(db, comment.id)
    return Reply(204)


def _body(request: Request) -> str:
    body = request.fields().get("body")
    if not isinstance(body, str) or not body.strip():
        raise invalid("IssueComment", "body", "missing_field")
    return body


def _find(db: sqlite3.Connection, request: Request) -> tuple[Repo, Comment]:
    repo = find_repo(db, request)
    comment = comments.by_id(db, request.number("id"))
    if comment is None or issues.by_id(db, comment.issue_id).repo_id != repo.id:
        raise not_found()
    return repo, comment


def _find_own(db: sqlite3.Connection, request: Request) -> tuple[Repo, Comment]:
    """The comment, if the caller wrote it or has push access."""
    caller = request.user()
    repo, comment = _find(db, request)
    if comment.user_id != caller.id and not access(db, repo, caller).push:
        raise ApiError(403, "Must have push access to change another user's comment.")
    return repo, comment


ROUTES = [
    route("GET", "/repos/{owner}/{repo}/issues/{number}/comments", of_issue),
    route("POST", "/repos/{owner}/{repo}/issues/{number}/comments", create),
    route("GET", "/repos/{owner}/{repo}/issues/comments/{id}", one),
    route("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", edit),
    route("DELETE", "/repos/{owner}/{repo}/issues/comments/{id}", delete),
]
