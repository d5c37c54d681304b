"""The ``riskgrade`` command line: one program, one sub-command per job.

Start-up stays light (Typer and Rich only); each command imports the heavy libraries it needs.

Exit codes (every command):

- 0 success
- 1 unexpected failure (a nightly run is then marked ``failed`` with the error in ``batch_runs``)
- 2 usage error (bad option or argument; also a malformed ``--db`` URL, an ``--out`` that is a folder, in a missing
  folder, the database itself or whose suffix contradicts ``--format``, ``nightly --as-of`` too far ahead)
- 3 bad input data (also: unknown enterprise id in ``explain``, no nightly run yet for ``rank`` / ``explain``, an
  import whose every row was refused, an empty or undecodable ``--capacity`` file)
- 4 bad policy file
- 5 no champion model (``plan`` computing limits on the fly; ``nightly`` falls back to the expert card instead)
- 6 another nightly run holds the batch lock of the database
- 7 the database cannot be used: unreachable, missing (commands that only read never create one), or still busy
  with another job's write after the wait (``$RISKGRADE_DB_WAIT_SECONDS``, default 600)
- 8 an output file could not be written (disk full, no permission): nothing half-written is left behind
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from features.errors import (
    BatchLockedError,
    DatabaseError,
    DataError,
    NoChampionError,
    OutputError,
    PolicyError,
    RiskgradeError,
    UsageError,
)

app = typer.Typer(
    name="riskgrade",
    help="Work-safety risk scoring and classified supervision (分类分级监管).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# On a terminal Rich uses its width; in a log file or a pipe it would squeeze tables into 80 columns.
_LOG_WIDTH = 160
console = Console(width=None if sys.stdout.isatty() else _LOG_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else _LOG_WIDTH)

EXIT_CODES: dict[type[RiskgradeError], int] = {  # the first matching class wins: subclasses first
    UsageError: 2,
    DataError: 3,
    PolicyError: 4,
    NoChampionError: 5,
    BatchLockedError: 6,
    DatabaseError: 7,
    OutputError: 8,
}

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="SQLAlchemy URL; default $RISKGRADE_DB or sqlite:///riskgrade.db.", show_default=False),
]
PolicyOption = Annotated[
    Optional[Path],
    typer.Option("--policy", help="Policy file (default: $RISKGRADE_POLICY or the shipped defaults).",
                 show_default=False),
]
ExportFormatOption = Annotated[str, typer.Option("--format", help="table, csv, json or xlsx.")]
ExportOutOption = Annotated[
    Optional[Path],
    typer.Option("--out", help="Output file (required for xlsx; csv/json default to standard output).",
                 show_default=False),
]
MlflowUriOption = Annotated[
    Optional[str],
    typer.Option("--mlflow-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db beside "
                 "the SQLite database).", show_default=False),
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
    directory: Annotated[Path, typer.Argument(
        help="Directory holding one .csv/.xlsx file per table (named after it: enterprises.csv, 企业信息.xlsx), "
             "or one such file.")],
    db: DbOption = None,
    uscc_allowlist: Annotated[
        Optional[Path],
        typer.Option(help="Text file of USCC codes accepted despite a failing check digit, one per line."),
    ] = None,
    today: Annotated[
        Optional[str], typer.Option(help="Date against which 'in the future' is judged (default: today).")
    ] = None,
    table: Annotated[Optional[str], typer.Option(
        "--table", help="The table of a single FILE whose name does not say it (e.g. 企业台账.xlsx --table "
                        "enterprises).", show_default=False)] = None,
) -> None:
    """Validate and load data files (UTF-8 or GBK, English or Chinese headers); bad rows go to the quarantine
    table, the rest loads (upsert by key)."""
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
            table=table,
        )
    _print_frame(f"Import of {directory}", summary.to_table())
    for note in summary.warnings:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    read = sum(item.rows_read for item in summary.tables)
    if read and not summary.loaded:
        raise DataError(f"every one of the {read:,} rows read from {directory} was refused; nothing was loaded "
                        f"(the reasons: riskgrade quarantine)")


@app.command()
def quarantine(
    table: Annotated[Optional[str], typer.Option("--table", help="Only the rows refused from this table.",
                     show_default=False)] = None,
    output_format: ExportFormatOption = "table",
    out: ExportOutOption = None,
    db: DbOption = None,
) -> None:
    """The rows the imports refused: file, line, column, value and reason (the whole raw row in csv/json/xlsx)."""
    from features.contract import TABLE_BY_NAME, TRUTH_TABLE
    from features.db import connect
    from features.store import quarantine_frame
    from scoring.exports import write_csv, write_json, write_xlsx

    _check_format(output_format, out, "list", db)
    known = (*TABLE_BY_NAME, TRUTH_TABLE.name)
    if table is not None and table not in known:
        raise typer.BadParameter(f"expected one of {', '.join(known)}, got {table!r}", param_hint="--table")
    frame = quarantine_frame(connect(db, create=False), table)
    frame = frame.drop(columns=["quarantine_id"])
    say = err_console.print
    if output_format == "table":
        shown = ["table_name", "source_file", "line", "column_name", "value", "reason"]
        scope = f" from {table}" if table else ""
        _print_frame(f"Quarantined{scope}: {len(frame):,} entries", frame[shown])
    elif output_format == "json":
        write_json(frame, out, what="quarantine", say=say)
    else:
        flat = frame.assign(raw=[json.dumps(r, ensure_ascii=False) if r is not None else "" for r in frame["raw"]])
        if output_format == "csv":
            write_csv(flat, out, what="quarantine", say=say)
        else:
            write_xlsx({"quarantine": flat}, out, what="quarantine", say=say)


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
    from scoring.cli.guards import check_output
    from scoring.exports import atomic_output, neutralise_formulas

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise typer.BadParameter(f"expected a .parquet or .csv file, got {out.name!r}", param_hint="--out")
    check_output(out, out.suffix.lower().lstrip("."), db_url=db)
    dates = [_parse_date(value, "--as-of") for value in as_of]
    tables = load_tables(connect(db, create=False))
    with progress_bar() as bar:
        task = bar.add_task("building features", total=None)
        matrix = build_features(tables, dates, progress=lambda message: bar.update(task, description=message))
    with atomic_output(out) as temporary:  # whole or not at all (a full disk leaves nothing behind)
        if out.suffix.lower() == ".parquet":
            matrix.to_parquet(temporary)
        else:
            neutralise_formulas(matrix.reset_index()).to_csv(temporary, encoding="utf-8-sig", index=False)
    console.print(f"{len(matrix):,} rows × {matrix.shape[1]} features written to {out}")


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
    mlflow_uri: MlflowUriOption = None,
    policy: PolicyOption = None,
) -> None:
    """Backtest, train, log to MLflow and optionally promote the risk models; print the comparison."""
    import json

    from features.db import connect, database_url
    from features.store import load_tables
    from models.config import TrainingConfig
    from models.expert import ExpertCardRules
    from models.train import train_and_evaluate
    from scoring.cli.guards import check_output
    from scoring.domain.policy import build_section, policy_from_mapping, read_policy_mapping

    if model not in ModelChoice:
        raise typer.BadParameter(f"expected one of {', '.join(ModelChoice)}, got {model!r}", param_hint="--model")
    day = _parse_date(as_of, "--as-of")
    _check_target(target)
    check_output(report, "json", db_url=db, option="--report")
    mapping, source = read_policy_mapping(policy)
    policy_from_mapping(mapping, source)  # the whole file checked ([labels] included) before hours of work
    labels = mapping.get("labels", {})
    kinds = ("expert", "scorecard", "boosting") if model == "all" else (model,)
    rules = build_section(ExpertCardRules, mapping["expert_card"], f"{source}: expert_card")
    config = build_section(TrainingConfig, mapping["training"], f"{source}: training")
    url = database_url(db)
    engine = connect(url, create=False)
    tables, sample = _training_tables(engine, url, config)
    if tables is None:
        tables = load_tables(engine, [*_contract_tables(), "truth"])
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
        sample=sample,
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
        from scoring.exports import write_json

        write_json(json.loads(json.dumps(summary, default=str)), report, what="report", say=console.print)


@app.command("train-finds")
def train_finds(
    as_of: Annotated[str, typer.Option("--as-of", help="Day of training, YYYY-MM-DD: only visits whose window "
                                       "closed before it.")],
    months: Annotated[int, typer.Option("--months", min=2, help="Months of visits to learn from.")] = 24,
    test_months: Annotated[int, typer.Option("--test-months", min=1, help="Last months held out for the "
                                             "backtest.")] = 6,
    promote: Annotated[bool, typer.Option("--promote", help="Let the model challenge the expected-finds "
                                          "champion (Poisson deviance on the same backtest).")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the metrics as JSON to FILE.json.")] = None,
    db: DbOption = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Backtest, train, log to MLflow and optionally promote the expected-finds model (hazards a visit by a given
    team finds; issue 16), registered as 'riskgrade-expected-finds' beside the risk model."""
    import json

    from features.db import connect, database_url
    from features.store import load_tables
    from models.expected_finds import train_expected_finds
    from scoring.cli.guards import check_output

    day = _parse_date(as_of, "--as-of")
    if test_months >= months:
        raise typer.BadParameter(f"must be less than --months ({months}), got {test_months}",
                                 param_hint="--test-months")
    check_output(report, "json", db_url=db, option="--report")
    url = database_url(db)
    engine = connect(url, create=False)
    tables = load_tables(engine, _contract_tables())
    try:
        result = train_expected_finds(
            tables, pd_timestamp(day), months=months, test_months=test_months,
            tracking_uri=mlflow_uri or _default_mlflow_uri(url), promote=promote,
            progress=lambda message: err_console.print(f"[dim]{message}[/]", highlight=False))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    backtest = result.backtest.reset_index()
    for column in ("poisson_deviance", "major_auc"):
        backtest[column] = backtest[column].map(lambda v: "" if v != v else f"{v:.4f}")
    _print_frame(f"Expected finds: backtest as of {day} (split {result.report['split']})", backtest)
    if result.version is not None:
        console.print(f"registered model {result.version.name!r}: version {result.version.version}",
                      highlight=False)
    if result.promotion is not None:
        console.print(("[green]promoted[/]: " if result.promotion.promoted else "[yellow]not promoted[/]: ")
                      + result.promotion.reason, highlight=False)
    if report is not None:
        from scoring.exports import write_json

        write_json(json.loads(json.dumps(result.report, default=str)), report, what="report", say=console.print)


