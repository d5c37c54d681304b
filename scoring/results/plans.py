"""Monthly inspection plans as the bureau manages them: generated, versioned, approved (frozen), verified.

One set of functions behind ``riskgrade plan`` and the workbench's 检查计划 pages (tables ``plans`` and
``plan_items`` of :mod:`scoring.results.tables`):

- :func:`generate_plan` — the plan of a period from the supervision limits of its first day
  (:func:`~scoring.results.tables.current_limits`) and each department's capacity
  (:func:`~scoring.domain.planning.plan_inspections`), stored as the next **version** of the period, a ``draft``.
  Regenerating never changes a stored plan: it adds version n+1.
- :func:`approve_plan` — ``draft`` → ``approved`` (by whom, when). An approved plan is **frozen**: every change
  is refused (:func:`check_draft`); planning the period again makes a new version. Only the latest version of a
  period can be approved (an older draft is superseded).
- :func:`verify_draws` — re-makes each double-random draw (双随机) of a stored plan: the stratum's pool rebuilt from
  the same limits (the nightly run of the plan's date), the recorded capacity and the recorded seed; per stratum
  the pool digest recorded vs rebuilt, and the ids drawn recorded vs re-drawn
  (:func:`~scoring.domain.planning.redraw` on the rebuilt pool with the recorded seed).
- :func:`plan_list`, :func:`plan_detail`, :func:`plan_export_sheets`, :func:`enterprise_plans` — what is read.
- Inspectors (the second random of 双随机): when the database has a roster (``inspectors``, or one built from who
  made the recorded inspections), :func:`compute_plan` draws each visit's inspectors
  (:func:`~scoring.domain.planning.draw_inspectors`: 回避 against the inspections before the period and the
  declared ``inspector_conflicts``); :func:`generate_plan` stores the draw in ``plan_teams`` (one row per visit:
  inspectors, names, pool size and digest, seed, or why the visit could not be staffed); :func:`plan_detail` and the
  exports name the inspectors of each visit; :func:`verify_draws` re-draws them (:attr:`DrawCheck.teams`).

Generating, approving and changing capacity are audited (``audit_log`` via :func:`scoring.results.audit.record_audit`,
in the transaction of the change).

Township scope (``townships``: None = all): every read returns only the enterprises of those townships (items,
unmet visits, ids drawn); a plan covers every township of the county, so generating and approving one needs an
account without township scope (:class:`~features.errors.DataError` otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.errors import DataError
from features.schema import create_tables, metadata
from scoring.results import tables
from scoring.results.tables import (
    _now,
    create_scoring_tables,
    drawn_ids,
    enterprise_values,
    insert_plan,
    load_plan,
    plan_items,
    plans,
)

__all__ = [
    "PLAN_STATUSES",
    "GeneratedPlan",
    "DrawCheck",
    "generate_plan",
    "compute_plan",
    "plan_from_limits",
    "inspector_inputs_from",
    "PlanSources",
    "approve_plan",
    "check_draft",
    "plan_list",
    "plan_detail",
    "plan_export_sheets",
    "enterprise_plan_records",
    "enterprise_plans",
    "verify_draws",
    "default_seed",
    "source_run_id",
]

PLAN_STATUSES = {"draft": "草稿 draft", "approved": "已批准 approved (frozen)"}

plan_teams = sa.Table(
    "plan_teams",
    metadata,
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.plan_id"), primary_key=True),
    sa.Column("priority", sa.Integer, primary_key=True),  # the visit (plan_items.priority)
    sa.Column("enterprise_id", sa.String(64), nullable=False),
    sa.Column("departments", sa.Text, nullable=True),
    sa.Column("n_inspectors", sa.Integer, nullable=True),
    sa.Column("inspectors", sa.Text, nullable=True),  # inspector ids drawn, ";"-joined, in draw order
    sa.Column("inspector_names", sa.Text, nullable=True),
    sa.Column("pool_size", sa.Integer, nullable=True),
    sa.Column("pool_digest", sa.String(16), nullable=True),  # pool_digest of the visit's "department|id" lines
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("unstaffed_reason", sa.Text, nullable=True),  # why nobody could be sent (empty: staffed)
    comment="Who makes each visit of a stored plan: the inspector draw (双随机, 随机选派执法检查人员).",
)
_TEAM_COLUMNS = [c.name for c in plan_teams.columns if c.name != "plan_id"]


def _create_team_table(engine: sa.Engine) -> None:
    create_scoring_tables(engine)
    create_tables(engine, [plan_teams])


def inspector_inputs(engine: sa.Engine) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None:
    """``(roster, history, conflicts)`` for the inspector draw, from the contract tables stored in ``engine``'s
    database: the roster (:func:`features.inspectors.inspector_roster`: the ``inspectors`` table, else one built
    from who made the recorded inspections), who inspected whom when (``enterprise_id, inspector_id,
    inspected_on``) and the declared conflicts. ``None`` when the database records no inspector at all."""
    from features.store import load_tables

    return inspector_inputs_from(load_tables(engine, ["inspections", "inspectors", "inspection_inspectors",
                                                      "inspector_conflicts"]))


def inspector_inputs_from(frames: Mapping[str, pd.DataFrame]
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None:
    """:func:`inspector_inputs` from contract frames already in memory."""
    from features.inspectors import inspection_teams, inspector_roster

    roster = inspector_roster(frames)
    if roster is None:
        return None
    teams = inspection_teams(frames)
    visits = frames["inspections"][["inspection_id", "enterprise_id", "inspected_on"]]
    history = (teams.merge(visits, on="inspection_id")[["enterprise_id", "inspector_id", "inspected_on"]]
               if teams is not None else pd.DataFrame(columns=["enterprise_id", "inspector_id", "inspected_on"]))
    return roster, history, frames.get("inspector_conflicts")


def default_seed(period: str) -> int:
    """The seed used when none is given: ``YYYYMM`` of the period."""
    from scoring.domain.planning import parse_period

    start, _ = parse_period(period)
    return start.year * 100 + start.month


def source_run_id(limits: pd.DataFrame) -> int | None:
    """The nightly run the limits were read from (None: computed on the fly)."""
    if "run_id" not in limits.columns or limits.empty:
        return None
    value = limits["run_id"].iloc[0]
    try:
        return None if value is None or value != value else int(value)
    except (TypeError, ValueError):
        return None


def _capacity_mapping(capacity: pd.DataFrame | Mapping[str, int] | None, policy) -> dict[str, int]:
    from scoring.domain.planning import capacity_frame

    frame = capacity_frame(policy.planning.capacity if capacity is None else capacity)
    return dict(zip(frame["department"], frame["visits"].astype(int), strict=True))


def compute_plan(engine: sa.Engine, period: str, *, policy, capacity: pd.DataFrame | Mapping[str, int] | None = None,
                 seed: int | None = None, tracking_uri: str | None = None):
    """``(plan, source_run_id, limits_source)``: the plan of ``period`` computed (nothing stored) from the limits of
    its first day and ``capacity`` (None: the policy's ``[planning.capacity]``), with ``seed`` (None:
    :func:`default_seed`): the database's side of :func:`plan_from_limits`."""
    from features.contract import TABLES
    from features.store import load_tables
    from scoring.domain.planning import parse_period
    from scoring.results.batch import load_finds_model

    start, _ = parse_period(period)
    limits = tables.current_limits(engine, start.date(), policy, tracking_uri=tracking_uri)  # (patchable in tests)
    finds = None
    if policy.planning.rank_by == "expected_finds":
        finds, _ = load_finds_model(tracking_uri)
    sources = PlanSources(start, lambda: load_tables(engine, [t.name for t in TABLES]))
    result = plan_from_limits(limits, _capacity_mapping(capacity, policy), period, policy=policy,
                              seed=default_seed(period) if seed is None else int(seed), finds=finds,
                              inspectors=inspector_inputs(engine), sources=sources)
    run_id = source_run_id(limits)
    source = f"nightly run {run_id}" if run_id is not None else "computed on the fly (no nightly run of that date)"
    return result, run_id, source


