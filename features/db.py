"""Where the database is: one URL, from an argument, ``RISKGRADE_DB`` or the embedded default."""

from __future__ import annotations

import os

import sqlalchemy as sa

DEFAULT_DB_URL = "sqlite:///riskgrade.db"


def database_url(url: str | None = None) -> str:
    """The database URL to use: ``url`` if given, else ``$RISKGRADE_DB``, else ``sqlite:///riskgrade.db``."""
    return url or os.environ.get("RISKGRADE_DB") or DEFAULT_DB_URL


def connect(url: str | None = None) -> sa.Engine:
    """An engine for :func:`database_url` (``url``), with its contract tables created."""
    from features.schema import create_schema

    resolved = database_url(url)
    if resolved.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        resolved = "postgresql+psycopg://" + resolved.removeprefix("postgresql://")
    engine = sa.create_engine(resolved)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    create_schema(engine)
    return engine


def _tune_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised through every test
        cursor = dbapi_connection.cursor()
        # WAL lets planners read while the batch writes; busy_timeout waits on locks instead of failing.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