def pd_timestamp(day: date):
    import pandas as pd

    return pd.Timestamp(day)


def _training_tables(engine, url: str, config):
    """``(tables, sample)`` of a stratified sample read partition by partition when the database holds more
    enterprises than ``[training] sample_enterprises``; ``(None, None)`` otherwise (the whole tables are read)."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM enterprises")).scalar() or 0
    if not 0 < config.sample_enterprises < n:
        return None, None
    from features.partitions import DatabaseSource
    from models.train import sample_training_tables

    return sample_training_tables(DatabaseSource(url), config.sample_enterprises, seed=config.seed)


def _check_target(target: str | None) -> None:
    from features.labels import OUTCOMES, LabelTarget

    if target is None:
        return
    try:
        LabelTarget.parse(target)
    except ValueError:
        raise UsageError(f"--target {target!r}: expected outcomes joined with '+' from {', '.join(OUTCOMES)}, "
                         f"e.g. accident+major_hazard") from None


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
            "tracking_uri", "folds", "seconds", "n_test_dates_wanted", "short_history", "sample")
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
    output_format: ExportFormatOption = "table",
    out: ExportOutOption = None,
    store: Annotated[bool, typer.Option("--store/--no-store", help="Store the plan in the database (tables plans "
                                        "and plan_items) as the next version of the period, a draft.")] = True,
    by: Annotated[Optional[str], typer.Option("--by", help="Who plans (recorded in the audit trail; default: "
                  "cli:<login name>).", show_default=False)] = None,
    db: DbOption = None,
    policy: PolicyOption = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Plan a month of inspections within caps, quiet periods, inspector limits and capacity (双随机 seeded).

    The limits are those of the first day of the period: read from the nightly run of that date when there is
    one, else computed on the fly from the database and the champion model (scoring.results.tables.current_limits).
    The plan is stored in the database (plans, plan_items) unless --no-store.
    """
    import getpass

    from features.db import connect, database_url
    from scoring.results.batch import load_policy_and_hash
    from scoring.domain.planning import capacity_frame, parse_period
    from scoring.results.plans import compute_plan, generate_plan

    _check_format(output_format, out, "plan", db)
    parse_period(period)
    rules, hashed = load_policy_and_hash(policy)
    month_capacity = None
    if capacity is not None:
        from scoring.cli.guards import read_capacity

        month_capacity = capacity_frame(read_capacity(capacity))
    url = database_url(db)
    tracking = mlflow_uri or _default_mlflow_uri(url)
    engine = connect(url, create=store)  # --no-store only reads: never creates an empty database
    if store:
        stored = generate_plan(engine, period, by=by or f"cli:{getpass.getuser()}", policy=rules,
                               policy_hash=hashed, capacity=month_capacity, seed=seed, tracking_uri=tracking)
        result = stored.plan
        err_console.print(f"plan {stored.plan_id} stored as version {stored.version} of {result.period}, a draft "
                          f"(limits: {stored.limits_source}; risk-based visits ranked by {result.ranked_by})",
                          highlight=False)
    else:
        result, _, _ = compute_plan(engine, period, policy=rules, capacity=month_capacity, seed=seed,
                                    tracking_uri=tracking)
    write_plan(result, output_format, out)


