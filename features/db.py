"""Where the database is: one URL, from an argument, ``RISKGRADE_DB`` or the embedded default.

Opening it turns every operator mistake into one :class:`~features.errors.DatabaseError` line: a malformed URL
(:class:`~features.errors.DatabaseUrlError`), a server that does not answer, an SQLite file that does not exist
when the command only reads (``connect(url, create=False)`` never creates an empty database), a folder that is
not there.

Jobs that overlap on one database take turns instead of failing:

- :func:`write_transaction` is a transaction that holds the database's write lock from its first statement
  (SQLite ``BEGIN IMMEDIATE``). While another job writes, it says so once (``database riskgrade.db is busy …;
  waiting up to 600 s``) and waits; past the wait it fails with a :class:`~features.errors.DatabaseError` naming
  the wait. ``$RISKGRADE_DB_WAIT_SECONDS`` changes the wait (default :data:`DEFAULT_WAIT_SECONDS`).
- :func:`serialise` inside a PostgreSQL transaction takes a transaction-scoped advisory lock (released by the
  commit or rollback, also when the process dies), with the same message while it waits; on SQLite the write
  transaction already serialises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

from features.errors import DatabaseError, DatabaseUrlError

DEFAULT_DB_URL = "sqlite:///riskgrade.db"
DEFAULT_WAIT_SECONDS = 600.0
"""How long a job waits for another job's write lock before giving up (``$RISKGRADE_DB_WAIT_SECONDS``)."""
_BUSY_TIMEOUT_MS = 30_000  # SQLite's own wait inside one statement (short writes of other jobs)
_POLL_SECONDS = 0.5
_WAL_RETRY_SECONDS = 0.01
_PG_CONNECT_TIMEOUT_SECONDS = 10

Say = Callable[[str], None]


def database_url(url: str | None = None) -> str:
    """The database URL to use: ``url`` if given, else ``$RISKGRADE_DB``, else ``sqlite:///riskgrade.db``."""
    return url or os.environ.get("RISKGRADE_DB") or DEFAULT_DB_URL


