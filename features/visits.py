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

__all__ = ["VISIT_COLUMNS", "visit_examples"]

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
