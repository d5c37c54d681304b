"""The ``riskgrade`` command line: one program, one sub-command per job.

Start-up stays light (Typer and Rich only); each command imports the heavy libraries it needs.

Exit codes: 0 success · 1 unexpected failure · 2 usage error · 3 bad input data · 4 bad policy file ·
5 no champion model · 6 another batch run holds the lock.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from features.errors import (
    BatchLockedError,
    DataError,
    NoChampionError,
    PolicyError,
    RiskgradeError,
)

app = typer.Typer(
    name="riskgrade",
    help="Work-safety risk scoring and classified supervision (分类分级监管).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

EXIT_CODES: dict[type[RiskgradeError], int] = {
    DataError: 3,
    PolicyError: 4,
    NoChampionError: 5,
    BatchLockedError: 6,
}

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy URL; default $RISKGRADE_DB or sqlite:///riskgrade.db.", show_default=False),
]


def _parse_date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"expected a date like 2025-03-25, got {value!r}", param_hint=option) from None


def progress_bar():
    """A Rich progress bar on a terminal; on a pipe or in CI it stays silent (the summary still prints)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=True,
    )


@app.command()
def samples(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the CSV tables and truth.csv into.")],
    enterprises: Annotated[int, typer.Option("--enterprises", min=1, help="Number of enterprises.")] = 500,
    years: Annotated[int, typer.Option("--years", min=1, help="Years of history.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the world is deterministic per seed).")] = 1,
    start: Annotated[str, typer.Option("--start", help="First simulated month, YYYY-MM-DD.")] = "2022-01-01",
) -> None:
    """Generate a synthetic world (all contract tables + truth.csv) and print its realism figures."""
    from data_samples.world import generate_world, world_stats, write_world

    with progress_bar() as bar:
        task = bar.add_task("simulating months", total=years * 12)
        tables = generate_world(
            enterprises,
            years,
            seed,
            start=_parse_date(start, "--start"),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    write_world(tables, out)
    _print_mapping(f"Synthetic world written to {out}", world_stats(tables, tables["truth"]))


@app.command("import")
def import_(
    directory: Annotated[Path, typer.Argument(help="Directory holding <table>.csv or <table>.xlsx files.")],
    db: DbOption = None,
    uscc_allowlist: Annotated[
        Optional[Path],
        typer.Option(help="Text file of USCC codes accepted despite a failing check digit, one per line."),
    ] = None,
    today: Annotated[
        Optional[str], typer.Option(help="Date against which 'in the future' is judged (default: today).")
    ] = None,
) -> None:
    """Validate and load data files; bad rows go to the quarantine table, the rest loads (upsert by key)."""
    from features.db import connect
    from features.importer import import_directory

    allowlist = _read_allowlist(uscc_allowlist)
    engine = connect(db)
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def report(table: str, done: int, total: int | None) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"importing {table}", total=total)
            bar.update(tasks[table], completed=done, total=total)

        summary = import_directory(
            engine,
            directory,
            today=_parse_date(today, "--today") if today else date.today(),
            uscc_allowlist=allowlist,
            progress=report,
        )
    _print_frame(f"Import of {directory}", summary.to_table())


def _read_allowlist(path: Path | None) -> frozenset[str]:
    if path is None:
        return frozenset()
    if not path.is_file():
        raise DataError(f"USCC allow-list {path} does not exist")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().upper() for line in lines if line.strip() and not line.startswith("#"))


@app.command()
def features(
    as_of: Annotated[list[str], typer.Option("--as-of", help="As-of date (repeatable), YYYY-MM-DD.")],
    out: Annotated[Path, typer.Option("--out", help="Output file: .parquet or .csv.")],
    db: DbOption = None,
) -> None:
    """Build point-in-time features as of one or more dates and write them to a file."""
    from features import build_features
    from features.db import connect
    from features.store import load_tables

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter(f"expected a .parquet or .csv file, got {out.name!r}", param_hint="--out")
    dates = [_parse_date(value, "--as-of") for value in as_of]
    tables = load_tables(connect(db))
    with progress_bar() as bar:
        task = bar.add_task("building features", total=None)
        matrix = build_features(
            tables,
            dates,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if out.suffix.lower() == ".parquet":
        matrix.to_parquet(out)
    else:
        matrix.to_csv(out, encoding="utf-8-sig")
    console.print(f"{len(matrix):,} rows × {matrix.shape[1]} features written to {out}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo world and databases go.")] = Path("."),
    enterprises: Annotated[int, typer.Option(min=50)] = 2000,
    years: Annotated[int, typer.Option(min=2)] = 4,
    seed: Annotated[int, typer.Option()] = 2026,
) -> None:
    """End to end on the embedded SQLite database: synthetic world → import → summary."""
    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory

    world_dir = workdir / "demo_world"
    console.rule("1. synthetic world")
    with progress_bar() as bar:
        task = bar.add_task("simulating months", total=years * 12)
        tables = generate_world(
            enterprises, years, seed, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    write_world(tables, world_dir)
    last_day = max(frame[col].max() for name, frame in tables.items() for col in frame.columns
                   if name != "truth" and str(frame[col].dtype).startswith("datetime"))
    console.print(f"{enterprises:,} enterprises × {years} years written to {world_dir}")

    console.rule("2. import into the embedded database")
    db_url = f"sqlite:///{(workdir / 'riskgrade.db').resolve()}"
    engine = connect(db_url)
    summary = import_directory(engine, world_dir, today=last_day.date())
    _print_frame(f"Imported into {db_url}", summary.to_table())


def _print_frame(title: str, frame) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="right" if frame[column].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)


def _print_mapping(title: str, mapping: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in mapping.items():
        table.add_row(str(key), f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


def main() -> None:
    """Console entry point: run the app, turning riskgrade errors into one clear line and an exit code."""
    try:
        app()  # standalone mode: usage errors print Typer's message and exit 2
    except RiskgradeError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 1))


if __name__ == "__main__":  # pragma: no cover
    main()
