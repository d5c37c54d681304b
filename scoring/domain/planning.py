"""Monthly inspection plan within caps, quiet periods, inspector limits and department capacity (DESIGN.md §8).

Pure: :func:`plan_inspections` takes the supervision limits (:func:`scoring.domain.supervision.supervision_limits`,
computed as of the first day of the period), the capacity of each department in the period and a seed, and
returns a :class:`Plan` that explains itself as tables.

Stages, in order (:data:`STAGES`); each enterprise gets at most **one** visit in the period, and every
department that takes part in it is charged one visit of its capacity (a joint visit of several departments
counts once against the enterprise's cap — 综合查一次):

1. ``follow_up`` (mandatory) — unrectified major hazards whose follow-up falls due by the end of the period
   (earliest due first), by the department that found the hazard (else the lead department).
2. ``floor`` (mandatory) — floor-tier (high) enterprises whose ``floor_due_on`` falls by the end of the period
   (earliest due first, then higher probability).
3. ``random`` — double-random (双随机) draws per stratum (lead department × tier): the yearly
   ``random_ratio`` of the stratum's population, spread evenly over the months (month *m* draws
   ``round(r·N·m/12) − round(r·N·(m−1)/12)``, half rounded up, so a year draws ``round(r·N)``), limited by the
   pool and the department's remaining capacity. **The draw** (re-drawable by an auditor): the pool is the
   stratum's enterprises that can still take a counted visit this period and have none planned yet, **sorted
   by enterprise_id**; the drawn positions are
   ``numpy.random.default_rng([seed, zlib.crc32(f"{department}|{tier}".encode("utf-8"))]).choice(pool_size,
   size=k, replace=False)``, taken in the order returned. ``Plan.draws`` records each stratum's pool size,
   a SHA-256 digest of its ids (joined by newlines, :func:`pool_digest`) and the ids drawn; :func:`redraw` is the
   draw itself, for an auditor to re-make.
4. ``risk`` — the capacity left goes to enterprises of ``fill_tiers`` by expected hazards found per visit
   (the ``expected_hazards`` input; else the ``probability`` column), highest first, ties by enterprise_id.

Hard constraints, never broken: an enterprise's counted visits stay within its yearly cap (``visits_used`` + 1
≤ ``yearly_cap``; a floor-tier enterprise drawn or filled keeps enough cap for its remaining floor visits of the
year), counted visits are not before ``next_routine_on`` (spacing, cap year, quiet period), counted visits of
quiet tiers are windowed after the quiet days, each department stays within its capacity, and a visit has
between ``min`` and ``max`` inspectors (one per department at least). Mandatory visits that cannot be placed
are listed in ``Plan.unmet`` with the reason, for the planner to escalate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import SECTOR_CODES
from features.errors import DataError
from scoring.domain.supervision import SupervisionPolicy, _after_quiet
from scoring.domain.tiers import TIERS, lookup

__all__ = [
    "STAGES",
    "TierRatios",
    "PlanningPolicy",
    "Plan",
    "plan_inspections",
    "monthly_draw_size",
    "capacity_frame",
    "counted_visit_windows",
    "parse_period",
    "pool_digest",
    "redraw",
    "InspectorDrawPolicy",
    "choose_team",
    "InspectorDraw",
    "draw_inspectors",
    "eligible_inspectors",
    "redraw_team",
    "with_teams",
]


RANK_BY = ("expected_finds", "probability")
STAFF_FOCUSED_BY = ("random", "expected_finds")

# ---------------------------------------------------------------------------------------------
# Policy section [planning]
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierRatios:
    """``[planning.random_ratio]``: share of each tier drawn at random per year (0..1)."""

    low: float
    general: float
    high: float

    def validate(self) -> None:
        for tier in TIERS:
            value = getattr(self, tier)
            if not 0.0 <= value <= 1.0:
                raise ValueError((tier, f"expected a number between 0 and 1, got {value!r}"))


@dataclass(frozen=True)
class InspectorDrawPolicy:
    """``[planning.inspectors]``: the second random of 双随机 — who makes each planned visit
    (:func:`draw_inspectors`). Only active inspectors holding a law-enforcement certificate (执法证) are ever drawn
    (the law, not a setting); how many per visit is ``[supervision.inspectors]``."""

    avoid_repeat_days: int = 365  # 回避: nobody who inspected the same enterprise within this many days
    monthly_workload: int = 16  # visits one inspector may be given in a month's plan
    # Focused (high-tier) visits: "random" (drawn like every visit) or "expected_finds" (the eligible team expected
    # to find most: the most stringent inspectors, :func:`choose_team`). Random-stage visits are always drawn.
    staff_focused_by: str = "random"

    def validate(self) -> None:
        if self.staff_focused_by not in STAFF_FOCUSED_BY:
            raise ValueError(("staff_focused_by", f"expected one of {', '.join(STAFF_FOCUSED_BY)}, got "
                                                  f"{self.staff_focused_by!r}"))
        if self.avoid_repeat_days < 0:
            raise ValueError(("avoid_repeat_days", f"expected 0 or more days, got {self.avoid_repeat_days!r}"))
        if self.monthly_workload < 1:
            raise ValueError(("monthly_workload", f"expected a whole number of at least 1, got "
                                                  f"{self.monthly_workload!r}"))


@dataclass(frozen=True)
class PlanningPolicy:
    """``[planning]``: random ratios, which tiers get risk-based visits, lead departments, default capacity, and
    the inspector draw (``[planning.inspectors]``)."""

    fill_tiers: tuple[str, ...]
    default_department: str
    random_ratio: TierRatios
    sector_department: Mapping[str, str]
    capacity: Mapping[str, int]
    inspectors: InspectorDrawPolicy = field(default_factory=InspectorDrawPolicy)
    # What ranks risk-based visits: "expected_finds" (the expected-finds champion, models.expected_finds, for a
    # typical team; the adverse-outcome probability when no such champion is registered) or "probability".
    rank_by: str = "probability"

    def validate(self) -> None:
        if self.rank_by not in RANK_BY:
            raise ValueError(("rank_by", f"expected one of {', '.join(RANK_BY)}, got {self.rank_by!r}"))
        for i, tier in enumerate(self.fill_tiers):
            if tier not in TIERS:
                raise ValueError((f"fill_tiers[{i}]", f"expected one of {', '.join(TIERS)}, got {tier!r}"))
        if not self.default_department.strip():
            raise ValueError(("default_department", "must name a department"))
        for sector in self.sector_department:
            if sector not in SECTOR_CODES:
                raise ValueError((f"sector_department.{sector}", "unknown sector code (see features.contract)"))
        for department, visits in self.capacity.items():
            if visits < 0:
                raise ValueError((f"capacity.{department}", f"expected a whole number >= 0, got {visits!r}"))


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def parse_period(period: str | tuple[int, int]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of a ``(year, month)`` or ``"YYYY-MM"`` period."""
    if isinstance(period, str):
        try:
            year, month = (int(part) for part in period.split("-"))
        except ValueError:
            raise DataError(f"period: expected YYYY-MM, got {period!r}") from None
    else:
        year, month = period
    if not 1 <= month <= 12:
        raise DataError(f"period: month must be 1..12, got {month!r}")
    start = pd.Timestamp(year=year, month=month, day=1)
    return start, start + pd.offsets.MonthEnd(0)


