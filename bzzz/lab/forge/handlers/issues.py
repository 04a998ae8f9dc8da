"""Issues: listing (pull requests included, as on GitHub), reading, creating, editing, assigning.

Labels and assignees from a caller without push access are dropped without an error, as
GitHub does: an agent must read the issue back to learn whether its claim took.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from bzzz.lab.forge import views
from bzzz.lab.forge.access import access, find_repo, require_push
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
from bzzz.lab.forge.store import issues, repos, users
from bzzz.lab.forge.store.records import Issue, Repo, User, stored

STATES = ("open", "closed", "all")


def listing(svc: Services, request: Request) -> Reply:
    query = request.query
    state = _choice(query, "state", STATES, "open")
    sort = _choice(query, "sort", tuple(issues.SORT_COLUMNS), "created")
    direction = _choice(query, "direction", ("asc", "desc"), "desc")
    names = tuple(n.strip() for n in query.get("labels", "").split(",") if n.strip())
    since = parse_time(query["since"], "since") if "since" in query else None
    page = page_of(request)
    with svc.store.read() as db:
        repo = find_repo(db, request)
        if query.get("milestone", "none") not in ("", "none"):
            return paged(request, page, 0, [])  # the forge has no milestones
        search = issues.IssueQuery(
            state=state,
            labels=names,
            creator_id=_user_id(db, query.get("creator")),
            assignee=_assignee(db, query.get("assignee")),
            since=since,
            sort=sort,
            direction=direction,
        )
        total, found = issues.search(db, repo.id, search, page.size, page.offset)
        items = [views.issue(db, request.urls, repo, i) for i in found]
    return paged(request, page, total, items)


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        repo, issue = find_issue(db, request)
        return Reply(200, views.issue(db, request.urls, repo, issue))


def create(svc: Services, request: Request) -> Reply:
    caller = request.user()
    fields = request.fields()
    title = fields.get("title")
    if not isinstance(title, str) or not title.strip():
        raise invalid("Issue", "title", "missing_field")
    body = _text(fields, "body") or ""
    with svc.store.write() as db:
        repo = find_repo(db, request)
        push = access(db, repo, caller).push
        issue = issues.create(db, repo.id, caller.id, title, body)
        if push:
            logins = _assignee_logins(fields)
            _check_assignable(db, repo, logins)
            _set_labels(db, repo, issue, _names(fields, "labels"))
            _set_assignees(db, repo, issue, logins)
        return Reply(201, views.issue(db, request.urls, repo, issues.by_id(db, issue.id)))


def edit(svc: Services, request: Request) -> Reply:
    """PATCH: each list given replaces the current set (last writer wins, as on GitHub)."""
    caller = request.user()
    fields = request.fields()
    state = fields.get("state")
    if state is not None and state not in ("open", "closed"):
        raise invalid("Issue", "state", value=state)
    reason = fields.get("state_reason")
    if reason is not None and reason not in ("completed", "not_planned", "reopened"):
        raise invalid("Issue", "state_reason", value=reason)
    title = _text(fields, "title")
    if title is not None and not title.strip():
        raise invalid("Issue", "title", "missing_field")
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        push = access(db, repo, caller).push
        if not push and issue.user_id != caller.id:
            raise ApiError(403, "Must have push access to edit this issue.")
        issue = issues.update(
            db, issue, title=title, body=_text(fields, "body"), state=state, state_reason=reason
        )
        if push and "labels" in fields:
            issues.clear_labels(db, issue.id)
            _set_labels(db, repo, issue, _names(fields, "labels"))
        if push and ("assignees" in fields or "assignee" in fields):
            logins = _assignee_logins(fields)
            _check_assignable(db, repo, logins)
            issues.clear_assignees(db, issue.id)
            _set_assignees(db, repo, issue, logins)
        return Reply(200, views.issue(db, request.urls, repo, issues.by_id(db, issue.id)))


def add_assignees(svc: Services, request: Request) -> Reply:
    """201 with the issue; without push access, or for users who cannot be assigned, nothing
    changes and no error says so (GitHub's rule)."""
    caller = request.user()
    logins = _names(request.fields(), "assignees")
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        if access(db, repo, caller).push:
            _set_assignees(db, repo, issue, logins)
        return Reply(201, views.issue(db, request.urls, repo, issues.by_id(db, issue.id)))


def remove_assignees(svc: Services, request: Request) -> Reply:
    caller = request.user()
    logins = _names(request.fields(), "assignees")
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        if access(db, repo, caller).push:
            for login in logins:
                user = users.by_login(db, login)
                if user is not None:
                    issues.remove_assignee(db, issue.id, user.id)
            issues.touch(db, issue.id)
        return Reply(200, views.issue(db, request.urls, repo, issues.by_id(db, issue.id)))


def lock(svc: Services, request: Request) -> Reply:
    reason = request.fields().get("lock_reason")
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        require_push(db, repo, request)
        issues.set_lock(db, issue.id, True, reason if isinstance(reason, str) else None)
    return Reply(204)


def unlock(svc: Services, request: Request) -> Reply:
    with svc.store.write() as db:
        repo, issue = find_issue(db, request)
        require_push(db, repo, request)
        issues.set_lock(db, issue.id, False, None)
    return Reply(204)


def find_issue(db: sqlite3.Connection, request: Request) -> tuple[Repo, Issue]:
    repo = find_repo(db, request)
    issue = issues.by_number(db, repo.id, request.number())
    if issue is None:
        raise not_found()
    return repo, issue


def parse_time(text: str, field_name: str) -> str:
    """An ISO 8601 time as the store writes it, for comparing as text."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid("Issue", field_name, value=text) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return stored(moment)


def _choice(query: Any, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = str(query.get(name, default))
    if value not in allowed:
        raise invalid("Issue", name, value=value)
    return value


def _user_id(db: sqlite3.Connection, login: str | None) -> int | None:
    if login is None:
        return None
    user = users.by_login(db, login)
    return -1 if user is None else user.id  # an unknown user matches nothing


def _assignee(db: sqlite3.Connection, value: str | None) -> int | str | None:
    if value in (None, "none", "*"):
        return value
    return _user_id(db, value)


def _text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid("Issue", name, value=value)
    return value


def _names(fields: Any, name: str) -> list[str]:
    """A list of names from `fields[name]`; label objects (`{"name": ...}`) are accepted."""
    value = fields.get(name) if isinstance(fields, dict) else fields
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid("Issue", name, value=value)
    names = []
    for item in value:
        text = item["name"] if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise invalid("Issue", name, value=item)
        names.append(text.strip())
    return names


def _assignee_logins(fields: dict[str, Any]) -> list[str]:
    logins = _names(fields, "assignees")
    single = fields.get("assignee")
    if isinstance(single, str) and single and single not in logins:
        logins.append(single)
    return logins


def assignable(db: sqlite3.Connection, repo: Repo, login: str) -> User | None:
    """The user if they may be assigned here: the owner or a collaborator."""
    user = users.by_login(db, login)
    if user is None or not access(db, repo, user).push:
        return None
    return user


def _check_assignable(db: sqlite3.Connection, repo: Repo, logins: list[str]) -> None:
    for login in logins:
        if assignable(db, repo, login) is None:
            raise invalid("Issue", "assignees", value=login)


def _set_assignees(db: sqlite3.Connection, repo: Repo, issue: Issue, logins: list[str]) -> None:
    for login in logins:
        user = assignable(db, repo, login)
        if user is not None:
            issues.add_assignee(db, issue.id, user.id)
    if logins:
        issues.touch(db, issue.id)


def _set_labels(db: sqlite3.Connection, repo: Repo, issue: Issue, names: list[str]) -> None:
    for name in names:
        issues.add_label(db, issue.id, repos.label_or_create(db, repo.id, name).id)
    if names:
        issues.touch(db, issue.id)


ROUTES = [
    route("GET", "/repos/{owner}/{repo}/issues", listing),
    route("POST", "/repos/{owner}/{repo}/issues", create),
    route("GET", "/repos/{owner}/{repo}/issues/{number}", one),
    route("PATCH", "/repos/{owner}/{repo}/issues/{number}", edit),
    route("POST", "/repos/{owner}/{repo}/issues/{number}/assignees", add_assignees),
    route("DELETE", "/repos/{owner}/{repo}/issues/{number}/assignees", remove_assignees),
    route("PUT", "/repos/{owner}/{repo}/issues/{number}/lock", lock),
    route("DELETE", "/repos/{owner}/{repo}/issues/{number}/lock", unlock),
]