class PlanSources:
    """The contract tables, the features as of the period's first day ``day`` and each inspector's stringency
    then, for the expected finds and the staffing: each read or built once, and only when the plan needs it (a plan
    ranked by the nightly's stored finds builds the features only to recompute the finds for the teams drawn; one
    ranked by probability never does)."""

    def __init__(self, day: pd.Timestamp, load: Callable[[], Mapping[str, pd.DataFrame]], *,
                 features: pd.DataFrame | None = None, stringency: Mapping[str, float] | None = None):
        self.day = pd.Timestamp(day).normalize()
        self._load = load
        self._features = features
        if stringency is not None:  # known (the simulation's oracle): not estimated from the records
            self.__dict__["stringency"] = dict(stringency)

    @functools.cached_property
    def tables(self) -> Mapping[str, pd.DataFrame]:
        return self._load()

    @functools.cached_property
    def features(self) -> pd.DataFrame:
        from features.build import build_features

        return self._features if self._features is not None else build_features(self.tables, [self.day])

    @functools.cached_property
    def stringency(self) -> dict[str, float]:
        """Each inspector's stringency as of ``day`` (:func:`features.build.inspector_stringency`, visits known
        before it)."""
        from features.build import inspector_stringency
        from features.catalog import INSPECTOR_WINDOW_DAYS

        table = inspector_stringency(self.tables, [self.day], window_days=INSPECTOR_WINDOW_DAYS)
        return {} if not len(table.columns) else {str(k): float(v) for k, v in table.iloc[:, 0].dropna().items()}


