"""Calibration on a later time slice than the fit.

A model fitted on as-of dates ``d < cut`` is calibrated on the rows of the *later* slice ``d >= cut``: the
probabilities then describe how the ranking behaves on data the model has not seen, which is how it will be
used (scored a year after its training outcomes were known). The calibrator maps the model's risk score
(``decision_function``, higher = riskier) monotonically to a probability, so ranking and monotone
constraints survive calibration:

- ``"sigmoid"`` (Platt): ``p = 1 / (1 + exp(-(a + b·score)))`` with ``b ≥ 0`` — strictly monotone, keeps
  every distinction of the ranking (the default);
- ``"isotonic"``: a non-decreasing step function — more flexible, but it ties neighbouring scores.

Without labels on the calibration slice (a new bureau; or a slice with a single class) the wrapped
model's own probability is kept and ``calibrated_`` is False: the expert card still ranks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from models._frame import as_frame

AS_OF_LEVEL = "as_of"


class TimeSliceCalibrated(ClassifierMixin, BaseEstimator):
    """Fit ``estimator`` on rows before ``calibration_as_of`` and calibrate it on the rows from it on.

    Parameters
    ----------
    estimator : classifier with ``decision_function`` (higher = riskier) and ``predict_proba``
    calibration_as_of : date-like or None
        First as-of date of the calibration slice; None uses the latest as-of date in ``X``.
    method : "sigmoid" or "isotonic"

    ``X`` must be indexed by ``(enterprise_id, as_of)`` (the feature matrix's index) in ``fit``; any index
    is fine afterwards. Rows with a missing label are ignored (unknown is not negative).
    """

    def __init__(self, estimator=None, calibration_as_of=None, method: Literal["sigmoid", "isotonic"] = "sigmoid"):
        self.estimator = estimator
        self.calibration_as_of = calibration_as_of
        self.method = method

    def fit(self, X, y=None):
        if self.estimator is None:
            raise ValueError("TimeSliceCalibrated needs an estimator")
        if self.method not in ("sigmoid", "isotonic"):
            raise ValueError(f"method must be 'sigmoid' or 'isotonic', got {self.method!r}")
        frame = as_frame(X)
        if AS_OF_LEVEL not in (frame.index.names or []):
            raise ValueError(
                f"X must be indexed by (enterprise_id, {AS_OF_LEVEL}) to split fit and calibration slices; "
                f"got index levels {list(frame.index.names)}"
            )
        as_of = pd.DatetimeIndex(frame.index.get_level_values(AS_OF_LEVEL))
        cut = as_of.max() if self.calibration_as_of is None else pd.Timestamp(self.calibration_as_of)
        later = np.asarray(as_of >= cut)
        if not later.any():
            raise ValueError(f"no rows on or after the calibration date {cut.date()} (latest as-of {as_of.max().date()})")

        labels = None if y is None else _labels(y, len(frame))
        known = np.ones(len(frame), dtype=bool) if labels is None else labels.notna().to_numpy()
        fit_rows = ~later & known
        cal_rows = later & known
        self.calibration_as_of_ = cut
        self.n_fit_rows_ = int(fit_rows.sum())
        self.n_calibration_rows_ = int(cal_rows.sum())

        self.estimator_ = clone(self.estimator)
        if not get_tags(self.estimator_).target_tags.required:  # e.g. the expert card: learns nothing from y
            self.estimator_.fit(frame[fit_rows] if fit_rows.any() else frame[later])
        elif labels is None or not fit_rows.any():
            raise ValueError(
                f"no labelled rows before the calibration date {cut.date()}: "
                f"{type(self.estimator_).__name__} cannot be fitted"
            )
        else:
            self.estimator_.fit(frame[fit_rows], labels[fit_rows].to_numpy(dtype=np.int64))
        self.classes_ = getattr(self.estimator_, "classes_", np.array([0, 1]))
        self.feature_names_in_ = np.asarray(self.estimator_.feature_names_in_)
        self.n_features_in_ = len(self.feature_names_in_)

        self.calibrator_ = None
        self.calibrated_ = False
        if labels is not None and cal_rows.any():
            target = labels[cal_rows].to_numpy(dtype=np.int64)
            if 0 < target.sum() < len(target):
                score = self.estimator_.decision_function(frame[cal_rows])
                self.calibrator_ = _fit_calibrator(self.method, score, target)
                self.calibrated_ = True
        return self

    def decision_function(self, X) -> np.ndarray:
        """The wrapped model's risk score (higher = riskier)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(as_frame(X))

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        frame = as_frame(X)
        if self.calibrator_ is None:
            return self.estimator_.predict_proba(frame)
        p = _apply_calibrator(self.calibrator_, self.estimator_.decision_function(frame))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def points(self, X) -> np.ndarray:
        """The wrapped model's points (higher = safer)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.points(as_frame(X))

    def contributions(self, X) -> pd.DataFrame:
        """The wrapped model's per-feature risk contributions (see :mod:`models.explain`)."""
        check_is_fitted(self, "estimator_")
        return self.estimator_.contributions(as_frame(X))

    @property
    def contribution_unit(self) -> str:
        return self.estimator_.contribution_unit


def _labels(y, n_rows: int) -> pd.Series:
    """0/1 labels as a float Series with NaN for unknown outcomes (NA, None, NaN)."""
    values = pd.Series(y.to_numpy(dtype=object) if isinstance(y, pd.Series) else np.asarray(y, dtype=object).ravel())
    if len(values) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(values)}")
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.notna() & ~numeric.isin([0, 1])
    if bad.any() or (values.notna() & numeric.isna()).any():
        shown = values[bad | (values.notna() & numeric.isna())].unique()[:5]
        raise ValueError(f"labels must be 0, 1 or missing (unknown outcome); got {list(shown)}")
    return numeric.astype(float)


def _fit_calibrator(method: str, score: np.ndarray, target: np.ndarray):
    if method == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, target)
    # Platt scaling on the standardised score; the slope may not turn the ranking upside down.
    centre, spread = float(np.mean(score)), float(np.std(score)) or 1.0
    model = LogisticRegression(C=1e4).fit(((score - centre) / spread).reshape(-1, 1), target)
    slope = max(float(model.coef_[0, 0]), 0.0)
    if slope == 0.0:  # the score carries no (or inverted) signal on the later slice: the base rate
        intercept = float(np.log(target.mean() / (1 - target.mean())))
    else:
        intercept = float(model.intercept_[0])
    return _Platt(intercept=intercept, slope=slope / spread, centre=centre)


class _Platt:
    """``p = 1 / (1 + exp(-(intercept + slope·(score - centre))))`` with ``slope ≥ 0``."""

    def __init__(self, intercept: float, slope: float, centre: float):
        self.intercept = intercept
        self.slope = slope
        self.centre = centre

    def predict(self, score: np.ndarray) -> np.ndarray:
        z = self.intercept + self.slope * (np.asarray(score, dtype=float) - self.centre)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def _apply_calibrator(calibrator, score: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(calibrator.predict(score), dtype=float), 0.0, 1.0)
