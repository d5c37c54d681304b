"""Temporal backtest: no label from the future, unknown labels never evaluated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from models.backtest import temporal_backtest, training_dates
from models.boosting import BoostingClassifier
from models.calibrate import TimeSliceCalibrated
from models.scorecard import ScorecardClassifier


@pytest.fixture(scope="module")
def six_dates(matrix_factory):
    return matrix_factory(n_enterprises=300, n_dates=6, seed=3)


def test_training_dates_are_complete_before_the_test_date():
    dates = pd.date_range("2023-01-01", periods=6, freq="91D")
    # labels_complete_on(d, 100) = d + 100 days: strictly before the test date
    assert training_dates(dates, dates[4], 100) == list(dates[:3])
    assert training_dates(dates, dates[4], 1) == list(dates[:4])


def test_folds_never_use_outcomes_after_the_test_date(six_dates):
    features, labels, _ = six_dates
    dates = sorted(set(features.index.get_level_values("as_of")))
    models = {"scorecard": TimeSliceCalibrated(ScorecardClassifier())}
    result = temporal_backtest(features, labels, models, dates[-2:], horizon_days=100)
    assert result.test_dates == tuple(dates[-2:])
    for fold in result.folds.itertuples():
        assert fold.calibration_as_of + pd.Timedelta(days=100) < fold.test_date
        assert fold.fit_from < fold.calibration_as_of
    fold = result.folds.iloc[-1]
    n_known = labels["label_known"]
    as_of = features.index.get_level_values("as_of")
    assert fold.n_fit == int(n_known[as_of.isin(dates[:3])].sum())
    assert fold.n_calibration == int(n_known[as_of == dates[3]].sum())


def test_unknown_labels_never_enter_evaluation(six_dates):
    features, labels, _ = six_dates
    dates = sorted(set(features.index.get_level_values("as_of")))
    models = {"boosting": TimeSliceCalibrated(BoostingClassifier(max_iter=20))}
    result = temporal_backtest(features, labels, models, [dates[-1]], horizon_days=100)
    rows = result.of("boosting")
    expected = labels[(labels.index.get_level_values("as_of") == dates[-1]) & labels["label_known"]]
    assert rows.index.equals(expected.index)
    assert set(rows["label"]) <= {0, 1}
    np.testing.assert_array_equal(rows["label"].to_numpy(), expected["label"].astype(int).to_numpy())


def test_training_labels_as_known_on_the_test_date(six_dates):
    features, labels, _ = six_dates
    dates = sorted(set(features.index.get_level_values("as_of")))
    # On the test date, nothing was known yet about the earliest slice: that fold cannot train on it.
    then = labels.copy()
    then.loc[then.index.get_level_values("as_of") == dates[0], ["label", "label_known"]] = [pd.NA, False]
    models = {"scorecard": TimeSliceCalibrated(ScorecardClassifier())}
    now = temporal_backtest(features, labels, models, [dates[-1]], horizon_days=100)
    past = temporal_backtest(features, labels, models, [dates[-1]], horizon_days=100,
                             train_labels={dates[-1]: then})
    first = int(labels["label_known"][labels.index.get_level_values("as_of") == dates[0]].sum())
    assert now.folds["n_fit"].iloc[0] - past.folds["n_fit"].iloc[0] == first
    assert len(now.predictions) == len(past.predictions)  # evaluated on what is known now


def test_too_little_history_is_explained(six_dates):
    features, labels, _ = six_dates
    dates = sorted(set(features.index.get_level_values("as_of")))
    models = {"scorecard": TimeSliceCalibrated(ScorecardClassifier())}
    with pytest.raises(DataError, match=r"need at least two as-of dates with labels complete before it.*found 1"):
        temporal_backtest(features, labels, models, [dates[2]], horizon_days=100)