@app.command("plan-score")
def plan_score(
    file: Annotated[Path, typer.Argument(help="Draft plan (CSV, UTF-8 or GBK): enterprise_id, date, inspectors "
                                         "(ids or names, ';' or '、' between them); optional kind.")],
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    db: DbOption = None,
    mlflow_uri: MlflowUriOption = None,
) -> None:
    """Expected finds of a draft plan a planner edited by hand: per visit (for its enterprise, date and
    inspectors) and in total, from the expected-finds champion (riskgrade train-finds --promote)."""
    import pandas as pd

    from features.contract import TABLES
    from features.db import connect, database_url
    from features.store import load_tables
    from models import registry
    from models.expected_finds import score_draft

    if output_format not in ("table", "json"):
        raise typer.BadParameter(f"expected table or json, got {output_format!r}", param_hint="--format")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise UsageError(f"{file}: {_os_error(exc)}") from None
    import io

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030", errors="strict")
    try:
        draft = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UsageError(f"{file}: not a CSV file ({exc})") from None
    url = database_url(db)
    engine = connect(url, create=False)
    champion = registry.load_champion(mlflow_uri or _default_mlflow_uri(url), model_name=registry.FINDS_MODEL_NAME)
    tables = load_tables(engine, [t.name for t in TABLES])
    try:
        scored = score_draft(champion.model, tables, draft)
    except ValueError as exc:
        raise UsageError(f"{file}: {exc}") from None
    total = float(scored["expected_finds"].sum(skipna=True))
    if output_format == "json":
        out = scored.assign(date=scored["date"].dt.strftime("%Y-%m-%d"))
        records = json.loads(out.to_json(orient="records", force_ascii=False))
        typer.echo(json.dumps({"model": {"name": champion.name, "version": champion.version}, "visits": records,
                               "total_expected_finds": total, "n_visits": len(scored)}, ensure_ascii=False))
        return
    shown = scored.assign(date=scored["date"].dt.strftime("%Y-%m-%d"),
                          expected_finds=scored["expected_finds"].map(lambda v: "" if v != v else f"{v:.3f}"))
    _print_frame(f"Draft plan {file.name}: expected finds (model {champion.name} version {champion.version})",
                 shown[["enterprise_id", "date", "kind", "inspectors", "expected_finds"]])
    console.print(f"total expected finds: {total:.2f} over {len(scored)} visits", highlight=False)


def _check_format(output_format: str, out: Path | None, what: str, db: str | None = None) -> None:
    from scoring.cli.guards import SUFFIX_FORMATS, check_output

    if output_format not in PlanFormat:
        raise typer.BadParameter(f"expected one of {', '.join(PlanFormat)}, got {output_format!r}",
                                 param_hint="--format")
    if output_format == "xlsx" and out is None:
        raise typer.BadParameter(f"an Excel {what} needs --out FILE.xlsx", param_hint="--out")
    written = "csv" if output_format == "table" else output_format  # the table format saves CSV with --out
    said = SUFFIX_FORMATS.get(out.suffix.lower()) if out is not None else None
    hint = (f"use --format {said}, or name it {out.with_suffix('.' + written).name}"
            if out is not None and said in PlanFormat else None)
    check_output(out, written, db_url=db, suffix_hint=hint)


def write_plan(result, output_format: str, out: Path | None, *, title: str | None = None,
               max_rows: int | None = None) -> None:
    """A plan in one of :data:`PlanFormat` (shared by ``plan`` and ``demo``; ``max_rows`` cuts the terminal
    table only)."""
    import pandas as pd

    from scoring.exports import write_csv, write_json, write_xlsx

    say = err_console.print
    items = result.items
    if output_format == "table":
        shown = items if max_rows is None else items.head(max_rows)
        table = pd.DataFrame({
            "#": shown["priority"],
            "enterprise": shown["enterprise_id"],
            "name": shown["name"],
            "tier": shown["final_tier"],
            "dept": shown["departments"],
            "kind": shown["kind"],
            "window": shown["window_start"].dt.strftime("%m-%d") + "~" + shown["window_end"].dt.strftime("%m-%d"),
            "insp": shown["n_inspectors"],
            "why": shown["reason"],
        })
        _print_frame(title or f"Inspection plan {result.period} (seed {result.seed}; full columns with --format "
                              f"csv/json/xlsx)", table, max_width={"why": 60, "name": 16})
        _print_frame("Visits by department", result.summary())
        if len(result.unmet):
            _print_frame("Mandatory visits that did not fit", result.unmet)
        if out is not None:
            write_csv(items, out, what="plan", say=say)
    elif output_format == "csv":
        write_csv(items, out, what="plan", say=say)
    elif output_format == "json":
        write_json(result.to_json(), out, what="plan", say=say)
    else:
        write_xlsx({"plan": items, "summary": result.summary(), "draws": result.draws, "unmet": result.unmet}, out,
                   what="plan", say=say)


# ---------------------------------------------------------------------------------------------
# nightly, rank, explain
# ---------------------------------------------------------------------------------------------


class _NightlyReporter:
    """Batch progress: a Rich bar over the stages on a terminal, plain time-stamped log lines otherwise;
    warnings always printed."""

    def __init__(self, console_: Console):
        self.console = console_
        self.terminal = console_.is_terminal
        self.bar = None

    def __enter__(self):
        from scoring.results.batch import STAGES

        if self.terminal:
            self.bar = progress_bar()
            self.bar.__enter__()
            self.task = self.bar.add_task("nightly", total=len(STAGES))
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def __call__(self, stage: str, event: str, message: str) -> None:
        if event == "warning":
            target = self.bar.console if self.bar is not None else self.console
            target.print(f"[bold yellow]warning:[/] {message}", highlight=False)
        elif self.bar is not None:
            if event == "start":
                self.bar.update(self.task, description=f"{stage}: {message}")
            else:
                self.bar.advance(self.task)
        elif event == "done":
            from datetime import datetime

            self.console.print(f"{datetime.now():%Y-%m-%d %H:%M:%S} nightly {stage}: {message}", highlight=False,
                               soft_wrap=True)


