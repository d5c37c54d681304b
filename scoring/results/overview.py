"""What the workbench's overview (首页), runs and public-disclosure pages show — read from the stored results only.

Every function reads what the nightly batch or the planner stored (``batch_runs``, ``scores_history``,
``tier_changes``, ``plans``, ``monitoring_runs``); nothing is recomputed. Functions about enterprises take
``townships`` (``None`` = all) and never count or list an enterprise outside it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from scoring.domain.tiers import TIERS
from scoring.results.monitoring_tables import create_monitoring_tables, monitoring_runs
from scoring.results.tables import (
    batch_runs,
    create_scoring_tables,
    drawn_ids,
    enterprise_values,
    plans,
    scores_history,
    tier_changes,
)

__all__ = [
    "RunStatus",
    "change_counts",
    "changed_enterprises",
    "disclosed_draws",
    "latest_monitoring",
    "run_status",
    "runs_table",
    "special_assistance_clusters",
    "tier_counts",
    "veto_counts",
]

_TIER_ORDER = tuple(reversed(TIERS))  # high, general, low


@dataclass(frozen=True)
class RunStatus:
    """The latest nightly run (any status) and the latest succeeded one (the pages' data), with warnings."""

    latest: dict | None
    succeeded: dict | None
    age_hours: float | None  # since the latest run finished (or started, while it runs)
    warnings: tuple[str, ...] = field(default_factory=tuple)


def run_status(engine: sa.Engine, *, now: datetime, stale_hours: float) -> RunStatus:
    """The latest run and its age at ``now`` (naive UTC); a warning when there is no run, the latest failed, or
    it is older than ``stale_hours``."""
    create_scoring_tables(engine)
    with engine.connect() as conn:
        latest = conn.execute(sa.select(batch_runs).where(batch_runs.c.status != "superseded")
                              .order_by(batch_runs.c.run_id.desc()).limit(1)).mappings().first()
        succeeded = conn.execute(sa.select(batch_runs).where(batch_runs.c.status == "succeeded")
                                 .order_by(batch_runs.c.as_of.desc(), batch_runs.c.run_id.desc())
                                 .limit(1)).mappings().first()
    if latest is None:
        return RunStatus(None, None, None, ("还没有夜间运行 · no nightly run yet: run riskgrade nightly",))
    latest, succeeded = dict(latest), None if succeeded is None else dict(succeeded)
    moment = latest["finished_at"] or latest["started_at"]
    age = (now - moment).total_seconds() / 3600
    warnings = []
    if latest["status"] == "failed":
        warnings.append(f"最近一次夜间运行失败 · the latest nightly run (as of {latest['as_of']}) failed: "
                        f"{str(latest['error'] or '')[:300]}")
    if age > stale_hours:
        warnings.append(f"最近一次夜间运行已超过 {stale_hours:g} 小时 · the latest nightly run is {age:.0f} hours old "
                        f"(more than {stale_hours:g})")
    if succeeded is None:
        warnings.append("还没有成功的夜间运行 · no nightly run has succeeded yet")
    return RunStatus(latest, succeeded, age, tuple(warnings))


def _in_scope(query, townships: Collection[str] | None, column=scores_history.c.township):
    return query if townships is None else query.where(column.in_(sorted(townships)))


def tier_counts(engine: sa.Engine, as_of: date, *, by: str, townships: Collection[str] | None = None
                ) -> pd.DataFrame:
    """Enterprises per final tier of the run of ``as_of``, by ``township`` or ``sector``: one row per group
    (sorted by name; missing groups as ``""``), columns ``high, general, low, total``."""
    if by not in ("township", "sector"):
        raise ValueError(f"tier_counts: by must be township or sector, got {by!r}")
    create_scoring_tables(engine)
    s = scores_history
    group = sa.func.coalesce(s.c[by], "").label(by)
    query = _in_scope(sa.select(group, s.c.final_tier, sa.func.count().label("n")).where(s.c.as_of == as_of),
                      townships).group_by(group, s.c.final_tier)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=[by, "final_tier", "n"])
    table = (frame.pivot_table(index=by, columns="final_tier", values="n", aggfunc="sum", fill_value=0)
             .reindex(columns=list(_TIER_ORDER), fill_value=0).astype(int))
    table.columns.name = None
    table["total"] = table.sum(axis=1)
    return table.sort_index()


def change_counts(engine: sa.Engine, as_of: date, *, townships: Collection[str] | None = None) -> pd.DataFrame:
    """Tier changes recorded by the run of ``as_of`` (since the previous run): ``from_tier, to_tier, n``
    (``from_tier`` ``""``: not scored before), riskiest moves first."""
    create_scoring_tables(engine)
    c, s = tier_changes, scores_history
    origin = sa.func.coalesce(c.c.from_tier, "").label("from_tier")
    query = (sa.select(origin, c.c.to_tier, sa.func.count().label("n"))
             .select_from(c.join(s, sa.and_(s.c.as_of == c.c.as_of, s.c.enterprise_id == c.c.enterprise_id)))
             .where(c.c.as_of == as_of))
    query = _in_scope(query, townships).group_by(origin, c.c.to_tier)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["from_tier", "to_tier", "n"])
    order = {t: i for i, t in enumerate(_TIER_ORDER)}
    return (frame.assign(_to=frame["to_tier"].map(order), _from=frame["from_tier"].map(order).fillna(-1))
            .sort_values(["_to", "_from"]).drop(columns=["_to", "_from"]).reset_index(drop=True))