def capacity_frame(capacity: pd.DataFrame | Mapping[str, int]) -> pd.DataFrame:
    """Capacity as a ``department, visits`` frame, checked (known columns, whole numbers >= 0, no duplicate)."""
    if isinstance(capacity, Mapping):
        capacity = pd.DataFrame({"department": list(capacity), "visits": list(capacity.values())})
    for column in ("department", "visits"):
        if column not in capacity.columns:
            raise DataError(f"capacity: missing column {column!r} (expected department, visits)")
    frame = capacity[["department", "visits"]].copy()
    frame["department"] = frame["department"].astype("str").str.strip()
    visits = pd.to_numeric(frame["visits"], errors="coerce")
    bad = visits.isna() | (visits < 0) | (visits != visits.round())
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise DataError(f"capacity: department {row['department']!r}: visits must be a whole number >= 0, "
                        f"got {row['visits']!s}")
    duplicated = frame["department"].duplicated()
    if duplicated.any():
        raise DataError(f"capacity: department {frame.loc[duplicated, 'department'].iloc[0]!r} appears twice")
    frame["visits"] = visits.astype("int64")
    return frame.reset_index(drop=True)


def monthly_draw_size(yearly_ratio: float, population: int, month: int) -> int:
    """Draws in ``month`` so that months 1..12 add up to ``round(yearly_ratio · population)`` (half up)."""
    def cumulative(m: int) -> int:
        return int(np.floor(yearly_ratio * population * m / 12 + 0.5 + 1e-9))

    return cumulative(month) - cumulative(month - 1)


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """An inspection plan for one month: ``items`` (one row per visit), ``draws`` (the random strata),
    ``unmet`` (mandatory visits that did not fit), ``capacity`` (per department: capacity, used, left)."""

    period: str
    seed: int
    items: pd.DataFrame
    draws: pd.DataFrame
    unmet: pd.DataFrame
    capacity: pd.DataFrame
    pools: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    """Each drawn stratum's pool ``(department, tier) → ids`` (sorted), for re-drawing (not stored: the plan
    records the digest)."""
    teams: pd.DataFrame | None = field(default=None, compare=False)
    """The inspector draw (:func:`draw_inspectors`, :attr:`InspectorDraw.teams`), when a roster was given."""
    ranked_by: str = field(default="the expected_hazards given, else the probability", compare=False)
    """What ranked the risk-based visits (said by the caller that computed it, e.g. the expected-finds model)."""

    def to_frame(self) -> pd.DataFrame:
        return self.items

    def summary(self) -> pd.DataFrame:
        """Visits per department and stage, against capacity, with unmet mandatory visits (and a total row)."""
        items = self.items
        rows = []
        for cap in self.capacity.itertuples(index=False):
            mine = items.loc[items["departments"].str.split(";").map(lambda d, dep=cap.department: dep in d)]
            row = {"department": cap.department, "capacity": cap.capacity, "planned": len(mine)}
            for stage in STAGES:
                row[stage] = int(mine["stages"].str.split("+").map(lambda s, st=stage: st in s).sum())
            row["joint"] = int(mine["joint"].sum())
            row["unmet"] = int((self.unmet["department"] == cap.department).sum()) if len(self.unmet) else 0
            rows.append(row)
        frame = pd.DataFrame(rows, columns=["department", "capacity", "planned", *STAGES, "joint", "unmet"])
        total = {"department": "total", **{c: int(frame[c].sum()) for c in frame.columns if c != "department"}}
        total["planned"] = len(items)  # a joint visit is one visit in the total
        total["joint"] = int(items["joint"].sum())
        return pd.concat([frame, pd.DataFrame([total])], ignore_index=True)

    def to_json(self) -> dict:
        """The whole plan as JSON-able data (dates as ISO text): period, seed, items, summary, draws, unmet."""
        def records(frame: pd.DataFrame) -> list[dict]:
            out = frame.astype(object).where(frame.notna(), None)
            for column in out.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    out[column] = [None if v is None else pd.Timestamp(v).strftime("%Y-%m-%d") for v in out[column]]
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in out.to_dict("records")]

        return {"period": self.period, "seed": self.seed, "items": records(self.items),
                "summary": records(self.summary()), "draws": records(self.draws), "unmet": records(self.unmet)}

    def counts_by_tier(self) -> pd.DataFrame:
        """Planned visits per tier and kind."""
        return (self.items.groupby(["final_tier", "kind"]).size().rename("visits").reset_index()
                if len(self.items) else pd.DataFrame(columns=["final_tier", "kind", "visits"]))


