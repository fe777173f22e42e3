"""The access file's schema: numbered migrations, applied in order by
bot/access/users.py (`PRAGMA user_version` = how many have run)."""

from __future__ import annotations

import sqlite3

# Append only: a migration, once released, is never edited (a file may have run it).
# Index + 1 = the user_version the file has once the script has run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        created TEXT NOT NULL               -- ISO 8601 UTC
    );
    CREATE TABLE memberships (
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        grp TEXT NOT NULL,
        PRIMARY KEY (user, grp)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_grp ON memberships(grp, user);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,                -- the public part of the token
        user TEXT NOT NULL UNIQUE REFERENCES users(name) ON DELETE CASCADE,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,                 -- scrypt(secret, salt); the token is never stored
        created TEXT NOT NULL
    );
    CREATE TABLE grants (
        grp TEXT NOT NULL,
        collection TEXT NOT NULL,
        path TEXT NOT NULL DEFAULT '',      -- a glob; '' = the whole collection
        write INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (grp, collection, path)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE passwords (
        user TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,                 -- scrypt(NFKC(password) as UTF-8, salt)
        created TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """A script cut into statements (executescript() would commit the open transaction)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out
