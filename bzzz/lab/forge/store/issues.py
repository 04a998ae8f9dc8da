"""Issues (pull requests included), their labels and assignees."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bzzz.lab.forge.store.records import Issue, Label, User, now

SORT_COLUMNS = {
    "created": "issues.created_at",
    "updated": "issues.updated_at",
    "comments": "(SELECT COUNT(*) FROM comments WHERE comments.issue_id = issues.id)",
}


@dataclass(frozen=True)
class IssueQuery:
    """The filters of `GET /repos/{o}/{r}/issues`. `assignee` is a user id, "none" or "*"."""

    state: str = "open"
    labels: tuple[str, ...] = ()
    creator_id: int | None = None
    assignee: int | str | None = None
    since: str | None = None
    sort: str = "created"
    direction: str = "desc"


def create(
    db: sqlite3.Connection,
    repo_id: int,
    user_id: int,
    title: str,
    body: str,
    *,
    number: int | None = None,
    state: str = "open",
    is_pull: bool = False,
) -> Issue:
    """A new issue; its number is the repository's next unless one is given (seeding)."""
    if number is None:
        number = next_number(db, repo_id)
    stamp = now()
    closed_at = stamp if state == "closed" else None
    cursor = db.execute(
        "INSERT INTO issues (repo_id, number, title, body, state, user_id, is_pull, created_at,"
        " updated_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (repo_id, number, title, body, state, user_id, int(is_pull), stamp, stamp, closed_at),
    )
    return by_id(db, int(cursor.lastrowid or 0))


def next_number(db: sqlite3.Connection, repo_id: int) -> int:
    row = db.execute(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM issues WHERE repo_id = ?", (repo_id,)
    ).fetchone()
    return int(row[0])


def by_number(db: sqlite3.Connection, repo_id: int, number: int) -> Issue | None:
    row = db.execute(
        "SELECT * FROM issues WHERE repo_id = ? AND number = ?", (repo_id, number)
    ).fetchone()
    return None if row is None else Issue.from_row(row)


def by_id(db: sqlite3.Connection, issue_id: int) -> Issue:
    row = db.execute("SELECT * FROM issues WHERE id = ?", (issue_id,)).fetchone()
    if row is None:
        raise LookupError(f"no issue with id {issue_id}")
    return Issue.from_row(row)


def update(
    db: sqlite3.Connection,
    issue: Issue,
    *,
    title: str | None = None,
    body: str | None = None,
    state: str | None = None,
    state_reason: str | None = None,
) -> Issue:
    stamp = now()
    new_state = state or issue.state
    if new_state == issue.state:
        closed_at = issue.closed_at
    else:
        closed_at = stamp if new_state == "closed" else None
    if new_state == "open":
        state_reason = "reopened" if issue.state == "closed" else issue.state_reason
    elif state_reason is None:
        state_reason = issue.state_reason if issue.state == "closed" else "completed"
    db.execute(
        "UPDATE issues SET title = ?, body = ?, state = ?, state_reason = ?, closed_at = ?,"
        " updated_at = ? WHERE id = ?",
        (
            issue.title if title is None else title,
            issue.body if body is None else body,
            new_state,
            state_reason,
            closed_at,
            stamp,
            issue.id,
        ),
    )
    return by_id(db, issue.id)


def touch(db: sqlite3.Connection, issue_id: int) -> None:
    db.execute("UPDATE issues SET updated_at = ? WHERE id = ?", (now(), issue_id))


def set_lock(db: sqlite3.Connection, issue_id: int, locked: bool, reason: str | None) -> None:
    db.execute(
        "UPDATE issues SET locked = ?, lock_reason = ?, updated_at = ? WHERE id = ?",
        (int(locked), reason if locked else None, now(), issue_id),
    )