def _nightly(engine, day: date, policy: Optional[Path], tracking: Optional[str], run_nightly=None):
    import signal

    if run_nightly is None:
        from scoring.results.batch import run_nightly

    def terminated(signum, frame):  # SIGTERM: fail the run cleanly (marked failed, lock released), exit 143
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread (e.g. called from a server): leave signals alone
        previous = None
    try:
        with _NightlyReporter(err_console) as reporter:
            return run_nightly(engine, day, policy_file=policy, tracking_uri=tracking, progress=reporter)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _print_run(run) -> None:
    import pandas as pd

    from scoring.domain.tiers import TIER_LABELS_ZH

    counts = run.counts
    table = pd.DataFrame({
        "tier": ["high", "general", "low"],
        "label": [TIER_LABELS_ZH[t] for t in ("high", "general", "low")],
        "enterprises": [counts.get(f"n_{t}", 0) for t in ("high", "general", "low")],
    })
    _print_frame(f"Nightly run {run.run_id} as of {run.as_of}: {counts.get('n_scored', 0):,} enterprises scored "
                 f"with {run.model}", table)
    console.print(f"vetoes (一票否决) {counts.get('n_vetoes', 0):,} · special assistance (专项帮扶) "
                  f"{counts.get('n_special_assistance', 0):,} · manual overrides {counts.get('n_manual', 0):,} · "
                  f"tier changes {counts.get('n_changes', 0):,}"
                  + (f" since {run.previous_as_of}" if run.previous_as_of else " (first run)")
                  + f" · policy {run.policy_hash} · {run.duration_seconds:.1f} s", highlight=False)


@app.command()
def nightly(
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="As-of date, YYYY-MM-DD (default: today): "
                     "features use only what was recorded before it.", show_default=False)] = None,
    db: DbOption = None,
    mlflow_uri: MlflowUriOption = None,
    policy: PolicyOption = None,
    allow_future: Annotated[bool, typer.Option("--allow-future", help="Accept an --as-of more than \\[nightly] "
                            "max_future_days after today.")] = False,
    dask: Annotated[Optional[str], typer.Option("--dask", help="Run on a Dask cluster: the scheduler's address "
                    "(tcp://host:8786) or 'local' (one worker per core); the database must be PostgreSQL.",
                    show_default=False)] = None,
    partitions: Annotated[Optional[int], typer.Option("--partitions", min=1, help="With --dask: how many "
                          "enterprise_key ranges (default: one per 50,000 enterprises).", show_default=False)] = None,
) -> None:
    """Score every enterprise as of a date and store scores, tiers, reasons and limits (one transaction).

    Re-running a date replaces its results; a second run at the same time is refused (exit 6). Without a champion
    model the policy's expert card is used, with a warning. With an expected-finds champion (riskgrade train-finds
    --promote) each enterprise's expected hazards for a typical team are stored too; without one they are left
    empty, with a warning. An --as-of more than [nightly] max_future_days after
    today is refused (exit 2) unless --allow-future. With --dask the same run is computed by the cluster's workers,
    partition by partition, and made current in one transaction.
    """
    from features.db import connect, database_url
    from scoring.cli.guards import check_future
    from scoring.domain.policy import load_policy

    day = _parse_date(as_of, "--as-of") if as_of else date.today()
    check_future(day, date.today(), load_policy(policy).nightly.max_future_days, allow_future=allow_future)
    url = database_url(db)
    if partitions is not None and dask is None:
        raise UsageError("--partitions needs --dask (the single-machine run does not partition)")
    if dask is not None:
        from scoring.cli.dask import nightly_on_dask

        run = nightly_on_dask(url, day, policy, mlflow_uri, dask, partitions, _nightly)
    else:
        run = _nightly(connect(url), day, policy, mlflow_uri or _default_mlflow_uri(url))
    _print_run(run)


def _rank_display(frame):
    """The ranked list for a terminal: the columns that fit (every column with --format csv/json/xlsx), sector and
    reasons in Chinese."""
    import pandas as pd

    from features.contract import SECTOR_BY_CODE

    def reasons(items):
        return "\n".join(f"{r.get('text_zh')}" + ("" if r.get("value") is None else f" = {_short(r['value'])}")
                         for r in items or [])

    table = pd.DataFrame({
        "rank": frame["rank"],
        "id": frame["enterprise_id"],
        "name": frame["name"],
        "township": frame["township"],
        "sector": frame["sector"].map(lambda s: SECTOR_BY_CODE[s].label_zh if s in SECTOR_BY_CODE else s),
        "score": frame["score"].map(lambda v: f"{v:.4f}"),
        "tier": frame["tier"],
        "override": frame["override"],
        "reasons": [reasons(r) for r in frame["reasons"]],
        "visits": [f"{u}/{c}" for u, c in zip(frame["visits_used"], frame["yearly_cap"], strict=True)],
        "next visit": frame["next_allowed_visit"].dt.strftime("%Y-%m-%d"),
    })
    if console.width < 120:  # a narrow terminal: the essentials, the first reason only
        table["reasons"] = table["reasons"].str.split("\n").str[0]
        table = table[["rank", "id", "name", "score", "tier", "reasons", "next visit"]]
    return table


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


_RANK_WIDTHS = {"override": 30, "reasons": 36, "name": 14, "township": 8}


def _rank_flat(frame):
    """The ranked list for Excel: reasons as one bilingual text cell (as the workbench exports it)."""
    from scoring.results.ranking import export_frame

    return export_frame(frame)


def _write_rank_csv(rows, out, say) -> None:
    """The ranked list's CSV, from the database's rows as the workbench writes it (the same bytes)."""
    from scoring.exports import write_csv_rows
    from scoring.results.ranking import RANK_COLUMNS, export_rows

    write_csv_rows(RANK_COLUMNS, export_rows(rows), out, what="ranked list", say=say)


