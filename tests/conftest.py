"""Shared fixtures: a database URL per backend (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("RISKGRADE_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh, empty database on each backend; PostgreSQL gets a throw-away database dropped afterwards."""
    with _fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request, tmp_path_factory):
    """Like :func:`db_url`, shared by the tests of one module (for a costly world built once per backend)."""
    with _fresh_database(request.param, tmp_path_factory.mktemp("module_db")) as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url(tmp_path_factory):
    """A fresh PostgreSQL database shared by the tests of one module, dropped afterwards (the module's tests skip
    when RISKGRADE_TEST_PG_URL is not set)."""
    if not PG_URL:
        pytest.skip("RISKGRADE_TEST_PG_URL is not set")
    with _fresh_database("postgresql", tmp_path_factory.mktemp("module_pg")) as url:
        yield url


@contextmanager
def _fresh_database(backend: str, directory):
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'riskgrade.db'}"
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


@pytest.fixture
def engine(db_url):
    """An engine on :func:`db_url` (SQLite, and PostgreSQL when configured), disposed afterwards."""
    from features.db import connect

    engine = connect(db_url)
    yield engine
    engine.dispose()


def _psycopg(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


@pytest.fixture(scope="session")
def dask_client():
    """One local Dask cluster of 2 single-threaded worker processes for every test of the Dask path (starting one
    and importing riskgrade into its workers costs seconds under load). A task whose worker dies is not retried
    elsewhere (the killed-worker test's run fails at once; default: 3 retries)."""
    distributed = pytest.importorskip("distributed")
    import dask

    from scoring.results.partitioned import local_cluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            local_cluster(2) as cluster, distributed.Client(cluster) as client:
        client.run(__import__, "scoring.results.partitioned")  # the workers' imports (features too), once
        yield client
