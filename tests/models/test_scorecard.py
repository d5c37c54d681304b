"""The scorecard: monotone bins in the catalog's direction, PDO points, points table, shortfall reasons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.scorecard import ScorecardClassifier


def _training_rows(matrix):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    return features[known], labels["label"][known].astype(int).to_numpy()


@pytest.fixture(scope="module")
def scorecard(matrix):
    X, y = _training_rows(matrix)
    return ScorecardClassifier(pdo=20.0, base_points=600.0, base_odds=50.0).fit(X, y)


def test_points_table_sums_to_the_score(scorecard, matrix):
    X = matrix[0].head(50)
    table = scorecard.points_table()
    assert {"feature", "bin", "count", "event_rate", "woe", "coefficient", "points", "best_points",
            "text_zh", "text_en"} <= set(table.columns)
    assert set(table["feature"]) == set(scorecard.selected_features_)
    np.testing.assert_allclose(scorecard.feature_points(X).sum(axis=1), scorecard.points(X))


def test_pdo_scaling(scorecard, matrix):
    X = matrix[0].head(200)
    points = scorecard.points(X)
    log_odds_bad = scorecard.decision_function(X)
    factor = 20.0 / math.log(2)
    # score = 600 at odds 50:1 (good:bad); +20 points doubles the good:bad odds
    np.testing.assert_allclose(points, 600.0 - factor * math.log(50.0) - factor * log_odds_bad)
    p = scorecard.predict_proba(X)[:, 1]
    np.testing.assert_allclose(np.log((1 - p) / p), (points - 600.0) / factor + math.log(50.0), rtol=1e-9)


def test_major_hazards_bins_rise_in_event_rate(scorecard):
    table = scorecard.points_table()
    bins = table[(table["feature"] == "major_hazards_365d") & (table["count"] > 0)
                 & ~table["bin"].isin(["Special", "Missing"])]
    assert len(bins) >= 2
    assert bins["event_rate"].is_monotonic_increasing
    assert bins["points"].is_monotonic_decreasing


def test_coefficients_keep_the_trends(scorecard):
    assert np.all(scorecard.coef_ <= 0)  # WoE is higher = safer: every coefficient of the adverse outcome ≤ 0
    assert set(scorecard.selected_features_).isdisjoint(scorecard.dropped_features_)
    assert all(reason for reason in scorecard.dropped_features_.values())


def test_reasons_are_shortfalls_from_the_best_bin(scorecard, matrix):
    X = matrix[0].head(300)
    shortfall = scorecard.contributions(X)
    assert (shortfall.to_numpy() >= 0).all()
    best = scorecard.points_table().groupby("feature")["best_points"].first()
    own = scorecard.feature_points(X)
    np.testing.assert_allclose(shortfall[own.columns], (best[own.columns].to_numpy() - own).clip(lower=0))
    unused = [c for c in X.columns if c not in scorecard.selected_features_]
    assert (shortfall[unused] == 0).all().all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 399), extra=st.integers(1, 6))
def test_more_major_hazards_never_lower_risk(scorecard, matrix, row, extra):
    X = matrix[0].iloc[[row]]
    more = X.assign(major_hazards_365d=X["major_hazards_365d"] + extra)
    assert scorecard.decision_function(more)[0] >= scorecard.decision_function(X)[0]


def test_useless_features_only_is_an_error():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"employees": rng.normal(size=300)})
    y = rng.integers(0, 2, 300)
    with pytest.raises(ValueError, match="no feature has an information value of at least min_iv=0.5"):
        ScorecardClassifier(min_iv=0.5).fit(X, y)


def test_missing_labels_are_refused():
    X = pd.DataFrame({"major_hazards_365d": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="missing label.*never counted as negatives"):
        ScorecardClassifier().fit(X, pd.array([0, 1, pd.NA], dtype="Int64"))


def test_empty_feature_is_left_out(matrix):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    X = features[known].assign(credit_grade_rank=np.nan)
    model = ScorecardClassifier().fit(X, labels["label"][known].astype(int))
    assert model.dropped_features_["credit_grade_rank"] == "no value in the training rows"
    assert (model.contributions(X.head(20))["credit_grade_rank"] == 0).all()
