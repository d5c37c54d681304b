"""What planners read from the nightly batch: the ranked list, and one enterprise explained.

Both read the stored results only (``batch_runs``, ``scores_history``, ``tier_changes``, ``manual_overrides``) plus,
for an explanation, the enterprise's recent records from the contract tables — no model, no recomputation.

- :func:`ranked_list` — the latest succeeded run (or the run of a given as-of date), highest risk first: final
  tier (high, general, low), then calibrated probability; filters by tier, township, sector; top N.
  Columns :data:`RANK_COLUMNS` (the JSON keys of ``riskgrade rank --format json``).
- :func:`enterprise_report` — one enterprise: current tier and why (reasons, overrides, special assistance),
  supervision limits, manual overrides in force, tier history (periods of equal final tier from the scores
  history, and the recorded tier changes) and the last 12 months of records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa

from features.contract import ENTERPRISE_KEY, SECTOR_BY_CODE, sector_code
from features.errors import DataError
from scoring.results.tables import (
    create_scoring_tables,
    enterprise_changes,
    enterprise_history,
    latest_run,
    overrides_active_at,
    scores_frame,
    scores_history,
)
from scoring.domain.tiers import TIER_LABELS_ZH, TIERS

__all__ = [
    "RANK_COLUMNS",
    "EnterpriseReport",
    "enterprise_report",
    "ranked_list",
    "reasons_text",
    "resolve_run",
]

RANK_COLUMNS: tuple[str, ...] = (
    "rank", "enterprise_id", "name", "township", "sector", "score", "points", "tier", "override", "reasons", "mode",
    "yearly_cap", "visits_used", "next_allowed_visit",
)
"""Columns of the ranked list, in order: ``score`` is the calibrated probability, ``tier`` the final tier,
``override`` the override cause (vetoes, hysteresis hold, manual override; empty when none), ``reasons`` the top
reasons (bilingual), ``next_allowed_visit`` the first day a counted visit is allowed."""


def resolve_run(engine: sa.Engine, as_of: date | str | None = None) -> dict:
    """The succeeded run of ``as_of``, or the latest succeeded run; :class:`DataError` when there is none."""
    run = latest_run(engine, as_of)
    if run is None:
        if as_of is None:
            raise DataError("no succeeded nightly run in this database yet: run riskgrade nightly first")
        raise DataError(f"no succeeded nightly run as of {pd.Timestamp(as_of).date()}: run riskgrade nightly "
                        f"--as-of {pd.Timestamp(as_of).date()} (or leave --as-of out for the latest run)")
    return run


def _sector_code(sector: str) -> str:
    code = sector_code(sector)  # a planner may type the Chinese label: the same words the import accepts
    if code is not None:
        return code
    raise DataError(f"unknown sector {sector!r}: expected a code ({', '.join(SECTOR_BY_CODE)}) or its Chinese label")


def ranked_list(engine: sa.Engine, *, as_of: date | str | None = None, tier: str | None = None,
                township: str | None = None, sector: str | None = None, top: int | None = None
                ) -> tuple[dict, pd.DataFrame]:
    """``(run, list)``: the run read and its ranked list (:data:`RANK_COLUMNS`), filtered, highest risk first.

    ``rank`` is the position in the whole list of the run (filters do not renumber: "rank 153" means the same
    thing in every view); ties (same tier and probability) share a rank and are ordered by enterprise_id.
    """
    if tier is not None and tier not in TIERS:
        raise DataError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if top is not None and top < 1:
        raise DataError(f"top must be at least 1, got {top}")
    run = resolve_run(engine, as_of)
    t = scores_history.c
    where = []
    if tier is not None:
        where.append(t.final_tier == tier)
    if township is not None:
        where.append(t.township == township)
    if sector is not None:
        where.append(t.sector == _sector_code(sector))
    columns = ["rank", "enterprise_id", "name", "township", "sector", "probability", "points", "final_tier",
               "override_cause", "reasons", "mode", "yearly_cap", "visits_used", "next_allowed_visit"]
    frame = scores_frame(engine, run["as_of"], columns=columns, where=where or None)
    if top is not None:
        frame = frame.head(top)
    frame = frame.rename(columns={"probability": "score", "final_tier": "tier", "override_cause": "override"})
    frame["reasons"] = [list(r) if isinstance(r, list) else [] for r in frame["reasons"]]
    for column in ("yearly_cap", "visits_used", "rank"):
        frame[column] = frame[column].astype("Int64")
    return run, frame[list(RANK_COLUMNS)].reset_index(drop=True)


def reasons_text(reasons: list[dict] | None, *, lang: str = "both") -> str:
    """Reasons as one line: ``1. 近一年重大隐患数 major hazards, last 365 days = 3; 2. …`` (``lang``: zh, en, both)."""
    parts = []
    for i, reason in enumerate(reasons or [], start=1):
        texts = {"zh": reason.get("text_zh"), "en": reason.get("text_en")}
        label = " ".join(str(v) for v in ((texts["zh"], texts["en"]) if lang == "both" else (texts[lang],)) if v)
        value = reason.get("value")
        parts.append(f"{i}. {label}" + ("" if value is None else f" = {_number(value)}"))
    return "; ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# One enterprise
# ---------------------------------------------------------------------------------------------

#: The records shown by ``riskgrade explain``: table → (date column, columns shown).
EVENT_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inspections": ("inspected_on", ("inspected_on", "kind", "department", "n_inspectors", "exam_takers",
                                     "exam_passed")),
    "hazards": ("found_on", ("found_on", "level", "category", "rectify_by", "rectified_on")),
    "violations": ("found_on", ("found_on", "kind")),
    "accidents": ("occurred_on", ("occurred_on", "grade", "deaths", "serious_injuries", "direct_loss_yuan",
                                  "road_traffic", "concealed")),
    "penalties": ("decided_on", ("decided_on", "amount_yuan", "person_penalized", "suspension")),
    "credit_records": ("valid_from", ("kind", "value", "valid_from", "valid_to")),
    "complaints": ("received_on", ("received_on", "substantiated")),
}


@dataclass
class EnterpriseReport:
    """Everything ``riskgrade explain`` shows about one enterprise (``current`` is None when never scored)."""

    enterprise: dict[str, Any]
    as_of: date
    run: dict | None
    current: dict[str, Any] | None
    n_scored: int | None
    manual_overrides: pd.DataFrame
    history: pd.DataFrame  # periods of equal final tier
    changes: pd.DataFrame
    events: dict[str, pd.DataFrame] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        from scoring.exports import json_records, json_value

        return {
            "enterprise": json_value(self.enterprise),
            "as_of": self.as_of.isoformat(),
            "run_id": None if self.run is None else self.run["run_id"],
            "model": None if self.run is None else self.run.get("model_version"),
            "current": json_value(self.current),
            "n_scored": self.n_scored,
            "manual_overrides": json_records(self.manual_overrides),
            "history": json_records(self.history),
            "changes": json_records(self.changes),
            "events": {name: json_records(frame) for name, frame in self.events.items()},
        }


def enterprise_report(engine: sa.Engine, enterprise_id: str, *, as_of: date | str | None = None,
                      months: int = 12) -> EnterpriseReport:
    """One enterprise explained (see the module docstring); :class:`DataError` if the id is unknown.

    The run read is the run of ``as_of`` or the latest succeeded run; events are those dated in the ``months``
    before the run's as-of date (before today when there is no run).
    """
    from features.schema import CONTRACT_TABLES

    create_scoring_tables(engine)
    eid = str(enterprise_id)
    enterprises = CONTRACT_TABLES["enterprises"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(enterprises).where(enterprises.c.enterprise_id == eid)).mappings().first()
    history_rows = enterprise_history(engine, eid)
    if row is None and history_rows.empty:
        raise DataError(f"unknown enterprise {eid!r}: it is neither in the enterprises table nor in any nightly run "
                        f"(check the id, e.g. with riskgrade rank)")
    enterprise = dict(row) if row is not None else {"enterprise_id": eid}
    enterprise.pop("extras", None)
    enterprise.pop(ENTERPRISE_KEY, None)  # the database's own surrogate, not the planner's business
    sector = enterprise.get("sector")
    if sector in SECTOR_BY_CODE:
        enterprise["sector_zh"] = SECTOR_BY_CODE[sector].label_zh

    run = latest_run(engine, as_of) if as_of is not None else latest_run(engine)
    current = None
    n_scored = None
    if run is not None:
        stored = scores_frame(engine, run["as_of"], where=[scores_history.c.enterprise_id == eid])
        if len(stored):
            current = stored.iloc[0].to_dict()
            current["tier_zh"] = TIER_LABELS_ZH.get(current["final_tier"], "")
        with engine.connect() as conn:
            n_scored = conn.execute(sa.select(sa.func.count()).select_from(scores_history)
                                    .where(scores_history.c.as_of == run["as_of"])).scalar()
        run = {**run, "model_version": None if current is None else current.get("model_version")}
        day = pd.Timestamp(run["as_of"])
    else:
        day = pd.Timestamp(as_of if as_of is not None else date.today()).normalize()

    manual = overrides_active_at(engine, day.date())
    manual = manual.loc[manual["enterprise_id"] == eid].reset_index(drop=True)
    return EnterpriseReport(
        enterprise=enterprise, as_of=day.date(), run=run, current=current, n_scored=n_scored,
        manual_overrides=manual, history=tier_periods(history_rows), changes=enterprise_changes(engine, eid),
        events=recent_events(engine, eid, day, months),
    )


def tier_periods(history: pd.DataFrame) -> pd.DataFrame:
    """Consecutive runs with the same final tier merged into periods: ``from, to, final_tier, runs,
    max_probability, overrides`` (oldest first)."""
    columns = ["from", "to", "final_tier", "runs", "max_probability", "overrides"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    frame = history.sort_values("as_of").reset_index(drop=True)
    block = (frame["final_tier"] != frame["final_tier"].shift()).cumsum()
    rows = []
    for _, part in frame.groupby(block, sort=True):
        codes = sorted({c for text in part["override_codes"].fillna("") for c in str(text).split(",") if c})
        rows.append({"from": part["as_of"].iloc[0], "to": part["as_of"].iloc[-1],
                     "final_tier": part["final_tier"].iloc[0], "runs": len(part),
                     "max_probability": float(part["probability"].max()), "overrides": ",".join(codes)})
    return pd.DataFrame(rows, columns=columns)


def recent_events(engine: sa.Engine, enterprise_id: str, as_of: pd.Timestamp, months: int = 12
                  ) -> dict[str, pd.DataFrame]:
    """The enterprise's records dated in ``[as_of − months, as_of)`` per contract table (credit records: those
    valid at some time in that window), newest first; a table the database does not hold is left out."""
    from features.schema import CONTRACT_TABLES

    start = (as_of - pd.DateOffset(months=months)).date()
    end = as_of.date()
    out = {}
    with engine.connect() as conn:
        for name, (date_column, columns) in EVENT_COLUMNS.items():
            table = CONTRACT_TABLES[name]
            query = sa.select(*(table.c[c] for c in columns)).where(table.c.enterprise_id == enterprise_id)
            if name == "credit_records":
                query = query.where(table.c.valid_from < end,
                                    sa.or_(table.c.valid_to.is_(None), table.c.valid_to >= start))
            else:
                query = query.where(table.c[date_column] >= start, table.c[date_column] < end)
            rows = conn.execute(query.order_by(table.c[date_column].desc())).all()
            out[name] = pd.DataFrame([tuple(r) for r in rows], columns=list(columns))
    return out