@app.command()
def rank(
    tier: Annotated[Optional[str], typer.Option("--tier", help="Only this final tier: high, general or low.",
                    show_default=False)] = None,
    township: Annotated[Optional[str], typer.Option("--township", help="Only this township (乡镇/街道).",
                        show_default=False)] = None,
    sector: Annotated[Optional[str], typer.Option("--sector", help="Only this sector (code or Chinese label).",
                      show_default=False)] = None,
    search: Annotated[Optional[str], typer.Option("--search", help="Part of the name, or the whole enterprise id "
                      "or USCC.", show_default=False)] = None,
    changed: Annotated[bool, typer.Option("--changed", help="Only enterprises whose final tier changed in this "
                       "run.")] = False,
    override: Annotated[Optional[str], typer.Option("--override", help="Only enterprises held by an override: any, "
                        "manual, veto or hold (hysteresis).", show_default=False)] = None,
    sort: Annotated[str, typer.Option("--sort", help="rank, probability, points, name, township, sector or "
                    "visits.")] = "rank",
    descending: Annotated[bool, typer.Option("--descending", help="Sort in descending order.")] = False,
    top: Annotated[Optional[int], typer.Option("--top", min=1, help="Only the first N.", show_default=False)] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="The nightly run of this date (default: the "
                     "latest succeeded run not after today).", show_default=False)] = None,
    output_format: ExportFormatOption = "table",
    out: ExportOutOption = None,
    db: DbOption = None,
) -> None:
    """The ranked list planners read: highest risk first (final tier, then calibrated probability)."""
    from features.db import connect
    from scoring.exports import write_json, write_xlsx
    from scoring.results.ranking import list_frame, ranked_rows

    _check_format(output_format, out, "list", db)
    tier = tier.strip() if tier is not None else None
    if tier is not None and tier not in ("high", "general", "low"):
        raise typer.BadParameter(f"expected high, general or low, got {tier!r}", param_hint="--tier")
    day = _parse_date(as_of.strip(), "--as-of") if as_of else None
    engine = connect(db, create=False)
    run, rows = ranked_rows(engine, as_of=day, tier=tier, township=township, sector=sector, top=top,
                            search=search, changed=changed, override=override, sort=sort, descending=descending)
    say = err_console.print
    if output_format == "csv":
        _write_rank_csv(rows, out, say)
        return
    frame = list_frame(rows)
    if output_format == "table":
        filters = ", ".join(f"{k} {v}" for k, v in (("tier", tier), ("township", township), ("sector", sector),
                                                     ("search", search), ("changed", changed or None),
                                                     ("override", override), ("top", top)) if v is not None)
        _print_frame(f"Ranked list as of {run['as_of']} (run {run['run_id']}, {run['n_scored']:,} scored"
                     + (f"; {filters}" if filters else "") + f"): {len(frame):,} enterprises",
                     _rank_display(frame), max_width=_RANK_WIDTHS)
        if out is not None:
            _write_rank_csv(rows, out, say)
    elif output_format == "json":
        write_json(frame, out, what="ranked list", say=say)
    else:
        write_xlsx({"ranked list": _rank_flat(frame)}, out, what="ranked list", say=say)


@app.command()
def explain(
    enterprise_id: Annotated[str, typer.Argument(help="The enterprise to explain.")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="The nightly run of this date (default: the "
                     "latest succeeded run not after today).", show_default=False)] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    db: DbOption = None,
) -> None:
    """One enterprise: its current tier and why, its supervision limits, tier history and last 12 months of records."""
    from features.db import connect
    from scoring.exports import write_json
    from scoring.results.ranking import enterprise_report

    if output_format not in ("table", "json"):
        raise typer.BadParameter(f"expected table or json, got {output_format!r}", param_hint="--format")
    day = _parse_date(as_of, "--as-of") if as_of else None
    engine = connect(db, create=False)
    report = enterprise_report(engine, enterprise_id.strip(), as_of=day)
    inspectors = _explain_inspectors(engine, report)
    if output_format == "json":
        from scoring.exports import json_records, json_value

        out = report.to_json()
        if inspectors is not None:
            out["inspectors"] = {**{k: json_value(v) for k, v in inspectors.items() if k != "visits"},
                                 "visits": json_records(inspectors["visits"])}
        write_json(out, None)
        return
    _print_report(report)
    if inspectors is not None:
        visits = inspectors["visits"]
        shown = visits.assign(inspected_on=visits["inspected_on"].dt.strftime("%Y-%m-%d"),
                              team_stringency=visits["team_stringency"].map(lambda v: "" if v != v else f"{v:.2f}"))
        _print_frame("Who inspected (执法人员) and how strict they are (stringency, 1 = typical)",
                     shown[["inspected_on", "kind", "names", "team_stringency", "hazards_found"]])
        mean = inspectors["mean_team_stringency"]
        if mean == mean:
            console.print(f"inspectors' contribution: {inspectors['hazards_found']} hazards found by teams of mean "
                          f"stringency {mean:.2f}; typical teams would have found about "
                          f"{inspectors['typical_team_hazards']:.1f}", highlight=False)


def _explain_inspectors(engine, report) -> dict | None:
    """Who inspected the enterprise in the three years before the report's date, with their stringency
    (features.visits.enterprise_inspectors); None when the database records no team."""
    from features.store import load_tables
    from features.visits import enterprise_inspectors

    frames = load_tables(engine, ["enterprises", "inspections", "hazards", "inspectors", "inspection_inspectors"])
    return enterprise_inspectors(frames, report.enterprise["enterprise_id"], report.as_of)


