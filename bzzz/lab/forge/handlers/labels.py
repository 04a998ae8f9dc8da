"""Labels of a repository and of its issues. Naming an unknown label on an issue creates it."""

from __future__ import annotations

from typing import Any

from bzzz.lab.forge import views
from bzzz.lab.forge.access import find_repo, require_push
from bzzz.lab.forge.handlers.issues import find_issue
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
from bzzz.lab.forge.store import issues, repos

COLOR_DIGITS = set("0123456789abcdefABCDEF")


def of_repo(svc: Services, request: Request) -> Reply:
    page = page_of(request)
    with svc.store.read() as db:
        repo = find_repo(db, request)
        found = repos.labels(db, repo.id)
        chunk = found[page.offset : page.offset + page.size]
        items = [views.label(request.urls, repo, lab) for lab in chunk]
    return paged(request, page, len(found), items)


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        repo = find_repo(db, request)
        lab = repos.label(db, repo.id, request.params["name"])
        if lab is None:
            raise not_found()
        return Reply(200, views.label(request.urls, repo, lab))


def create(svc: Services, request: Request) -> Reply:
    fields = request.fields()
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid("Label", "name", "missing_field")
    color = str(fields.get("color") or "ededed").removeprefix("#")
    if len(color) != 6 or not set(color) <= COLOR_DIGITS:
        raise invalid("Label", "color", value=color)
    description = fields.get("description") or ""
    with svc.store.write() as db:
        repo = find_repo(db, request)
        require_push(db, repo, request)
        if repos.label(db, repo.id, name.strip()) is not None:
            raise invalid("Label", "name", "already_exists", value=name)
        lab = repos.create_label(db, repo.id, name.strip(), color.lower(), str(description))
        return Reply(201, views.label(request.urls, repo, lab))


def of_issue(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        repo, issue = find_issue(db, request)
        items = [views.label(request.urls, repo, lab) for lab in issues.labels(db, issue.id)]
    return Reply(200, items)


def add(svc: Services, request: Request) -> Reply:
    """POST adds, PUT replaces; the body is a bare array of names or `{"labels": [...]}`."""
    names = _label_names(request.json())
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        require_push(db, repo, request)
        if request.method == "PUT":
            issues.clear_labels(db, issue.id)
        for name in names:
            issues.add_label(db, issue.id, repos.label_or_create(db, repo.id, name).id)
        issues.touch(db, issue.id)
        items = [views.label(request.urls, repo, lab) for lab in issues.labels(db, issue.id)]
    return Reply(200, items)


def remove(svc: Services, request: Request) -> Reply:
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        require_push(db, repo, request)
        lab = repos.label(db, repo.id, request.params["name"])
        if lab is None or not issues.remove_label(db, issue.id, lab.id):
            raise ApiError(404, "Label does not exist")
        issues.touch(db, issue.id)
        items = [views.label(request.urls, repo, lab) for lab in issues.labels(db, issue.id)]
    return Reply(200, items)


def remove_all(svc: Services, request: Request) -> Reply:
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        require_push(db, repo, request)
        issues.clear_labels(db, issue.id)
        issues.touch(db, issue.id)
    return Reply(204)


def _label_names(data: Any) -> list[str]:
    if isinstance(data, dict):
        data = data.get("labels")
    if not isinstance(data, list):
        raise invalid("Label", "labels", value=data)
    names = []
    for item in data:
        text = item.get("name") if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise invalid("Label", "labels", value=item)
        names.append(text.strip())
    return names


ROUTES = [
    route("GET", "/repos/{owner}/{repo}/labels", of_repo),
    route("POST", "/repos/{owner}/{repo}/labels", create),
    route("GET", "/repos/{owner}/{repo}/labels/{name*}", one),
    route("GET", "/repos/{owner}/{repo}/issues/{number}/labels", of_issue),
    route("POST", "/repos/{owner}/{repo}/issues/{number}/labels", add),
    route("PUT", "/repos/{owner}/{repo}/issues/{number}/labels", add),
    route("DELETE", "/repos/{owner}/{repo}/issues/{number}/labels", remove_all),
    route("DELETE", "/repos/{owner}/{repo}/issues/{number}/labels/{name*}", remove),
]