def connect(url: str | None = None, *, create: bool = True) -> sa.Engine:
    """An engine for :func:`database_url` (``url``), with its contract tables created.

    ``create=False`` (commands that only read): a missing SQLite file, or a database without riskgrade's tables
    (another application's file, a fresh PostgreSQL database), is refused instead of created or filled with empty
    tables.
    Raises :class:`DatabaseUrlError` for a URL that is not one, :class:`DatabaseError` for a database that cannot
    be opened or reached.
    """
    from features.schema import create_schema

    resolved = database_url(url)
    if resolved.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        resolved = "postgresql+psycopg://" + resolved.removeprefix("postgresql://")
    engine = _engine(resolved, url)
    if engine.dialect.name == "sqlite":
        _check_sqlite_file(engine, create=create)
        _tune_sqlite(engine)
    try:
        if not create and not sa.inspect(engine).has_table("enterprises"):
            engine.dispose()
            raise DatabaseError(f"database {_shown(engine.url)} holds no riskgrade data (no enterprises table; "
                                f"nothing was created): import data first, or point --db / $RISKGRADE_DB at the "
                                f"database you meant")
        create_schema(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseError(f"cannot open the database {_shown(engine.url)}: {_reason(exc)}") from exc
    return engine


def _engine(resolved: str, given: str | None) -> sa.Engine:
    where = "--db" if given else ("$RISKGRADE_DB" if os.environ.get("RISKGRADE_DB") else "the default database URL")
    expected = "expected sqlite:///path/to/riskgrade.db or postgresql+psycopg://user@host/dbname"
    try:
        parsed = sa.engine.make_url(resolved)
    except sa.exc.ArgumentError:
        raise DatabaseUrlError(f"{where}: {resolved!r} is not a database URL; {expected}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUrlError(f"{where}: {_shown(parsed)}: riskgrade works with SQLite or PostgreSQL, not "
                               f"{parsed.get_backend_name()!r}; {expected}")
    options = {}
    if parsed.get_backend_name() == "postgresql":
        options["connect_args"] = {"connect_timeout": _PG_CONNECT_TIMEOUT_SECONDS}
    try:
        return sa.create_engine(parsed, **options)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise DatabaseUrlError(f"{where}: {_shown(parsed)}: {_reason(exc)}; {expected}") from exc


def _check_sqlite_file(engine: sa.Engine, *, create: bool) -> None:
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if path.is_dir():
        raise DatabaseError(f"database {path} is a folder, not an SQLite file: name the file, e.g. "
                            f"sqlite:///{path / 'riskgrade.db'}")
    if path.exists():
        return
    if not create:
        raise DatabaseError(f"database {path} does not exist (nothing was created): import data first with "
                            f"`riskgrade import DIR --db sqlite:///{path}`, or point --db / $RISKGRADE_DB at the "
                            f"database you meant")
    if not path.parent.is_dir():
        raise DatabaseError(f"database {path}: the folder {path.parent} does not exist")


def sqlite_path(engine: sa.Engine) -> Path | None:
    """The file of an SQLite database (None for PostgreSQL or an in-memory database)."""
    name = engine.url.database if engine.dialect.name == "sqlite" else None
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def _tune_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every test
        cursor = dbapi_connection.cursor()
        # busy_timeout waits on locks instead of failing — first, because switching a new file to WAL takes a lock
        # that another process opening it at the same moment may hold; WAL lets planners read while the batch writes.
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _switch_to_wal(cursor) -> None:
    """``PRAGMA journal_mode=WAL``, retried: on a brand-new file that another process is switching at the same
    moment, SQLite answers "database is locked" at once, without waiting out the busy timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY_SECONDS)


# ---------------------------------------------------------------------------------------------
# Overlapping jobs
# ---------------------------------------------------------------------------------------------


def wait_seconds() -> float:
    """How long to wait for another job's lock: ``$RISKGRADE_DB_WAIT_SECONDS`` or :data:`DEFAULT_WAIT_SECONDS`."""
    text = os.environ.get("RISKGRADE_DB_WAIT_SECONDS")
    if not text:
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise DatabaseError(f"$RISKGRADE_DB_WAIT_SECONDS: expected a number of seconds, got {text!r}") from None
    return max(value, 0.0)


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def write_transaction(engine: sa.Engine, *, say: Say | None = None, what: str = "this job",
                      finish: Callable[[sa.Connection], None] | None = None) -> Iterator[sa.Connection]:
    """``engine.begin()`` holding the write lock from the start (see the module docstring); commits on success.
    ``finish(conn)`` runs after the commit or rollback, on the same connection before it goes back to the pool
    (to undo connection state the transaction needed, such as an attached database)."""
    with engine.connect() as conn:
        try:
            if engine.dialect.name != "sqlite":
                with conn.begin():
                    yield conn
                return
            _begin_immediate(conn, say or _stderr, what)
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            if finish is not None:
                finish(conn)


def _begin_immediate(conn: sa.Connection, say: Say, what: str) -> None:
    limit = wait_seconds()
    started = time.monotonic()
    told = False
    conn.exec_driver_sql("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except sa.exc.OperationalError as exc:
                if not _is_locked(exc):
                    raise
                conn.rollback()
            waited = time.monotonic() - started
            if waited >= limit:
                raise DatabaseError(_gave_up(_shown(conn.engine.url), waited, what))
            if not told:
                say(f"database {_shown(conn.engine.url)} is busy: another job is writing to it; {what} waits for "
                    f"it to finish (up to {limit:g} s)")
                told = True
            time.sleep(min(_POLL_SECONDS, max(limit - waited, 0.01)))
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")


def serialise(conn: sa.Connection, name: str, *, say: Say | None = None, what: str = "this job") -> None:
    """Inside a transaction: wait for (and hold until its end) the database-wide lock ``name`` (PostgreSQL
    advisory lock; on SQLite the write transaction already holds the whole database)."""
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"riskgrade:{name}".encode()).digest()[:8], "big", signed=True)
    if conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
        return
    limit = wait_seconds()
    (say or _stderr)(f"database {_shown(conn.engine.url)} is busy: another job holds its {name} lock; {what} waits "
                     f"for it to finish (up to {limit:g} s)")
    started = time.monotonic()
    while not conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
        waited = time.monotonic() - started
        if waited >= limit:
            raise DatabaseError(_gave_up(_shown(conn.engine.url), waited, what))
        time.sleep(_POLL_SECONDS)


def _gave_up(database: str, waited: float, what: str) -> str:
    return (f"database {database} is still busy after {waited:.0f} s (another job is writing to it): {what} "
            f"gave up and wrote nothing; run it again when the other job has finished, or wait longer with "
            f"$RISKGRADE_DB_WAIT_SECONDS")


def _is_locked(exc: sa.exc.OperationalError) -> bool:
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _shown(url: sa.URL) -> str:
    """The URL as an operator may see it: no password; an SQLite database by its file."""
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    """The first line of a driver's message (without SQLAlchemy's background link)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(orig).__name__