def _print_report(report) -> None:
    import pandas as pd

    from scoring.results.ranking import reasons_text
    from scoring.domain.supervision import MODES

    e, c = report.enterprise, report.current
    console.rule(f"{e.get('enterprise_id')} {e.get('name') or ''}")
    console.print(f"sector {e.get('sector', '')} {e.get('sector_zh', '')} · township {e.get('township') or '—'} · "
                  f"employees {e.get('employees') if e.get('employees') is not None else '—'}", highlight=False)
    if c is None:
        console.print("[yellow]not scored by any nightly run[/]" + (
            f" (latest run: {report.run['as_of']})" if report.run else ": run riskgrade nightly"), highlight=False)
    else:
        points = "—" if c["points"] is None or c["points"] != c["points"] else f"{c['points']:.1f}"
        console.print(f"[bold]{c['final_tier']} {c['tier_zh']}[/] as of {report.as_of} (run {report.run['run_id']}, "
                      f"{c['model_version']}): probability {c['probability']:.4f}, points {points}, rank "
                      f"{c['rank']:,} of {report.n_scored:,} · model tier {c['model_tier']}", highlight=False)
        console.print("[bold]why[/]", highlight=False)
        for line in (reasons_text(c["reasons"]) or "no risk-raising feature").split("; "):
            console.print(f"  {line}", highlight=False)
        if c.get("eligibility") and c["model_tier"] == "low":
            console.print(f"  not eligible for low: {c['eligibility']}", highlight=False)
        if c.get("override_cause"):
            console.print(f"  overrides: {c['override_cause']}", highlight=False)
        if c.get("special_assistance"):
            console.print("  special assistance 专项帮扶: yes", highlight=False)
        def day(v):
            return "—" if v is None or v != v or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d")
        console.print(f"[bold]supervision[/] {c['mode']} {MODES.get(c['mode'], '')} · yearly cap {c['yearly_cap']} "
                      f"({c['class_basis'] or c['cap_class']}) · visits used {c['visits_used']} · next allowed visit "
                      f"{day(c['next_allowed_visit'])} · floor due {day(c['floor_due_on'])} · follow-up due "
                      f"{day(c['followup_due_on'])} · open major hazards {c['open_major_hazards']}", highlight=False)
        console.print(f"[bold]expected finds 预计发现隐患[/] {expected_finds_text(c)}", highlight=False)
    if len(report.manual_overrides):
        _print_frame("Manual overrides in force", report.manual_overrides[
            ["override_id", "tier", "reason", "created_by", "valid_from", "valid_until"]])
    if len(report.history):
        _print_frame("Tier history (periods of equal final tier)", report.history)
    if len(report.changes):
        _print_frame("Tier changes", report.changes[["as_of", "from_tier", "to_tier", "cause"]],
                     max_width={"cause": 80})
    for name, frame in report.events.items():
        title = f"{name} in the 12 months before {report.as_of} ({len(frame)})"
        if not len(frame):
            console.print(f"[dim]{name}: none in the 12 months before {report.as_of}[/]", highlight=False)
            continue
        if name == "hazards":  # dozens per inspection: one line per day and level
            frame = _hazards_by_day(frame, pd.Timestamp(report.as_of))
            title += ", by day found"
        if len(frame) > _EVENT_ROWS:
            title += f"; the latest {_EVENT_ROWS} shown, all with --format json"
        _print_frame(title, frame.head(_EVENT_ROWS))


_EVENT_ROWS = 25


def expected_finds_text(row) -> str:
    """The stored expected finds of one visit by a typical team (scoring.results.batch.typical_team_finds), or why
    there are none."""
    total, major = row.get("expected_hazards"), row.get("expected_major_hazards")
    if total is None or total != total:
        return ("— (no expected-finds model was registered for this run: riskgrade train-finds --as-of DATE "
                "--promote)")
    kind = "focused" if row.get("final_tier") == "high" else "routine"
    text = f"{total:.2f} hazards per {kind} visit by a typical team"
    if major is not None and major == major:
        text += f" (general 一般 {max(total - major, 0.0):.2f}, major 重大 {major:.2f})"
    return text + f" · {row.get('finds_model_version') or ''}".rstrip(" ·")


def _hazards_by_day(hazards, as_of):
    import pandas as pd

    frame = hazards.assign(
        found_on=pd.to_datetime(hazards["found_on"]), rectify_by=pd.to_datetime(hazards["rectify_by"]),
        rectified_on=pd.to_datetime(hazards["rectified_on"]))
    frame["open"] = frame["rectified_on"].isna() | (frame["rectified_on"] >= as_of)
    frame["late"] = (frame["rectified_on"] > frame["rectify_by"]).fillna(False) | (
        frame["open"] & (frame["rectify_by"] < as_of).fillna(False))
    grouped = frame.groupby(["found_on", "level"], sort=False).agg(
        hazards=("level", "size"), rectified_late_or_overdue=("late", "sum"), still_open=("open", "sum"),
        categories=("category", lambda c: ", ".join(sorted(set(c.dropna())))))
    grouped = grouped.reset_index().sort_values(["found_on", "level"], ascending=[False, False])
    grouped["found_on"] = grouped["found_on"].dt.strftime("%Y-%m-%d")
    return grouped.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


def _train_demo(engine, as_of, kinds, mapping, source, labels, mlflow_uri):
    from features.store import load_tables
    from models.config import TrainingConfig
    from models.expert import ExpertCardRules
    from models.train import train_and_evaluate
    from scoring.domain.policy import build_section

    return train_and_evaluate(
        load_tables(engine, [*_contract_tables(), "truth"]), as_of, kinds,
        expert_rules=build_section(ExpertCardRules, mapping["expert_card"], f"{source}: expert_card"),
        config=build_section(TrainingConfig, mapping["training"], f"{source}: training"),
        horizon_days=int(labels["horizon_days"]), target=str(labels["target"]),
        exclude_road_traffic=bool(labels["exclude_road_traffic"]), tracking_uri=mlflow_uri, promote=True,
        progress=lambda message: err_console.print(f"[dim]{message}[/]", highlight=False),
    )


class _dropping_lines:
    """Standard error without the lines starting with one of ``prefixes`` (Rich's error console included)."""

    def __init__(self, prefixes: tuple[str, ...]):
        self.prefixes = prefixes
        self.dropped = False

    def __enter__(self):
        self.original = sys.stderr
        sys.stderr = self
        return self

    def __exit__(self, *exc):
        sys.stderr = self.original
        return False

    def write(self, text: str) -> int:
        if text == "\n" and self.dropped:  # print() writes the line and its end separately
            self.dropped = False
            return len(text)
        lines = text.splitlines(keepends=True)
        kept = "".join(line for line in lines if not line.startswith(self.prefixes))
        self.dropped = bool(lines) and lines[-1].startswith(self.prefixes) and not lines[-1].endswith("\n")
        return self.original.write(kept) if kept else len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self):
        return self.original.encoding


