"""The feature catalog: well-formed, complete, readable by the rest of the system."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from features import (
    CATALOG,
    DEFAULT_WINDOWS,
    Feature,
    catalog_for,
    catalog_frame,
    categorical_names,
    describe,
    feature_names,
    get_feature,
    monotone_constraints,
)
from features.build import AGGREGATIONS
from features.catalog import extra_feature, extra_features
from features.contract import TABLE_BY_NAME

WINDOW_SUFFIX = re.compile(r"_(\d+)d$")


def test_names_are_unique_snake_case_and_carry_their_window():
    names = feature_names()
    assert len(names) == len(set(names))
    for feature in CATALOG:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", feature.name), feature.name
        suffix = WINDOW_SUFFIX.search(feature.name)
        if feature.window_days is None:
            assert suffix is None, feature.name
        else:
            assert suffix and int(suffix.group(1)) == feature.window_days, feature.name


def test_every_feature_refers_to_real_tables_columns_and_builders():
    for feature in CATALOG:
        assert feature.aggregation in AGGREGATIONS, feature.name
        for quantity in (feature.measure, feature.per):
            if quantity is None:
                continue
            spec = TABLE_BY_NAME[quantity.source]
            columns = set(spec.column_names)
            for where in quantity.where:
                assert where.column in columns, (feature.name, where.column)
                choices = spec.column(where.column).choices
                if choices:
                    assert set(where.values) <= set(choices), feature.name
            if quantity.value:
                assert quantity.value in columns, (feature.name, quantity.value)


def test_directions_and_kinds():
    assert {f.direction for f in CATALOG} == {-1, 0, 1}
    assert all(f.direction == 0 for f in CATALOG if f.kind == "categorical")
    assert get_feature("major_hazards_365d").direction == 1
    assert get_feature("exam_pass_rate_365d").direction == -1
    with pytest.raises(ValueError, match="direction must be -1, 0 or \\+1"):
        Feature("bad", "hazards", None, "window_sum", 2, "坏", "bad")
    with pytest.raises(ValueError, match="categorical feature has no risk direction"):
        Feature("bad", "enterprises", None, "category", 1, "坏", "bad", kind="categorical")
    with pytest.raises(ValueError, match="window_days must be positive"):
        Feature("bad", "hazards", 0, "window_sum", 1, "坏", "bad")


def test_descriptions_are_bilingual():
    for feature in CATALOG:
        assert re.search(r"[\u4e00-\u9fff]", feature.description_zh), feature.name
        assert feature.description_en and feature.description_en[0].isupper(), feature.name
    assert describe("unrectified_major_hazards") == "截至评估日未整改的重大隐患数"
    assert describe("major_hazards_90d", "en") == "Major hazards found in the last 90 days"
    with pytest.raises(ValueError, match="lang must be 'zh' or 'en'"):
        describe("blacklisted", "fr")


def test_the_expected_families_are_present():
    names = set(feature_names())
    for w in DEFAULT_WINDOWS:
        for family in ("inspections", "general_hazards", "major_hazards_per_inspection", "violations",
                       "illegal_command_violations", "penalties", "penalty_amount_yuan", "suspensions", "accidents",
                       "non_road_accidents", "larger_or_worse_accidents", "accident_deaths",
                       "substantiated_complaints", "exam_pass_rate"):
            assert f"{family}_{w}d" in names
    assert {"days_since_last_inspection", "days_since_last_accident", "unrectified_major_hazards",
            "overdue_major_hazards", "blacklisted", "redlisted", "standardization_level", "credit_grade_rank", "insured",
            "commitment_signed", "sector", "employees", "age_years", "major_hazard_source",
            "hazards_per_inspection_change_365d", "sector_peer_accidents_365d", "township_peer_accidents_365d"} <= names


def test_monotone_constraints_follow_the_catalog():
    assert monotone_constraints(["major_hazards_365d", "redlisted", "sector", "x_capital", "inspections_90d"]) == [1, -1, 0, 0, 0]
    with pytest.raises(KeyError, match="no feature 'nonsense'"):
        monotone_constraints(["nonsense"])


def test_catalog_for_other_windows():
    catalog = catalog_for((30, 180))
    names = feature_names(catalog)
    assert "major_hazards_30d" in names and "major_hazards_180d" in names
    assert "major_hazards_90d" not in names
    assert "sector_peer_accidents_365d" in names  # peers and trends keep their fixed 365 days
    assert catalog_for(DEFAULT_WINDOWS) == CATALOG
    with pytest.raises(ValueError, match="windows must be positive"):
        catalog_for(())
    with pytest.raises(ValueError, match="windows must be positive"):
        catalog_for((0, 30))


def test_catalog_frame_documents_every_feature():
    frame = catalog_frame()
    assert list(frame.index) == list(feature_names())
    assert {"source", "window_days", "aggregation", "direction", "kind", "measure", "per", "description_zh",
            "description_en"} <= set(frame.columns)
    assert frame.loc["major_hazards_per_inspection_365d", "per"] == "count of inspections"
    assert frame.loc["major_hazards_365d", "measure"] == "count of hazards where level in (major)"
    assert frame.loc["penalty_amount_yuan_90d", "measure"] == "sum of amount_yuan of penalties"
    assert pd.isna(frame.loc["blacklisted", "window_days"])


def test_extra_columns_become_features():
    enterprises = pd.DataFrame({"enterprise_id": ["E1", "E2"], "x_capital": [1.0, None], "x_zone": ["b", "a"],
                                "x_listed": pd.array([True, None], dtype="boolean"), "name": ["a", "b"]})
    extras = {f.name: f for f in extra_features(enterprises)}
    assert list(extras) == ["x_capital", "x_zone", "x_listed"]
    assert extras["x_capital"].kind == "numeric" and extras["x_listed"].kind == "numeric"
    assert extras["x_zone"].kind == "categorical" and extras["x_zone"].levels == ("a", "b")
    assert describe("x_anything", "en") == "Extra enterprise attribute x_anything"
    with pytest.raises(ValueError, match="start with 'x_'"):
        extra_feature("capital", categorical=False)


def test_categorical_names():
    assert categorical_names(["employees", "sector", "x_zone"]) == ["sector"]


def test_public_names_all_resolve_and_the_package_import_stays_light():
    import subprocess
    import sys

    import features

    for name in features.__all__:
        assert getattr(features, name) is not None, name
    code = "import sys, features.errors; print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
