"""Temporal backtest: train only on what was known before each test date, test on that date's rows.

For every test date ``t`` and every model:

- training rows are the as-of dates ``d`` whose labels were complete before ``t``
  (``labels_complete_on(d, horizon) < t``) and whose label is known;
- the latest of those dates is the calibration slice, the earlier ones are fitted on
  (:class:`models.calibrate.TimeSliceCalibrated`);
- test rows are the rows as of ``t`` with a known label. Unknown labels are never negatives and never
  enter evaluation.

The result holds every test prediction (pooled over test dates for the headline metrics) and one row per
fold describing what was trained on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.base import clone

from features.errors import DataError
from models.calibrate import AS_OF_LEVEL

CompleteOn = Callable[[pd.Timestamp, int], object]


@dataclass(frozen=True)
class BacktestResult:
    """``predictions``: one row per (model kind, enterprise, test date) with ``probability`` and ``label``;
    ``folds``: one row per (kind, test date) with the training and calibration slices used."""

    predictions: pd.DataFrame
    folds: pd.DataFrame
    test_dates: tuple[pd.Timestamp, ...]
    horizon_days: int

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.predictions["kind"]))

    def of(self, kind: str) -> pd.DataFrame:
        """The test predictions of one model kind."""
        if kind not in self.kinds:
            raise KeyError(f"no backtest predictions for model kind {kind!r} (have: {', '.join(self.kinds)})")
        return self.predictions[self.predictions["kind"] == kind]


def default_complete_on(as_of, horizon_days: int) -> pd.Timestamp:
    """The features package's definition of when a label's horizon has closed."""
    from features.labels import labels_complete_on

    return pd.Timestamp(labels_complete_on(_as_date(as_of), horizon_days))


def training_dates(as_of_dates: Sequence, test_date, horizon_days: int, complete_on: CompleteOn | None = None):
    """The as-of dates whose labels were complete strictly before ``test_date``, in order."""
    complete_on = complete_on or default_complete_on
    test = pd.Timestamp(test_date)
    return [pd.Timestamp(d) for d in sorted(as_of_dates) if pd.Timestamp(complete_on(pd.Timestamp(d), horizon_days)) < test]


def temporal_backtest(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    models: Mapping[str, object],
    test_dates: Sequence,
    *,
    horizon_days: int,
    train_labels: Mapping[pd.Timestamp, pd.DataFrame] | None = None,
    complete_on: CompleteOn | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Run every model through every test date (see the module docstring).

    ``features`` and ``labels`` are indexed by ``(enterprise_id, as_of)``; ``labels`` has ``label``
    (1/0/NA) and ``label_known``: what is known now, used to evaluate. ``train_labels`` optionally gives,
    per test date, the labels as they were known on that date (``build_labels(..., known_before=t)``) to
    train that fold on; by default ``labels`` are used. ``models`` maps a kind name to an unfitted
    :class:`~models.calibrate.TimeSliceCalibrated` (its ``calibration_as_of`` is set per fold).
    """
    if not models:
        raise ValueError("no models to backtest")
    if not test_dates:
        raise ValueError("no test dates")
    known, label = _known_labels(features, labels)
    as_of = pd.DatetimeIndex(features.index.get_level_values(AS_OF_LEVEL))
    all_dates = sorted(set(as_of))
    predictions, folds = [], []
    total, done = len(models) * len(test_dates), 0
    for test_date in sorted(pd.Timestamp(t) for t in test_dates):
        train = training_dates(all_dates, test_date, horizon_days, complete_on)
        if len(train) < 2:
            raise DataError(
                f"test date {test_date.date()}: need at least two as-of dates with labels complete before it "
                f"(one to fit, a later one to calibrate), found {len(train)}: the records' history is too short "
                f"for a {horizon_days}-day horizon at this test date; choose later test dates "
                f"(models.train.backtest_test_dates picks the ones the history allows), use more years of data or "
                f"a shorter --horizon-days"
            )
        if train_labels is not None and test_date in train_labels:
            fold_known, fold_label = _known_labels(features, train_labels[test_date])
        else:
            fold_known, fold_label = known, label
        train_rows = np.asarray(as_of.isin(train)) & fold_known
        test_rows = np.asarray(as_of == test_date) & known
        if not test_rows.any():
            raise DataError(f"test date {test_date.date()}: no rows with a known label")
        X_train, y_train = features[train_rows], fold_label[train_rows]
        X_test, y_test = features[test_rows], label[test_rows]
        for kind, model in models.items():
            started = time.perf_counter()
            fitted = clone(model).set_params(calibration_as_of=train[-1]).fit(X_train, y_train)
            probability = fitted.predict_proba(X_test)[:, 1]
            seconds = time.perf_counter() - started
            predictions.append(
                pd.DataFrame(
                    {"kind": kind, "test_date": test_date, "probability": probability, "label": y_test},
                    index=X_test.index,
                )
            )
            folds.append(
                {
                    "kind": kind,
                    "test_date": test_date,
                    "fit_from": train[0],
                    "calibration_as_of": train[-1],
                    "n_fit": fitted.n_fit_rows_,
                    "n_calibration": fitted.n_calibration_rows_,
                    "calibrated": fitted.calibrated_,
                    "n_test": int(test_rows.sum()),
                    "test_positives": int(y_test.sum()),
                    "seconds": round(seconds, 3),
                }
            )
            done += 1
            if progress:
                progress(done, total)
    return BacktestResult(
        predictions=pd.concat(predictions),
        folds=pd.DataFrame(folds),
        test_dates=tuple(sorted(pd.Timestamp(t) for t in test_dates)),
        horizon_days=horizon_days,
    )


def _known_labels(features: pd.DataFrame, labels: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(label known per feature row, label as 0/1 with unknown rows as -1), aligned with ``features``."""
    for column in ("label", "label_known"):
        if column not in labels.columns:
            raise ValueError(f"labels lack the column {column!r} (have: {', '.join(map(str, labels.columns))})")
    aligned = labels.reindex(features.index)
    known = aligned["label_known"].fillna(False).astype(bool).to_numpy() & aligned["label"].notna().to_numpy()
    label = np.where(known, pd.to_numeric(aligned["label"], errors="coerce").fillna(-1), -1).astype(int)
    return known, label


def _as_date(value) -> date:
    return pd.Timestamp(value).date()
