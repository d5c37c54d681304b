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


ModelChoice = ("expert", "scorecard", "boosting", "all")


@app.command()
def train(
    as_of: Annotated[str, typer.Option("--as-of", help="Day of training, YYYY-MM-DD: only data recorded before it, "
                                       "only outcomes whose horizon closed before it.")],
    model: Annotated[str, typer.Option("--model", help="expert, scorecard, boosting or all.")] = "all",
    horizon_days: Annotated[Optional[int], typer.Option("--horizon-days", min=1,
                            help="Outcome horizon in days (default: \\[labels] horizon_days).")] = None,
    target: Annotated[Optional[str], typer.Option("--target",
                      help="Outcomes joined with '+': accident, major_hazard, suspension "
                           "(default: \\[labels] target).")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Let the best model challenge the champion.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the metrics as JSON to FILE.json.")] = None,
    db: DbOption = None,
    mlflow_uri: Annotated[Optional[str], typer.Option("--mlflow-uri", help="MLflow tracking URI (default: "
                          "$MLFLOW_TRACKING_URI, else mlflow.db beside the SQLite database).", show_default=False)] = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Policy file (default: $RISKGRADE_POLICY or "
                      "the shipped defaults).", show_default=False)] = None,
) -> None:
    """Backtest, train, log to MLflow and optionally promote the risk models; print the comparison."""
    import json

    from features.db import connect, database_url
    from features.store import load_tables
    from models.config import TrainingConfig
    from models.expert import ExpertCardRules
    from models.train import train_and_evaluate
    from scoring.policy import build_section, read_policy_mapping

    if model not in ModelChoice:
        raise typer.BadParameter(f"expected one of {', '.join(ModelChoice)}, got {model!r}", param_hint="--model")
    day = _parse_date(as_of, "--as-of")
    mapping, source = read_policy_mapping(policy)
    labels = mapping.get("labels", {})
    kinds = ("expert", "scorecard", "boosting") if model == "all" else (model,)
    rules = build_section(ExpertCardRules, mapping["expert_card"], f"{source}: expert_card")
    config = build_section(TrainingConfig, mapping["training"], f"{source}: training")
    url = database_url(db)
    tables = load_tables(connect(url), [*_contract_tables(), "truth"])
    result = train_and_evaluate(
        tables,
        day,
        kinds,
        expert_rules=rules,
        config=config,
        horizon_days=horizon_days or int(labels.get("horizon_days", 365)),
        target=target or str(labels.get("target", "accident+major_hazard+suspension")),
        exclude_road_traffic=bool(labels.get("exclude_road_traffic", True)),
        tracking_uri=mlflow_uri or _default_mlflow_uri(url),
        promote=promote,
        progress=lambda message: err_console.print(f"[dim]{message}[/]", highlight=False),
    )
    summary = _train_summary(result.report)
    comparison = result.comparison().reset_index()
    for column in comparison.columns[1:]:
        comparison[column] = comparison[column].map(lambda v: "" if v is None or v != v else f"{v:.4f}")
    _print_frame(f"Backtest as of {day} ({len(result.test_dates)} test dates, horizon {result.horizon_days} days)",
                 comparison)
    for note in result.report.get("notes", []):
        console.print(f"• {note}", highlight=False)
    if result.versions:
        registered = ", ".join(f"{kind} → version {v.version}" for kind, v in result.versions.items())
        console.print(f"registered model 'riskgrade': {registered}", highlight=False)
    if result.promotion is not None:
        console.print(("[green]promoted[/]: " if result.promotion.promoted else "[yellow]not promoted[/]: ")
                      + result.promotion.reason, highlight=False)
    if report is not None:
        report.write_text(json.dumps(summary, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        console.print(f"report written to {report}")


def _contract_tables() -> list[str]:
    from features.contract import TABLES

    return [t.name for t in TABLES]


def _default_mlflow_uri(db_url: str) -> str | None:
    """``$MLFLOW_TRACKING_URI`` if set, else ``mlflow.db`` beside an SQLite database, else in the working dir."""
    import os

    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None  # models.registry reads it
    if db_url.startswith("sqlite:///") and db_url != "sqlite:///:memory:":
        return f"sqlite:///{Path(db_url.removeprefix('sqlite:///')).parent / 'mlflow.db'}"
    return "sqlite:///mlflow.db"


def _train_summary(report: dict) -> dict:
    """The JSON report: {"models": {kind: metrics…, by_sector, by_township}, "oracle": …, "promoted": …, …}."""
    keep = ("as_of", "target", "horizon_days", "test_dates", "as_of_dates", "n_rows", "n_labelled_rows", "models",
            "oracle", "comparison", "notes", "promoted", "promotion", "registered", "champion_backtest",
            "tracking_uri", "folds", "seconds")
    return {key: report[key] for key in keep if key in report}


PlanFormat = ("table", "csv", "json", "xlsx")


@app.command()
def plan(
    period: Annotated[str, typer.Option("--period", help="Month to plan, YYYY-MM.")],
    capacity: Annotated[Optional[Path], typer.Option(
        "--capacity", help="CSV with columns department, visits (visits per department in the month); default: "
                           "\\[planning.capacity] of the policy.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Seed of the double-random draw (recorded with the plan); default YYYYMM of the period.",
        show_default=False)] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, csv, json or xlsx.")] = "table",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output file (required for xlsx; csv/json default "
                                                "to standard output).", show_default=False)] = None,
    db: DbOption = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Policy file (default: $RISKGRADE_POLICY or "
                      "the shipped defaults).", show_default=False)] = None,
    mlflow_uri: Annotated[Optional[str], typer.Option("--mlflow-uri", help="MLflow tracking URI of the champion "
                          "model.", show_default=False)] = None,
) -> None:
    """Plan a month of inspections within caps, quiet periods, inspector limits and capacity (双随机 seeded).

    The limits are those of the first day of the period. Until the nightly batch stores tiers (a later issue)
    they are computed on the fly from the database and the champion model (scoring.tables.current_limits).
    """
    import pandas as pd

    from features.db import connect, database_url
    from scoring.planning import capacity_frame, parse_period, plan_inspections
    from scoring.policy import load_policy
    from scoring.tables import current_limits

    if output_format not in PlanFormat:
        raise typer.BadParameter(f"expected one of {', '.join(PlanFormat)}, got {output_format!r}",
                                 param_hint="--format")
    if output_format == "xlsx" and out is None:
        raise typer.BadParameter("an Excel plan needs --out FILE.xlsx", param_hint="--out")
    start, _ = parse_period(period)
    chosen_seed = seed if seed is not None else start.year * 100 + start.month
    rules = load_policy(policy)
    month_capacity = None
    if capacity is not None:
        if not capacity.is_file():
            raise DataError(f"capacity file {capacity} does not exist")
        month_capacity = capacity_frame(pd.read_csv(capacity, encoding="utf-8-sig"))
    url = database_url(db)
    tracking = mlflow_uri or _default_mlflow_uri(url)
    limits = current_limits(connect(url), start.date(), rules, tracking_uri=tracking)
    result = plan_inspections(limits, month_capacity, period, supervision=rules.supervision,
                              planning=rules.planning, seed=chosen_seed)
    _PLAN_WRITERS[output_format](result, out)


