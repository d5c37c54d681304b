"""build_features on small hand-made tables with hand-worked expectations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features import CATALOG, Feature, Quantity, build_features, catalog_for, feature_names
from features.build import FeatureContext, _equal_mask
from features.contract import SECTOR_CODES
from features.errors import DataError, MissingInputError
from feature_tables import D, tables

A = D("2024-01-01")


def hand_world() -> dict[str, pd.DataFrame]:
    """Six enterprises, four of them active on A; every event placed to test one rule (see comments)."""
    return tables(
        enterprises=[
            {"enterprise_id": "E1", "sector": "hazchem", "township": "T1", "employees": 100, "founded_on": "2014-01-01",
             "major_hazard_source": True, "dust_explosion": False, "x_capital": 3.5, "x_zone": "north"},
            {"enterprise_id": "E2", "sector": "hazchem", "township": "T1"},
            {"enterprise_id": "E3", "sector": "machinery", "township": "T2", "founded_on": "2024-01-01"},  # not yet founded
            {"enterprise_id": "E4", "sector": "machinery", "township": "T2", "closed_on": "2023-12-31"},  # closed before A
            {"enterprise_id": "E5", "sector": "machinery", "closed_on": "2024-01-01"},  # closes on A: still scored
            {"enterprise_id": "E6", "sector": "machinery", "township": "T2", "founded_on": "2023-12-31"},
        ],
        inspections=[
            {"inspection_id": "I1", "enterprise_id": "E1", "inspected_on": "2023-12-31", "kind": "unannounced",
             "exam_takers": 4, "exam_passed": 3},
            {"inspection_id": "I2", "enterprise_id": "E1", "inspected_on": "2023-10-03", "kind": "focused",  # A - 90: in
             "exam_takers": 2, "exam_passed": 2},
            {"inspection_id": "I3", "enterprise_id": "E1", "inspected_on": "2023-10-02", "kind": "routine"},  # A - 91
            {"inspection_id": "I4", "enterprise_id": "E1", "inspected_on": "2023-12-20", "kind": "routine",
             "recorded_on": "2024-01-01"},  # recorded on A: unknown
            {"inspection_id": "I5", "enterprise_id": "E2", "inspected_on": "2022-01-01", "kind": "routine"},
            {"inspection_id": "I6", "enterprise_id": "E2", "inspected_on": "2024-01-01", "kind": "routine"},  # on A
        ],
        hazards=[
            {"hazard_id": "H1", "enterprise_id": "E1", "found_on": "2023-06-01", "level": "major", "rectify_by": "2023-07-01"},
            {"hazard_id": "H2", "enterprise_id": "E1", "found_on": "2023-06-01", "level": "major", "rectify_by": "2024-01-01"},
            {"hazard_id": "H3", "enterprise_id": "E1", "found_on": "2023-06-01", "level": "major", "rectify_by": "2023-07-01",
             "rectified_on": "2024-01-01"},  # rectified on A: not known before A
            {"hazard_id": "H4", "enterprise_id": "E1", "found_on": "2023-06-01", "level": "major", "rectified_on": "2023-12-31"},
            {"hazard_id": "H5", "enterprise_id": "E1", "found_on": "2023-12-31", "level": "general"},
            {"hazard_id": "H6", "enterprise_id": "E1", "found_on": "2023-12-31", "level": "general", "recorded_on": "2024-01-02"},
            {"hazard_id": "H7", "enterprise_id": "E2", "found_on": "2023-06-01", "level": "general"},
        ],
        accidents=[
            {"accident_id": "A1", "enterprise_id": "E2", "occurred_on": "2023-12-01", "grade": "general", "deaths": 0,
             "road_traffic": True},
            {"accident_id": "A2", "enterprise_id": "E4", "occurred_on": "2023-06-01", "grade": "general", "deaths": 0,
             "road_traffic": False},
            {"accident_id": "A3", "enterprise_id": "E1", "occurred_on": "2023-03-01", "deaths": 3,  # grade derived: larger
             "recorded_on": "2023-03-05"},
            {"accident_id": "A4", "enterprise_id": "E1", "occurred_on": "2023-12-30", "grade": "general", "deaths": 1,
             "concealed": True, "recorded_on": "2024-01-01"},  # concealed, recorded on A: unknown
        ],
        penalties=[
            {"penalty_id": "P1", "enterprise_id": "E1", "decided_on": "2023-11-01", "amount_yuan": 5000.0,
             "person_penalized": True, "suspension": True},
            {"penalty_id": "P2", "enterprise_id": "E1", "decided_on": "2023-02-01", "suspension": False},
        ],
        credit_records=[
            {"record_id": "C1", "enterprise_id": "E1", "kind": "blacklist", "valid_from": "2023-01-01", "valid_to": "2024-01-01"},
            {"record_id": "C2", "enterprise_id": "E2", "kind": "blacklist", "valid_from": "2022-01-01", "valid_to": "2023-12-31"},
            {"record_id": "C3", "enterprise_id": "E1", "kind": "standardization", "value": "2", "valid_from": "2020-01-01"},
            {"record_id": "C4", "enterprise_id": "E1", "kind": "standardization", "value": "1", "valid_from": "2023-06-01",
             "recorded_on": "2024-01-01"},
            {"record_id": "C5", "enterprise_id": "E2", "kind": "credit_grade", "value": "B2", "valid_from": "2023-01-01"},
            {"record_id": "C6", "enterprise_id": "E1", "kind": "insurance", "value": "true", "valid_from": "2023-01-01"},
            {"record_id": "C7", "enterprise_id": "E2", "kind": "insurance", "value": "false", "valid_from": "2023-01-01"},
            {"record_id": "C8", "enterprise_id": "E1", "kind": "commitment", "valid_from": "2023-12-31"},
        ],
    )


@pytest.fixture(scope="module")
def built() -> pd.DataFrame:
    return build_features(hand_world(), A, shrinkage_strength=2.0)


def value(frame: pd.DataFrame, enterprise: str, name: str) -> float:
    return frame.loc[(enterprise, A), name]


def test_rows_are_active_enterprises_sorted_by_id_and_date(built):
    assert built.index.names == ["enterprise_id", "as_of"]
    assert list(built.index) == [("E1", A), ("E2", A), ("E5", A), ("E6", A)]
    assert built.index.get_level_values("as_of").dtype == "datetime64[ns]"


def test_columns_follow_the_catalog_then_extras(built):
    assert list(built.columns) == [*feature_names(), "x_capital", "x_zone"]
    assert isinstance(built["sector"].dtype, pd.CategoricalDtype)
    assert list(built["sector"].cat.categories) == list(SECTOR_CODES)
    assert built["x_capital"].dtype == "float64"
    assert list(built["x_zone"].cat.categories) == ["north"]
    numeric = built.drop(columns=["sector", "x_zone"])
    assert (numeric.dtypes == "float64").all()


def test_attributes(built):
    assert value(built, "E1", "employees") == 100
    assert math.isnan(value(built, "E2", "employees"))
    assert value(built, "E1", "age_years") == pytest.approx((A - D("2014-01-01")).days / 365.25)
    assert value(built, "E6", "age_years") == pytest.approx(1 / 365.25)
    assert math.isnan(value(built, "E2", "age_years"))
    assert value(built, "E1", "major_hazard_source") == 1.0
    assert value(built, "E1", "dust_explosion") == 0.0
    assert math.isnan(value(built, "E2", "dust_explosion"))
    assert value(built, "E1", "x_capital") == 3.5
    assert value(built, "E1", "x_zone") == "north"


def test_inspection_exposure(built):
    # E1: I1 and I2 (exactly A - 90) in the 90-day window, I3 (A - 91) only in longer ones, I4 recorded on A.
    assert value(built, "E1", "inspections_90d") == 2
    assert value(built, "E1", "inspections_365d") == 3
    assert value(built, "E1", "days_since_last_inspection") == 1
    assert value(built, "E1", "unannounced_inspection_share_90d") == 0.5
    assert value(built, "E1", "focused_inspection_share_365d") == pytest.approx(1 / 3)
    assert value(built, "E1", "exam_pass_rate_90d") == pytest.approx(5 / 6)
    assert value(built, "E1", "exam_pass_rate_365d") == pytest.approx(5 / 6)  # I3 has no exam
    # E2: I5 two years ago; I6 on A does not count.
    assert value(built, "E2", "inspections_365d") == 0
    assert value(built, "E2", "inspections_1095d") == 1
    assert value(built, "E2", "days_since_last_inspection") == 730
    assert math.isnan(value(built, "E2", "unannounced_inspection_share_90d"))  # no inspection: NaN, not 0
    assert math.isnan(value(built, "E2", "exam_pass_rate_1095d"))  # no exam taker
    assert value(built, "E5", "inspections_1095d") == 0
    assert math.isnan(value(built, "E5", "days_since_last_inspection"))


def test_hazards_and_their_state(built):
    assert value(built, "E1", "major_hazards_365d") == 4
    assert value(built, "E1", "general_hazards_90d") == 1  # H6 recorded after A
    assert value(built, "E2", "general_hazards_365d") == 1
    assert value(built, "E2", "major_hazards_365d") == 0
    # H1 (overdue), H2 (deadline on A: not yet overdue) and H3 (rectified on A: not known) are open; H4 rectified.
    assert value(built, "E1", "unrectified_major_hazards") == 3
    assert value(built, "E1", "overdue_major_hazards") == 2
    assert value(built, "E2", "unrectified_major_hazards") == 0


def test_per_inspection_rates_shrink_toward_the_sector_mean(built):
    # Hazchem on A: general hazards E1 1, E2 1; inspections in 365 days E1 3, E2 0 -> mean 2/3; m = 2.
    assert value(built, "E1", "general_hazards_per_inspection_365d") == pytest.approx((1 + 2 * 2 / 3) / (3 + 2))
    assert value(built, "E2", "general_hazards_per_inspection_365d") == pytest.approx((1 + 2 * 2 / 3) / 2)
    # Majors: E1 4, E2 0 -> mean 4/3; E2 never inspected gets the mean.
    assert value(built, "E1", "major_hazards_per_inspection_365d") == pytest.approx((4 + 2 * 4 / 3) / 5)
    assert value(built, "E2", "major_hazards_per_inspection_365d") == pytest.approx(4 / 3)
    # Machinery: nobody inspected -> no mean -> NaN.
    assert math.isnan(value(built, "E5", "major_hazards_per_inspection_365d"))


def test_without_shrinkage_rates_are_raw_ratios():
    frame = build_features(hand_world(), A, shrinkage_strength=0)
    assert value(frame, "E1", "general_hazards_per_inspection_365d") == pytest.approx(1 / 3)
    assert math.isnan(value(frame, "E2", "general_hazards_per_inspection_365d"))


def test_accidents(built):
    assert value(built, "E1", "accidents_365d") == 1  # A3; A4 recorded on A
    assert value(built, "E1", "larger_or_worse_accidents_365d") == 1  # derived from 3 deaths
    assert value(built, "E1", "general_accidents_365d") == 0
    assert value(built, "E1", "accident_deaths_365d") == 3
    assert value(built, "E1", "concealed_accidents_1095d") == 0
    assert value(built, "E1", "days_since_last_accident") == (A - D("2023-03-01")).days
    assert value(built, "E2", "accidents_90d") == 1
    assert value(built, "E2", "non_road_accidents_90d") == 0  # A1 is road traffic
    assert value(built, "E2", "days_since_last_accident") == 31
    assert math.isnan(value(built, "E5", "days_since_last_accident"))


def test_peer_context_excludes_the_enterprise_itself(built):
    assert value(built, "E1", "sector_peer_accidents_365d") == 0  # its own A3 does not count
    assert value(built, "E2", "sector_peer_accidents_365d") == 1  # A3 at E1
    assert value(built, "E1", "township_peer_accidents_365d") == 0  # E2's A1 is road traffic
    assert value(built, "E2", "township_peer_accidents_365d") == 1
    assert value(built, "E6", "sector_peer_accidents_365d") == 1  # A2 at E4, closed since: still a lesson
    assert value(built, "E6", "township_peer_accidents_365d") == 1
    assert math.isnan(value(built, "E5", "township_peer_accidents_365d"))  # township unknown


def test_penalties(built):
    assert value(built, "E1", "penalties_90d") == 1
    assert value(built, "E1", "penalties_365d") == 2
    assert value(built, "E1", "penalty_amount_yuan_365d") == 5000  # P2's amount is missing
    assert value(built, "E1", "person_penalties_365d") == 1
    assert value(built, "E1", "suspensions_365d") == 1
    assert value(built, "E2", "penalties_1095d") == 0


def test_credit_state(built):
    assert value(built, "E1", "blacklisted") == 1  # valid_to on A is still valid on A
    assert value(built, "E2", "blacklisted") == 0  # ended the day before
    assert value(built, "E1", "standardization_level") == 2  # level 1 recorded on A: unknown
    assert value(built, "E2", "standardization_level") == 4  # no level
    assert value(built, "E2", "credit_grade_rank") == 5  # B2
    assert math.isnan(value(built, "E1", "credit_grade_rank"))
    assert value(built, "E1", "insured") == 1
    assert value(built, "E2", "insured") == 0  # record says "false"
    assert value(built, "E1", "commitment_signed") == 1
    assert value(built, "E5", "redlisted") == 0


def test_trends(built):
    assert value(built, "E1", "inspections_change_365d") == 3
    assert value(built, "E2", "inspections_change_365d") == -1  # I5 in [A - 730, A - 365)
    assert value(built, "E1", "major_hazards_change_365d") == 4


def test_missing_optional_tables_give_nan_not_zero(built):
    # violations and complaints are absent from the hand world
    for name in ("violations_365d", "illegal_command_violations_90d", "complaints_1095d", "substantiated_complaints_90d"):
        assert built[name].isna().all(), name
    without_hazards = build_features({k: v for k, v in hand_world().items() if k != "hazards"}, A)
    hazard_features = [f.name for f in CATALOG if f.source == "hazards"]
    assert len(hazard_features) >= 10
    assert without_hazards[hazard_features].isna().all().all()
    assert (without_hazards["inspections_365d"] == built["inspections_365d"]).all()
    # present but empty for an enterprise: zeros
    assert value(built, "E5", "general_hazards_365d") == 0
    assert value(built, "E5", "unrectified_major_hazards") == 0


def test_several_dates_equal_one_date_at_a_time():
    world = hand_world()
    dates = [D("2022-06-01"), D("2023-07-01"), A, D("2024-01-02")]
    together = build_features(world, dates)
    one_by_one = pd.concat([build_features(world, d) for d in dates]).sort_index()
    pd.testing.assert_frame_equal(together, one_by_one)
    assert ("E3", D("2024-01-02")) in together.index  # founded on A, active the day after
    assert ("E5", D("2024-01-02")) not in together.index  # closed on A


def test_a_recency_weighted_window_whose_records_all_came_late_is_empty():
    """Late records are taken out of float sums: what remains must be 0, not a rounding residue (1e-16), or a
    sector without any known inspection would get a mean (and every firm in it a relative rate of 1)."""
    world = tables(
        enterprises=[{"enterprise_id": "E1", "sector": "gas"}],
        inspections=[
            {"inspection_id": "I1", "enterprise_id": "E1", "inspected_on": "2023-03-01", "recorded_on": "2024-02-01"},
            {"inspection_id": "I2", "enterprise_id": "E1", "inspected_on": "2023-09-13", "recorded_on": A},
            {"inspection_id": "I3", "enterprise_id": "E1", "inspected_on": "2019-01-01", "recorded_on": "2024-03-01"},
        ],
        hazards=[{"hazard_id": "H1", "enterprise_id": "E1", "found_on": "2022-01-01", "level": "general"}],
    )
    later = D("2024-06-01")  # weights are kept relative to the last date: A's sums are rescaled
    ctx = FeatureContext(world, [A, later], offsets={0, 1825})
    weighted = ctx.window_sum(Quantity("inspections", half_life_days=365), 1825)
    assert weighted[0] == 0.0
    assert weighted[1] == pytest.approx(0.5 ** (458 / 365) + 0.5 ** (262 / 365))  # I1 and I2, known by then
    names = ["hazards_per_inspection_vs_sector_1825d"]
    frame = build_features(world, [A, later], catalog=[f for f in CATALOG if f.name in names])
    assert frame.loc[("E1", A)].isna().all()  # no known inspection in the sector: no mean, no rate


def test_custom_windows_and_catalogs():
    world = hand_world()
    frame = build_features(world, A, windows=(30,))
    assert "inspections_30d" in frame.columns and "inspections_90d" not in frame.columns
    assert value(frame, "E1", "inspections_30d") == 1
    subset = [f for f in CATALOG if f.name in ("major_hazards_365d", "blacklisted")]
    small = build_features(world, A, catalog=subset)
    assert list(small.columns) == ["major_hazards_365d", "blacklisted", "x_capital", "x_zone"]
    assert value(small, "E1", "major_hazards_365d") == 4


def test_progress_is_reported_for_each_feature():
    messages = []
    build_features(hand_world(), A, progress=messages.append)
    assert len(messages) == len(CATALOG) + 2
    assert messages[-1].startswith(f"features {len(CATALOG) + 2}/{len(CATALOG) + 2}")


def test_bad_arguments_are_refused():
    world = hand_world()
    with pytest.raises(ValueError, match="either catalog or windows"):
        build_features(world, A, catalog=CATALOG, windows=(30,))
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        build_features(world, A, catalog=[Feature("x", "hazards", 30, "median", 1, "x", "x")])
    with pytest.raises(ValueError, match="unknown source table 'visits'"):
        build_features(world, A, catalog=[Feature("x", "visits", 30, "window_sum", 1, "x", "x")])
    with pytest.raises(ValueError, match="whole days"):
        build_features(world, pd.Timestamp("2024-01-01 12:00"))
    with pytest.raises(ValueError, match="empty"):
        build_features(world, [])
    with pytest.raises(ValueError, match="shrinkage_strength"):
        build_features(world, A, shrinkage_strength=-1)


def test_bad_data_is_refused():
    world = hand_world()
    with pytest.raises(MissingInputError, match="'enterprises'"):
        build_features({k: v for k, v in world.items() if k != "enterprises"}, A)
    with pytest.raises(MissingInputError, match="'inspections'"):
        build_features({k: v for k, v in world.items() if k != "inspections"}, A)
    doubled = dict(world, enterprises=pd.concat([world["enterprises"], world["enterprises"].iloc[[0]]]))
    with pytest.raises(DataError, match="E1.*more than once"):
        build_features(doubled, A)


@pytest.mark.parametrize("rows", [slice(None), slice(3, None), slice(5, 7), slice(0, 0)])
def test_filters_on_text_match_pandas_equality_with_missing_values_never_matching(rows):
    # Arrow-held text (one chunk, several chunks, sliced at odd offsets) and plain objects take different routes.
    one_chunk = pd.Series(["major", None, "general", "major"] * 3, dtype="str")
    two_chunks = pd.concat([one_chunk.iloc[:5], one_chunk.iloc[5:]], ignore_index=True)
    for values in (one_chunk, two_chunks, one_chunk.astype(object)):
        part = values.iloc[rows]
        expected = np.array([v == "major" for v in part], dtype=bool)
        np.testing.assert_array_equal(_equal_mask(part, "major"), expected)


def test_events_of_unknown_enterprises_are_ignored():
    world = hand_world()
    stray = world["inspections"].iloc[[0]].assign(inspection_id="I9", enterprise_id="nobody")
    frame = build_features(dict(world, inspections=pd.concat([world["inspections"], stray])), A)
    pd.testing.assert_frame_equal(frame, build_features(world, A))


def test_catalog_for_windows_matches_build_windows():
    assert feature_names(catalog_for((30,))) == tuple(build_features(hand_world(), A, windows=(30,)).columns[:-2])
