"""Visits as examples for the expected-finds model (issue 16, item 4): what a visit by a given team finds.

:func:`visit_examples` gives one row per visit made in ``[a, a + horizon_days)`` for each as-of date ``a`` — the
visits a plan made as of ``a`` would be —: the enterprise's point-in-time features as of ``a``
(:func:`features.build.build_features`), the visit's team as known at ``a`` (the mean stringency of its recorded
inspectors, :func:`features.build.inspector_stringency`, an inspector with no visit yet counting 1), its kind and
size, and what it found (hazards linked to it by ``inspection_id``, whenever recorded: an outcome, like a label).
Pure: frames in, frame out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.build import DEFAULT_SHRINKAGE_STRENGTH, as_of_index, build_features, inspector_stringency
from features.catalog import INSPECTOR_WINDOW_DAYS, Feature
from features.inspectors import inspection_teams

__all__ = ["CONSISTENCY_COLUMNS", "VISIT_COLUMNS", "enterprise_inspectors", "inspector_consistency", "visit_examples"]

VISIT_COLUMNS = ("enterprise_id", "as_of", "inspected_on", "kind", "department", "team_size", "team_stringency",
                 "hazards_found", "major_hazards_found")
"""The visit's own columns of :func:`visit_examples` (the enterprise's features follow them)."""


def visit_examples(data: Mapping[str, pd.DataFrame], as_of_dates: object, *, horizon_days: int = 31,
                   catalog: Sequence[Feature] | None = None,
                   shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH) -> pd.DataFrame:
    """One row per visit (indexed by ``inspection_id``) dated in ``[a, a + horizon_days)`` of an as-of date ``a``
    (the first such date when windows overlap), with :data:`VISIT_COLUMNS` then the enterprise's features as of
    ``a`` (``catalog``: default the whole catalog). ``team_stringency``: NaN when the visit's team is not recorded;
    ``team_size``: recorded inspectors, else ``n_inspectors``."""
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    dates = as_of_index(as_of_dates)
    inspections = data["inspections"]
    day = inspections["inspected_on"]
    owner = pd.Series(pd.NaT, index=inspections.index, dtype="datetime64[ns]")
    for a in dates[::-1]:  # the earliest date whose window holds the visit wins
        inside = (day >= a) & (day < a + pd.Timedelta(days=horizon_days))
        owner = owner.mask(inside, a)
    visits = inspections.loc[owner.notna(), ["inspection_id", "enterprise_id", "inspected_on", "kind", "department",
                                             "n_inspectors"]].assign(as_of=owner[owner.notna()])
    hazards = data.get("hazards")
    if hazards is not None:
        linked = hazards[hazards["inspection_id"].notna()]
        found = linked.groupby("inspection_id").size()
        major = linked[linked["level"] == "major"].groupby("inspection_id").size()
        visits["hazards_found"] = visits["inspection_id"].map(found).fillna(0).astype(float).to_numpy()
        visits["major_hazards_found"] = visits["inspection_id"].map(major).fillna(0).astype(float).to_numpy()
    else:
        visits["hazards_found"] = visits["major_hazards_found"] = np.nan

    teams = inspection_teams(data)
    visits["team_stringency"] = np.nan
    visits["team_size"] = pd.to_numeric(visits["n_inspectors"]).astype(float)
    if teams is not None and len(visits):
        stringency = inspector_stringency(data, dates, window_days=INSPECTOR_WINDOW_DAYS,
                                          shrinkage_strength=shrinkage_strength)
        members = teams.merge(visits[["inspection_id", "as_of"]], on="inspection_id")
        if len(stringency.columns):
            long = stringency.stack().rename("s").rename_axis(["inspector_id", "as_of"]).reset_index()
            members = members.merge(long, on=["inspector_id", "as_of"], how="left")
        else:
            members["s"] = np.nan
        members["s"] = members["s"].fillna(1.0)  # no visit of theirs known yet: the prior
        per_visit = members.groupby("inspection_id")["s"].agg(["mean", "size"])
        visits["team_stringency"] = visits["inspection_id"].map(per_visit["mean"]).to_numpy()
        size = visits["inspection_id"].map(per_visit["size"])
        visits["team_size"] = size.fillna(visits["team_size"]).astype(float).to_numpy()

    features = build_features(data, dates, catalog=catalog, shrinkage_strength=shrinkage_strength)
    joined = visits.join(features, on=["enterprise_id", "as_of"], how="inner")
    joined = joined.set_index("inspection_id").sort_values(["as_of", "inspected_on"], kind="stable")
    own = list(VISIT_COLUMNS)
    return joined[own + [c for c in features.columns if c not in own]]


def enterprise_inspectors(data: Mapping[str, pd.DataFrame], enterprise_id: str, as_of: object, *,
                          months: int = 36, shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH) -> dict:
    """Who inspected one enterprise in the ``months`` before ``as_of``, and what that does to its record (for
    ``riskgrade explain``): ``visits`` (one row per visit, newest first: ``inspection_id, inspected_on, kind,
    inspectors`` — ``;``-joined ids —, ``names``, ``team_stringency``, each inspector's stringency as of ``as_of``
    averaged, an inspector with no known visit counting 1 —, ``hazards_found``) and the totals: ``hazards_found``,
    ``mean_team_stringency`` (weighted by visit) and ``typical_team_hazards`` (what typical teams, stringency 1,
    would have found: ``hazards_found / mean_team_stringency``). ``None`` when the data record no team."""
    teams = inspection_teams(data)
    if teams is None:
        return None
    day = as_of_index(as_of)[0]
    inspections = data["inspections"]
    mine = inspections[(inspections["enterprise_id"].astype(str) == str(enterprise_id))
                       & (inspections["inspected_on"] < day)
                       & (inspections["inspected_on"] >= day - pd.DateOffset(months=months))]
    hazards = data.get("hazards")
    found = (hazards[hazards["inspection_id"].notna()].groupby("inspection_id").size()
             if hazards is not None else pd.Series(dtype=float))
    stringency = inspector_stringency(data, [day], window_days=INSPECTOR_WINDOW_DAYS,
                                      shrinkage_strength=shrinkage_strength)
    known = stringency[day] if len(stringency.columns) else pd.Series(dtype=float)
    roster = data.get("inspectors")
    names = ({} if roster is None or "name" not in roster
             else dict(zip(roster["inspector_id"].astype(str), roster["name"], strict=True)))
    members = teams[teams["inspection_id"].isin(mine["inspection_id"])]
    by_visit = members.groupby("inspection_id", sort=False)["inspector_id"].agg(list)
    rows = []
    for visit in mine.sort_values("inspected_on", ascending=False).itertuples(index=False):
        team = [str(i) for i in by_visit.get(visit.inspection_id, [])]
        values = [float(known[i]) if i in known.index and known[i] == known[i] else 1.0 for i in team]
        rows.append({"inspection_id": visit.inspection_id, "inspected_on": visit.inspected_on, "kind": visit.kind,
                     "inspectors": ";".join(team), "names": ";".join(str(names.get(i) or i) for i in team),
                     "team_stringency": float(np.mean(values)) if values else np.nan,
                     "hazards_found": int(found.get(visit.inspection_id, 0))})
    visits = pd.DataFrame(rows, columns=["inspection_id", "inspected_on", "kind", "inspectors", "names",
                                         "team_stringency", "hazards_found"])
    total = int(visits["hazards_found"].sum())
    mean = float(visits["team_stringency"].mean()) if visits["team_stringency"].notna().any() else np.nan
    return {"visits": visits, "hazards_found": total, "mean_team_stringency": mean,
            "typical_team_hazards": total / mean if mean == mean and mean > 0 else np.nan}


CONSISTENCY_COLUMNS = ("inspector_id", "name", "department", "visits", "hazards_found", "hazards_expected",
                       "stringency", "low", "high", "flag")


def inspector_consistency(data: Mapping[str, pd.DataFrame], as_of: object, *,
                          window_days: int = INSPECTOR_WINDOW_DAYS,
                          shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
                          level: float = 0.95) -> pd.DataFrame:
    """Each inspector's shrunk finding rate with its interval, for the bureau's review of enforcement quality
    (执法质量评查): over the visits with a recorded team dated in ``[as_of - window_days, as_of)`` (and recorded
    before ``as_of``), the hazards their visits found (``F``, linked by ``inspection_id`` and known before
    ``as_of``), what the enterprises visited would yield (``E``: per visit its sector's hazards per team-recorded
    visit), and ``stringency = (F + k) / (E + k)`` with ``k = m·E/n`` pseudo-hazards (``m`` the shrinkage
    strength, ``n`` the visits) — :func:`features.build.inspector_stringency`'s definition. ``low``/``high``: the
    ``level`` interval of the Gamma(F + k, E + k) posterior of the rate; ``flag``: ``lenient`` / ``strict`` when
    the interval excludes 1, else empty. Sorted by stringency; an empty frame when no team is recorded."""
    from scipy.stats import gamma

    empty = pd.DataFrame(columns=list(CONSISTENCY_COLUMNS))
    teams = inspection_teams(data)
    hazards = data.get("hazards")
    if teams is None or hazards is None:
        return empty
    day = as_of_index(as_of)[0]
    inspections = data["inspections"]
    known = inspections["recorded_on"] < day if "recorded_on" in inspections else True
    visits = inspections[known & (inspections["inspected_on"] < day)
                         & (inspections["inspected_on"] >= day - pd.Timedelta(days=window_days))]
    visits = visits[visits["inspection_id"].isin(teams["inspection_id"])]
    if visits.empty:
        return empty
    linked = hazards[hazards["inspection_id"].notna()]
    if "recorded_on" in linked:
        linked = linked[linked["recorded_on"] < day]
    found = visits["inspection_id"].map(linked.groupby("inspection_id").size()).fillna(0.0).to_numpy()
    sectors = data["enterprises"].drop_duplicates("enterprise_id").set_index("enterprise_id")["sector"]
    sector = visits["enterprise_id"].map(sectors).fillna("").to_numpy()
    per_visit = pd.DataFrame({"inspection_id": visits["inspection_id"].to_numpy(), "found": found,
                              "sector": sector})
    per_visit["expected"] = per_visit.groupby("sector")["found"].transform("mean")
    members = teams.drop_duplicates().merge(per_visit, on="inspection_id")
    sums = members.groupby("inspector_id").agg(visits=("inspection_id", "size"), hazards_found=("found", "sum"),
                                               hazards_expected=("expected", "sum"))
    k = shrinkage_strength * sums["hazards_expected"] / sums["visits"]
    shape, rate = sums["hazards_found"] + k, sums["hazards_expected"] + k
    out = sums.assign(stringency=np.where(rate > 0, shape / rate.where(rate > 0), 1.0))
    tail = (1 - level) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        out["low"] = np.where(rate > 0, gamma.ppf(tail, np.maximum(shape, 1e-9)) / rate, np.nan)
        out["high"] = np.where(rate > 0, gamma.ppf(1 - tail, np.maximum(shape, 1e-9)) / rate, np.nan)
    out["flag"] = np.where(out["high"] < 1, "lenient", np.where(out["low"] > 1, "strict", ""))
    roster = data.get("inspectors")
    out = out.reset_index()
    if roster is not None and len(roster):
        info = roster.drop_duplicates("inspector_id").set_index(roster.drop_duplicates("inspector_id")[
            "inspector_id"].astype(str))
        out["name"] = out["inspector_id"].astype(str).map(info["name"] if "name" in info else pd.Series(dtype=str))
        out["department"] = out["inspector_id"].astype(str).map(info["department"] if "department" in info
                                                                else pd.Series(dtype=str))
    else:
        out["name"] = out["department"] = None
    return out[list(CONSISTENCY_COLUMNS)].sort_values(["stringency", "inspector_id"], ignore_index=True)
