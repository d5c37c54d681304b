"""build_labels: horizon edges, unknown-versus-negative, road traffic, targets, knowledge cutoff."""

from __future__ import annotations

import pandas as pd
import pytest

from features import LabelTarget, build_features, build_labels, labels_complete_on
from features.errors import DataError
from feature_tables import AS_OF, D, random_world, tables

A = D("2024-01-01")
END = A + pd.Timedelta(days=365)  # first day after the horizon: 2024-12-31 (2024 is a leap year)


def world(**rows) -> dict[str, pd.DataFrame]:
    """Enterprises E1..E4 (E4 founded after A: no row) and the given events; all outcome tables present."""
    rows.setdefault("enterprises", [
        {"enterprise_id": f"E{i}", "sector": "hazchem"} for i in (1, 2, 3)
    ] + [{"enterprise_id": "E4", "sector": "hazchem", "founded_on": "2024-06-01"}])
    for name in ("inspections", "hazards", "accidents", "penalties"):
        rows.setdefault(name, [])
    return tables(**rows)


def inspection(enterprise: str, day: str, **extra) -> dict:
    return {"inspection_id": f"I-{enterprise}-{day}", "enterprise_id": enterprise, "inspected_on": day, **extra}


def accident(enterprise: str, day: str, **extra) -> dict:
    return {"accident_id": f"A-{enterprise}-{day}", "enterprise_id": enterprise, "occurred_on": day, "grade": "general", **extra}


def major_hazard(enterprise: str, day: str, **extra) -> dict:
    return {"hazard_id": f"H-{enterprise}-{day}", "enterprise_id": enterprise, "found_on": day, "level": "major", **extra}


def suspension(enterprise: str, day: str, **extra) -> dict:
    return {"penalty_id": f"P-{enterprise}-{day}", "enterprise_id": enterprise, "decided_on": day, "suspension": True, **extra}


def labels(data, **options) -> pd.DataFrame:
    return build_labels(data, A, **options).droplevel("as_of")


def test_rows_and_columns_match_the_features():
    data = random_world(5, drop_optional=False)
    built = build_labels(data, AS_OF)
    assert built.index.equals(build_features(data, AS_OF).index)
    assert list(built.columns) == ["label", "label_known", "accident", "major_hazard", "suspension", "inspected"]
    assert str(built["label"].dtype) == "Int64"
    assert built["label_known"].dtype == bool
    assert built.attrs == {"target": "accident+major_hazard+suspension", "horizon_days": 365}


def test_horizon_includes_the_as_of_date_and_excludes_its_end():
    data = world(accidents=[accident("E1", "2024-01-01"), accident("E2", "2024-12-30"), accident("E3", "2024-12-31")],
                 inspections=[inspection(e, "2024-03-01") for e in ("E1", "E2", "E3")])
    assert END == D("2024-12-31")
    got = labels(data)
    assert got["accident"].tolist() == [True, True, False]
    assert got["label"].tolist() == [1, 1, 0]


def test_events_before_the_as_of_date_are_not_outcomes():
    data = world(accidents=[accident("E1", "2023-12-31")], inspections=[inspection("E1", "2024-02-01")])
    assert labels(data).loc["E1", "label"] == 0


def test_not_inspected_and_nothing_happened_is_unknown_not_negative():
    data = world(inspections=[inspection("E1", "2024-05-01")], accidents=[accident("E3", "2024-05-01")])
    got = labels(data)
    assert got.loc["E1", "label"] == 0 and got.loc["E1", "label_known"]  # inspected, nothing found
    assert got.loc["E2", "label"] is pd.NA and not got.loc["E2", "label_known"]  # never looked at
    assert got.loc["E3", "label"] == 1 and got.loc["E3", "label_known"]  # an accident is seen anyway
    assert not got.loc["E2", "inspected"]


def test_targets_of_always_observed_outcomes_are_always_known():
    data = world(accidents=[accident("E3", "2024-05-01")], penalties=[suspension("E2", "2024-05-01")])
    got = labels(data, target="accident+suspension")
    assert got["label"].tolist() == [0, 1, 1]
    assert got["label_known"].all()
    assert labels(data, target=["accident"])["label"].tolist() == [0, 0, 1]


def test_a_major_hazard_found_is_positive_and_the_target_is_configurable():
    data = world(hazards=[major_hazard("E1", "2024-02-01")], inspections=[inspection("E1", "2024-02-01")],
                 penalties=[suspension("E2", "2024-02-01", suspension=False)])  # a penalty without suspension
    assert labels(data)["label"].tolist()[:2] == [1, pd.NA]
    assert labels(data, target="accident")["label"].tolist() == [0, 0, 0]
    only_hazards = labels(data, target=LabelTarget(("major_hazard",)))
    assert only_hazards.loc["E1", "label"] == 1
    assert not only_hazards.loc["E2", "label_known"]
    # a general hazard is not an outcome
    general = world(hazards=[major_hazard("E1", "2024-02-01", level="general")], inspections=[inspection("E1", "2024-02-01")])
    assert labels(general).loc["E1", "label"] == 0


def test_road_traffic_accidents_are_excluded_by_option():
    data = world(accidents=[accident("E1", "2024-02-01", road_traffic=True), accident("E2", "2024-02-01")])
    default = labels(data, target="accident")
    assert default["accident"].tolist() == [False, True, False]
    assert labels(data, target="accident", exclude_road_traffic=False)["accident"].tolist() == [True, True, False]


def test_known_before_drops_outcomes_recorded_later():
    data = world(accidents=[accident("E1", "2024-02-01", recorded_on="2024-06-01")])
    assert labels(data, target="accident").loc["E1", "label"] == 1
    assert labels(data, target="accident", known_before="2024-06-01").loc["E1", "label"] == 0
    assert labels(data, target="accident", known_before="2024-06-02").loc["E1", "label"] == 1


def test_horizon_length_is_configurable():
    data = world(accidents=[accident("E1", "2024-03-01")])
    assert labels(data, target="accident", horizon_days=61).loc["E1", "label"] == 1
    assert labels(data, target="accident", horizon_days=60).loc["E1", "label"] == 0  # 2024-03-01 is A + 60
    with pytest.raises(ValueError, match="horizon_days must be positive"):
        labels(data, horizon_days=0)


def test_missing_tables():
    data = {k: v for k, v in world(accidents=[accident("E1", "2024-02-01")]).items() if k != "penalties"}
    with pytest.raises(DataError, match="needs table 'penalties' for 'suspension'"):
        labels(data)
    got = labels(data, target="accident")
    assert got["suspension"].isna().all()  # not targeted, not observable
    assert got["label"].tolist() == [1, 0, 0]


def test_target_parsing():
    assert LabelTarget.parse("major_hazard+accident").outcomes == ("accident", "major_hazard")
    assert str(LabelTarget.parse("suspension, accident")) == "accident+suspension"
    assert LabelTarget() == LabelTarget.parse("accident+major_hazard+suspension")
    with pytest.raises(ValueError, match="non-empty combination of accident, major_hazard, suspension"):
        LabelTarget.parse("accident+fire")
    with pytest.raises(ValueError, match="non-empty combination"):
        LabelTarget(())


def test_labels_complete_on():
    assert labels_complete_on("2024-01-01") == D("2024-12-31")
    assert labels_complete_on(D("2024-01-01"), horizon_days=30) == D("2024-01-31")
    dates = pd.DatetimeIndex(["2023-01-01", "2023-07-01"])
    assert list(labels_complete_on(dates, 365)) == [D("2024-01-01"), D("2024-06-30")]
