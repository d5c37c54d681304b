"""Turning a feature matrix into what an estimator computes on, identically in ``fit`` and ``predict``.

A feature matrix is a DataFrame of numeric (or boolean, possibly nullable) columns and may carry the
categorical ``sector`` column. Missing values become ``NaN``; categorical values stay strings. A plain array
is accepted too (columns are then named ``x0, x1, …``), which is what scikit-learn's own checks pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_array, column_or_1d
from sklearn.utils.multiclass import type_of_target

from models import _catalog


def as_frame(X, fitted=None) -> pd.DataFrame:
    """``X`` as a DataFrame with string column names (arrays get ``x0, x1, …``).

    Arrays are validated like scikit-learn does (2-D, dense, numeric, at least one row and column; NaN
    allowed, infinity not; as many columns as ``fitted`` saw); DataFrames are taken as they are (columns are
    found by name, extra columns ignored) and their numeric columns checked when used.
    """
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        if not all(isinstance(c, str) for c in X.columns):
            X = X.rename(columns=str)
        return X
    array = check_array(X, dtype="numeric", ensure_all_finite="allow-nan", accept_sparse=False)
    if fitted is not None and array.shape[1] != fitted.n_features_in_:
        raise ValueError(
            f"X has {array.shape[1]} features, but {type(fitted).__name__} is expecting "
            f"{fitted.n_features_in_} features as input"
        )
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric columns, categorical columns) of a feature matrix.

    Categorical: the catalog's categorical features (``sector``, text ``x_*`` columns) and any column that
    is not numeric or boolean.
    """
    numeric, categorical = [], []
    for name in X.columns:
        column = X[name]
        numeric_dtype = pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)
        if _catalog.is_categorical(str(name)) or not numeric_dtype:
            categorical.append(str(name))
        else:
            numeric.append(str(name))
    return numeric, categorical


def numeric_matrix(X: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The named columns as a float64 array, missing values as NaN (nullable dtypes included).

    Infinity is refused: a feature is a count, a rate or a state, never unbounded.
    """
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise ValueError(f"the feature matrix lacks column(s) seen in fit: {', '.join(missing)}")
    if not columns:
        return np.empty((len(X), 0))
    out = np.empty((len(X), len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        column = X[name]
        if isinstance(column.dtype, pd.api.extensions.ExtensionDtype) or column.dtype == object:
            out[:, j] = pd.to_numeric(column.astype("Float64"), errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        else:
            out[:, j] = column.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        bad = [columns[j] for j in np.nonzero(np.isinf(out).any(axis=0))[0]]
        raise ValueError(f"Input contains infinity in feature column(s): {', '.join(bad[:5])}")
    return out


def categorical_values(X: pd.DataFrame, name: str) -> np.ndarray:
    """A categorical column as an object array of strings (missing values as ``None``)."""
    column = X[name]
    return np.array([None if pd.isna(v) else str(v) for v in column.tolist()], dtype=object)


def binary_target(y, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(``y`` encoded as 0/1, the two classes in sorted order); refuses missing labels and non-binary ``y``.

    The positive class (the adverse outcome) is the larger of the two labels: 1 for 0/1 labels.
    """
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")
    if isinstance(y, pd.Series | pd.Index) or (hasattr(y, "dtype") and isinstance(y.dtype, pd.api.extensions.ExtensionDtype)):
        series = pd.Series(y)
        if series.isna().any():
            raise ValueError(
                f"y has {int(series.isna().sum())} missing label(s): unknown outcomes must be dropped, "
                "never counted as negatives"
            )
        values = series.to_numpy(dtype=np.int64 if pd.api.types.is_integer_dtype(series.dtype) else None)
    else:
        values = np.asarray(y)
    values = column_or_1d(values, warn=True)
    if len(values) != n_rows:
        raise ValueError(f"X has {n_rows} rows but y has {len(values)}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(
            f"y has {int(np.isnan(values).sum())} missing label(s): unknown outcomes must be dropped, "
            "never counted as negatives"
        )
    kind = type_of_target(values, input_name="y")
    classes, encoded = np.unique(values, return_inverse=True)
    if kind == "multiclass" and len(classes) > 2:
        raise ValueError(
            "Only binary classification is supported. The type of the target is multiclass: y must hold "
            f"0 (no adverse outcome) and 1 (adverse), got {len(classes)} classes {classes.tolist()[:5]}"
        )
    if kind not in ("binary", "multiclass"):
        raise ValueError(f"Unknown label type: {kind}; y must hold the labels 0 (no adverse outcome) and 1 (adverse)")
    if len(classes) != 2:
        raise ValueError(
            f"y must hold two classes (0 = no adverse outcome, 1 = adverse); got {len(classes)} class: "
            f"{classes.tolist()}"
        )
    return encoded.astype(np.int64), classes
