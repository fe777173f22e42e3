"""The team server's users, groups, API tokens and grants, kept in `<home>/access.db`.

A user belongs to groups; a grant gives a group read (or read and write) access to a
collection, or to the documents of a collection whose path matches a glob. Each user has
one API token at a time, `dct_<id>_<secret>`: only the id, a random salt and the scrypt
hash of the secret are stored, so a copy of the file does not give anyone a working token.
A user may also have a password (for the chat window's login), kept the same way: a salt
and its scrypt hash.

The file is SQLite, brought up to date on open by numbered migrations (schema.py; `PRAGMA
user_version` = the last one applied; a file from a newer docent is refused). Every call
opens its own connection and every write runs inside `BEGIN IMMEDIATE`, so threads and
processes may share one file. The file is created 0o600 on the first write; until then
nothing is written to disk.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

from bot.access.schema import MIGRATIONS, SCHEMA_VERSION, statements

DB_NAME = "access.db"
ADMIN_GROUP = "admin"

NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_GLOB = 500

TOKEN_PREFIX = "dct_"
_TOKEN = re.compile(r"dct_([0-9a-f]{12})_([A-Za-z0-9_-]{16,128})")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1, "dklen": 32}
MAX_VERIFIED = 4096                 # tokens remembered as verified (then the memo starts over)
_DUMMY_SALT = b"\x00" * 16          # the work done for an unknown or malformed token
_DUMMY_SECRET = b"x" * 43
MIN_PASSWORD = 12
MAX_PASSWORD = 1024                  # longer is refused unhashed: scrypt's work grows with the input


class AccessError(ValueError):
    """One line a user can read: unknown user, bad name, duplicate user, ..."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]   # sorted, unique
    created: str              # ISO 8601 UTC, seconds


