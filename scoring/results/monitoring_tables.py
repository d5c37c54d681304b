"""Monitoring results in the database (on :data:`features.schema.metadata`), so that a later report compares.

- ``monitoring_runs`` — one row per monitoring report: the as-of date of the nightly run it describes, that run's
  id and model, the champion and where its reference distribution came from, the earlier run whose outcomes were
  evaluated, the previous monitoring run compared with, and a few headline figures (``summary``).
- ``monitoring_metrics`` — one row per figure: ``section`` (``tiers``, ``migration``, ``stability``,
  ``segment_stability``, ``backtest``, ``capture``, ``fairness``), ``metric`` (``psi``, ``high_rate``, …),
  ``feature`` (a variable, or ``""``), ``group_by`` / ``group_value`` (``township`` / ``东城街道``, ``tier`` /
  ``high``…, or ``""``), ``value``, ``band`` (``stable`` / ``moderate`` / ``significant`` for PSI, ``flagged``
  for a fairness gap, else ``""``) and ``detail``.

A report re-run for the same as-of date replaces that date's monitoring run (one transaction); the *previous*
monitoring run of a date is the latest one dated strictly before it.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.schema import create_tables, metadata

__all__ = [
    "METRIC_COLUMNS",
    "create_monitoring_tables",
    "monitoring_metrics",
    "monitoring_runs",
    "previous_monitoring",
    "read_metrics",
    "store_monitoring",
]

monitoring_runs = sa.Table(
    "monitoring_runs",
    metadata,
    sa.Column("monitoring_run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", sa.Date, nullable=False),  # the nightly run's as-of date
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("nightly_run_id", sa.Integer, nullable=True),  # batch_runs.run_id described
    sa.Column("model_version", sa.String(64), nullable=True),  # what the nightly run scored with
    sa.Column("champion_version", sa.String(32), nullable=True),  # MLflow registered version of the champion
    sa.Column("champion_run_id", sa.String(64), nullable=True),
    sa.Column("reference_source", sa.Text, nullable=True),  # MLflow artifact / computed from training rows
    sa.Column("previous_as_of", sa.Date, nullable=True),  # the nightly run the migration compares with
    sa.Column("evaluated_as_of", sa.Date, nullable=True),  # the earlier run whose outcomes were evaluated
    sa.Column("evaluated_days", sa.Integer, nullable=True),  # days of its outcome window that had passed
    sa.Column("compared_with", sa.Integer, nullable=True),  # the previous monitoring run (id)
    sa.Column("policy_hash", sa.String(32), nullable=True),
    sa.Column("n_metrics", sa.Integer, nullable=False),
    sa.Column("summary", sa.JSON, nullable=True),
    sa.Column("report_path", sa.Text, nullable=True),
    sa.Index("ix_monitoring_runs_as_of", "as_of"),
    comment="One row per monitoring report: what was described and compared.",
)

monitoring_metrics = sa.Table(
    "monitoring_metrics",
    metadata,
    sa.Column("monitoring_run_id", sa.Integer, sa.ForeignKey("monitoring_runs.monitoring_run_id"),
              primary_key=True),
    sa.Column("section", sa.String(32), primary_key=True),
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),  # "" when the figure is not about one variable
    sa.Column("group_by", sa.String(32), primary_key=True),  # "" for the whole population
    sa.Column("group_value", sa.String(128), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("band", sa.String(16), nullable=False, default=""),
    sa.Column("detail", sa.Text, nullable=True),
    comment="Every figure of a monitoring report (PSI per feature, tier rates per group, …).",
)

METRIC_COLUMNS: tuple[str, ...] = ("section", "metric", "feature", "group_by", "group_value", "value", "band",
                                   "detail")
_KEY = ["section", "metric", "feature", "group_by", "group_value"]


def create_monitoring_tables(engine: sa.Engine) -> None:
    """Create the monitoring tables that do not exist yet (idempotent)."""
    create_tables(engine, [monitoring_runs, monitoring_metrics])


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _clean_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(f"monitoring metrics lack column(s) {', '.join(missing)}")
    frame = metrics[list(METRIC_COLUMNS)].copy()
    for column in ("section", "metric", "feature", "group_by", "group_value", "band"):
        frame[column] = frame[column].astype("object").where(frame[column].notna(), "").astype(str)
    frame["feature"] = frame["feature"].str.slice(0, 128)
    frame["group_value"] = frame["group_value"].str.slice(0, 128)
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)
    frame["value"] = np.where(np.isfinite(values), values, np.nan)
    duplicated = frame.duplicated(_KEY, keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, _KEY].iloc[0].to_dict()
        raise ValueError(f"monitoring metrics repeat a key: {first}")
    return frame


def store_monitoring(engine: sa.Engine, *, as_of: date, metrics: pd.DataFrame, run: dict) -> int:
    """Store one monitoring run and its metrics in one transaction, replacing an earlier run of ``as_of``.

    ``run`` holds the ``monitoring_runs`` columns (besides the id, ``as_of``, ``created_at`` and ``n_metrics``).
    Returns the new ``monitoring_run_id``.
    """
    create_monitoring_tables(engine)
    frame = _clean_metrics(metrics)
    day = pd.Timestamp(as_of).date()
    allowed = {c.name for c in monitoring_runs.columns} - {"monitoring_run_id", "as_of", "created_at", "n_metrics"}
    unknown = sorted(set(run) - allowed)
    if unknown:
        raise ValueError(f"unknown monitoring_runs column(s): {', '.join(unknown)}")
    records = [
        {**{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in zip(METRIC_COLUMNS, row,
                                                                                      strict=True)}}
        for row in frame.itertuples(index=False, name=None)
    ]
    with engine.begin() as conn:
        old = [r[0] for r in conn.execute(sa.select(monitoring_runs.c.monitoring_run_id)
                                          .where(monitoring_runs.c.as_of == day)).all()]
        if old:
            conn.execute(monitoring_metrics.delete().where(monitoring_metrics.c.monitoring_run_id.in_(old)))
            conn.execute(monitoring_runs.delete().where(monitoring_runs.c.monitoring_run_id.in_(old)))
        run_id = conn.execute(monitoring_runs.insert().values(
            as_of=day, created_at=_utcnow(), n_metrics=len(records), **run)).inserted_primary_key[0]
        if records:
            conn.execute(monitoring_metrics.insert(), [{"monitoring_run_id": run_id, "as_of": day, **r}
                                                       for r in records])
    return int(run_id)


def previous_monitoring(engine: sa.Engine, as_of: date) -> dict | None:
    """The latest monitoring run dated strictly before ``as_of`` (its ``monitoring_runs`` row), or None."""
    create_monitoring_tables(engine)
    query = (sa.select(monitoring_runs).where(monitoring_runs.c.as_of < pd.Timestamp(as_of).date())
             .order_by(monitoring_runs.c.as_of.desc(), monitoring_runs.c.monitoring_run_id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def read_metrics(engine: sa.Engine, monitoring_run_id: int) -> pd.DataFrame:
    """The metrics of one monitoring run (columns :data:`METRIC_COLUMNS`)."""
    create_monitoring_tables(engine)
    query = (sa.select(*(monitoring_metrics.c[c] for c in METRIC_COLUMNS))
             .where(monitoring_metrics.c.monitoring_run_id == monitoring_run_id)
             .order_by(*(monitoring_metrics.c[c] for c in _KEY)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(METRIC_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype(float)
    return frame
