"""Visits as expected-finds examples (features.visits.visit_examples), hand-worked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.catalog import get_feature
from features.visits import VISIT_COLUMNS, visit_examples
from test_inspector_features import AS, world

CATALOG = (get_feature("inspections_365d"),)


def test_one_row_per_visit_in_the_horizon_with_its_team_and_finds():
    data = world()
    later = pd.DataFrame([{"inspection_id": "I9", "enterprise_id": "E1", "inspected_on": AS + pd.Timedelta(days=3),
                           "inspectors": "A;Z"}])
    data["inspections"] = pd.concat([data["inspections"], later], ignore_index=True)
    hazard = data["hazards"].iloc[[0]].assign(hazard_id="H9", inspection_id="I9", found_on=AS + pd.Timedelta(days=3),
                                              recorded_on=AS + pd.Timedelta(days=40))
    data["hazards"] = pd.concat([data["hazards"], hazard], ignore_index=True)

    got = visit_examples(data, [AS], horizon_days=31, catalog=CATALOG, shrinkage_strength=0.0)

    assert list(got.index) == ["I9"] and list(got.columns) == [*VISIT_COLUMNS, "inspections_365d"]
    row = got.loc["I9"]
    # A's stringency as of AS is 1.5 (test_inspector_features); Z has no visit yet: 1
    assert row["team_stringency"] == pytest.approx((1.5 + 1.0) / 2) and row["team_size"] == 2
    assert row["hazards_found"] == 1 and row["major_hazards_found"] == 1  # an outcome: recorded later is fine
    assert row["inspections_365d"] == 1  # E1's visits known before AS
    earlier = visit_examples(data, [AS - pd.Timedelta(days=400)], horizon_days=31, catalog=CATALOG)
    assert earlier.empty


def test_a_visit_without_a_recorded_team_has_no_stringency():
    data = world()
    got = visit_examples(data, [pd.Timestamp("2023-04-01")], horizon_days=30, catalog=CATALOG)
    assert list(got.index) == ["I2"]  # I3 is on 2023-05-01: outside the 30 days
    assert got.loc["I2", "team_stringency"] > 0
    no_team = dict(data, inspection_inspectors=data["inspection_inspectors"].iloc[:0])
    no_team["inspections"] = no_team["inspections"].assign(inspectors=pd.NA)
    got = visit_examples(no_team, [pd.Timestamp("2023-04-01")], horizon_days=30, catalog=CATALOG)
    assert np.isnan(got.loc["I2", "team_stringency"])


def test_who_inspected_an_enterprise_with_their_stringency_and_what_typical_teams_would_have_found():
    from features.visits import enterprise_inspectors

    data = world()
    got = enterprise_inspectors(data, "E2", AS, shrinkage_strength=0.0)
    visits = got["visits"]
    # E2: I3 (C, stringency 1/3: found 1 where 3 were expected) then I2 (A, 1.5), newest first
    assert list(visits["inspection_id"]) == ["I3", "I2"]
    assert list(visits["inspectors"]) == ["C", "A"]
    assert visits["team_stringency"].tolist() == pytest.approx([1 / 3, 1.5])
    assert visits["hazards_found"].tolist() == [0, 2]  # the self-reported hazard is no visit's find
    assert got["hazards_found"] == 2
    assert got["mean_team_stringency"] == pytest.approx((1 / 3 + 1.5) / 2)
    assert got["typical_team_hazards"] == pytest.approx(2 / ((1 / 3 + 1.5) / 2))
    # only visits before the date, within the months asked for
    assert enterprise_inspectors(data, "E2", pd.Timestamp("2023-04-15"))["visits"]["inspection_id"].tolist() == ["I2"]
    assert enterprise_inspectors(data, "E2", AS, months=6)["visits"].empty
    assert np.isnan(enterprise_inspectors(data, "E2", AS, months=6)["mean_team_stringency"])
    without = {k: v for k, v in data.items() if k != "inspection_inspectors"}
    without["inspections"] = without["inspections"].drop(columns="inspectors")
    assert enterprise_inspectors(without, "E2", AS) is None  # no team recorded: nothing to say


def test_inspector_consistency_is_the_stringency_with_an_interval_and_flags():
    from features.build import inspector_stringency
    from features.visits import CONSISTENCY_COLUMNS, inspector_consistency

    data = world()
    for m in (0.0, 5.0):
        got = inspector_consistency(data, AS, shrinkage_strength=m).set_index("inspector_id")
        reference = inspector_stringency(data, [AS], shrinkage_strength=m)[AS]
        assert got["stringency"].to_dict() == pytest.approx(reference.to_dict())  # the same definition
    got = inspector_consistency(data, AS, shrinkage_strength=0.0).set_index("inspector_id")
    assert list(got.reset_index().columns) == list(CONSISTENCY_COLUMNS)
    # A: F 6, E 4 over 2 visits; C: F 1, E 3 (hand-worked in test_inspector_features)
    assert got.loc["A", ["visits", "hazards_found", "hazards_expected"]].tolist() == [2, 6, 4]
    assert got.loc["C", ["hazards_found", "hazards_expected"]].tolist() == [1, 3]
    assert (got["low"] <= got["stringency"]).all() and (got["stringency"] <= got["high"]).all()
    assert got.loc["C", "flag"] == "" and got.loc["A", "flag"] == ""  # two visits prove nothing at 95 %
    assert inspector_consistency(data, AS, level=0.2).set_index("inspector_id").loc["C", "flag"] == "lenient"
    assert inspector_consistency(data, pd.Timestamp("2020-01-01")).empty  # nothing known yet
