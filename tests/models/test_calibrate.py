"""Calibration on a later time slice than the fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.boosting import BoostingClassifier
from models.calibrate import TimeSliceCalibrated
from models.scorecard import ScorecardClassifier


def _known(matrix):
    features, labels, risk = matrix
    known = labels["label_known"].to_numpy()
    return features[known], labels["label"][known].astype(int).to_numpy(), risk[known]


def test_fit_and_calibration_slices_are_disjoint_in_time(matrix):
    X, y, _ = _known(matrix)
    dates = sorted(set(X.index.get_level_values("as_of")))
    model = TimeSliceCalibrated(ScorecardClassifier(), calibration_as_of=dates[-1]).fit(X, y)
    later = (X.index.get_level_values("as_of") >= dates[-1]).sum()
    assert model.n_calibration_rows_ == later
    assert model.n_fit_rows_ == len(X) - later
    assert model.calibrated_
    assert model.estimator_.points_table_["count"].groupby(model.estimator_.points_table_["feature"]).sum().max() \
        == model.n_fit_rows_  # the scorecard saw only the earlier slice


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_probabilities_match_the_later_rate(matrix, method):
    X, y, _ = _known(matrix)
    model = TimeSliceCalibrated(BoostingClassifier(max_iter=40), method=method).fit(X, y)
    later = np.asarray(X.index.get_level_values("as_of") == X.index.get_level_values("as_of").max())
    p = model.predict_proba(X[later])[:, 1]
    assert abs(p.mean() - y[later].mean()) < 0.02
    assert np.all(np.diff(p[np.argsort(model.decision_function(X[later]))]) >= -1e-12)  # monotone in the score


def test_sigmoid_keeps_the_ranking(matrix):
    X, y, _ = _known(matrix)
    model = TimeSliceCalibrated(ScorecardClassifier()).fit(X, y)
    score = model.decision_function(X)
    p = model.predict_proba(X)[:, 1]
    order = np.argsort(score, kind="stable")
    assert np.all(np.diff(p[order]) >= 0)
    assert len(np.unique(p)) == len(np.unique(score))


def test_unknown_labels_are_ignored(matrix):
    features, labels, _ = matrix
    model = TimeSliceCalibrated(ScorecardClassifier()).fit(features, labels["label"])
    assert model.n_fit_rows_ + model.n_calibration_rows_ == int(labels["label_known"].sum())


def test_needs_the_as_of_index():
    X = pd.DataFrame({"major_hazards_365d": [0.0, 1.0]})
    with pytest.raises(ValueError, match=r"indexed by \(enterprise_id, as_of\)"):
        TimeSliceCalibrated(ScorecardClassifier()).fit(X, [0, 1])


def test_learned_model_needs_an_earlier_slice(matrix):
    X, y, _ = _known(matrix)
    last = X.index.get_level_values("as_of") == X.index.get_level_values("as_of").max()
    with pytest.raises(ValueError, match="no labelled rows before the calibration date"):
        TimeSliceCalibrated(ScorecardClassifier()).fit(X[last], y[last])


def test_bad_method_is_refused(matrix):
    X, y, _ = _known(matrix)
    with pytest.raises(ValueError, match="method must be 'sigmoid' or 'isotonic', got 'beta'"):
        TimeSliceCalibrated(ScorecardClassifier(), method="beta").fit(X, y)