def plan_from_limits(limits: pd.DataFrame, capacity: Mapping[str, int], period: str, *, policy, seed: int,
                     finds=None, inspectors: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None = None,
                     sources: PlanSources, typical: pd.Series | None = None):
    """The planner as it ships, pure: what ``riskgrade plan`` and the workbench store, and what
    ``riskgrade simulate`` runs month after month (:mod:`scoring.domain.simulate`).

    1. Risk-based visits are ranked (:func:`~scoring.domain.planning.plan_inspections`) by the expected finds of a
       typical team when ``finds`` (a :class:`scoring.results.batch.FindsModel`, the expected-finds champion) is
       given: the figures the nightly run stored with the limits (``stored_expected_hazards``, see
       :func:`scoring.results.tables.limits_from_rows`) when it stored them with this same model for every
       enterprise, else computed now from ``sources``' features (a typical team: ``[supervision.inspectors] min``
       inspectors of stringency 1, a focused visit for the high tier, routine otherwise). ``typical`` replaces
       that figure altogether (the simulation's oracle ranks by the truth). Without ``finds`` and ``typical``: by
       the adverse-outcome probability.
    2. With ``inspectors`` (``(roster, history, conflicts)``, :func:`inspector_inputs`) each visit's inspectors are
       drawn (:func:`~scoring.domain.planning.draw_inspectors`); focused visits go to the most stringent eligible
       team when the policy says ``staff_focused_by = "expected_finds"`` (``sources.stringency``).
    3. With ``finds``, each visit's ``expected_hazards`` is recomputed for the team actually drawn (a visit left
       unstaffed, or a plan without a roster: a typical team of the visit's size).

    The plan's ``ranked_by`` says which of these it was."""
    import dataclasses

    from scoring.domain.planning import draw_inspectors, plan_inspections, with_teams

    ranked_by = "the adverse-outcome probability" + (" (no expected-finds champion registered)"
                                                    if finds is None and policy.planning.rank_by == "expected_finds"
                                                    else "")
    if typical is not None:
        ranked_by = "the expected hazards given"
    elif finds is not None:
        typical, ranked_by = _typical_finds(limits, finds, sources, policy)
    result = plan_inspections(limits, capacity, period, supervision=policy.supervision, planning=policy.planning,
                              seed=seed, expected_hazards=typical)
    if inspectors is not None:
        roster, history, conflicts = inspectors
        stringency = (sources.stringency if policy.planning.inspectors.staff_focused_by == "expected_finds"
                      else None)
        result = with_teams(result, draw_inspectors(result.items, roster, period=period, seed=seed,
                                                    policy=policy.planning.inspectors, history=history,
                                                    conflicts=conflicts, stringency=stringency))
    if finds is not None:
        result = _with_team_finds(result, finds, sources, policy)
    return dataclasses.replace(result, ranked_by=ranked_by)