@dataclass(frozen=True)
class Grant:
    group: str
    collection: str
    path: str | None          # glob over the document's path; None = the whole collection
    write: bool


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scrypt(secret: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(secret, salt=salt, **_SCRYPT)


def _password_bytes(password: str) -> bytes:
    """NFKC first: the same password typed on another keyboard or system gives the same bytes."""
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise AccessError(f"bad {what} name {value!r}: a {what} name is {NAME_RULE}")
    return value


def _check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    if isinstance(groups, str):         # one group given as a bare string, not its letters
        groups = (groups,)
    return tuple(sorted({_check_name(g, "group") for g in groups}))


def _check_collection(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or "/" in value or "\x00" in value:
        raise AccessError(f"bad collection name {value!r}: a collection name is not empty and has no '/'")
    return value


def _check_glob(value: str | None) -> str:
    """The stored form of a path glob: '' for the whole collection (None)."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > MAX_GLOB:
        shown = value if not isinstance(value, str) or len(value) <= 60 else value[:60] + "..."
        raise AccessError(f"bad path glob {shown!r}: a path glob is 1 to {MAX_GLOB} characters, "
                          "without NUL (leave it out for the whole collection)")
    return value


class AccessStore:
    """Users, groups, tokens and grants in `home / "access.db"`; safe to share between
    threads and processes (a connection per call)."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.path = self.home / DB_NAME
        # Tokens this store has verified: sha256(token) -> the stored (salt, hash) it matched.
        # A server checks the same token on every request, and scrypt costs ~100 ms of CPU
        # each time; the row is still read every time, so a rotated or removed token fails
        # at once (its stored hash changed or is gone).
        self._verified: dict[bytes, tuple[bytes, bytes]] = {}
        self._verified_lock = threading.Lock()

    # -- the file ------------------------------------------------------------------------

    def _unreadable(self, exc: BaseException) -> AccessError:
        return AccessError(f"the access file {self.path} cannot be read: {exc}")

    def _create(self) -> None:
        """The empty file, 0o600 whatever the umask, before SQLite opens it."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            raise AccessError(f"the access file {self.path} cannot be created: {exc.strerror or exc}") from None
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise AccessError(f"the access file {self.path} was made by a newer docent (format {current}; "
                              f"this one reads up to {SCHEMA_VERSION}): upgrade docent to use it")
        while current < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another connection may have migrated while this one waited for the lock.
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current < SCHEMA_VERSION:
                    for statement in statements(MIGRATIONS[current]):
                        conn.execute(statement)
                    current += 1
                    conn.execute(f"PRAGMA user_version = {current}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _connection(self, write: bool) -> Iterator[sqlite3.Connection | None]:
        """A fresh connection to the up-to-date file (None: no file and `write` False);
        `write`: inside BEGIN IMMEDIATE, committed when the block ends without an error.
        SQLite's errors become one AccessError line."""
        if not self.path.exists():
            if not write:
                yield None
                return
            self._create()
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn)
            if not write:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        finally:
            if conn is not None:
                conn.close()

    # -- users -----------------------------------------------------------------------------

    def has_users(self) -> bool:
        with self._connection(write=False) as conn:
            return conn is not None and conn.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1

    @staticmethod
    def _new_token() -> tuple[str, str, bytes, bytes]:
        """(token, id, salt, hash); the scrypt work is done before any lock is taken."""
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        return f"{TOKEN_PREFIX}{token_id}_{secret}", token_id, salt, _scrypt(secret.encode("ascii"), salt)

    def add_user(self, name: str, groups: Sequence[str] = ()) -> str:
        """Add a user; returns its API token (shown once: only its hash is kept)."""
        _check_name(name, "user")
        groups = _check_groups(groups)
        token, token_id, salt, digest = self._new_token()
        with self._connection(write=True) as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccessError(f"user '{name}' exists already (new token: docent users token {name} --rotate)")
            created = _now()
            conn.execute("INSERT INTO users (name, created) VALUES (?, ?)", (name, created))
            conn.executemany("INSERT INTO memberships (user, grp) VALUES (?, ?)", [(name, g) for g in groups])
            conn.execute("INSERT INTO tokens (id, user, salt, hash, created) VALUES (?, ?, ?, ?, ?)",
                         (token_id, name, salt, digest, created))
        return token

    def remove_user(self, name: str) -> None:
        """Remove a user, its token and its group memberships."""
        _check_name(name, "user")
        with self._connection(write=True) as conn:
            if conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise AccessError(f"unknown user '{name}'")

    @staticmethod
    def _load(conn: sqlite3.Connection, name: str) -> User | None:
        row = conn.execute("SELECT name, created FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        groups = [g for (g,) in conn.execute("SELECT grp FROM memberships WHERE user = ?", (name,))]
        return User(row[0], tuple(sorted(set(groups))), row[1])

    def users(self) -> list[User]:
        with self._connection(write=False) as conn:
            if conn is None:
                return []
            groups: dict[str, set[str]] = {}
            for user, grp in conn.execute("SELECT user, grp FROM memberships"):
                groups.setdefault(user, set()).add(grp)
            rows = conn.execute("SELECT name, created FROM users").fetchall()
        return sorted((User(name, tuple(sorted(groups.get(name, ()))), created) for name, created in rows),
                      key=lambda u: u.name)

    def user(self, name: str) -> User | None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            return None
        with self._connection(write=False) as conn:
            return None if conn is None else self._load(conn, name)

    def set_groups(self, name: str, groups: Sequence[str]) -> User:
        """Replace the user's groups."""
        _check_name(name, "user")
        groups = _check_groups(groups)
        with self._connection(write=True) as conn:
            if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccessError(f"unknown user '{name}'")
            conn.execute("DELETE FROM memberships WHERE user = ?", (name,))
            conn.executemany("INSERT INTO memberships (user, grp) VALUES (?, ?)", [(name, g) for g in groups])
            return self._load(conn, name)

    # -- tokens ----------------------------------------------------------------------------

    def rotate_token(self, name: str) -> str:
        """A new token for the user; the old one stops working at once."""
        _check_name(name, "user")
        token, token_id, salt, digest = self._new_token()
        with self._connection(write=True) as conn:
            if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccessError(f"unknown user '{name}'")
            conn.execute("DELETE FROM tokens WHERE user = ?", (name,))
            conn.execute("INSERT INTO tokens (id, user, salt, hash, created) VALUES (?, ?, ?, ?, ?)",
                         (token_id, name, salt, digest, _now()))
        return token

    def authenticate(self, token: str) -> User | None:
        """The token's user; None for an unknown, malformed or rotated token. One scrypt
        is computed either way, so the time does not tell a known id from an unknown one."""
        found = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        row = None
        with self._connection(write=False) as conn:
            if found is not None and conn is not None:
                row = conn.execute("SELECT user, salt, hash FROM tokens WHERE id = ?", (found.group(1),)).fetchone()
            if row is None:
                _scrypt(found.group(2).encode("ascii") if found else _DUMMY_SECRET, _DUMMY_SALT)
                return None
            user, salt, digest = row[0], bytes(row[1]), bytes(row[2])
            key = hashlib.sha256(token.encode("ascii")).digest()
            with self._verified_lock:
                known = self._verified.get(key)
            if known is None or not hmac.compare_digest(known[1], digest) or known[0] != salt:
                if not hmac.compare_digest(_scrypt(found.group(2).encode("ascii"), salt), digest):
                    return None
                with self._verified_lock:
                    if len(self._verified) >= MAX_VERIFIED:
                        self._verified.clear()
                    self._verified[key] = (salt, digest)
            return self._load(conn, user)

    # -- passwords -------------------------------------------------------------------------

    def set_password(self, name: str, password: str | None) -> None:
        """Give the user a password (the window's login), replacing the old one; None
        removes it. At least MIN_PASSWORD characters; stored as a salted scrypt hash."""
        _check_name(name, "user")
        digest = None
        if password is not None:
            if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
                raise AccessError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
            salt = secrets.token_bytes(16)
            digest = _scrypt(_password_bytes(password), salt)     # before the lock, as for tokens
        with self._connection(write=True) as conn:
            if not conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccessError(f"unknown user '{name}'")
            conn.execute("DELETE FROM passwords WHERE user = ?", (name,))
            if digest is not None:
                conn.execute("INSERT INTO passwords (user, salt, hash, created) VALUES (?, ?, ?, ?)",
                             (name, salt, digest, _now()))

    def check_password(self, name: str, password: str) -> User | None:
        """The user, when `password` is theirs; None otherwise. One scrypt either way (an
        unknown user, one without a password, a malformed name), as in authenticate."""
        usable = isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD
        secret = _password_bytes(password) if usable else _DUMMY_SECRET
        row = None
        with self._connection(write=False) as conn:
            if usable and conn is not None and isinstance(name, str) and _NAME.fullmatch(name):
                row = conn.execute("SELECT salt, hash FROM passwords WHERE user = ?", (name,)).fetchone()
            if row is None:
                _scrypt(secret, _DUMMY_SALT)
                return None
            if not hmac.compare_digest(_scrypt(secret, bytes(row[0])), bytes(row[1])):
                return None
            return self._load(conn, name)

    # -- grants ----------------------------------------------------------------------------

    def grant(self, group: str, collection: str, path: str | None = None, write: bool = False) -> Grant:
        """Let `group` read (and with `write`, change) `collection`, or only its documents
        whose path matches the glob `path`. Idempotent; granting again with write=True
        adds write, with write=False keeps what was there (revoke to take write away).
        Returns the grant as it now stands."""
        _check_name(group, "group")
        _check_collection(collection)
        stored = _check_glob(path)
        with self._connection(write=True) as conn:
            conn.execute("INSERT INTO grants (grp, collection, path, write) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (grp, collection, path) DO UPDATE SET write = max(write, excluded.write)",
                         (group, collection, stored, int(bool(write))))
            (now_write,) = conn.execute("SELECT write FROM grants WHERE grp = ? AND collection = ? AND path = ?",
                                        (group, collection, stored)).fetchone()
        return Grant(group, collection, stored or None, bool(now_write))

    def revoke(self, group: str, collection: str, path: str | None = None) -> bool:
        """Take a grant away; False when there was no such grant."""
        _check_name(group, "group")
        _check_collection(collection)
        stored = _check_glob(path)
        with self._connection(write=True) as conn:
            return conn.execute("DELETE FROM grants WHERE grp = ? AND collection = ? AND path = ?",
                                (group, collection, stored)).rowcount > 0

    def grants(self, collection: str | None = None) -> list[Grant]:
        """Every grant (of one collection), sorted by collection, group, path."""
        with self._connection(write=False) as conn:
            if conn is None:
                return []
            if collection is None:
                rows = conn.execute("SELECT grp, collection, path, write FROM grants").fetchall()
            else:
                rows = conn.execute("SELECT grp, collection, path, write FROM grants WHERE collection = ?",
                                    (collection,)).fetchall()
        rows.sort(key=lambda r: (r[1], r[0], r[2]))
        return [Grant(grp, coll, path or None, bool(write)) for grp, coll, path, write in rows]
