"""Closed loop on a small synthetic world: every arm spends the same capacity; the planner finds more."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from scoring.domain.simulate import closed_loop, hazards_per_visit_targets

from scoring_frames import frame


def test_hazards_per_visit_targets_count_what_later_visits_found():
    tables = {
        "inspections": frame("inspections", inspection_id=["i1", "i2", "i3", "i4"], enterprise_id=["A", "A", "B", "A"],
                             inspected_on=["2024-01-10", "2024-02-10", "2024-01-05", "2024-06-01"]),
        "hazards": frame("hazards", hazard_id=["h1", "h2", "h3", "h4"], enterprise_id=["A", "A", "A", "B"],
                         inspection_id=["i1", "i1", "i2", None], found_on="2024-01-10", level="general"),
    }
    index = pd.MultiIndex.from_tuples([("A", pd.Timestamp("2024-01-01")), ("B", pd.Timestamp("2024-01-01")),
                                       ("C", pd.Timestamp("2024-01-01"))], names=["enterprise_id", "as_of"])
    targets = hazards_per_visit_targets(tables, index, horizon_days=91, known_before=pd.Timestamp("2025-01-01"))
    # A: i1 (2 found) and i2 (1) inside the 91 days, i4 outside; B: one visit, nothing found (h4 self-reported)
    assert targets.to_dict("index") == {("A", pd.Timestamp("2024-01-01")): {"inspections": 2, "hazards": 3},
                                        ("B", pd.Timestamp("2024-01-01")): {"inspections": 1, "hazards": 0},
                                        ("C", pd.Timestamp("2024-01-01")): {"inspections": 0, "hazards": 0}}


@pytest.mark.slow
def test_closed_loop_on_a_small_world(policy):
    from models.config import BoostingSettings, TrainingConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = closed_loop(policy, enterprises=300, history_months=24, months=2, seed=3,
                             training=TrainingConfig(boosting=BoostingSettings(max_iter=30)))
    summary = result.summary()
    assert list(summary.index) == ["risk_based", "random", "equal_frequency", "current_practice"]
    capped = summary.loc[["risk_based", "random", "equal_frequency"], "visits"]
    assert capped.max() - capped.min() <= 0.05 * capped.max()  # the same capacity for the compared rules
    report = result.to_json()
    assert set(report["policies"]["random"]) >= {"hazards_per_visit", "accidents"}
    assert report["ratio_vs_random"] == pytest.approx(summary.at["risk_based", "ratio_vs_random"], abs=1e-4)
    assert report["ratio_vs_random"] > 1.2 and report["ratio_vs_equal_frequency"] > 1.2  # seeded: deterministic


def test_too_short_a_history_is_refused(policy):
    with pytest.raises(ValueError, match=r"history_months must be at least 24"):
        closed_loop(policy, history_months=12)
    with pytest.raises(ValueError, match=r"unknown arm 'oracle'"):
        closed_loop(policy, arms=("oracle",))