def _typical_finds(limits: pd.DataFrame, finds, sources: PlanSources, policy) -> tuple[pd.Series, str]:
    """``(expected finds of a typical team per enterprise_id, what they are)``: the nightly's stored figures when
    they come from ``finds`` for every enterprise of ``limits``, else computed as of ``sources.day``."""
    from models.expected_finds import visit_finds

    model = f"model {finds.name} version {finds.version}"
    ids = limits["enterprise_id"].astype(str).to_numpy()
    if "stored_expected_hazards" in limits and len(limits):
        stored = pd.to_numeric(limits["stored_expected_hazards"], errors="coerce")
        same_model = limits["stored_finds_model"].astype("str").eq(finds.label).all()
        if same_model and stored.notna().all():
            run = source_run_id(limits)
            where = f"by nightly run {run}" if run is not None else "with the limits (a nightly run's rows)"
            return (pd.Series(stored.to_numpy(dtype=float), index=ids, name="expected_hazards"),
                    f"expected finds stored {where} ({model})")
    visits = pd.DataFrame({"enterprise_id": ids,
                           "kind": np.where(limits["final_tier"].astype(str) == "high", "focused", "routine")})
    computed = visit_finds(finds.model, sources.tables, sources.day, visits,
                           team_size=policy.supervision.inspectors.min, features=sources.features)
    return (pd.Series(computed.to_numpy(), index=ids, name="expected_hazards"),
            f"expected finds ({model}, computed as of {sources.day.date()}: the limits carry none from it)")


def _with_team_finds(plan, finds, sources: PlanSources, policy):
    """The plan's items with ``expected_hazards`` recomputed for the team actually drawn (a visit left unstaffed,
    or a plan without a roster: a typical team of the visit's size)."""
    import dataclasses

    from models.expected_finds import visit_finds

    items = plan.items
    if items.empty:
        return plan
    visits = items[["enterprise_id", "kind", "n_inspectors"]].assign(
        inspectors=items["inspectors"] if "inspectors" in items else "")
    expected = visit_finds(finds.model, sources.tables, sources.day, visits,
                           team_size=policy.supervision.inspectors.min, features=sources.features)
    return dataclasses.replace(plan, items=items.assign(expected_hazards=expected.to_numpy()))


@dataclass(frozen=True)
class GeneratedPlan:
    """What :func:`generate_plan` stored: the plan (``plan``: a :class:`scoring.domain.planning.Plan`), its id and
    version, where its limits came from."""

    plan_id: int
    version: int
    plan: Any
    source_run_id: int | None
    limits_source: str


def _refuse_scoped(townships: Collection[str] | None, action: str) -> None:
    if townships is not None:
        raise DataError(f"{action}: a plan covers every township of the county, and this account is limited to "
                        f"{', '.join(sorted(townships)) or 'no township'}; ask an account without township scope")