def _plan_table(result, out) -> None:
    import pandas as pd

    items = result.items
    table = pd.DataFrame({
        "#": items["priority"],
        "enterprise": items["enterprise_id"],
        "tier": items["final_tier"],
        "dept": items["departments"],
        "kind": items["kind"],
        "window": items["window_start"].dt.strftime("%m-%d") + "~" + items["window_end"].dt.strftime("%m-%d"),
        "insp": items["n_inspectors"],
        "why": items["reason"],
    })
    _print_frame(f"Inspection plan {result.period} (seed {result.seed}; full columns with --format csv/json/xlsx)",
                 table)
    _print_frame("Visits by department", result.summary())
    if len(result.unmet):
        _print_frame("Mandatory visits that did not fit", result.unmet)
    if out is not None:
        _plan_csv(result, out)


def _plan_csv(result, out) -> None:
    text = result.items.to_csv(index=False, date_format="%Y-%m-%d")
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8-sig")
        err_console.print(f"plan written to {out}")


def _plan_json(result, out) -> None:
    import json

    text = json.dumps(result.to_json(), ensure_ascii=False, indent=2)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text, encoding="utf-8")
        err_console.print(f"plan written to {out}")


def _plan_xlsx(result, out) -> None:
    import pandas as pd

    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        result.items.to_excel(writer, sheet_name="plan", index=False)
        result.summary().to_excel(writer, sheet_name="summary", index=False)
        result.draws.to_excel(writer, sheet_name="draws", index=False)
        result.unmet.to_excel(writer, sheet_name="unmet", index=False)
    err_console.print(f"plan written to {out}")


_PLAN_WRITERS = {"table": _plan_table, "csv": _plan_csv, "json": _plan_json, "xlsx": _plan_xlsx}


@app.command()
def simulate(
    months: Annotated[int, typer.Option("--months", min=1, help="Months the planner runs against the truth.")] = 12,
    enterprises: Annotated[int, typer.Option("--enterprises", min=100, help="Enterprises in the world.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world, the draws and the training.")] = 1,
    history_months: Annotated[int, typer.Option("--history-months", min=24,
                              help="Months of today's practice simulated before the planner takes over.")] = 36,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Policy file (default: $RISKGRADE_POLICY or "
                      "the shipped defaults).", show_default=False)] = None,
) -> None:
    """Closed-loop check on a synthetic world: the planner's hazards found per visit vs random and equal frequency.

    Same caps, quiet periods and capacity for every allocation rule; published anchor ≈2× (Hino et al. 2018).
    """
    import json

    from scoring.policy import load_policy
    from scoring.simulate import closed_loop

    if output_format not in ("table", "json"):
        raise typer.BadParameter(f"expected table or json, got {output_format!r}", param_hint="--format")
    result = closed_loop(load_policy(policy), enterprises=enterprises, history_months=history_months,
                         months=months, seed=seed,
                         progress=lambda message: err_console.print(f"[dim]{message}[/]", highlight=False))
    if output_format == "json":
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n")
        return
    summary = result.summary().reset_index()
    for column in ("hazards_per_visit", "major_per_100_visits", "ratio_vs_random", "ratio_vs_equal_frequency"):
        summary[column] = summary[column].map(lambda v: "" if v != v else f"{v:.3f}")
    _print_frame(f"Closed loop: {months} months, {enterprises:,} enterprises, seed {seed}", summary)
    data = result.to_json()
    console.print(f"risk-based hazards found per visit: {data['ratio_vs_random']}× random, "
                  f"{data['ratio_vs_equal_frequency']}× equal frequency (published anchor ≈2×, Hino et al. 2018)",
                  highlight=False)


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
