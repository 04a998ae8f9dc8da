"""Pull requests, checked against the real git repositories as GitHub checks them.

Opening one fails with GitHub's 422 shapes when the base or head branch is unknown, when
an open pull request from that head into that base exists already, and when the head
has no commits the base lacks.
"""

from __future__ import annotations

import sqlite3

from bzzz.lab.forge import views
from bzzz.lab.forge.access import access, find_repo
from bzzz.lab.forge.handlers.issues import find_issue
from bzzz.lab.forge.rest import (
    ApiError,
    Reply,
    Request,
    Services,
    custom_invalid,
    invalid,
    not_found,
    page_of,
    paged,
)
from bzzz.lab.forge.router import route
from bzzz.lab.forge.store import issues, pulls, repos, users
from bzzz.lab.forge.store.records import Issue, Repo


def create(svc: Services, request: Request) -> Reply:
    caller = request.user()
    fields = request.fields()
    base, head = fields.get("base"), fields.get("head")
    if not isinstance(base, str) or not base:
        raise invalid("PullRequest", "base", "missing_field")
    if not isinstance(head, str) or not head:
        raise invalid("PullRequest", "head", "missing_field")
    title = fields.get("title")
    if not isinstance(title, str) or not title.strip():
        raise invalid("PullRequest", "title", "missing_field")
    body = fields.get("body") or ""
    draft = bool(fields.get("draft", False))
    with svc.store.read() as db:
        base_repo = find_repo(db, request)
        head_repo, head_ref = _resolve_head(db, base_repo, head, fields.get("head_repo"))
    base_path = svc.repos.path(base_repo.owner.login, base_repo.name)
    if svc.repos.branch_sha(base_path, base) is None:
        raise invalid("PullRequest", "base")
    comparison = svc.repos.compare(
        base_path, base, svc.repos.path(head_repo.owner.login, head_repo.name), head_ref
    )
    if comparison is None:
        raise invalid("PullRequest", "head")
    with svc.store.write() as db:
        if pulls.open_for(db, base_repo.id, base, head_repo.id, head_ref) is not None:
            raise custom_invalid(
                "PullRequest",
                f"A pull request already exists for {head_repo.owner.login}:{head_ref}.",
            )
        if comparison.ahead == 0:
            raise custom_invalid("PullRequest", f"No commits between {base} and {head}")
        issue = issues.create(db, base_repo.id, caller.id, title, str(body), is_pull=True)
        pulls.create(
            db,
            issue,
            head_repo_id=head_repo.id,
            head_ref=head_ref,
            head_sha=comparison.head_sha,
            base_ref=base,
            base_sha=comparison.base_sha,
            draft=draft,
        )
    svc.repos.set_ref(base_path, f"refs/pull/{issue.number}/head", comparison.head_sha)
    with svc.store.read() as db:
        return Reply(201, views.pull(db, request.urls, svc.repos, base_repo, issue, caller=caller))


def listing(svc: Services, request: Request) -> Reply:
    query = request.query
    state = query.get("state", "open")
    if state not in ("open", "closed", "all"):
        raise invalid("PullRequest", "state", value=state)
    sort = query.get("sort", "created")
    if sort not in pulls.SORT_COLUMNS:
        raise invalid("PullRequest", "sort", value=sort)
    direction = query.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise invalid("PullRequest", "direction", value=direction)
    page = page_of(request)
    with svc.store.read() as db:
        repo = find_repo(db, request)
        head_owner_id, head_ref = None, None
        if query.get("head"):
            owner, _, head_ref = query["head"].rpartition(":")
            user = users.by_login(db, owner or repo.owner.login)
            head_owner_id = -1 if user is None else user.id
        search = pulls.PullQuery(
            state=state,
            head_owner_id=head_owner_id,
            head_ref=head_ref,
            base_ref=query.get("base") or None,
            sort=sort,
            direction=direction,
        )
        total, found = pulls.search(db, repo.id, search, page.size, page.offset)
        items = [
            views.pull(db, request.urls, svc.repos, repo, i, caller=request.caller) for i in found
        ]
    return paged(request, page, total, items)


def one(svc: Services, request: Request) -> Reply:
    with svc.store.read() as db:
        repo, issue = _find_pull(db, request)
        return Reply(
            200, views.pull(db, request.urls, svc.repos, repo, issue, caller=request.caller)
        )


def edit(svc: Services, request: Request) -> Reply:
    caller = request.user()
    fields = request.fields()
    state = fields.get("state")
    if state is not None and state not in ("open", "closed"):
        raise invalid("PullRequest", "state", value=state)
    title, body = fields.get("title"), fields.get("body")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        raise invalid("PullRequest", "title", "missing_field")
    if body is not None and not isinstance(body, str):
        raise invalid("PullRequest", "body", value=body)
    with svc.store.write() as db:
        repo, issue = _find_pull(db, request)
        if issue.user_id != caller.id and not access(db, repo, caller).push:
            raise ApiError(403, "Must have push access to edit this pull request.")
        if state == "open" and issue.state == "closed":
            pull = views.pull_of(db, issue)
            other = pulls.open_for(db, repo.id, pull.base_ref, pull.head_repo_id, pull.head_ref)
            if other is not None:
                head_repo = repos.by_id(db, pull.head_repo_id)
                raise custom_invalid(
                    "PullRequest",
                    f"A pull request already exists for {head_repo.owner.login}:{pull.head_ref}.",
                )
        issue = issues.update(db, issue, title=title, body=body, state=state)
    with svc.store.read() as db:
        return Reply(200, views.pull(db, request.urls, svc.repos, repo, issue, caller=caller))


def _find_pull(db: sqlite3.Connection, request: Request) -> tuple[Repo, Issue]:
    repo, issue = find_issue(db, request)
    if not issue.is_pull:
        raise not_found()
    return repo, issue


def _resolve_head(
    db: sqlite3.Connection, base: Repo, head: str, head_repo_name: object
) -> tuple[Repo, str]:
    """The repository and branch of `head` (`user:branch` or `branch`), in `base`'s network."""
    owner, _, ref = head.rpartition(":")
    owner = owner or base.owner.login
    if not ref:
        raise invalid("PullRequest", "head")
    user = users.by_login(db, owner)
    if user is None:
        raise invalid("PullRequest", "head")
    if isinstance(head_repo_name, str) and head_repo_name:
        found = repos.by_name(db, user.login, head_repo_name.rpartition("/")[2])
    elif user.id == base.owner.id:
        found = base
    else:
        found = repos.fork_in_network(db, user.id, base.network_id)
    if found is None or found.network_id != base.network_id:
        raise invalid("PullRequest", "head")
    return found, ref


ROUTES = [
    route("GET", "/repos/{owner}/{repo}/pulls", listing),
    route("POST", "/repos/{owner}/{repo}/pulls", create),
    route("GET", "/repos/{owner}/{repo}/pulls/{number}", one),
    route("PATCH", "/repos/{owner}/{repo}/pulls/{number}", edit),
]