def generate_plan(engine: sa.Engine, period: str, *, by: str, policy, policy_hash: str | None = None,
                  capacity: pd.DataFrame | Mapping[str, int] | None = None, seed: int | None = None,
                  tracking_uri: str | None = None, townships: Collection[str] | None = None,
                  now: datetime | None = None) -> GeneratedPlan:
    """Compute (:func:`compute_plan`) and store the plan of ``period`` as its next version (a draft), audited:
    ``plan.generate`` (period, version, seed, capacity, items), and ``plan.capacity`` when the capacity differs from
    the policy's default (before: the default, after: the capacity used)."""
    from scoring.results.audit import record_audit

    _refuse_scoped(townships, "generating a plan")
    actor = str(by or "").strip()
    if not actor:
        raise DataError("generating a plan needs who (by)")
    default = _capacity_mapping(None, policy)
    given = _capacity_mapping(capacity, policy)
    result, run_id, source = compute_plan(engine, period, policy=policy, capacity=given, seed=seed,
                                          tracking_uri=tracking_uri)
    from scoring.domain.planning import parse_period

    start, _ = parse_period(period)
    _create_team_table(engine)
    with engine.begin() as conn:
        plan_id = insert_plan(conn, result, as_of=start.date(), source_run_id=run_id, limits_source=source,
                              policy_hash=policy_hash, created_by=actor, now=now)
        if result.teams is not None:
            _insert_teams(conn, plan_id, result.teams)
        version = conn.execute(sa.select(plans.c.version).where(plans.c.plan_id == plan_id)).scalar_one()
        record_audit(conn, actor=actor, action="plan.generate", target_kind="plan", target_id=str(plan_id),
                     after={"period": result.period, "version": int(version), "seed": int(result.seed),
                            "capacity": given, "n_items": len(result.items), "limits": source,
                            "risk_ranked_by": result.ranked_by},
                     note=f"plan {result.period} version {version}")
        if given != default:
            record_audit(conn, actor=actor, action="plan.capacity", target_kind="plan", target_id=str(plan_id),
                         before=default, after=given,
                         note=f"capacity of {result.period} version {version} differs from the policy's default")
    return GeneratedPlan(plan_id=plan_id, version=int(version), plan=result, source_run_id=run_id,
                         limits_source=source)


def _insert_teams(conn: sa.Connection, plan_id: int, teams: pd.DataFrame) -> None:
    from scoring.exports import json_records

    records = json_records(teams[_TEAM_COLUMNS])
    if records:
        conn.execute(plan_teams.insert(), [{"plan_id": int(plan_id), **r} for r in records])


def stored_teams(engine: sa.Engine, plan_id: int) -> pd.DataFrame | None:
    """The inspector draw stored with plan ``plan_id`` (:data:`_TEAM_COLUMNS`, by priority); None if it has none."""
    _create_team_table(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*(plan_teams.c[n] for n in _TEAM_COLUMNS))
                            .where(plan_teams.c.plan_id == int(plan_id)).order_by(plan_teams.c.priority)).all()
    if not rows:
        return None
    frame = pd.DataFrame([tuple(r) for r in rows], columns=_TEAM_COLUMNS)
    for column in ("inspectors", "inspector_names", "unstaffed_reason"):
        frame[column] = frame[column].fillna("")
    return frame


def check_draft(conn: sa.Connection, plan_id: int) -> dict:
    """The plan's row, locked for the change; :class:`DataError` when it does not exist or is approved (frozen)."""
    query = sa.select(plans.c.plan_id, plans.c.period, plans.c.version, plans.c.status, plans.c.approved_by,
                      plans.c.approved_at).where(plans.c.plan_id == int(plan_id))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise DataError(f"plan {plan_id} does not exist")
    if row["status"] == "approved":
        raise DataError(f"plan {plan_id} ({row['period']} version {row['version']}) was approved by "
                        f"{row['approved_by']} on {row['approved_at']:%Y-%m-%d %H:%M} and is frozen: plan the "
                        f"period again to make a new version")
    return dict(row)


def approve_plan(engine: sa.Engine, plan_id: int, *, by: str, townships: Collection[str] | None = None,
                 now: datetime | None = None) -> dict:
    """Approve a draft plan (the latest version of its period), audited as ``plan.approve``; returns its row.
    Refused when the plan is unknown, already approved (frozen) or superseded by a newer version."""
    from scoring.results.audit import record_audit

    _refuse_scoped(townships, "approving a plan")
    actor = str(by or "").strip()
    if not actor:
        raise DataError("approving a plan needs who (by)")
    moment = _now(now)
    create_scoring_tables(engine)
    with engine.begin() as conn:
        row = check_draft(conn, plan_id)
        latest = conn.execute(sa.select(sa.func.max(plans.c.version))
                              .where(plans.c.period == row["period"])).scalar_one()
        if row["version"] != latest:
            raise DataError(f"plan {plan_id} is version {row['version']} of {row['period']}, superseded by version "
                            f"{latest}: approve the latest version (or plan the period again)")
        conn.execute(plans.update().where(plans.c.plan_id == int(plan_id), plans.c.status == "draft")
                     .values(status="approved", approved_by=actor, approved_at=moment))
        record_audit(conn, actor=actor, action="plan.approve", target_kind="plan", target_id=str(plan_id),
                     before={"status": "draft"}, after={"status": "approved", "approved_by": actor},
                     note=f"plan {row['period']} version {row['version']}")
    return {**row, "status": "approved", "approved_by": actor, "approved_at": moment}


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _scope(townships: Collection[str] | None) -> list[str] | None:
    return None if townships is None else sorted({str(t) for t in townships})


