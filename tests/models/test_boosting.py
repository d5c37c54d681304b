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
