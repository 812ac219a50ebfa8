"""Database engines: SQLite (default) and PostgreSQL, configured for an append-only log.

SQLite runs in WAL mode with a 30 s busy timeout and ``synchronous=FULL`` by default: a
committed event survives power loss, at the cost of one fsync per transaction. A deployment
that accepts losing the last few commits on power loss (never on a process crash) may add
``?synchronous=normal`` to the URL, e.g. ``sqlite:///monitor.db?synchronous=normal``.
Write transactions start with ``BEGIN IMMEDIATE`` so that writers queue on the database lock
instead of failing half-way with "database is locked"; the store's own reads begin deferred,
so readers never wait for writers (WAL gives them a snapshot).

PostgreSQL is reached through psycopg 3 (the ``[postgres]`` extra); a plain
``postgresql://`` URL is taken to mean ``postgresql+psycopg://``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = ("full", "normal", "extra")
READ_ONLY = "monitor_read_only"  # execution option: begin a deferred (reader) transaction


class StoreError(RuntimeError):
    """The database cannot be used (bad URL, missing driver, unreachable server)."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"not a database URL: {redact(url)}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise StoreError(
                "PostgreSQL needs the [postgres] extra: pip install 'monitor[postgres]'"
            ) from exc
    raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL) -> Engine:
    synchronous = str(url.query.get("synchronous", "full")).lower()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise StoreError(f"synchronous={synchronous!r}: use one of {', '.join(SQLITE_SYNCHRONOUS)}")
    url = url.difference_update_query(["synchronous"])
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def redact(url: str) -> str:
    """A database URL safe to log: the password replaced."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