def plan_list(engine: sa.Engine, *, townships: Collection[str] | None = None) -> pd.DataFrame:
    """Every stored plan, newest period and version first: ``plan_id, period, version, status, created_at,
    created_by, approved_by, approved_at, source_run_id, n_items`` (``n_items``: visits in the scope)."""
    create_scoring_tables(engine)
    p = plans.c
    columns = ["plan_id", "period", "version", "status", "created_at", "created_by", "approved_by", "approved_at",
               "source_run_id", "seed"]
    scope = _scope(townships)
    if scope is None:
        count = p.n_items
    else:
        i = plan_items.c
        count = (sa.select(sa.func.count()).where(i.plan_id == p.plan_id, i.township.in_(scope))
                 .scalar_subquery())
    query = sa.select(*(p[c] for c in columns), count.label("n_items")).order_by(
        p.period.desc(), p.version.desc(), p.plan_id.desc())
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=[*columns, "n_items"])
    return frame


@dataclass(frozen=True)
class PlanView:
    """A stored plan as an account may see it: ``header`` (the ``plans`` row), ``items``, ``unmet``, ``draws``
    (``drawn_ids`` cut to the scope), ``capacity`` (per department)."""

    header: dict
    items: pd.DataFrame
    unmet: pd.DataFrame
    draws: pd.DataFrame
    capacity: pd.DataFrame
    teams: pd.DataFrame | None = None  # the inspector draw (cut to the scope), when the plan has one

    @property
    def frozen(self) -> bool:
        return self.header.get("status") == "approved"


_DRAW_COLUMNS = ["department", "tier", "population", "yearly_ratio", "month_target", "pool_size", "pool_digest",
                 "drawn", "seed", "drawn_ids"]
_UNMET_COLUMNS = ["enterprise_id", "stage", "department", "final_tier", "reason"]


def plan_detail(engine: sa.Engine, plan_id: int, *, townships: Collection[str] | None = None) -> PlanView:
    """One stored plan (:class:`DataError` if unknown), cut to the township scope."""
    header, items = load_plan(engine, plan_id=int(plan_id))
    teams = stored_teams(engine, int(plan_id))
    if teams is not None:  # name the inspectors of each visit
        named = teams.set_index("priority")
        items = items.assign(inspectors=items["priority"].map(named["inspectors"]).astype("str"),
                             inspector_names=items["priority"].map(named["inspector_names"]).astype("str"))
    scope = _scope(townships)
    unmet = pd.DataFrame(header.pop("unmet") or [], columns=_UNMET_COLUMNS)
    draws = pd.DataFrame(header.pop("draws") or [], columns=_DRAW_COLUMNS)
    capacity = pd.DataFrame(header.pop("capacity") or [], columns=["department", "capacity", "used", "left"])
    if scope is not None:
        allowed = set(scope)
        items = items.loc[items["township"].isin(allowed)].reset_index(drop=True)
        drawn = [i for text in draws["drawn_ids"] for i in drawn_ids(text)]
        where = enterprise_values(engine, [*unmet["enterprise_id"], *drawn], "township")
        unmet = unmet.loc[[where.get(str(e)) in allowed for e in unmet["enterprise_id"]]].reset_index(drop=True)
        draws = draws.assign(drawn_ids=[";".join(i for i in drawn_ids(text) if where.get(i) in allowed)
                                        for text in draws["drawn_ids"]])
        if teams is not None:
            teams = teams.loc[teams["priority"].isin(items["priority"])].reset_index(drop=True)
    return PlanView(header=header, items=items, unmet=unmet, draws=draws, capacity=capacity, teams=teams)