def _quiet_mlflow() -> None:
    """MLflow's own INFO lines and its pickle-format warning say nothing the demo's output does not."""
    import os
    import logging
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    import mlflow  # noqa: F401  (configures its loggers on import: quieten them afterwards)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=FutureWarning)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo world, riskgrade.db and mlflow.db go.")] = Path("."),
    enterprises: Annotated[int, typer.Option(min=200, help="Enterprises in the synthetic world.")] = 2000,
    years: Annotated[int, typer.Option(min=5, help="Years of history (training needs at least 5 here: one of "
                     "warm-up, one of outcomes, and quarterly as-of dates before and between the 3 test dates).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the world and the double-random draw.")] = 2026,
    models: Annotated[str, typer.Option(help="Model kinds to train: expert, scorecard, boosting or all.")] = "all",
    top: Annotated[int, typer.Option(min=1, help="Rows of the ranked list to show.")] = 15,
) -> None:
    """End to end on the embedded SQLite database: world → import → train and promote → nightly → ranked list → plan
    → a workbench admin account with a random password, and the riskgrade serve line to open it."""
    import os
    import time
    from datetime import date as date_

    import pandas as pd

    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory
    from scoring.results.batch import load_policy_and_hash
    from scoring.domain.planning import plan_inspections
    from scoring.domain.policy import read_policy_mapping
    from scoring.results.plans import source_run_id
    from scoring.results.ranking import ranked_list
    from scoring.results.tables import current_limits, store_plan

    if models not in ModelChoice:
        raise typer.BadParameter(f"expected one of {', '.join(ModelChoice)}, got {models!r}", param_hint="--models")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _quiet_mlflow()
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    start = date_(2021, 1, 1)
    # 1 December of the last simulated year: the batch runs the night before the month and the planners plan
    # December, while the world's last month still lies ahead of the as-of date (so nothing is cut short).
    as_of = date_(start.year + years - 1, 12, 1)
    world_dir = workdir / "demo_world"
    db_url = f"sqlite:///{(workdir / 'riskgrade.db').resolve()}"
    mlflow_uri = f"sqlite:///{(workdir / 'mlflow.db').resolve()}"

    console.rule(f"1. synthetic world: {enterprises:,} enterprises × {years} years (seed {seed})")
    with progress_bar() as bar:
        task = bar.add_task("simulating months", total=years * 12)
        tables = generate_world(enterprises, years, seed, start=start,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    write_world(tables, world_dir)
    console.print(", ".join(f"{name} {len(frame):,}" for name, frame in tables.items() if name != "truth")
                  + f" → {world_dir}", highlight=False)

    console.rule("2. import into the embedded database")
    engine = connect(db_url)
    summary = import_directory(engine, world_dir, today=date_(start.year + years, 1, 1))  # the world's end
    _print_frame(f"Imported into {db_url}", summary.to_table())

    console.rule(f"3. train, backtest and promote the champion (training as of {as_of})")
    mlflow_lines = ("Successfully registered model", "Registered model", "Created version")
    mapping, source = read_policy_mapping(None)
    labels = mapping["labels"]
    kinds = ("expert", "scorecard", "boosting") if models == "all" else (models,)
    with _dropping_lines(mlflow_lines):  # MLflow prints these itself, past its loggers
        trained = _train_demo(engine, as_of, kinds, mapping, source, labels, mlflow_uri)
    comparison = trained.comparison().reset_index()
    for column in comparison.columns[1:]:
        comparison[column] = comparison[column].map(lambda v: "" if v is None or v != v else f"{v:.4f}")
    _print_frame(f"Backtest ({len(trained.test_dates)} test dates, horizon {trained.horizon_days} days)", comparison)
    if trained.promotion is not None:
        colour = "green" if trained.promotion.promoted else "yellow"
        console.print(f"[{colour}]{trained.promotion.reason}[/]", highlight=False)

    console.rule(f"4. nightly batch as of {as_of}")
    run = _nightly(engine, as_of, None, mlflow_uri)
    _print_run(run)

    console.rule(f"5. top {top} of the ranked list (riskgrade rank --top {top})")
    _, frame = ranked_list(engine, as_of=as_of, top=top)
    _print_frame(f"Highest risk first, as of {as_of}", _rank_display(frame),
                 max_width=_RANK_WIDTHS)

    period = f"{as_of:%Y-%m}"
    console.rule(f"6. inspection plan for {period} (riskgrade plan --period {period})")
    policy, hashed = load_policy_and_hash(None)
    limits = current_limits(engine, pd.Timestamp(period + "-01").date(), policy, tracking_uri=mlflow_uri)
    result = plan_inspections(limits, None, period, supervision=policy.supervision, planning=policy.planning,
                              seed=seed)
    run_id = source_run_id(limits)
    plan_id = store_plan(engine, result, as_of=pd.Timestamp(period + "-01").date(), source_run_id=run_id,
                         limits_source=f"nightly run {run_id}" if run_id is not None else "computed on the fly",
                         policy_hash=hashed)
    shown = result.items.head(top)
    write_plan(result, "table", None, max_rows=top,
               title=f"Plan {plan_id} for {period}: first {len(shown)} of {len(result.items)} visits (seed {seed})")

    console.rule("7. workbench account")
    username, password = _demo_admin(engine, policy)
    console.print(f"admin account [bold]{username}[/], password [bold]{escape(password)}[/] (random, shown only "
                  f"this once: write it down, or set another with riskgrade users set-password {username} --db "
                  f"{db_url})", highlight=False, soft_wrap=True)

    console.rule("done")
    console.print(f"{time.perf_counter() - began:.0f} s. Database {db_url}, MLflow {mlflow_uri}. Try: riskgrade rank "
                  f"--db {db_url} --tier high --format xlsx --out high.xlsx · riskgrade explain "
                  f"{frame['enterprise_id'].iloc[0]} --db {db_url}", highlight=False)
    console.print(f"Open the workbench (then http://127.0.0.1:8000/ in a browser, log in as {username}):",
                  highlight=False)
    console.print(f"  riskgrade serve --db {db_url}", highlight=False, soft_wrap=True)


DEMO_ADMIN = "demo-admin"


def _demo_admin(engine, policy) -> tuple[str, str]:
    """The demo's admin account with a fresh random password (created, or given the new password when a previous
    demo in the same directory made it): there is no default password anywhere."""
    import secrets

    from scoring.results.accounts import add_account, get_account, set_password

    password = secrets.token_urlsafe(18)  # 24 characters, longer than [web] password_min_length
    length = policy.web.password_min_length
    if get_account(engine, DEMO_ADMIN) is None:
        add_account(engine, username=DEMO_ADMIN, role="admin", password=password, by="riskgrade demo",
                    min_password_length=length)
    else:
        set_password(engine, DEMO_ADMIN, password, by="riskgrade demo", min_password_length=length)
    return DEMO_ADMIN, password


@app.command()
def simulate(
    months: Annotated[int, typer.Option("--months", min=1, help="Months the planner runs against the truth.")] = 12,
    enterprises: Annotated[int, typer.Option("--enterprises", min=100, help="Enterprises in the world.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world, the draws and the training.")] = 1,
    history_months: Annotated[int, typer.Option("--history-months", min=24,
                              help="Months of today's practice simulated before the planner takes over.")] = 36,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Several seeds, e.g. 1,2,3,4: every arm's mean "
                     "and range over them, and the targets (replaces --seed).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    policy: PolicyOption = None,
) -> None:
    """Closed-loop check on a synthetic world: the planner's hazards found per visit vs random and equal frequency.

    Same caps, quiet periods and capacity for every allocation rule; published anchor ≈2× (Hino et al. 2018).
    """
    import json

    from scoring.domain.policy import load_policy
    from scoring.domain.simulate import closed_loop

    if output_format not in ("table", "json"):
        raise typer.BadParameter(f"expected table or json, got {output_format!r}", param_hint="--format")
    if seeds is not None:
        try:
            chosen = [int(part) for part in seeds.split(",") if part.strip()]
        except ValueError:
            raise typer.BadParameter(f"expected whole numbers separated by commas, got {seeds!r}",
                                     param_hint="--seeds") from None
        if not chosen or len(set(chosen)) != len(chosen):
            raise typer.BadParameter(f"expected distinct seeds, got {seeds!r}", param_hint="--seeds")
        from scoring.domain.simulate import across_seeds

        rules = load_policy(policy)
        results = {}
        for one in chosen:
            err_console.print(f"[dim]seed {one}[/]", highlight=False)
            results[one] = closed_loop(rules, enterprises=enterprises, history_months=history_months,
                                       months=months, seed=one,
                                       progress=lambda message: err_console.print(f"[dim]{message}[/]",
                                                                                  highlight=False))
        combined = across_seeds(results)
        if output_format == "json":
            sys.stdout.write(json.dumps(combined, ensure_ascii=False, indent=2) + "\n")
            return
        import pandas as pd

        rows = [{"arm": arm, **{metric: "" if entry is None else
                                f"{entry['mean']:.3f} ({entry['min']:.3f}–{entry['max']:.3f})"
                                for metric, entry in values.items()}} for arm, values in combined["arms"].items()]
        _print_frame(f"Closed loop over seeds {', '.join(map(str, chosen))}: mean (min–max)", pd.DataFrame(rows))
        for name, target in combined["targets"].items():
            console.print(f"• {name}: {target['value']} → {target['met']}", highlight=False)
        return
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


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (self-contained: charts embedded).")],
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Describe the nightly run of this date (the latest "
                     "succeeded run on or before it; default: the latest run).", show_default=False)] = None,
    db: DbOption = None,
    mlflow_uri: MlflowUriOption = None,
    policy: PolicyOption = None,
) -> None:
    """The monitoring report for the bureau's leaders (HTML): tiers by township and sector, migration, score and
    feature stability (PSI), the champion's backtest, events captured by the high tier, fairness checks.

    Its figures are also stored in the database (monitoring_runs, monitoring_metrics); the next report shows what
    changed since this one.
    """
    import os
    import warnings

    from features.db import connect, database_url
    from scoring.cli.guards import check_output
    from scoring.domain.policy import load_policy
    from scoring.report import SECTIONS, generate_report

    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"expected an .html file, got {out.name!r}", param_hint="--out")
    check_output(out, "html", db_url=db)
    day = _parse_date(as_of, "--as-of") if as_of else None
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    url = database_url(db)
    rules = load_policy(policy)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        result = generate_report(connect(url, create=False), out, as_of=day, policy=rules,
                                 tracking_uri=mlflow_uri or _default_mlflow_uri(url))
    summary = result.facts.get("summary", {})
    counts = summary.get("counts") or {}
    console.print(f"monitoring report as of {result.as_of} (nightly run {result.run['run_id']}) written to {out}: "
                  f"{len(SECTIONS)} sections, {len(result.figures)} charts", highlight=False, soft_wrap=True)
    console.print(f"high {counts.get('high', 0):,} · general {counts.get('general', 0):,} · low "
                  f"{counts.get('low', 0):,} · score PSI "
                  + ("—" if summary.get("score_psi") is None else f"{summary['score_psi']:.3f}")
                  + f" · features with significant drift {len(summary.get('significant_features') or [])} · "
                  f"fairness flags {summary.get('fairness_flags', 0)} · stored as monitoring run "
                  f"{result.monitoring_run_id}" + (f" (compared with {result.previous_monitoring['as_of']})"
                                                   if result.previous_monitoring else ""), highlight=False,
                  soft_wrap=True)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)


