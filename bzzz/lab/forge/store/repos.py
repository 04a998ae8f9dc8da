"""Repositories, their collaborators and their labels."""

from __future__ import annotations

import sqlite3

from bzzz.lab.forge.store.records import Label, Repo, User, now

REPO_SELECT = """
SELECT repos.*, users.id AS u_id, users.login AS u_login, users.name AS u_name,
       users.email AS u_email, users.created_at AS u_created_at, users.updated_at AS u_updated_at
FROM repos JOIN users ON users.id = repos.owner_id
"""


def _repo(row: sqlite3.Row) -> Repo:
    owner = User(
        row["u_id"],
        row["u_login"],
        row["u_name"],
        row["u_email"],
        row["u_created_at"],
        row["u_updated_at"],
    )
    return Repo(
        row["id"],
        owner,
        row["name"],
        row["description"],
        row["default_branch"],
        row["parent_id"],
        row["source_id"],
        row["created_at"],
        row["updated_at"],
        row["pushed_at"],
    )


def create(
    db: sqlite3.Connection,
    owner: User,
    name: str,
    *,
    description: str,
    default_branch: str,
    parent: Repo | None = None,
) -> Repo:
    stamp = now()
    source_id = None if parent is None else parent.network_id
    cursor = db.execute(
        "INSERT INTO repos (owner_id, name, description, default_branch, parent_id, source_id,"
        " created_at, updated_at, pushed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            owner.id,
            name,
            description,
            default_branch,
            None if parent is None else parent.id,
            source_id,
            stamp,
            stamp,
            stamp,
        ),
    )
    return by_id(db, int(cursor.lastrowid or 0))


def by_name(db: sqlite3.Connection, owner: str, name: str) -> Repo | None:
    row = db.execute(
        REPO_SELECT + " WHERE users.login = ? AND repos.name = ?", (owner, name)
    ).fetchone()
    return None if row is None else _repo(row)


def by_id(db: sqlite3.Connection, repo_id: int) -> Repo:
    row = db.execute(REPO_SELECT + " WHERE repos.id = ?", (repo_id,)).fetchone()
    if row is None:
        raise LookupError(f"no repository with id {repo_id}")
    return _repo(row)


def owned_by(db: sqlite3.Connection, owner_id: int) -> list[Repo]:
    rows = db.execute(REPO_SELECT + " WHERE repos.owner_id = ? ORDER BY repos.id", (owner_id,))
    return [_repo(row) for row in rows]


def forks_of(db: sqlite3.Connection, repo_id: int) -> list[Repo]:
    rows = db.execute(REPO_SELECT + " WHERE repos.parent_id = ? ORDER BY repos.id", (repo_id,))
    return [_repo(row) for row in rows]


def fork_in_network(db: sqlite3.Connection, owner_id: int, network_id: int) -> Repo | None:
    """`owner`'s repository in the fork network rooted at `network_id`, if any."""
    row = db.execute(
        REPO_SELECT + " WHERE repos.owner_id = ? AND (repos.source_id = ? OR repos.id = ?)"
        " ORDER BY repos.id LIMIT 1",
        (owner_id, network_id, network_id),
    ).fetchone()
    return None if row is None else _repo(row)


def touch_pushed(db: sqlite3.Connection, repo_id: int) -> None:
    stamp = now()
    db.execute(
        "UPDATE repos SET pushed_at = ?, updated_at = ? WHERE id = ?", (stamp, stamp, repo_id)
    )


def add_collaborator(db: sqlite3.Connection, repo_id: int, user_id: int, permission: str) -> None:
    db.execute(
        "INSERT OR REPLACE INTO collaborators (repo_id, user_id, permission) VALUES (?, ?, ?)",
        (repo_id, user_id, permission),
    )


def collaborator_permission(db: sqlite3.Connection, repo_id: int, user_id: int) -> str | None:
    row = db.execute(
        "SELECT permission FROM collaborators WHERE repo_id = ? AND user_id = ?",
        (repo_id, user_id),
    ).fetchone()
    return None if row is None else str(row["permission"])


def labels(db: sqlite3.Connection, repo_id: int) -> list[Label]:
    rows = db.execute("SELECT * FROM labels WHERE repo_id = ? ORDER BY name, id", (repo_id,))
    return [Label.from_row(row) for row in rows]


def label(db: sqlite3.Connection, repo_id: int, name: str) -> Label | None:
    row = db.execute(
        "SELECT * FROM labels WHERE repo_id = ? AND name = ?", (repo_id, name)
    ).fetchone()
    return None if row is None else Label.from_row(row)


def create_label(
    db: sqlite3.Connection, repo_id: int, name: str, color: str = "ededed", description: str = ""
) -> Label:
    cursor = db.execute(
        "INSERT INTO labels (repo_id, name, color, description) VALUES (?, ?, ?, ?)",
        (repo_id, name, color, description),
    )
    return Label(int(cursor.lastrowid or 0), repo_id, name, color, description)


def label_or_create(db: sqlite3.Connection, repo_id: int, name: str) -> Label:
    return label(db, repo_id, name) or create_label(db, repo_id, name)