def plan_export_sheets(view: PlanView) -> dict[str, pd.DataFrame]:
    """The sheets ``riskgrade plan --format xlsx`` writes (``plan`` — the CSV export —, ``summary``, ``draws``,
    ``unmet``), from a stored plan as the account sees it."""
    from scoring.domain.planning import Plan

    items = view.items.copy()
    items.insert(0, "period", view.header["period"])
    plan = Plan(period=view.header["period"], seed=int(view.header["seed"]), items=items, draws=view.draws,
                unmet=view.unmet, capacity=view.capacity)
    return {"plan": items, "summary": plan.summary(), "draws": view.draws, "unmet": view.unmet}


def _enterprise_plan_columns() -> list[sa.Column]:
    p, i = plans.c, plan_items.c
    return [p.plan_id, p.period, p.version, p.status, i.priority, i.kind, i.departments, i.window_start,
            i.window_end, i.reason]


def enterprise_plan_records(engine: sa.Engine, enterprise_id: str) -> list[dict[str, Any]]:
    """The stored plans that include the enterprise (newest first), as dicts with the keys ``plan_id, period,
    version, status, priority, kind, departments, window_start, window_end, reason`` (the caller checks the
    enterprise is in scope; the enterprise file lists them on every view, without a frame)."""
    create_scoring_tables(engine)
    columns = _enterprise_plan_columns()
    names = [c.name for c in columns]
    query = (sa.select(*columns).join(plan_items, plan_items.c.plan_id == plans.c.plan_id)
             .where(plan_items.c.enterprise_id == str(enterprise_id))
             .order_by(plans.c.period.desc(), plans.c.version.desc()))
    with engine.connect() as conn:
        return [dict(zip(names, row, strict=True)) for row in conn.execute(query)]


def enterprise_plans(engine: sa.Engine, enterprise_id: str) -> pd.DataFrame:
    """:func:`enterprise_plan_records` as a frame."""
    return pd.DataFrame([tuple(r.values()) for r in enterprise_plan_records(engine, enterprise_id)],
                        columns=[c.name for c in _enterprise_plan_columns()])


# ---------------------------------------------------------------------------------------------
# Verifying the draws
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawCheck:
    """The verification of a stored plan's draws: ``strata`` (one row per recorded stratum: department, tier,
    pool size recorded / rebuilt, digest recorded / rebuilt, drawn recorded / re-drawn — ids cut to the scope —,
    ``pool_matches``, ``draw_matches``, ``reproduced``), and ``notes`` (what differs from when it was made)."""

    plan_id: int
    seed: int
    strata: pd.DataFrame
    notes: tuple[str, ...]
    teams: pd.DataFrame | None = None
    """The inspector draw re-made (when the plan recorded one): per visit, inspectors and pool digest recorded vs
    re-drawn, ``reproduced``."""

    @property
    def reproduced(self) -> bool:
        enterprises = bool(len(self.strata)) and bool(self.strata["reproduced"].all())
        return enterprises and (self.teams is None or bool(self.teams["reproduced"].all()))