@dataclass
class _Item:
    enterprise_id: str
    departments: list[str] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    counted: bool = False
    priority: int = 0


@dataclass
class _State:
    """Mutable bookkeeping of one planning run (private to :func:`plan_inspections`)."""

    limits: pd.DataFrame  # indexed by enterprise_id
    period_start: pd.Timestamp
    period_end: pd.Timestamp
    month: int
    supervision: SupervisionPolicy
    planning: PlanningPolicy
    seed: int
    remaining: dict[str, int]
    items: dict[str, _Item] = field(default_factory=dict)
    unmet: list[dict] = field(default_factory=list)
    draws: list[dict] = field(default_factory=list)
    pools: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    # -- constraints ------------------------------------------------------------------------

    def counted_kind(self, kind: str) -> bool:
        return kind not in self.supervision.exempt_kinds

    def counted_window(self, eid: str) -> tuple[pd.Timestamp, pd.Timestamp] | str:
        """The window of a counted visit in the period, or why there is none (precomputed, see
        :func:`counted_visit_windows`)."""
        start = self.limits.at[eid, "_start"]
        if pd.isna(start):
            return self.limits.at[eid, "_why"]
        return start, self.period_end

    # -- adding a component -----------------------------------------------------------------

    def add(self, eid: str, *, stage: str, kind: str, department: str, code: str, reason: str,
            window: tuple[pd.Timestamp, pd.Timestamp]) -> str | None:
        """Add a component to the enterprise's visit; ``None`` if added, else why not."""
        item = self.items.get(eid)
        departments = item.departments if item else []
        new_department = department not in departments
        if new_department and self.remaining.get(department, 0) < 1:
            return f"no capacity left for department {department} 部门检查力量不足"
        if new_department and len(departments) + 1 > self.supervision.inspectors.max:
            return (f"a joint visit cannot bring more departments than inspectors per visit "
                    f"(max {self.supervision.inspectors.max}) 联合检查部门数超过人数上限")
        if item is None:
            item = self.items[eid] = _Item(eid, priority=len(self.items) + 1)
        if new_department:
            item.departments.append(department)
            self.remaining[department] -= 1
        start, end = window
        item.start = start if item.start is None else max(item.start, start)
        item.end = end if item.end is None else max(item.start, min(item.end, end))
        item.stages.append(stage)
        item.kinds.append(kind)
        item.codes.append(code)
        item.reasons.append(reason)
        item.counted = item.counted or self.counted_kind(kind)
        return None

    def miss(self, eid: str, *, stage: str, department: str, reason: str) -> None:
        row = self.limits.loc[eid]
        self.unmet.append({"enterprise_id": eid, "stage": stage, "department": department,
                           "final_tier": row["final_tier"], "reason": reason})


