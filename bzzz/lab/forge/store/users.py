"""Users and their tokens."""

from __future__ import annotations

import hashlib
import sqlite3

from bzzz.lab.forge.store.records import User, now


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(db: sqlite3.Connection, login: str, name: str, email: str) -> User:
    stamp = now()
    cursor = db.execute(
        "INSERT INTO users (login, name, email, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (login, name, email, stamp, stamp),
    )
    return User(int(cursor.lastrowid or 0), login, name, email, stamp, stamp)


def add_token(db: sqlite3.Connection, user_id: int, token: str) -> None:
    db.execute(
        "INSERT INTO tokens (digest, user_id, created_at) VALUES (?, ?, ?)",
        (token_digest(token), user_id, now()),
    )


def by_token(db: sqlite3.Connection, token: str) -> User | None:
    row = db.execute(
        "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE digest = ?",
        (token_digest(token),),
    ).fetchone()
    return None if row is None else User.from_row(row)


def by_login(db: sqlite3.Connection, login: str) -> User | None:
    row = db.execute("SELECT * FROM users WHERE login = ?", (login,)).fetchone()
    return None if row is None else User.from_row(row)


def by_id(db: sqlite3.Connection, user_id: int) -> User:
    row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise LookupError(f"no user with id {user_id}")
    return User.from_row(row)


def by_ids(db: sqlite3.Connection, user_ids: list[int]) -> list[User]:
    return [by_id(db, user_id) for user_id in user_ids]