def verify_draws(engine: sa.Engine, plan_id: int, *, policy, policy_hash: str | None = None,
                 townships: Collection[str] | None = None, tracking_uri: str | None = None) -> DrawCheck:
    """Re-make every double-random draw of the stored plan ``plan_id`` (see the module docstring). Nothing is
    written. A stratum is ``reproduced`` when the rebuilt pool has the recorded digest and re-drawing from it with
    the recorded seed gives the recorded ids, in order."""
    from scoring.domain.planning import pool_digest, redraw

    header, _ = load_plan(engine, plan_id=int(plan_id))
    seed = int(header["seed"])
    recorded = pd.DataFrame(header["draws"] or [], columns=_DRAW_COLUMNS)
    capacity = {row["department"]: int(row["capacity"]) for row in header["capacity"] or []}
    notes = []
    if policy_hash is not None and header.get("policy_hash") and policy_hash != header["policy_hash"]:
        notes.append(f"the policy changed since the plan was made (hash {header['policy_hash']} then, {policy_hash} "
                     f"now): pools may differ")
    rebuilt, run_id, source = compute_plan(engine, header["period"], policy=policy, capacity=capacity, seed=seed,
                                           tracking_uri=tracking_uri)
    if run_id != header.get("source_run_id"):
        notes.append(f"the plan's limits came from {header.get('limits_source') or 'an unknown source'}; they now "
                     f"come from {source}")
    scope = _scope(townships)
    allowed = None if scope is None else set(scope)
    where = {} if allowed is None else enterprise_values(
        engine, [i for text in recorded["drawn_ids"] for i in drawn_ids(text)], "township")

    def shown(ids: list[str]) -> str:
        return ";".join(i for i in ids if allowed is None or where.get(i) in allowed)

    rows = []
    for draw in recorded.itertuples(index=False):
        pool = list(rebuilt.pools.get((draw.department, draw.tier), ()))
        digest = pool_digest(pool)
        wanted = drawn_ids(draw.drawn_ids)
        again = redraw(pool, seed=seed, department=draw.department, tier=draw.tier, k=len(wanted)) \
            if len(pool) >= len(wanted) else []
        pool_ok = digest == draw.pool_digest and len(pool) == int(draw.pool_size)
        draw_ok = pool_ok and again == wanted
        rows.append({
            "department": draw.department, "tier": draw.tier,
            "pool_size_recorded": int(draw.pool_size), "pool_size_rebuilt": len(pool),
            "digest_recorded": draw.pool_digest, "digest_rebuilt": digest,
            "drawn_recorded": shown(wanted), "drawn_again": shown(again),
            "n_drawn": len(wanted), "pool_matches": pool_ok, "draw_matches": draw_ok, "reproduced": draw_ok,
        })
    strata = pd.DataFrame(rows, columns=["department", "tier", "pool_size_recorded", "pool_size_rebuilt",
                                         "digest_recorded", "digest_rebuilt", "drawn_recorded", "drawn_again",
                                         "n_drawn", "pool_matches", "draw_matches", "reproduced"])
    return DrawCheck(plan_id=int(plan_id), seed=seed, strata=strata, notes=tuple(notes),
                     teams=_verify_teams(stored_teams(engine, int(plan_id)), rebuilt.teams, allowed, engine))


def _verify_teams(recorded: pd.DataFrame | None, rebuilt: pd.DataFrame | None, allowed: set[str] | None,
                  engine: sa.Engine) -> pd.DataFrame | None:
    """Per recorded visit: the inspector draw recorded vs re-made from the rebuilt inputs (same seed)."""
    if recorded is None:
        return None
    again = (rebuilt.set_index("priority") if rebuilt is not None
             else pd.DataFrame(columns=["enterprise_id", "inspectors", "pool_digest"]))
    if allowed is not None:
        where = enterprise_values(engine, list(recorded["enterprise_id"]), "township")
        recorded = recorded.loc[[where.get(str(e)) in allowed for e in recorded["enterprise_id"]]]
    rows = []
    for visit in recorded.itertuples(index=False):
        same_visit = visit.priority in again.index and again.at[visit.priority, "enterprise_id"] == visit.enterprise_id
        digest = again.at[visit.priority, "pool_digest"] if same_visit else None
        drawn = again.at[visit.priority, "inspectors"] if same_visit else None
        pool_ok = digest == visit.pool_digest
        rows.append({"priority": int(visit.priority), "enterprise_id": visit.enterprise_id,
                     "inspectors_recorded": visit.inspectors, "inspectors_again": drawn or "",
                     "digest_recorded": visit.pool_digest, "digest_rebuilt": digest,
                     "pool_matches": pool_ok, "reproduced": pool_ok and drawn == visit.inspectors})
    return pd.DataFrame(rows, columns=["priority", "enterprise_id", "inspectors_recorded", "inspectors_again",
                                       "digest_recorded", "digest_rebuilt", "pool_matches", "reproduced"])