def _day(value) -> str:
    return "never" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def counted_visit_windows(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                          supervision: SupervisionPolicy) -> pd.DataFrame:
    """Per enterprise: ``_start`` of a counted visit's window in the period (NaT if none is allowed), ``_why``
    not, and ``_reserve_ok`` (a floor-tier enterprise keeps enough cap for the rest of the year's floor visits
    after one more visit now: ``yearly_cap − visits_used − 1 ≥ (12 − month) // interval_months``)."""
    cap = frame["yearly_cap"].astype("Float64")
    used = frame["visits_used"].astype("Float64").fillna(0)
    cap_left = (used + 1 <= cap).fillna(False).astype(bool)
    allowed_from = frame["next_routine_on"]
    in_time = (allowed_from <= end).fillna(False).astype(bool)
    window = allowed_from.where(allowed_from > start, start)
    quiet = frame["final_tier"].isin(supervision.quiet_period.tiers)
    window = _after_quiet(window, quiet, supervision.quiet_period)
    ok = cap_left & in_time
    why = pd.Series("", index=frame.index, dtype="str")
    why[~in_time] = "next counted visit allowed from " + allowed_from[~in_time].dt.strftime("%Y-%m-%d").fillna(
        "never") + " 未到可检查日期"
    why[~cap_left] = ("yearly cap used up (" + used[~cap_left].astype("Int64").astype("str") + "/"
                      + cap[~cap_left].astype("Int64").astype("str") + ") 年度检查次数已满")
    needed_after = (12 - start.month) // supervision.floor.interval_months
    floor_tier = frame["final_tier"].isin(supervision.floor.tiers)
    reserve_ok = ~floor_tier | (cap - used - 1 >= needed_after).fillna(False).astype(bool)
    return pd.DataFrame({"_start": window.where(ok).astype("datetime64[ns]"), "_why": why,
                         "_reserve_ok": reserve_ok.astype(bool)}, index=frame.index)


# -- stages (a registry, applied in order) ----------------------------------------------------


def _stage_follow_up(state: _State) -> None:
    limits = state.limits
    due = limits.loc[limits["followup_due_on"].notna() & (limits["followup_due_on"] <= state.period_end)]
    due = due.assign(_eid=due.index).sort_values(["followup_due_on", "overdue_major_hazards", "_eid"],
                                                 ascending=[True, False, True])
    kind = "follow_up"
    for eid, row in due.iterrows():
        department = row["followup_department"] if pd.notna(row["followup_department"]) else row["_department"]
        if state.counted_kind(kind):
            window = state.counted_window(eid)
            if isinstance(window, str):
                state.miss(eid, stage="follow_up", department=department, reason=window)
                continue
        else:
            window = (max(state.period_start, row["followup_due_on"]), state.period_end)
        reason = (f"major-hazard follow-up: {row['open_major_hazards']} open, {row['overdue_major_hazards']} "
                  f"overdue, due {_day(row['followup_due_on'])} 重大隐患整改复查")
        why_not = state.add(eid, stage="follow_up", kind=kind, department=department, code="follow_up",
                            reason=reason, window=window)
        if why_not:
            state.miss(eid, stage="follow_up", department=department, reason=why_not)


def _stage_floor(state: _State) -> None:
    limits = state.limits
    due = limits.loc[limits["floor_due_on"].notna() & (limits["floor_due_on"] <= state.period_end)]
    due = due.assign(_eid=due.index, _p=due["_expected"]).sort_values(["floor_due_on", "_p", "_eid"],
                                                                      ascending=[True, False, True])
    months = state.supervision.floor.interval_months
    for eid, row in due.iterrows():
        department = row["_department"]
        window = state.counted_window(eid)
        if isinstance(window, str):
            state.miss(eid, stage="floor", department=department, reason=window)
            continue
        start, end = window
        if start < row["floor_due_on"] < end:  # due within the period: visit by then; overdue: as soon as possible
            end = row["floor_due_on"]
        reason = (f"floor: {row['final_tier']} needs a visit every {months} months, due {_day(row['floor_due_on'])} "
                  f"重点监管每{months}个月至少检查一次")
        why_not = state.add(eid, stage="floor", kind="focused", department=department, code="floor",
                            reason=reason, window=(start, end))
        if why_not:
            state.miss(eid, stage="floor", department=department, reason=why_not)


def pool_digest(pool_ids: Sequence[str]) -> str:
    """The digest a draw records of its pool: SHA-256 of the ids (sorted, joined by newlines), 16 hex digits."""
    return hashlib.sha256("\n".join(pool_ids).encode("utf-8")).hexdigest()[:16]


def redraw(pool_ids: Sequence[str], *, seed: int, department: str, tier: str, k: int) -> list[str]:
    """The double-random draw of one stratum, as :func:`plan_inspections` makes it and an auditor re-makes it:
    ``k`` ids from the pool (sorted by enterprise_id) at the positions
    ``default_rng([seed, crc32("department|tier")]).choice(len(pool), size=k, replace=False)``, in that order."""
    if k <= 0:
        return []
    rng = np.random.default_rng([int(seed), zlib.crc32(f"{department}|{tier}".encode("utf-8"))])
    return [pool_ids[i] for i in rng.choice(len(pool_ids), size=k, replace=False)]


