"""Supervision limits per enterprise (DESIGN.md §8): mode, yearly visit cap, floor, quiet period, inspectors.

Pure: :func:`supervision_limits` takes the tiers at a date, the canonical contract tables and the
``[supervision]`` policy section, and returns one row per enterprise saying how it may be visited.

Definitions (all as known before ``as_of``: ``inspected_on < as_of`` and ``recorded_on < as_of``):

- **counted visit**: an inspection whose ``kind`` is not in ``exempt_kinds`` (complaint, accident investigation,
  follow-up by default; a missing kind counts). Counted visits of one enterprise on the same day are **one**
  visit, whatever the number of departments (a joint visit counts once, 综合查一次).
- **visits used**: counted visits in the calendar year of ``as_of``, before ``as_of``.
- **class** (for the cap): from the cap group's ``class_source`` (:data:`CLASS_SOURCES`):
  ``credit_grade`` — the latest credit_grade record valid at ``as_of``, by its letter (A1/A2/A3 → A, B1… → B,
  C, D); ``standardization`` — the latest standardization record valid at ``as_of`` ("1", "2", "3"), else the
  class "none"; ``risk_level`` — the tier, as the four risk levels 低/一般/较大/重大: low → low, general → general,
  high → larger, high under a one-vote veto → major. Where the source has no record, ``tier_class`` of the
  policy gives the class by tier (``high_veto`` for a high enterprise under a veto).
- **floor**: an enterprise of a floor tier (high) must get a counted visit at least every ``interval_months``;
  ``floor_due_on`` = last counted visit + ``interval_months`` (``as_of`` if never visited).
- **next routine date** (``next_routine_on``): the first day on or after ``as_of`` when a counted visit is
  allowed: at least ``min_spacing_days`` after the last counted visit, in the next calendar year if the cap is
  used up (never, NaT, when the cap is 0), and moved past the quiet period (days ``first_day``–``last_day``)
  for the quiet tiers.
- **follow-ups**: unrectified major hazards (``rectified_on`` empty or on/after ``as_of``) need a follow-up
  visit (复查) the day after their ``rectify_by`` deadline (at once when they have none): ``followup_due_on``,
  ``overdue_major_hazards`` (deadline passed) and ``followup_department`` (the department whose inspection
  found the hazard; empty when self-reported). Follow-ups are exempt visits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import INSPECTION_KINDS, SECTOR_BY_CODE, SECTORS
from features.errors import DataError
from features.frames import Tables, is_in
from scoring.domain.tiers import TIERS, as_timestamp, known_before, lookup, table, valid_at

__all__ = [
    "MODES",
    "CLASS_SOURCES",
    "TIER_SITUATIONS",
    "CapGroup",
    "QuietPeriod",
    "InspectorLimits",
    "Floor",
    "SupervisionPolicy",
    "supervision_limits",
    "counted_visits",
    "in_quiet_period",
]

MODES: Mapping[str, str] = {"commitment": "承诺式监管", "routine": "常态化监管", "focused": "重点式监管"}
# The situations `tier_class` is keyed by: the three tiers, and high under a one-vote veto.
TIER_SITUATIONS: tuple[str, ...] = (*TIERS, "high_veto")
CAP_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(s.cap_group for s in SECTORS))


# ---------------------------------------------------------------------------------------------
# Class sources: where an enterprise's cap class comes from (a registry)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSource:
    """``classes`` the source can give; ``from_records``: a record (not the tier) decides the class, so any class
    can meet any tier. ``derive(frame, credit, as_of)`` returns the class per row (NA where no record) and the
    basis text."""

    classes: tuple[str, ...]
    from_records: bool
    derive: Callable[[pd.DataFrame, pd.DataFrame, pd.Timestamp], tuple[pd.Series, pd.Series]]


def _latest_valid(credit: pd.DataFrame, kind: str, as_of: pd.Timestamp) -> pd.DataFrame:
    valid = valid_at(credit, kind, as_of).sort_values(["valid_from", "recorded_on", "record_id"])
    return valid.drop_duplicates("enterprise_id", keep="last").set_index("enterprise_id")


def _from_credit_grade(frame, credit, as_of):
    latest = _latest_valid(credit, "credit_grade", as_of)
    value = lookup(frame["enterprise_id"], latest["value"]).astype("str")
    letter = value.str.strip().str.upper().str[:1]
    cls = letter.where(letter.isin(("A", "B", "C", "D")))
    basis = ("credit grade " + value.astype("str") + " 信用等级").where(cls.notna())
    return cls, basis


def _from_standardization(frame, credit, as_of):
    latest = _latest_valid(credit, "standardization", as_of)
    value = lookup(frame["enterprise_id"], latest["value"]).astype("str").str.strip()
    cls = value.where(value.isin(("1", "2", "3")))
    basis = ("standardization level " + cls.astype("str") + " 安全生产标准化等级").where(cls.notna())
    return cls, basis


def _from_tier(frame, credit, as_of):
    empty = pd.Series(pd.NA, index=frame.index, dtype="str")
    return empty, empty


CLASS_SOURCES: Mapping[str, ClassSource] = {
    "credit_grade": ClassSource(("A", "B", "C", "D"), True, _from_credit_grade),
    "standardization": ClassSource(("1", "2", "3", "none"), True, _from_standardization),
    "risk_level": ClassSource(("low", "general", "larger", "major"), False, _from_tier),
}


# ---------------------------------------------------------------------------------------------
# Policy section [supervision]
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapGroup:
    """``[supervision.caps.<group>]``: yearly visit cap by class, and the class by tier when no record."""

    class_source: str
    visits: Mapping[str, int]
    tier_class: Mapping[str, str]

    def validate(self) -> None:
        if self.class_source not in CLASS_SOURCES:
            raise ValueError(("class_source", f"expected one of {', '.join(map(repr, CLASS_SOURCES))}, "
                                              f"got {self.class_source!r}"))
        classes = CLASS_SOURCES[self.class_source].classes
        _same_keys(self.visits, classes, "visits")
        for cls, cap in self.visits.items():
            if cap < 0:
                raise ValueError((f"visits.{cls}", f"expected a whole number >= 0, got {cap!r}"))
        _same_keys(self.tier_class, TIER_SITUATIONS, "tier_class")
        for situation, cls in self.tier_class.items():
            if cls not in classes:
                raise ValueError((f"tier_class.{situation}", f"expected one of {', '.join(map(repr, classes))}, "
                                                             f"got {cls!r}"))

    def classes_for(self, tiers: tuple[str, ...]) -> tuple[str, ...]:
        """The classes an enterprise of one of ``tiers`` can have."""
        if CLASS_SOURCES[self.class_source].from_records:
            return CLASS_SOURCES[self.class_source].classes
        situations = [s for s in TIER_SITUATIONS if s in tiers or (s == "high_veto" and "high" in tiers)]
        return tuple(dict.fromkeys(self.tier_class[s] for s in situations))


def _same_keys(mapping: Mapping[str, object], expected: tuple[str, ...], key: str) -> None:
    unknown = [k for k in mapping if k not in expected]
    if unknown:
        raise ValueError((f"{key}.{unknown[0]}", f"unknown key (expected {', '.join(expected)})"))
    missing = [k for k in expected if k not in mapping]
    if missing:
        raise ValueError((f"{key}.{missing[0]}", f"missing (expected {', '.join(expected)})"))


@dataclass(frozen=True)
class QuietPeriod:
    """``[supervision.quiet_period]``: days ``first_day``–``last_day`` of each month, no counted visits for
    ``tiers``."""

    first_day: int
    last_day: int
    tiers: tuple[str, ...]

    def validate(self) -> None:
        if not 1 <= self.first_day <= 28:
            raise ValueError(("first_day", f"expected a day between 1 and 28, got {self.first_day!r}"))
        if not self.first_day <= self.last_day <= 27:
            raise ValueError(("last_day", f"expected a day between first_day ({self.first_day}) and 27 (so every "
                                          f"month keeps days to visit), got {self.last_day!r}"))
        _known_tiers(self.tiers, "tiers")


@dataclass(frozen=True)
class InspectorLimits:
    """``[supervision.inspectors]``: inspectors per visit."""

    min: int
    max: int

    def validate(self) -> None:
        if self.min < 2:
            raise ValueError(("min", f"the law requires at least 2 inspectors per visit (行政处罚法 Art. 42: "
                                     f"执法人员不得少于两人), got {self.min!r}"))
        if self.max < self.min:
            raise ValueError(("max", f"must be at least min ({self.min}), got {self.max!r}"))


@dataclass(frozen=True)
class Floor:
    """``[supervision.floor]``: enterprises of ``tiers`` get a counted visit at least every ``interval_months``."""

    tiers: tuple[str, ...]
    interval_months: int

    def validate(self) -> None:
        _known_tiers(self.tiers, "tiers")
        if not 1 <= self.interval_months <= 12:
            raise ValueError(("interval_months", f"expected a whole number of months between 1 and 12, "
                                                 f"got {self.interval_months!r}"))

    @property
    def visits_per_year(self) -> int:
        return math.ceil(12 / self.interval_months)


def _known_tiers(tiers: tuple[str, ...], key: str) -> None:
    for i, tier in enumerate(tiers):
        if tier not in TIERS:
            raise ValueError((f"{key}[{i}]", f"expected one of {', '.join(TIERS)}, got {tier!r}"))


@dataclass(frozen=True)
class SupervisionPolicy:
    """``[supervision]``: everything that limits how an enterprise may be visited."""

    exempt_kinds: tuple[str, ...]
    min_spacing_days: int
    modes: Mapping[str, str]
    inspectors: InspectorLimits
    quiet_period: QuietPeriod
    floor: Floor
    caps: Mapping[str, CapGroup]

    def validate(self) -> None:
        for i, kind in enumerate(self.exempt_kinds):
            if kind not in INSPECTION_KINDS:
                raise ValueError((f"exempt_kinds[{i}]", f"expected an inspection kind "
                                                        f"({', '.join(INSPECTION_KINDS)}), got {kind!r}"))
        _same_keys(self.modes, TIERS, "modes")
        for tier, mode in self.modes.items():
            if mode not in MODES:
                raise ValueError((f"modes.{tier}", f"expected one of {', '.join(map(repr, MODES))}, got {mode!r}"))
        if self.min_spacing_days < 0:
            raise ValueError(("min_spacing_days", f"expected a whole number of days >= 0, "
                                                  f"got {self.min_spacing_days!r}"))
        shortest_interval = self.floor.interval_months * 28
        if self.min_spacing_days > shortest_interval:
            raise ValueError(("min_spacing_days", f"{self.min_spacing_days} days between visits cannot meet the "
                                                  f"floor of a visit every {self.floor.interval_months} months"))
        _same_keys(self.caps, CAP_GROUPS, "caps")
        floor = self.floor.visits_per_year
        for group, caps in self.caps.items():
            for cls in caps.classes_for(self.floor.tiers):
                if caps.visits[cls] < floor:
                    raise ValueError((
                        f"caps.{group}.visits.{cls}",
                        f"cap {caps.visits[cls]} is below the floor: tier(s) {', '.join(self.floor.tiers)} need a "
                        f"visit every {self.floor.interval_months} months, i.e. at least {floor} a year, and an "
                        f"enterprise of class {cls!r} can be {'/'.join(self.floor.tiers)}"))

    @property
    def counted_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in INSPECTION_KINDS if k not in self.exempt_kinds)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


def counted_visits(inspections: pd.DataFrame, *, as_of, exempt_kinds: tuple[str, ...]) -> pd.DataFrame:
    """Counted visits known before ``as_of``: one row per (enterprise, day), ``enterprise_id, visited_on,
    departments`` (a joint visit of several departments on one day is one visit)."""
    as_of = as_timestamp(as_of)
    known = known_before(inspections, "inspected_on", as_of)
    counted = known.loc[~known["kind"].isin(exempt_kinds), ["enterprise_id", "inspected_on", "department"]]
    keys = ["enterprise_id", "inspected_on"]
    visits = counted[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    named = counted.dropna(subset=["department"]).drop_duplicates().sort_values([*keys, "department"])
    joined = pd.Series(dtype="str")
    if len(named):
        # one string per visit: the sorted department names joined by ";" (vectorised with reduceat)
        first = ~named.duplicated(keys).to_numpy()
        starts = np.flatnonzero(first)
        text = np.add.reduceat((named["department"].astype(str) + ";").to_numpy(dtype=object), starts)
        index = pd.MultiIndex.from_frame(named.loc[first, keys])
        joined = pd.Series([t[:-1] for t in text], index=index, dtype="str")
    visits["departments"] = joined.reindex(pd.MultiIndex.from_frame(visits[keys])).to_numpy()
    visits["departments"] = visits["departments"].astype("str")
    return visits.rename(columns={"inspected_on": "visited_on"})


def in_quiet_period(days: pd.Series, quiet: QuietPeriod) -> pd.Series:
    """Whether each date falls on a quiet day of its month."""
    day = days.dt.day
    return (day >= quiet.first_day) & (day <= quiet.last_day)


def _after_quiet(dates: pd.Series, applies: pd.Series, quiet: QuietPeriod) -> pd.Series:
    """``dates`` moved to the first day after the quiet period where it applies and the date is quiet."""
    quiet_day = in_quiet_period(dates, quiet).fillna(False) & applies
    moved = dates.dt.to_period("M").dt.to_timestamp() + pd.Timedelta(days=quiet.last_day)
    return dates.where(~quiet_day, moved)


# ---------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------


def supervision_limits(tiers: pd.DataFrame, tables: Tables, *, as_of, policy: SupervisionPolicy) -> pd.DataFrame:
    """One row per enterprise of ``tiers`` (``enterprise_id, final_tier``, optionally ``veto`` and any columns to
    carry along, e.g. ``probability``): how it may be visited from ``as_of`` on. See the module docstring.

    Columns added: ``sector, township, cap_group, mode, mode_zh, cap_class, class_basis, yearly_cap,
    visits_used, visits_left, last_visit_on, floor_due_on, quiet_period, min_inspectors, max_inspectors,
    next_routine_on, open_major_hazards, overdue_major_hazards, followup_due_on, followup_department``.
    """
    as_of = as_timestamp(as_of)
    frame = tiers.copy().reset_index(drop=True)
    frame["enterprise_id"] = frame["enterprise_id"].astype("str")
    if "veto" not in frame:
        frame["veto"] = False
    frame["veto"] = frame["veto"].fillna(False).astype(bool)
    bad = ~frame["final_tier"].isin(TIERS)
    if bad.any():
        raise DataError(f"tiers: final_tier must be one of {', '.join(TIERS)}, got {frame.loc[bad, 'final_tier'].iloc[0]!r}")

    enterprises = table(tables, "enterprises").set_index("enterprise_id")
    unknown = ~is_in(frame["enterprise_id"], enterprises.index)
    if unknown.any():
        raise DataError(f"tiers: enterprise {frame.loc[unknown, 'enterprise_id'].iloc[0]!r} is not in enterprises")
    frame["sector"] = lookup(frame["enterprise_id"], enterprises["sector"]).astype("str")
    frame["township"] = lookup(frame["enterprise_id"], enterprises["township"]).astype("str")
    frame["cap_group"] = frame["sector"].map(lambda s: SECTOR_BY_CODE[s].cap_group).astype("str")
    frame["mode"] = frame["final_tier"].map(policy.modes).astype("str")
    frame["mode_zh"] = frame["mode"].map(MODES).astype("str")

    _add_caps(frame, table(tables, "credit_records"), as_of, policy)
    _add_visits(frame, table(tables, "inspections"), as_of, policy)
    _add_followups(frame, table(tables, "hazards"), table(tables, "inspections"), as_of)
    frame["min_inspectors"] = policy.inspectors.min
    frame["max_inspectors"] = policy.inspectors.max
    if "as_of" in frame:
        frame["as_of"] = as_of
    else:
        frame.insert(1, "as_of", as_of)
    return frame


def _add_caps(frame: pd.DataFrame, credit: pd.DataFrame, as_of: pd.Timestamp, policy: SupervisionPolicy) -> None:
    situation = frame["final_tier"].where(~((frame["final_tier"] == "high") & frame["veto"]), "high_veto")
    cap_class = pd.Series(pd.NA, index=frame.index, dtype="str")
    basis = pd.Series(pd.NA, index=frame.index, dtype="str")
    cap = pd.Series(0, index=frame.index, dtype="Int64")
    for group, caps in policy.caps.items():
        rows = frame["cap_group"] == group
        if not rows.any():
            continue
        part = frame.loc[rows]
        cls, why = CLASS_SOURCES[caps.class_source].derive(part, credit, as_of)
        fallback = situation[rows].map(caps.tier_class)
        no_record = cls.isna()
        cls = cls.where(~no_record, fallback)
        why = why.where(~no_record, "no record: from tier " + situation[rows] + " 按风险等级")
        cap_class[rows] = cls
        basis[rows] = why
        cap[rows] = cls.map(caps.visits).astype("Int64")
    frame["cap_class"] = cap_class
    frame["class_basis"] = basis
    frame["yearly_cap"] = cap


def _add_visits(frame: pd.DataFrame, inspections: pd.DataFrame, as_of: pd.Timestamp,
                policy: SupervisionPolicy) -> None:
    visits = counted_visits(inspections, as_of=as_of, exempt_kinds=policy.exempt_kinds)
    year_start = pd.Timestamp(year=as_of.year, month=1, day=1)
    this_year = visits.loc[visits["visited_on"] >= year_start].groupby("enterprise_id").size()
    frame["visits_used"] = lookup(frame["enterprise_id"], this_year).fillna(0).astype("Int64")
    frame["visits_left"] = (frame["yearly_cap"] - frame["visits_used"]).clip(lower=0).astype("Int64")
    last = visits.groupby("enterprise_id")["visited_on"].max()
    frame["last_visit_on"] = lookup(frame["enterprise_id"], last).astype("datetime64[ns]")

    floor_tier = frame["final_tier"].isin(policy.floor.tiers)
    due = frame["last_visit_on"] + pd.DateOffset(months=policy.floor.interval_months)
    due = due.fillna(as_of).clip(lower=as_of)
    frame["floor_due_on"] = due.where(floor_tier).astype("datetime64[ns]")

    quiet = frame["final_tier"].isin(policy.quiet_period.tiers)
    frame["quiet_period"] = quiet
    start = pd.Series(as_of, index=frame.index, dtype="datetime64[ns]")
    spaced = frame["last_visit_on"] + pd.Timedelta(days=policy.min_spacing_days)
    start = start.where(~(spaced > start).fillna(False), spaced)
    next_year = pd.Timestamp(year=as_of.year + 1, month=1, day=1)
    used_up = (frame["visits_used"] >= frame["yearly_cap"]).fillna(True).astype(bool)
    start = start.where(~(used_up & (start < next_year)), next_year)
    start = _after_quiet(start, quiet, policy.quiet_period)
    frame["next_routine_on"] = start.where(frame["yearly_cap"].fillna(0).astype(int) > 0).astype("datetime64[ns]")


def _add_followups(frame: pd.DataFrame, hazards: pd.DataFrame, inspections: pd.DataFrame,
                   as_of: pd.Timestamp) -> None:
    known = known_before(hazards.loc[hazards["level"] == "major"], "found_on", as_of)
    open_ = known.loc[known["rectified_on"].isna() | (known["rectified_on"] >= as_of)].copy()
    open_["due"] = (open_["rectify_by"] + pd.Timedelta(days=1)).fillna(as_of).clip(lower=as_of)
    departments = inspections.drop_duplicates("inspection_id").set_index("inspection_id")["department"]
    open_["department"] = lookup(open_["inspection_id"], departments)
    first = open_.sort_values(["due", "hazard_id"]).drop_duplicates("enterprise_id").set_index("enterprise_id")
    counts = open_.groupby("enterprise_id").size()
    frame["open_major_hazards"] = lookup(frame["enterprise_id"], counts).fillna(0).astype("Int64")
    overdue = open_.loc[open_["rectify_by"] < as_of].groupby("enterprise_id").size()
    frame["overdue_major_hazards"] = lookup(frame["enterprise_id"], overdue).fillna(0).astype("Int64")
    frame["followup_due_on"] = lookup(frame["enterprise_id"], first["due"]).astype("datetime64[ns]")
    frame["followup_department"] = lookup(frame["enterprise_id"], first["department"]).astype("str")
