"""Database engines: SQLite (default) and PostgreSQL, configured for an append-only log.

SQLite runs in WAL mode with a 30 s busy timeout and ``synchronous=FULL`` by default: a
committed event survives power loss, at the cost of one fsync per transaction. A deployment
that accepts losing the last few commits on power loss (never on a process crash) may add
``?synchronous=normal`` to the URL, e.g. ``sqlite:///monitor.db?synchronous=normal``.
Write transactions start with ``BEGIN IMMEDIATE`` so that writers queue on the database lock
instead of failing half-way with "database is locked"; the store's own reads begin deferred,
so readers never wait for writers (WAL gives them a snapshot).

PostgreSQL is reached through psycopg 3 (the ``[postgres]`` extra); a plain
``postgresql://`` URL is taken to mean ``postgresql+psycopg://``. Sessions run in UTC, so
timestamps come back in UTC with no conversion. A pooled connection that sat idle for more than
``PING_AFTER_IDLE_S`` is pinged before use (a server restarted meanwhile closed it) and replaced
if dead; one in steady use is not, which saves a round trip per transaction (pre-ping did one
on every checkout). A connection found dead in use fails that one operation, and the pool's
idle connections are dropped with it (``EventStore`` and SQLAlchemy both do this).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, CursorResult, Result, make_url
from sqlalchemy.exc import DisconnectionError

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_SYNCHRONOUS = ("full", "normal", "extra")
READ_ONLY = "monitor_read_only"  # execution option: begin a deferred (reader) transaction
PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "monitor_idle_since"


class StoreError(RuntimeError):
    """The database cannot be used (bad URL, missing driver, unreachable server)."""


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched.

    ``Session.execute`` returns a ``CursorResult`` for those statements, though SQLModel's
    signature promises only a ``Result``.
    """
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)


SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other databases, memory and ``file:`` URIs."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else Path(database)


def describe(url: str) -> str:
    """How messages name a database: its file for SQLite, the redacted URL otherwise."""
    path = sqlite_path(url)
    return str(path) if path is not None else redact(url)


def check_sqlite_file(url: str) -> None:
    """Refuse, with the reason, an SQLite file that cannot be ours before SQLite says it in a
    traceback: a file that is not SQLite, a directory in its place."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"database {path}: is a directory, not an SQLite file")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"database {path}: cannot read: {exc.strerror or exc}") from exc
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"database {path}: not an SQLite database (wrong file, or damaged)")


def store_error(url: str, exc: BaseException) -> StoreError:
    """One line naming the database and the cause, for an error from opening or using it."""
    name = describe(url)
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc) else ""
    lowered = cause.lower()
    path = sqlite_path(url)
    denied = (
        isinstance(exc, PermissionError) or "unable to open" in lowered or "readonly" in lowered
    )
    if path is not None and denied and not os.access(path.parent, os.W_OK):
        cause = f"directory {path.parent} is not writable by this user ({_user()})"
    elif isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            cause = "the disk is full (free space, then start again)"
        else:
            cause = f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": ")
    elif "disk is full" in lowered or "disk full" in lowered or _no_space(path, lowered):
        cause = "the disk is full (free space, then start again)"
    elif "not a database" in lowered:
        cause = "not an SQLite database (wrong file, or damaged)"
    elif path is not None and denied:
        if path.exists() and not os.access(path, os.W_OK):
            cause = f"the file is not writable by this user ({_user()})"
        else:
            cause = f"cannot open ({cause})"
    return StoreError(f"database {name}: {cause}")


def _no_space(path: Path | None, cause: str) -> bool:
    """SQLite reports a write that hit a full disk as "disk I/O error" too: ask the disk."""
    if path is None or "i/o error" not in cause:
        return False
    try:
        stat = os.statvfs(path.parent)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1024 * 1024


def _user() -> str:
    return _user_name(os.geteuid())


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def check_owner(url: str) -> None:
    """Refuse root on another user's SQLite database: SQLite would create the -wal and -shm
    files beside it owned by root, and the service could then no longer open its own log.
    Run the command as the database's owner instead (``sudo -u monitor monitor ...``)."""
    path = sqlite_path(url)
    if path is None or os.geteuid() != 0:
        return
    target = path if path.exists() else path.parent
    try:
        owner = target.stat().st_uid
    except OSError:
        return
    if owner != 0:
        name = _user_name(owner)
        raise StoreError(
            f"database {path} belongs to {name}: run this as that user (sudo -u {name} "
            f"monitor ... --config ...), so that no file beside it becomes root's"
        )


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; ``read_only`` (SQLite) opens the file read-only and never
    creates it, never changes its journal mode, and begins every transaction deferred."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"not a database URL: {redact(url)}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, read_only=read_only)
    if backend == "postgresql":
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed)
        except ModuleNotFoundError as exc:
            raise StoreError(
                "PostgreSQL needs the [postgres] extra: pip install 'monitor[postgres]'"
            ) from exc
        _postgres_events(engine)
        return engine
    raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _postgres_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("SET TIME ZONE 'UTC'")
        dbapi_conn.commit()

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            dbapi_conn.execute("SELECT 1")
            dbapi_conn.rollback()
        except Exception as error:
            # The pool discards this connection and checks out another (up to three times).
            raise DisconnectionError(str(error)) from error


def _sqlite_engine(url: URL, *, read_only: bool = False) -> Engine:
    synchronous = str(url.query.get("synchronous", "full")).lower()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise StoreError(f"synchronous={synchronous!r}: use one of {', '.join(SQLITE_SYNCHRONOUS)}")
    url = url.difference_update_query(["synchronous"])
    database = url.database
    if read_only and database and database != ":memory:" and not database.startswith("file:"):
        absolute = Path(database).resolve().as_posix()
        url = url.set(database=f"file:{absolute}").update_query_dict({"mode": "ro", "uri": "true"})
    elif database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            cause = exc.strerror or type(exc).__name__
            raise StoreError(
                f"database {database}: cannot create its directory {Path(database).parent}: {cause}"
            ) from exc
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not read_only:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if read_only or conn.get_execution_options().get(READ_ONLY):
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