def labels(db: sqlite3.Connection, issue_id: int) -> list[Label]:
    rows = db.execute(
        "SELECT labels.* FROM issue_labels JOIN labels ON labels.id = issue_labels.label_id"
        " WHERE issue_labels.issue_id = ? ORDER BY labels.name, labels.id",
        (issue_id,),
    )
    return [Label.from_row(row) for row in rows]


def add_label(db: sqlite3.Connection, issue_id: int, label_id: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO issue_labels (issue_id, label_id) VALUES (?, ?)",
        (issue_id, label_id),
    )


def remove_label(db: sqlite3.Connection, issue_id: int, label_id: int) -> bool:
    cursor = db.execute(
        "DELETE FROM issue_labels WHERE issue_id = ? AND label_id = ?", (issue_id, label_id)
    )
    return cursor.rowcount > 0


def clear_labels(db: sqlite3.Connection, issue_id: int) -> None:
    db.execute("DELETE FROM issue_labels WHERE issue_id = ?", (issue_id,))


def assignees(db: sqlite3.Connection, issue_id: int) -> list[User]:
    rows = db.execute(
        "SELECT users.* FROM issue_assignees JOIN users ON users.id = issue_assignees.user_id"
        " WHERE issue_assignees.issue_id = ? ORDER BY users.login",
        (issue_id,),
    )
    return [User.from_row(row) for row in rows]


def add_assignee(db: sqlite3.Connection, issue_id: int, user_id: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO issue_assignees (issue_id, user_id) VALUES (?, ?)",
        (issue_id, user_id),
    )


def remove_assignee(db: sqlite3.Connection, issue_id: int, user_id: int) -> None:
    db.execute(
        "DELETE FROM issue_assignees WHERE issue_id = ? AND user_id = ?", (issue_id, user_id)
    )


def clear_assignees(db: sqlite3.Connection, issue_id: int) -> None:
    db.execute("DELETE FROM issue_assignees WHERE issue_id = ?", (issue_id,))


def comment_count(db: sqlite3.Connection, issue_id: int) -> int:
    row = db.execute("SELECT COUNT(*) FROM comments WHERE issue_id = ?", (issue_id,)).fetchone()
    return int(row[0])


def search(
    db: sqlite3.Connection, repo_id: int, query: IssueQuery, limit: int, offset: int
) -> tuple[int, list[Issue]]:
    """One page of the repository's issues matching `query`, and how many match in all."""
    where = ["issues.repo_id = ?"]
    args: list[object] = [repo_id]
    if query.state != "all":
        where.append("issues.state = ?")
        args.append(query.state)
    for name in query.labels:
        where.append(
            "EXISTS (SELECT 1 FROM issue_labels JOIN labels ON labels.id = issue_labels.label_id"
            " WHERE issue_labels.issue_id = issues.id AND labels.name = ?)"
        )
        args.append(name)
    if query.creator_id is not None:
        where.append("issues.user_id = ?")
        args.append(query.creator_id)
    if query.assignee == "none":
        where.append("NOT EXISTS (SELECT 1 FROM issue_assignees WHERE issue_id = issues.id)")
    elif query.assignee == "*":
        where.append("EXISTS (SELECT 1 FROM issue_assignees WHERE issue_id = issues.id)")
    elif isinstance(query.assignee, int):
        where.append(
            "EXISTS (SELECT 1 FROM issue_assignees WHERE issue_id = issues.id AND user_id = ?)"
        )
        args.append(query.assignee)
    if query.since is not None:
        where.append("issues.updated_at >= ?")
        args.append(query.since)
    condition = " AND ".join(where)
    total = int(db.execute(f"SELECT COUNT(*) FROM issues WHERE {condition}", args).fetchone()[0])  # noqa: S608 - only fixed fragments
    order = "ASC" if query.direction == "asc" else "DESC"
    column = SORT_COLUMNS[query.sort]
    rows = db.execute(
        f"SELECT issues.* FROM issues WHERE {condition}"  # noqa: S608 - only fixed fragments
        f" ORDER BY {column} {order}, issues.id {order} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return total, [Issue.from_row(row) for row in rows]
