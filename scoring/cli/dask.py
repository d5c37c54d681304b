"""Beyond one machine: ``riskgrade export-parquet DIR`` and the cluster side of ``riskgrade nightly --dask``.

Dask and the partitioned modules are imported only here, so that the other commands start without them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer

from features.errors import UsageError
from scoring.cli import DbOption, console, err_console


def export_parquet(
    directory: Annotated[Path, typer.Argument(help="A new (or empty) directory for the dataset.",
                                              show_default=False)],
    db: DbOption = None,
    enterprises_per_file: Annotated[int, typer.Option("--enterprises-per-file", min=1, help="Enterprises per "
                                    "Parquet file of each table (files hold whole key ranges).")] = 100_000,
) -> None:
    """Write the contract tables as a Parquet dataset partitioned by enterprise_key (what a cluster reads).

    One directory per table, one file per key range, rows sorted by enterprise_key; written beside DIR and renamed
    when complete, so an interrupted export leaves no dataset behind.
    """
    from features.db import connect, database_url
    from features.partitions import export_parquet as export

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory}: exists and is not an empty directory (give a new directory)")
    if not directory.parent.is_dir():
        raise UsageError(f"{directory}: its folder {directory.parent} does not exist")
    url = database_url(db)
    connect(url, create=False).dispose()  # a mistyped SQLite path is refused, not exported as an empty world
    rows = export(url, directory, enterprises_per_file=enterprises_per_file,
                  progress=lambda message: err_console.print(message, highlight=False))
    console.print(f"exported to {directory}: " + ", ".join(f"{name} {n:,}" for name, n in rows.items()),
                  highlight=False, soft_wrap=True)


def nightly_on_dask(url: str, day: date, policy: Optional[Path], mlflow_uri: Optional[str], address: str,
                    partitions: Optional[int], run_with):
    """``riskgrade nightly --dask ADDRESS``: the run of :func:`scoring.results.partitioned.run_nightly_dask` on
    the cluster at ``address`` (``local``: a local cluster, closed afterwards), through ``run_with`` (the CLI's
    runner: progress, SIGTERM)."""
    from features.db import connect
    from scoring.cli import _default_mlflow_uri
    from scoring.results.partitioned import close_cluster, cluster_client, run_nightly_dask

    engine = connect(url)
    if engine.dialect.name != "postgresql":
        raise UsageError(f"nightly --dask needs a PostgreSQL database the workers can reach, got {engine.dialect.name} "
                         "(--db postgresql+psycopg://user@host/dbname)")
    client = cluster_client(address)
    try:
        def run(engine_, day_, **options):
            return run_nightly_dask(engine_, client, day_, url=url, partitions=partitions, **options)

        return run_with(engine, day, policy, mlflow_uri or _default_mlflow_uri(url), run_nightly=run)
    finally:
        close_cluster(client)
