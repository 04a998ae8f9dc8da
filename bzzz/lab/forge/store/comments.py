"""Issue comments: append-only ids, editable bodies."""

from __future__ import annotations

import sqlite3

from bzzz.lab.forge.store.records import Comment, now


def create(db: sqlite3.Connection, issue_id: int, user_id: int, body: str) -> Comment:
    stamp = now()
    cursor = db.execute(
        "INSERT INTO comments (issue_id, user_id, body, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (issue_id, user_id, body, stamp, stamp),
    )
    return Comment(int(cursor.lastrowid or 0), issue_id, user_id, body, stamp, stamp)


def by_id(db: sqlite3.Connection, comment_id: int) -> Comment | None:
    row = db.execute("SELECT * FROM comments WHERE id = ?", (comment_id,)).fetchone()
    return None if row is None else Comment.from_row(row)


def of_issue(
    db: sqlite3.Connection, issue_id: int, since: str | None, limit: int, offset: int
) -> tuple[int, list[Comment]]:
    condition = "issue_id = ?" + ("" if since is None else " AND updated_at >= ?")
    args: list[object] = [issue_id] if since is None else [issue_id, since]
    total = int(db.execute(f"SELECT COUNT(*) FROM comments WHERE {condition}", args).fetchone()[0])  # noqa: S608 - fixed fragments
    rows = db.execute(
        f"SELECT * FROM comments WHERE {condition} ORDER BY id LIMIT ? OFFSET ?",  # noqa: S608
        [*args, limit, offset],
    )
    return total, [Comment.from_row(row) for row in rows]


def update(db: sqlite3.Connection, comment: Comment, body: str) -> Comment:
    stamp = now()
    db.execute(
        "UPDATE comments SET body = ?, updated_at = ? WHERE id = ?", (body, stamp, comment.id)
    )
    return Comment(comment.id, comment.issue_id, comment.user_id, body, comment.created_at, stamp)


def delete(db: sqlite3.Connection, comment_id: int) -> None:
    db.execute("DELETE FROM comments WHERE id = ?", (comment_id,))