def _print_frame(title: str, frame, **options) -> None:
    from scoring.exports import print_frame

    print_frame(console, title, frame, **options)


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
        _fail(str(exc), next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 1))
    except OSError as exc:  # the machine, not the data: a full disk, a file gone or not permitted
        from scoring.exports import DISK_FULL_ERRNOS

        _fail(_os_error(exc), 8 if exc.errno in DISK_FULL_ERRNOS else 1)
    except Exception as exc:
        failed = _database_failure(exc)
        if failed is None:
            raise
        _fail(*failed)


def _fail(message: str, code: int) -> None:
    err_console.print("[bold red]error:[/]", escape(message), highlight=False, soft_wrap=True)
    sys.exit(code)


def _os_error(exc: OSError) -> str:
    from scoring.exports import DISK_FULL_ERRNOS, DISK_FULL_HINT

    where = f" {exc.filename}" if exc.filename else ""
    reason = exc.strerror or str(exc)
    if exc.errno in DISK_FULL_ERRNOS:
        return f"could not write{where}: {reason} ({DISK_FULL_HINT})"
    return f"{reason}:{where}" if where else reason


def _database_failure(exc: BaseException) -> tuple[str, int] | None:
    """A database error that reached the top (one line and exit 7, 8 for a full disk), or None for a bug."""
    if "sqlalchemy" not in sys.modules:
        return None
    import sqlalchemy as sa

    if not isinstance(exc, sa.exc.OperationalError):
        return None
    first = next((line.strip() for line in str(exc.orig).splitlines() if line.strip()), type(exc.orig).__name__)
    if "disk is full" in first or "No space left" in first:
        from scoring.exports import DISK_FULL_HINT

        return f"the database could not be written: {first} ({DISK_FULL_HINT})", 8
    if "locked" in first:
        return (f"the database stayed locked by another job past the wait: {first}; run the command again when "
                f"it has finished", 7)
    return f"database error: {first}", 7



from scoring.cli.users import app as _users_app  # noqa: E402  (command groups in modules of their own)
app.add_typer(_users_app, name="users")
from scoring.cli.serve import serve as _serve  # noqa: E402
app.command("serve")(_serve)
from scoring.cli.overrides import app as _overrides_app  # noqa: E402
app.add_typer(_overrides_app, name="override")
from scoring.cli.dask import export_parquet as _export_parquet  # noqa: E402
app.command("export-parquet")(_export_parquet)
