"""Monitoring computations on small hand-made frames (PSI, bins, tiers, capture, fairness) and their tables."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scoring.domain.monitoring import (
    MonitoringSettings,
    Reference,
    capture_table,
    fairness_table,
    fit_bins,
    migration_matrix,
    migration_summary,
    psi,
    psi_band,
    reference_from_frame,
    segment_stability,
    size_band,
    stability_table,
    tier_counts,
    training_reference,
)
from scoring.results.monitoring_tables import monitoring_runs, previous_monitoring, read_metrics, store_monitoring

# ---------------------------------------------------------------------------------------------
# PSI and its bands
# ---------------------------------------------------------------------------------------------


def test_psi_hand_worked():
    # Reference 50/50, current 25/75, 0.5 pseudo-count per bin:
    # e = (50.5, 50.5) / 101 = (0.5, 0.5); a = (25.5, 75.5) / 101 = (0.25248, 0.74752)
    # PSI = (0.25248 − 0.5) ln(0.25248 / 0.5) + (0.74752 − 0.5) ln(0.74752 / 0.5)
    #     = 0.24752 × 0.68330 + 0.24752 × 0.40216 = 0.26868
    assert psi([50, 50], [25, 75]) == pytest.approx(0.26868, abs=1e-5)
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0, abs=1e-3)  # shares, not counts
    assert math.isnan(psi([0, 0], [3, 4]))
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])


def test_an_empty_bin_gives_a_finite_psi():
    value = psi([100, 0], [50, 50])
    assert math.isfinite(value) and value > 0.25


@pytest.mark.parametrize(("value", "band"), [(0.0, "stable"), (0.0999, "stable"), (0.10, "moderate"),
                                             (0.2499, "moderate"), (0.25, "significant"), (3.0, "significant"),
                                             (math.nan, "n/a")])
def test_psi_bands(value, band):
    assert psi_band(value) == band


def test_settings_are_validated():
    with pytest.raises(ValueError, match="psi_significant"):
        MonitoringSettings(psi_moderate=0.3, psi_significant=0.25)
    with pytest.raises(ValueError, match="size_band_labels"):
        MonitoringSettings(size_band_edges=(10.0,), size_band_labels=("a", "b", "c"))
    with pytest.raises(ValueError, match="tier_rate_ratio"):
        MonitoringSettings(tier_rate_ratio=1.0)


# ---------------------------------------------------------------------------------------------
# Bins and the reference
# ---------------------------------------------------------------------------------------------


def test_a_mostly_zero_count_gets_its_own_bin():
    bins = fit_bins("x", [0] * 80 + [1] * 10 + [2] * 5 + [5] * 5)
    # Deciles taken as observed values: 0 (eight times), then 1 at the 90th percentile.
    assert bins.edges == (0.0, 1.0)
    assert bins.labels() == ["≤0", "(0, 1]", ">1", "缺失 missing"]
    assert bins.counts([0, 1, 2, 5, 7, None, np.nan]).tolist() == [1, 1, 3, 2]


def test_categorical_bins_keep_unseen_and_missing_levels_apart():
    bins = fit_bins("sector", pd.Series(["b", "a", None, "a"], dtype="object"))
    assert bins.kind == "categorical" and bins.levels == ("a", "b")
    assert bins.counts(["a", "c", None, "b", "a"]).tolist() == [2, 1, 1, 1]


def _frame(n: int = 400, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.poisson(2 + shift, n).astype(float),
        "sector": rng.choice(["commerce", "machinery"], n),
        "peer": np.repeat(rng.poisson(1, 4), n // 4).astype(float),
        "absent": np.full(n, np.nan),
    })


def test_reference_round_trips_through_json():
    frame = _frame()
    reference = reference_from_frame(frame, segments=frame[["sector"]], meta={"model_version": "3"})
    back = Reference.from_json(json.loads(reference.dumps()))
    assert back.variables == reference.variables and back.n_rows == 400 and back.meta["model_version"] == "3"
    for name in reference.variables:
        assert back.bins[name] == reference.bins[name]
        assert back.counts[name].tolist() == reference.counts[name].tolist()
    assert back.segments["sector"]["commerce"]["x"].sum() == (frame["sector"] == "commerce").sum()
    with pytest.raises(ValueError, match="not a riskgrade monitoring reference"):
        Reference.from_json({"format": "something else"})


def test_training_reference_scores_the_training_rows():
    class Constant:
        def predict_proba(self, X):
            return np.column_stack([np.full(len(X), 0.8), np.full(len(X), 0.2)])

    index = pd.MultiIndex.from_product([["E1", "E2"], pd.to_datetime(["2024-01-01", "2024-04-01"])],
                                       names=["enterprise_id", "as_of"])
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "sector": ["a", "a", "b", "b"]}, index=index)
    reference = training_reference(features, Constant(), meta={"run_id": "r"})
    assert reference.variables == ["x", "sector", "probability"]
    assert reference.counts["probability"].sum() == 4
    assert reference.meta == {"as_of_dates": ["2024-01-01", "2024-04-01"], "run_id": "r"}
    assert set(reference.segments["sector"]) == {"a", "b"}


def test_stability_table_finds_the_shifted_variable_only():
    reference = reference_from_frame(_frame(seed=1), segments=_frame(seed=1)[["sector"]])
    same = stability_table(reference, _frame(seed=2), context=["peer"]).set_index("variable")
    assert same.loc["x", "band"] == "stable" and same.loc["sector", "band"] == "stable"
    assert same.loc["peer", "band"] == "context"  # a group-level value: shown, never banded
    assert same.loc["absent", "band"] == "n/a" and math.isnan(same.loc["absent", "psi"])
    shifted = stability_table(reference, _frame(seed=2, shift=3.0), describe={"x": "近期隐患"}).set_index("variable")
    assert shifted.loc["x", "band"] == "significant"
    assert shifted.loc["x", "description"] == "近期隐患"
    assert "→" in shifted.loc["x", "largest_shift"]
    assert shifted.loc["sector", "band"] == "stable"
    assert shifted.index[0] == "x"  # largest first


def test_segment_stability_localises_a_drift_to_its_segment():
    settings = MonitoringSettings(min_segment_rows=50)
    base = _frame(n=800, seed=3)
    reference = reference_from_frame(base, segments=base[["sector"]])
    current = _frame(n=800, seed=4)
    drifted = current["sector"] == "commerce"
    current.loc[drifted, "x"] = current.loc[drifted, "x"] * 2
    table = segment_stability(reference, current, current[["sector"]], settings, exclude=["peer"])
    psis = table.set_index(["segment", "variable"])["psi"]
    assert psis[("commerce", "x")] > 0.25
    assert psis[("machinery", "x")] < 0.10
    assert "peer" not in set(table["variable"]) and "sector" not in set(table["variable"])
    small = segment_stability(reference, current.head(60), current.head(60)[["sector"]], settings)
    assert small.empty  # fewer than 50 current rows per segment: no segment PSI


# ---------------------------------------------------------------------------------------------
# Tiers, migration, capture
# ---------------------------------------------------------------------------------------------


def _scores(tiers: dict[str, str], township: dict[str, str] | None = None) -> pd.DataFrame:
    ids = list(tiers)
    return pd.DataFrame({"enterprise_id": ids, "final_tier": [tiers[i] for i in ids],
                         "township": [(township or {}).get(i, "T1") for i in ids]})


def test_tier_counts_by_group_with_total():
    scores = _scores({"E1": "high", "E2": "low", "E3": "general", "E4": "high", "E5": "general"},
                     {"E1": "东城街道", "E2": "东城街道", "E3": "马村镇", "E4": "马村镇", "E5": "马村镇"})
    table = tier_counts(scores, "township")
    assert table.index.tolist() == ["马村镇", "东城街道", "合计 total"]  # most high first, then size
    assert table.loc["马村镇", ["high", "general", "low", "total"]].tolist() == [1, 2, 0, 3]
    assert table.loc["合计 total", ["high", "general", "low", "total"]].tolist() == [2, 2, 1, 5]
    assert table.loc["东城街道", "high_share"] == pytest.approx(0.5)
    assert table.index.name == "township"


def test_migration_matrix_counts_moves_new_and_gone():
    before = _scores({"E1": "general", "E2": "high", "E3": "low", "E4": "general"})
    after = _scores({"E1": "high", "E2": "high", "E3": "general", "E5": "low"})
    matrix = migration_matrix(before, after)
    assert matrix.loc["general", "high"] == 1 and matrix.loc["high", "high"] == 1
    assert matrix.loc["low", "general"] == 1 and matrix.loc["new", "low"] == 1 and matrix.loc["general", "gone"] == 1
    assert int(matrix.to_numpy().sum()) == 5
    assert migration_summary(matrix) == {"up": 2, "down": 0, "same": 1, "new": 1, "gone": 1}


def test_capture_table_shares_and_lift():
    tiers = _scores({f"E{i}": ("high" if i < 2 else "general" if i < 6 else "low") for i in range(10)})
    events = {"accidents": ["E0", "E0", "E1", "E7"], "major_hazards": ["E3", "X9"]}  # X9 was not tiered
    table = capture_table(tiers, events)
    assert table.loc["high", "enterprises"] == 2 and table.loc["high", "enterprise_share"] == pytest.approx(0.2)
    assert table.loc["high", "accidents"] == 3 and table.loc["high", "accidents_share"] == pytest.approx(0.75)
    assert table.loc["high", "accidents_lift"] == pytest.approx(3.75)
    assert table.loc["low", "accidents"] == 1
    assert table.loc["general", "major_hazards"] == 1
    assert table.loc["合计 total", "major_hazards"] == 2  # the untiered one counts in the total only


# ---------------------------------------------------------------------------------------------
# Fairness
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("employees", "band"), [(3, "微型 <20"), (19, "微型 <20"), (20, "小型 20–299"),
                                                 (299, "小型 20–299"), (300, "中型 300–999"), (1000, "大型 ≥1000"),
                                                 (None, "未知 unknown")])
def test_size_bands_follow_the_statistics_bureau_bounds(employees, band):
    assert size_band(pd.Series([employees], dtype="Float64")).iloc[0] == band


def _fairness_inputs():
    # 100 enterprises: township A (40) gets 3× the overall high-tier rate; B (50) and C (10, too small) the rest.
    ids = [f"E{i:03d}" for i in range(100)]
    township = ["A"] * 40 + ["B"] * 50 + ["C"] * 10
    high = set(ids[:12]) | {ids[95]}  # A: 12 of 40 high (30 %); C: 1 of 10; overall 13 %
    current = pd.DataFrame({"enterprise_id": ids, "final_tier": ["high" if i in high else "general" for i in ids]})
    # Outcomes: in A most high-tier enterprises had none (false alarms); in B two events, both missed.
    label = [0] * 100
    for i in (0, 1, 45, 46):
        label[i] = 1
    evaluated = current.assign(label=pd.array(label, dtype="Int64"), label_known=True)
    groups = pd.DataFrame({"enterprise_id": ids, "township": township})
    return current, evaluated, groups


def test_fairness_flags_large_tier_and_error_rate_gaps():
    current, evaluated, groups = _fairness_inputs()
    settings = MonitoringSettings(min_group_rows=30, min_group_positives=2, error_rate_gap=0.12)
    table = fairness_table(current, evaluated, groups, settings).set_index("group")
    overall = table.loc["全部 all"]
    assert overall["n"] == 100 and overall["high_rate"] == pytest.approx(0.13)
    assert table.loc["A", "high_rate"] == pytest.approx(0.30) and table.loc["A", "flagged"]
    assert "high-tier rate 2.3× overall" in table.loc["A", "flags"]
    # A: 10 of its 38 negatives are high: false-alarm rate 26 % vs 11/96 = 11 % overall (gap 0.148 ≥ 0.12);
    # both its events were high: miss rate 0 % vs 2/4 = 50 % overall.
    assert table.loc["A", "false_alarm_rate"] == pytest.approx(10 / 38)
    assert "false-alarm rate 26% vs 11%" in table.loc["A", "flags"]
    assert "miss rate 0% vs 50%" in table.loc["A", "flags"]
    # B: both events missed (miss rate 100 % vs 50 % overall), high-tier rate 0 (≤ half the overall rate).
    assert table.loc["B", "miss_rate"] == 1.0 and "miss rate" in table.loc["B", "flags"]
    assert table.loc["C", "flagged"] == False  # noqa: E712  (10 < min_group_rows: shown, never flagged)


def test_fairness_without_evaluated_outcomes_shows_tier_rates_only():
    current, _, groups = _fairness_inputs()
    table = fairness_table(current, None, groups)
    assert (table["n_evaluated"] == 0).all()
    assert table["miss_rate"].isna().all() and table["false_alarm_rate"].isna().all()
    assert table.loc[table["group"] == "A", "flagged"].item()  # the tier-rate gap needs no outcomes


# ---------------------------------------------------------------------------------------------
# The monitoring tables (SQLite and PostgreSQL)
# ---------------------------------------------------------------------------------------------


def _metrics(psi_x: float, flagged: float) -> pd.DataFrame:
    return pd.DataFrame([
        {"section": "stability", "metric": "psi", "feature": "x", "group_by": "", "group_value": "", "value": psi_x,
         "band": psi_band(psi_x), "detail": "≤0: 10.0% → 20.0%"},
        {"section": "fairness", "metric": "flagged", "feature": "", "group_by": "township", "group_value": "东城街道",
         "value": flagged, "band": "flagged" if flagged else "", "detail": None},
        {"section": "stability", "metric": "psi", "feature": "absent", "group_by": "", "group_value": "",
         "value": math.nan, "band": "n/a", "detail": None},
    ])


def test_monitoring_runs_are_stored_compared_and_replaced(db_url):
    from features.db import connect

    engine = connect(db_url)
    try:
        first = store_monitoring(engine, as_of=date(2024, 6, 1), metrics=_metrics(0.05, 0.0),
                                 run={"nightly_run_id": 1, "summary": {"note": "第一次"}})
        assert previous_monitoring(engine, date(2024, 6, 1)) is None
        second = store_monitoring(engine, as_of=date(2024, 9, 1), metrics=_metrics(0.30, 1.0),
                                  run={"nightly_run_id": 2, "compared_with": first})
        earlier = previous_monitoring(engine, date(2024, 9, 1))
        assert earlier["monitoring_run_id"] == first and earlier["summary"] == {"note": "第一次"}
        stored = read_metrics(engine, second).set_index(["section", "feature", "group_value"])
        assert stored.loc[("stability", "x", ""), "value"] == pytest.approx(0.30)
        assert stored.loc[("stability", "x", ""), "band"] == "significant"
        assert stored.loc[("fairness", "", "东城街道"), "band"] == "flagged"
        assert math.isnan(stored.loc[("stability", "absent", ""), "value"])  # NaN stored as NULL
        again = store_monitoring(engine, as_of=date(2024, 9, 1), metrics=_metrics(0.20, 0.0), run={})
        with engine.connect() as conn:  # the date's run was replaced, not added
            runs = conn.execute(sa.select(monitoring_runs.c.as_of)).scalars().all()
        assert sorted(runs) == [date(2024, 6, 1), date(2024, 9, 1)]
        assert read_metrics(engine, again).set_index("feature").loc["x", "value"] == pytest.approx(0.20)
        assert previous_monitoring(engine, date(2024, 12, 1))["monitoring_run_id"] == again
        with pytest.raises(ValueError, match="repeat a key"):
            store_monitoring(engine, as_of=date(2024, 12, 1), metrics=pd.concat([_metrics(0.1, 0.0)] * 2), run={})
        with pytest.raises(ValueError, match="unknown monitoring_runs column"):
            store_monitoring(engine, as_of=date(2024, 12, 1), metrics=_metrics(0.1, 0.0), run={"colour": "red"})
        assert previous_monitoring(engine, date(2025, 1, 1))["monitoring_run_id"] == again  # nothing half-written
    finally:
        engine.dispose()
