"""A small synthetic world imported into a test database, for the nightly-batch, rank and explain tests."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from features.db import connect

AS_OF = date(2025, 1, 1)  # the night after the world's last simulated month
N_ENTERPRISES = 240


@pytest.fixture(scope="session")
def world_csv(tmp_path_factory) -> Path:
    """The world's contract CSV files (no truth), generated once per session."""
    from data_samples.world import generate_world, write_world

    tables = generate_world(N_ENTERPRISES, 3, 11, start=date(2022, 1, 1))
    directory = tmp_path_factory.mktemp("world")
    write_world({name: frame for name, frame in tables.items() if name != "truth"}, directory)
    return directory


def import_world(url: str, directory: Path):
    """An engine on ``url`` with the world imported."""
    from features.importer import import_directory

    engine = connect(url)
    import_directory(engine, directory, today=AS_OF)
    return engine


def no_mlflow(tmp_path: Path) -> str:
    """A tracking URI whose store does not exist: the batch falls back to the expert card without touching MLflow."""
    return f"sqlite:///{tmp_path / 'no-mlflow.db'}"
