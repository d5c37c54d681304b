"""The learned models honour the scikit-learn estimator contract (scikit-learn's own checks).

The expert card and the time-slice calibration wrapper are checked by hand instead: the card needs catalog
feature names, the wrapper an ``(enterprise_id, as_of)`` index, neither of which the generic checks provide.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.boosting import BoostingClassifier
from models.scorecard import ScorecardClassifier


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning", "ignore::RuntimeWarning",
                            "ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
@parametrize_with_checks([BoostingClassifier(max_iter=10, min_samples_leaf=5), ScorecardClassifier(min_iv=0.0)])
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_calibration_wrapper_contract():
    from sklearn.base import clone

    from models.calibrate import TimeSliceCalibrated

    wrapper = TimeSliceCalibrated(ScorecardClassifier(), calibration_as_of="2024-01-01", method="isotonic")
    assert not [k for k in vars(wrapper) if k.endswith("_")]
    copy = clone(wrapper)
    assert copy.get_params(deep=False)["calibration_as_of"] == "2024-01-01"
    assert copy.get_params()["estimator__pdo"] == 20.0
