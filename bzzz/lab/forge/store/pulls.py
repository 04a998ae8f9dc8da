"""Pull requests: the head and base of an issue that is a pull request."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bzzz.lab.forge.store.records import Issue, Pull

SORT_COLUMNS = {
    "created": "issues.created_at",
    "updated": "issues.updated_at",
    "popularity": "(SELECT COUNT(*) FROM comments WHERE comments.issue_id = issues.id)",
    "long-running": "issues.created_at",
}


@dataclass(frozen=True)
class PullQuery:
    state: str = "open"
    head_owner_id: int | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    sort: str = "created"
    direction: str = "desc"


def create(
    db: sqlite3.Connection,
    issue: Issue,
    *,
    head_repo_id: int,
    head_ref: str,
    head_sha: str,
    base_ref: str,
    base_sha: str,
    draft: bool,
) -> Pull:
    db.execute(
        "INSERT INTO pulls (issue_id, head_repo_id, head_ref, head_sha, base_ref, base_sha, draft)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (issue.id, head_repo_id, head_ref, head_sha, base_ref, base_sha, int(draft)),
    )
    return Pull(issue.id, head_repo_id, head_ref, head_sha, base_ref, base_sha, draft)


def of_issue(db: sqlite3.Connection, issue_id: int) -> Pull | None:
    row = db.execute("SELECT * FROM pulls WHERE issue_id = ?", (issue_id,)).fetchone()
    return None if row is None else Pull.from_row(row)


def open_for(
    db: sqlite3.Connection, base_repo_id: int, base_ref: str, head_repo_id: int, head_ref: str
) -> Issue | None:
    """The open pull request from this head into this base, if there is one."""
    row = db.execute(
        "SELECT issues.* FROM pulls JOIN issues ON issues.id = pulls.issue_id"
        " WHERE issues.repo_id = ? AND issues.state = 'open' AND pulls.base_ref = ?"
        " AND pulls.head_repo_id = ? AND pulls.head_ref = ?",
        (base_repo_id, base_ref, head_repo_id, head_ref),
    ).fetchone()
    return None if row is None else Issue.from_row(row)


def record_head(db: sqlite3.Connection, issue_id: int, head_sha: str) -> None:
    db.execute("UPDATE pulls SET head_sha = ? WHERE issue_id = ?", (head_sha, issue_id))


def search(
    db: sqlite3.Connection, repo_id: int, query: PullQuery, limit: int, offset: int
) -> tuple[int, list[Issue]]:
    where = ["issues.repo_id = ?"]
    args: list[object] = [repo_id]
    if query.state != "all":
        where.append("issues.state = ?")
        args.append(query.state)
    if query.head_owner_id is not None:
        where.append("pulls.head_repo_id IN (SELECT id FROM repos WHERE owner_id = ?)")
        args.append(query.head_owner_id)
    if query.head_ref is not None:
        where.append("pulls.head_ref = ?")
        args.append(query.head_ref)
    if query.base_ref is not None:
        where.append("pulls.base_ref = ?")
        args.append(query.base_ref)
    condition = " AND ".join(where)
    joined = "FROM pulls JOIN issues ON issues.id = pulls.issue_id"
    total = int(db.execute(f"SELECT COUNT(*) {joined} WHERE {condition}", args).fetchone()[0])
    order = "ASC" if query.direction == "asc" else "DESC"
    if query.sort == "long-running":
        order = "ASC" if order == "DESC" else "DESC"
    column = SORT_COLUMNS[query.sort]
    rows = db.execute(
        f"SELECT issues.* {joined} WHERE {condition}"
        f" ORDER BY {column} {order}, issues.id {order} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return total, [Issue.from_row(row) for row in rows]
