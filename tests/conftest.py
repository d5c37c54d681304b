"""Shared fixtures: a database URL per backend (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("RISKGRADE_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, empty database on each backend; PostgreSQL gets a throw-away database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'riskgrade.db'}"
        return
    name = f"riskgrade_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_psycopg(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = _psycopg(PG_URL).rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        sa.engine.create_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _psycopg(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url