def _stage_random(state: _State) -> None:
    limits = state.limits
    for department in sorted(limits["_department"].unique()):
        for tier in TIERS:
            stratum = limits.loc[(limits["_department"] == department) & (limits["final_tier"] == tier)]
            ratio = getattr(state.planning.random_ratio, tier)
            target = monthly_draw_size(ratio, len(stratum), state.month)
            open_ = stratum["_start"].notna() & stratum["_reserve_ok"]
            open_ &= ~stratum.index.isin([e for e, item in state.items.items() if item.counted])
            pool_ids = sorted(stratum.index[open_])
            k = min(target, len(pool_ids), state.remaining.get(department, 0))
            drawn = redraw(pool_ids, seed=state.seed, department=department, tier=tier, k=k)
            if len(stratum):
                state.pools[(department, tier)] = tuple(pool_ids)
            for eid in drawn:
                kind = "random"
                reason = (f"double-random draw: {department} × {tier}, seed {state.seed}, {k} of {len(pool_ids)} "
                          f"双随机抽查")
                why_not = state.add(eid, stage="random", kind=kind, department=department, code="random",
                                    reason=reason, window=state.counted_window(eid))
                assert why_not is None, why_not  # the pool and k were checked above
            if len(stratum):
                state.draws.append({
                    "department": department, "tier": tier, "population": len(stratum), "yearly_ratio": ratio,
                    "month_target": target, "pool_size": len(pool_ids),
                    "pool_digest": pool_digest(pool_ids),
                    "drawn": len(drawn), "seed": state.seed, "drawn_ids": ";".join(drawn),
                })


def _stage_risk(state: _State) -> None:
    limits = state.limits
    candidates = limits.loc[limits["final_tier"].isin(state.planning.fill_tiers)]
    candidates = candidates.assign(_eid=candidates.index).sort_values(["_expected", "_eid"],
                                                                      ascending=[False, True])
    open_ = candidates["_start"].notna() & candidates["_reserve_ok"]
    open_ &= ~candidates.index.isin([e for e, item in state.items.items() if item.counted])
    for department, group in candidates.loc[open_].groupby("_department", sort=True):
        for rank, (eid, row) in enumerate(group.iterrows(), start=1):
            if state.remaining.get(department, 0) < 1:
                break
            window = state.counted_window(eid)
            kind = "focused" if row["final_tier"] == "high" else "routine"
            reason = f"risk-based: expected hazards {row['_expected']:.3g} (rank {rank} in {department}) 风险靶向检查"
            state.add(eid, stage="risk", kind=kind, department=department, code="risk", reason=reason,
                      window=window)


STAGES: Mapping[str, Callable[[_State], None]] = {
    "follow_up": _stage_follow_up,
    "floor": _stage_floor,
    "random": _stage_random,
    "risk": _stage_risk,
}

_REQUIRED = ("enterprise_id", "final_tier", "sector", "yearly_cap", "visits_used", "next_routine_on",
             "floor_due_on", "followup_due_on", "followup_department", "open_major_hazards",
             "overdue_major_hazards")


def plan_inspections(
    limits: pd.DataFrame,
    capacity: pd.DataFrame | Mapping[str, int] | None,
    period: str | tuple[int, int],
    *,
    supervision: SupervisionPolicy,
    planning: PlanningPolicy,
    seed: int,
    expected_hazards: pd.Series | pd.DataFrame | None = None,
) -> Plan:
    """Plan the visits of ``period`` (see the module docstring for the stages, the draw and the constraints).

    ``limits``: :func:`~scoring.domain.supervision.supervision_limits` as of the first day of the period (optionally a
    ``lead_department`` column overriding the sector's lead department, and ``probability``).
    ``capacity``: visits per department in the period (``department, visits``); ``None``: ``planning.capacity``.
    A department absent from it has no capacity. ``expected_hazards``: hazards a visit is expected to find, per
    enterprise (a Series indexed by enterprise_id, or a frame ``enterprise_id, expected_hazards``); else the
    ``expected_hazards`` column of ``limits``, else ``probability``.
    """
    missing = [c for c in _REQUIRED if c not in limits.columns]
    if missing:
        raise DataError(f"limits: missing column {missing[0]!r}")
    start, end = parse_period(period)
    capacity = capacity_frame(planning.capacity if capacity is None else capacity)
    frame = limits.copy()
    frame["enterprise_id"] = frame["enterprise_id"].astype("str")
    frame = frame.set_index("enterprise_id", drop=False)
    frame.index.name = None
    if frame.index.duplicated().any():
        raise DataError(f"limits: enterprise_id {frame.index[frame.index.duplicated()][0]!r} appears twice")
    lead = frame["sector"].map(lambda s: planning.sector_department.get(s, planning.default_department))
    if "lead_department" in frame:
        lead = frame["lead_department"].where(frame["lead_department"].notna(), lead)
    frame["_department"] = lead.astype("str")
    frame["_expected"] = _expected(frame, expected_hazards)
    frame = frame.join(counted_visit_windows(frame, start, end, supervision))

    state = _State(
        limits=frame, period_start=start, period_end=end, month=start.month, supervision=supervision,
        planning=planning, seed=int(seed),
        remaining=dict(zip(capacity["department"], capacity["visits"].astype(int), strict=True)),
    )
    for stage in STAGES.values():
        stage(state)
    return Plan(
        period=start.strftime("%Y-%m"),
        seed=int(seed),
        items=_items_frame(state),
        draws=pd.DataFrame(state.draws, columns=["department", "tier", "population", "yearly_ratio",
                                                 "month_target", "pool_size", "pool_digest", "drawn", "seed",
                                                 "drawn_ids"]),
        unmet=pd.DataFrame(state.unmet, columns=["enterprise_id", "stage", "department", "final_tier", "reason"]),
        capacity=pd.DataFrame({
            "department": capacity["department"],
            "capacity": capacity["visits"],
            "used": [int(v) - state.remaining[d] for d, v in zip(capacity["department"], capacity["visits"],
                                                                 strict=True)],
            "left": [state.remaining[d] for d in capacity["department"]],
        }),
        pools=dict(state.pools),
    )