def changed_enterprises(engine: sa.Engine, as_of: date, *, townships: Collection[str] | None = None,
                        limit: int = 50) -> pd.DataFrame:
    """The enterprises whose tier the run of ``as_of`` changed (at most ``limit``, by list rank): ``enterprise_id,
    name, township, sector, from_tier, to_tier, cause``."""
    create_scoring_tables(engine)
    c, s = tier_changes, scores_history
    columns = [c.c.enterprise_id, s.c.name, s.c.township, s.c.sector, c.c.from_tier, c.c.to_tier, c.c.cause]
    query = (sa.select(*columns)
             .select_from(c.join(s, sa.and_(s.c.as_of == c.c.as_of, s.c.enterprise_id == c.c.enterprise_id)))
             .where(c.c.as_of == as_of))
    query = _in_scope(query, townships).order_by(s.c.rank, c.c.enterprise_id).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[col.name for col in columns])


def veto_counts(engine: sa.Engine, as_of: date, *, townships: Collection[str] | None = None) -> pd.DataFrame:
    """Enterprises under a one-vote veto (一票否决) in the run of ``as_of``, per override code: ``code, n``
    (an enterprise with two codes counts under each), most frequent first."""
    create_scoring_tables(engine)
    s = scores_history
    query = _in_scope(sa.select(s.c.override_codes).where(s.c.as_of == as_of, s.c.veto.is_(True)), townships)
    with engine.connect() as conn:
        codes = [r[0] for r in conn.execute(query).all()]
    exploded = pd.Series([code for value in codes for code in str(value or "").split(",") if code], dtype="str")
    counts = exploded.value_counts().rename_axis("code").reset_index(name="n")
    return counts.sort_values(["n", "code"], ascending=[False, True]).reset_index(drop=True)


def special_assistance_clusters(engine: sa.Engine, as_of: date, *, townships: Collection[str] | None = None
                                ) -> pd.DataFrame:
    """Special-assistance (专项帮扶) enterprises of the run of ``as_of`` per township and sector: ``township,
    sector, n``, largest first."""
    create_scoring_tables(engine)
    s = scores_history
    township, sector = sa.func.coalesce(s.c.township, "").label("township"), sa.func.coalesce(s.c.sector, "")
    query = (sa.select(township, sector.label("sector"), sa.func.count().label("n"))
             .where(s.c.as_of == as_of, s.c.special_assistance.is_(True)))
    query = _in_scope(query, townships).group_by(township, sector)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["township", "sector", "n"])
    return frame.sort_values(["n", "township", "sector"], ascending=[False, True, True]).reset_index(drop=True)


def runs_table(engine: sa.Engine, *, limit: int = 60) -> list[dict]:
    """The latest ``limit`` nightly runs, newest first, each a mapping of its ``batch_runs`` row (timings: seconds
    per stage, in the batch's order)."""
    create_scoring_tables(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(batch_runs).order_by(batch_runs.c.run_id.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def latest_monitoring(engine: sa.Engine) -> dict | None:
    """The latest monitoring report's ``monitoring_runs`` row (its ``summary`` holds the headline figures)."""
    create_monitoring_tables(engine)
    query = (sa.select(monitoring_runs).order_by(monitoring_runs.c.as_of.desc(),
                                                 monitoring_runs.c.monitoring_run_id.desc()).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def disclosed_draws(engine: sa.Engine, *, before_period: str, limit: int = 24) -> list[dict]:
    """The double-random draws (双随机) to publish (一公开): for each period before ``before_period`` (``YYYY-MM``:
    a month's draw is published once the month is over, never before the visits), newest first and at most
    ``limit`` periods, the draw of the period's **approved** plan (the latest approved version; a period without
    an approved plan publishes nothing) — ``{"period", "plan_id", "departments": [{"department", "enterprises":
    [{"enterprise_id", "name"}]}]}``, departments and enterprises sorted by name (the order drawn would tell the
    tier stratum). Nothing else: no tier, score, reason or stratum."""
    create_scoring_tables(engine)
    latest = (sa.select(plans.c.period, sa.func.max(plans.c.plan_id).label("plan_id"))
              .where(plans.c.period < before_period, plans.c.status == "approved")
              .group_by(plans.c.period).subquery())
    query = (sa.select(plans.c.period, plans.c.plan_id, plans.c.draws)
             .join(latest, latest.c.plan_id == plans.c.plan_id).order_by(plans.c.period.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    ids = {eid for row in rows for stratum in (row.draws or []) 
           for eid in drawn_ids(stratum.get("drawn_ids"))}
    names = enterprise_values(engine, ids, "name")
    result = []
    for row in rows:
        by_department: dict[str, set[str]] = {}
        for stratum in row.draws or []:
            by_department.setdefault(str(stratum.get("department") or ""), set()).update(
                drawn_ids(stratum.get("drawn_ids")))
        departments = [{"department": department,
                        "enterprises": sorted(({"enterprise_id": e, "name": names.get(e) or ""} for e in drawn),
                                              key=lambda item: (item["name"], item["enterprise_id"]))}
                       for department, drawn in sorted(by_department.items()) if drawn]
        result.append({"period": row.period, "plan_id": int(row.plan_id), "departments": departments})
    return result


