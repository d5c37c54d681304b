"""Gradient boosting: monotone constraints from the catalog, exact Saabas attributions, sector encoding."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.boosting import BoostingClassifier


@pytest.fixture(scope="module")
def boosting(matrix):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    model = BoostingClassifier(max_iter=60, learning_rate=0.1)
    return model.fit(features[known], labels["label"][known].astype(int).to_numpy())


def test_constraints_come_from_the_catalog(boosting):
    constraints = dict(zip(boosting.columns_, boosting.monotonic_cst_))
    assert constraints["major_hazards_365d"] == 1
    assert constraints["commitment_signed"] == -1
    assert constraints["employees"] == 0
    assert constraints["sector"] == 1  # encoded as its smoothed event rate


def test_attributions_sum_to_raw_score_minus_baseline(boosting, matrix):
    X = matrix[0]
    contributions = boosting.contributions(X)
    assert list(contributions.columns) == list(X.columns)
    total = contributions.sum(axis=1).to_numpy() + boosting.expected_value_
    np.testing.assert_allclose(total, boosting.decision_function(X), atol=1e-9)


def test_missing_values_follow_the_trees(boosting, matrix):
    X = matrix[0].head(100).copy()
    X["general_hazards_per_inspection_365d"] = np.nan
    X["sector"] = pd.Categorical(["unknown_sector"] * len(X))
    total = boosting.contributions(X).sum(axis=1).to_numpy() + boosting.expected_value_
    np.testing.assert_allclose(total, boosting.decision_function(X), atol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(row=st.integers(0, 1599), extra=st.floats(0.5, 20.0), feature=st.sampled_from(
    ["major_hazards_365d", "overdue_major_hazards", "penalties_365d"]))
def test_more_hazards_never_lower_risk(boosting, matrix, row, extra, feature):
    X = matrix[0].iloc[[row]]
    more = X.assign(**{feature: X[feature] + extra})
    assert boosting.decision_function(more)[0] >= boosting.decision_function(X)[0] - 1e-12


def test_survives_pickling_with_identical_scores(boosting, matrix):
    X = matrix[0].head(50)
    restored = pickle.loads(pickle.dumps(boosting))
    np.testing.assert_array_equal(restored.predict_proba(X), boosting.predict_proba(X))
    np.testing.assert_array_equal(restored.contributions(X), boosting.contributions(X))


def test_points_scale(boosting, matrix):
    X = matrix[0].head(20)
    factor = 20.0 / np.log(2)
    np.testing.assert_allclose(boosting.points(X), 600 - factor * np.log(50) - factor * boosting.decision_function(X))


def test_non_binary_target_is_refused():
    X = pd.DataFrame({"major_hazards_365d": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="Only binary classification is supported.*got 3 classes"):
        BoostingClassifier().fit(X, [0, 1, 2])


def test_empty_feature_is_left_out(matrix):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    X = features[known].assign(credit_grade_rank=np.nan)  # e.g. no credit grades on record at all
    model = BoostingClassifier(max_iter=10).fit(X, labels["label"][known].astype(int))
    assert model.dropped_features_ == {"credit_grade_rank": "no value in the training rows"}
    contributions = model.contributions(X.head(20))
    assert (contributions["credit_grade_rank"] == 0).all()
    np.testing.assert_allclose(contributions.sum(axis=1) + model.expected_value_, model.decision_function(X.head(20)))


def _dated(features: pd.DataFrame, n_dates: int) -> pd.DataFrame:
    """``features`` indexed by (enterprise_id, as_of), rows spread over ``n_dates`` quarterly dates."""
    dates = pd.date_range("2023-01-01", periods=n_dates, freq="91D")
    index = pd.MultiIndex.from_arrays(
        [[f"E{i:06d}" for i in range(len(features))], dates[np.arange(len(features)) % n_dates]],
        names=["enterprise_id", "as_of"])
    return features.set_axis(index)


def test_a_larger_size_is_kept_when_it_ranks_held_out_enterprises_better():
    # Four signals of equal weight: three trees of 3 leaves (six splits) cannot rank by their sum.
    rng = np.random.default_rng(5)
    n = 4_000
    signals = ("major_hazards_365d", "overdue_major_hazards", "penalties_365d", "blacklisted")
    features = _dated(pd.DataFrame({name: rng.normal(size=n) for name in signals}), 4)
    y = (rng.random(n) < 1 / (1 + np.exp(2 - features.sum(axis=1).to_numpy()))).astype(int)

    model = BoostingClassifier(max_leaf_nodes=3, max_iter=3, larger_sizes=((7, 40),)).fit(features, y)

    assert model.size_scores_[(7, 40)] > model.size_scores_[(3, 3)] + 0.05
    assert model.size_wins_ == {(7, 40): 1.0}
    assert model.size_ == (7, 40)
    assert model.n_iter_ == 40
    assert max(int(p.nodes["is_leaf"].sum()) for (p,) in model.model_._predictors) > 3


@pytest.mark.parametrize(("confidence", "chosen"), [(0.95, (3, 20)), (0.5, (7, 40))])
def test_a_larger_size_must_win_on_the_required_share_of_resamples(confidence, chosen):
    # A flag and a neutral column: the larger size ranks the latest date a little better, not convincingly.
    rng = np.random.default_rng(8)
    n = 4_000
    blacklisted = (rng.random(n) < 0.2).astype(float)
    features = _dated(pd.DataFrame({"blacklisted": blacklisted, "employees": rng.integers(5, 500, n).astype(float)}), 4)
    y = (rng.random(n) < np.where(blacklisted > 0, 0.5, 0.1)).astype(int)

    model = BoostingClassifier(max_leaf_nodes=3, max_iter=20, larger_sizes=((7, 40),), size_confidence=confidence)
    model.fit(features, y)

    assert model.size_scores_[(7, 40)] > model.size_scores_[(3, 20)]
    assert 0.5 < model.size_wins_[(7, 40)] < 0.95
    assert model.size_ == chosen
    assert model.n_iter_ == chosen[1]


def test_sizes_are_compared_on_enterprises_held_out_whole():
    # Each enterprise's outcome repeats on its four dates, and a unique size lets a model recognise it: held out
    # by row, a larger model would recall the other dates' outcomes and look far better than it is.
    rng = np.random.default_rng(3)
    n_enterprises, n_dates = 3_000, 4
    employees = rng.permutation(n_enterprises).astype(float)
    blacklisted = (rng.random(n_enterprises) < 0.2).astype(float)
    outcome = (rng.random(n_enterprises) < np.where(blacklisted > 0, 0.3, 0.1)).astype(int)
    dates = pd.date_range("2023-01-01", periods=n_dates, freq="91D")
    index = pd.MultiIndex.from_product([[f"E{i:05d}" for i in range(n_enterprises)], dates],
                                       names=["enterprise_id", "as_of"])
    features = pd.DataFrame(
        {"employees": np.repeat(employees, n_dates), "blacklisted": np.repeat(blacklisted, n_dates)}, index=index)
    y = np.repeat(outcome, n_dates)

    model = BoostingClassifier(max_leaf_nodes=3, max_iter=20, min_samples_leaf=4, larger_sizes=((31, 300),))
    model.fit(features, y)

    assert model.size_wins_[(31, 300)] < 0.95
    assert model.size_ == (3, 20)


@pytest.mark.parametrize("case", ["no larger size", "one outcome only"])
def test_the_default_size_is_kept_when_sizes_cannot_be_compared(matrix, case):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    X, y = features[known], labels["label"][known].astype(int).to_numpy()
    if case == "one outcome only":
        y = np.zeros_like(y)
        y[0] = 1  # one positive enterprise: held out or not, the other side has no positive

    model = BoostingClassifier(max_iter=10, larger_sizes=() if case == "no larger size" else ((7, 20),)).fit(X, y)

    assert model.size_scores_ == {} and model.size_wins_ == {}
    assert model.size_ == (3, 10)
    assert model.n_iter_ == 10