def _expected(frame: pd.DataFrame, expected_hazards) -> pd.Series:
    if expected_hazards is None:
        source = frame["expected_hazards"] if "expected_hazards" in frame else frame.get("probability")
        if source is None:
            raise DataError("limits: neither expected_hazards nor probability to rank risk-based visits by")
        return pd.to_numeric(source, errors="coerce").fillna(0.0).astype(float)
    if isinstance(expected_hazards, pd.DataFrame):
        expected_hazards = expected_hazards.set_index(expected_hazards["enterprise_id"].astype("str"))[
            "expected_hazards"]
    expected_hazards = expected_hazards.copy()
    expected_hazards.index = expected_hazards.index.astype("str")
    values = lookup(frame.index.to_series(), expected_hazards)
    fallback = frame["probability"] if "probability" in frame else 0.0
    return pd.to_numeric(values, errors="coerce").fillna(fallback).astype(float)


_ITEM_COLUMNS = ["period", "priority", "enterprise_id", "name", "township", "sector", "final_tier", "mode",
                 "departments", "joint", "kind", "stages", "counts_toward_cap", "window_start", "window_end",
                 "n_inspectors", "reason_codes", "reason", "expected_hazards", "probability", "visits_used",
                 "yearly_cap"]
_KIND_ORDER = ("focused", "random", "routine", "follow_up")


def _items_frame(state: _State) -> pd.DataFrame:
    limits = state.limits
    rows = []
    for item in sorted(state.items.values(), key=lambda i: i.priority):
        row = limits.loc[item.enterprise_id]
        counted_kinds = [k for k in item.kinds if state.counted_kind(k)]
        kind = min(counted_kinds or item.kinds, key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else 99)
        inspectors = min(state.supervision.inspectors.max,
                         max(state.supervision.inspectors.min, len(item.departments)))
        rows.append({
            "period": state.period_start.strftime("%Y-%m"),
            "priority": item.priority,
            "enterprise_id": item.enterprise_id,
            "name": row.get("name", pd.NA),
            "township": row.get("township", pd.NA),
            "sector": row["sector"],
            "final_tier": row["final_tier"],
            "mode": row.get("mode", pd.NA),
            "departments": ";".join(item.departments),
            "joint": len(item.departments) > 1,
            "kind": kind,
            "stages": "+".join(item.stages),
            "counts_toward_cap": item.counted,
            "window_start": item.start,
            "window_end": item.end,
            "n_inspectors": inspectors,
            "reason_codes": ",".join(item.codes),
            "reason": " | ".join(item.reasons),
            "expected_hazards": row["_expected"],
            "probability": row.get("probability", np.nan),
            "visits_used": row["visits_used"],
            "yearly_cap": row["yearly_cap"],
        })
    frame = pd.DataFrame(rows, columns=_ITEM_COLUMNS)
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


# ---------------------------------------------------------------------------------------------
# The inspector draw: the second random of 双随机 (随机选派执法检查人员)
# ---------------------------------------------------------------------------------------------

TEAM_COLUMNS = ["priority", "enterprise_id", "departments", "n_inspectors", "inspectors", "inspector_names",
                "pool_size", "pool_digest", "seed", "unstaffed_reason"]


@dataclass(frozen=True)
class InspectorDraw:
    """Who makes each visit of a plan: ``teams`` (one row per visit, :data:`TEAM_COLUMNS`: the inspectors drawn,
    ``;``-joined, with their names; the pool it was drawn from — size and :func:`pool_digest` of its
    ``department|inspector_id`` lines —; or why nobody could be sent, ``unstaffed_reason``), ``workload`` (visits
    given to each inspector who got any) and ``pools`` (each visit's pool by department, for re-drawing)."""

    teams: pd.DataFrame
    workload: pd.DataFrame
    pools: Mapping[int, Mapping[str, tuple[str, ...]]] = field(default_factory=dict, repr=False, compare=False)


def eligible_inspectors(roster: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The inspectors who may be drawn for the period ``[start, end]``: serving the whole period (``active_from``
    empty or on or before ``start``, ``active_to`` empty or on or after ``end``) and certified (``certified`` true:
    an unknown certificate is no certificate). Sorted by ``inspector_id``."""
    for column in ("inspector_id", "department"):
        if column not in roster.columns:
            raise DataError(f"inspectors: missing column {column!r}")
    active_from = pd.to_datetime(roster.get("active_from"), errors="coerce") if "active_from" in roster else None
    active_to = pd.to_datetime(roster.get("active_to"), errors="coerce") if "active_to" in roster else None
    ok = pd.Series(True, index=roster.index)
    if active_from is not None:
        ok &= active_from.isna() | (active_from <= start)
    if active_to is not None:
        ok &= active_to.isna() | (active_to >= end)
    certified = roster["certified"] if "certified" in roster else pd.Series(pd.NA, index=roster.index)
    ok &= certified.astype("boolean").fillna(False).astype(bool)
    chosen = roster.loc[ok & roster["department"].notna() & roster["inspector_id"].notna()]
    return chosen.assign(inspector_id=chosen["inspector_id"].astype("str"),
                         department=chosen["department"].astype("str")).sort_values("inspector_id",
                                                                                   ignore_index=True)


def _avoided(history: pd.DataFrame | None, conflicts: pd.DataFrame | None, start: pd.Timestamp,
             days: int) -> set[tuple[str, str]]:
    """(enterprise_id, inspector_id) pairs 回避 rules out: a visit to the enterprise in the ``days`` before
    ``start``, or a declared conflict."""
    pairs: set[tuple[str, str]] = set()
    if history is not None and len(history):
        on = pd.to_datetime(history["inspected_on"], errors="coerce")
        recent = history[(on >= start - pd.Timedelta(days=days)) & (on < start)]
        pairs |= set(zip(recent["enterprise_id"].astype(str), recent["inspector_id"].astype(str)))
    if conflicts is not None and len(conflicts):
        pairs |= set(zip(conflicts["enterprise_id"].astype(str), conflicts["inspector_id"].astype(str)))
    return pairs


def redraw_team(pools: Mapping[str, Sequence[str]], *, seed: int, period: str, enterprise_id: str,
                k: int) -> list[str]:
    """The inspectors of one visit, as :func:`draw_inspectors` draws them and an auditor re-draws them from the
    visit's pools (per department, each sorted by inspector_id, in the visit's department order), with
    ``rng = default_rng([seed, crc32("period|enterprise_id|inspectors")])``: first one inspector of each department,
    at position ``rng.integers(len(pool))`` of its pool, then the other ``k - departments`` from the rest of all the
    pools (merged, sorted) at positions ``rng.choice(len(rest), size=..., replace=False)``, in that order."""
    rng = np.random.default_rng([int(seed), zlib.crc32(f"{period}|{enterprise_id}|inspectors".encode("utf-8"))])
    team: list[str] = []
    for department, pool in pools.items():
        candidates = [i for i in pool if i not in team]
        if not candidates:
            raise ValueError(f"department {department} has nobody left for the visit to {enterprise_id}")
        team.append(candidates[int(rng.integers(len(candidates)))])
    rest = sorted({i for pool in pools.values() for i in pool} - set(team))
    more = k - len(team)
    if more > len(rest):
        raise ValueError(f"the pools hold {len(rest) + len(team)} inspectors, the visit needs {k}")
    if more > 0:
        team += [rest[i] for i in rng.choice(len(rest), size=more, replace=False)]
    return team


def choose_team(pools: Mapping[str, Sequence[str]], stringency: Mapping[str, float], *, k: int) -> list[str]:
    """The team a focused visit gets when staffed by expected finds: from the same pools as the draw, first the
    most stringent inspector of each department, then the most stringent of the rest (an inspector with no known
    stringency counts 1; ties by inspector_id). Expected finds rise with the team's stringency
    (:mod:`models.expected_finds`), so this is the eligible team expected to find most."""
    def key(inspector: str) -> tuple[float, str]:
        value = stringency.get(inspector, 1.0)
        return (-(1.0 if value is None or value != value else float(value)), inspector)

    team: list[str] = []
    for department, pool in pools.items():
        candidates = sorted((i for i in pool if i not in team), key=key)
        if not candidates:
            raise ValueError(f"department {department} has nobody left")
        team.append(candidates[0])
    rest = sorted({i for pool in pools.values() for i in pool} - set(team), key=key)
    if k - len(team) > len(rest):
        raise ValueError(f"the pools hold {len(rest) + len(team)} inspectors, the visit needs {k}")
    return team + rest[:max(k - len(team), 0)]


def _pool_lines(pools: Mapping[str, Sequence[str]]) -> list[str]:
    return [f"{department}|{inspector}" for department, pool in pools.items() for inspector in pool]


def draw_inspectors(items: pd.DataFrame, roster: pd.DataFrame, *, period: str, seed: int,
                    policy: InspectorDrawPolicy, history: pd.DataFrame | None = None,
                    conflicts: pd.DataFrame | None = None,
                    stringency: Mapping[str, float] | None = None) -> InspectorDraw:
    """Draw the inspectors of every visit of a plan (the second random of 双随机), pure and seeded.

    ``items``: the plan's visits (``priority, enterprise_id, departments`` — ``;``-joined —, ``n_inspectors``),
    staffed in priority order. ``roster``: ``inspector_id, name, department, active_from, active_to, certified``.
    ``history``: past visits ``enterprise_id, inspector_id, inspected_on`` (who inspected whom); ``conflicts``:
    declared conflicts ``inspector_id, enterprise_id``.

    A visit's pool, per department of the visit: the department's :func:`eligible_inspectors` who are not ruled out
    by 回避 (a visit to the enterprise within ``policy.avoid_repeat_days`` before the period, or a declared
    conflict) and have not reached ``policy.monthly_workload`` visits in this plan; :func:`redraw_team` draws
    ``n_inspectors`` of them (at least one per department). A visit whose pools cannot give that is left unstaffed
    with the reason — never staffed with fewer, or with someone the rules exclude.

    With ``policy.staff_focused_by = "expected_finds"`` and each inspector's ``stringency`` given, a visit of
    ``kind`` focused gets :func:`choose_team` from the same pools instead (same rules, deterministic)."""
    start, end = parse_period(period)
    period_text = start.strftime("%Y-%m")
    eligible = eligible_inspectors(roster, start, end)
    names = dict(zip(eligible["inspector_id"], eligible["name"] if "name" in eligible else [None] * len(eligible)))
    by_department = {d: list(g["inspector_id"]) for d, g in eligible.groupby("department", sort=True)}
    avoided = _avoided(history, conflicts, start, policy.avoid_repeat_days)
    load: dict[str, int] = {}
    rows, pools_of = [], {}
    for item in items.sort_values("priority").itertuples(index=False):
        eid = str(item.enterprise_id)
        departments = [d for d in str(item.departments).split(";") if d]
        k = int(item.n_inspectors)
        pools = {d: tuple(i for i in by_department.get(d, ())
                          if (eid, i) not in avoided and load.get(i, 0) < policy.monthly_workload)
                 for d in departments}
        members = {i for pool in pools.values() for i in pool}
        reason = ""
        empty = [d for d in departments if not pools[d]]
        if empty:
            reason = (f"no eligible inspector of {', '.join(empty)} (active, certified, 回避 within "
                      f"{policy.avoid_repeat_days} days, workload {policy.monthly_workload}) 无可选派执法人员")
        elif len(members) < k:
            reason = (f"only {len(members)} eligible inspectors for a visit of {k} 可选派执法人员不足")
        chosen = (policy.staff_focused_by == "expected_finds" and stringency is not None
                  and getattr(item, "kind", "") == "focused")
        team = [] if reason else (choose_team(pools, stringency, k=k) if chosen else
                                  redraw_team(pools, seed=seed, period=period_text, enterprise_id=eid, k=k))
        for inspector in team:
            load[inspector] = load.get(inspector, 0) + 1
        pools_of[int(item.priority)] = pools
        rows.append({
            "priority": int(item.priority), "enterprise_id": eid, "departments": ";".join(departments),
            "n_inspectors": k, "inspectors": ";".join(team),
            "inspector_names": ";".join(str(names.get(i) or i) for i in team),
            "pool_size": len(members), "pool_digest": pool_digest(_pool_lines(pools)), "seed": int(seed),
            "unstaffed_reason": reason,
        })
    teams = pd.DataFrame(rows, columns=TEAM_COLUMNS)
    workload = pd.DataFrame(sorted(load.items()), columns=["inspector_id", "visits"]).assign(
        limit=policy.monthly_workload)
    return InspectorDraw(teams=teams, workload=workload, pools=pools_of)


def with_teams(plan: Plan, draw: InspectorDraw) -> Plan:
    """``plan`` with its inspector draw: ``teams``, and the items naming their inspectors (``inspectors``,
    ``inspector_names``; empty for a visit left unstaffed)."""
    named = draw.teams.set_index("priority")
    items = plan.items.assign(
        inspectors=plan.items["priority"].map(named["inspectors"]).astype("str"),
        inspector_names=plan.items["priority"].map(named["inspector_names"]).astype("str"))
    return dataclasses.replace(plan, items=items, teams=draw.teams)
