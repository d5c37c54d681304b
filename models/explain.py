"""Reason codes: for every scored row, the features that raise its risk most, in one shape for every model.

Every model exposes ``contributions(X)``: a frame of per-row, per-feature contributions to risk, positive
when the feature raises it, in the model's own unit (``contribution_unit``):

- expert card: card points deducted by the feature's rule (bonuses are negative);
- scorecard: points short of the feature's best bin (the credit-scoring convention);
- boosting: change of the log-odds along the row's tree paths (exact Saabas decomposition).

:func:`reason_codes` keeps the top ``n`` positive contributions per row as a long table with the catalog's
bilingual text; :func:`reasons_wide` turns it into ``reason_1 … reason_n`` columns of JSON-able dicts
(what the nightly batch stores). Rows with fewer than ``n`` risk-raising features get fewer reasons:
a neutral feature is never presented as a reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import _catalog
from models._frame import as_frame

REASON_COLUMNS = ("rank", "feature", "text_zh", "text_en", "value", "contribution", "unit")


def reason_codes(model, X, n: int = 3) -> pd.DataFrame:
    """The top ``n`` risk-raising features of every row of ``X`` as a long table.

    Index: ``X``'s index repeated (one row per reason); columns: ``rank`` (1 = strongest), ``feature``,
    ``text_zh``, ``text_en``, ``value`` (the row's value of the feature), ``contribution`` (> 0) and
    ``unit`` (the model's contribution unit).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    frame = as_frame(X)
    contributions = model.contributions(frame)
    return top_reasons(contributions, frame, n=n, unit=model.contribution_unit)


def top_reasons(contributions: pd.DataFrame, X: pd.DataFrame, n: int = 3, unit: str = "") -> pd.DataFrame:
    """The long reason table from a contributions frame (rows aligned with ``X``)."""
    values = contributions.to_numpy(dtype=float)
    columns = np.asarray(contributions.columns, dtype=object)
    k = min(n, values.shape[1])
    if values.shape[0] == 0 or k == 0:
        return pd.DataFrame(columns=list(REASON_COLUMNS), index=X.index[:0])
    # Largest first; ties broken by column order so that the result is deterministic.
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1)
    keep = top > 0
    row_pos, rank_pos = np.nonzero(keep)
    features = columns[order[row_pos, rank_pos]]
    texts = {name: _catalog.info(str(name)) for name in set(features)}
    feature_values = np.full(len(features), None, dtype=object)
    for name in texts:
        if name in X.columns:
            mask = features == name
            column = X[name].to_numpy(dtype=object)
            feature_values[mask] = [_json_value(v) for v in column[row_pos[mask]]]
    out = pd.DataFrame(
        {
            "rank": rank_pos + 1,
            "feature": features.astype(str),
            "text_zh": [texts[f].text_zh for f in features],
            "text_en": [texts[f].text_en for f in features],
            "value": feature_values,
            "contribution": top[row_pos, rank_pos],
            "unit": unit,
        },
        index=X.index[row_pos],
    )
    return out


def reasons_wide(reasons: pd.DataFrame, index: pd.Index, n: int = 3) -> pd.DataFrame:
    """``reason_1 … reason_n`` columns of dicts (feature, text_zh, text_en, value, contribution) or None."""
    if not index.is_unique:
        raise ValueError("the scored rows need a unique index (enterprise_id, as_of) to attach reasons to")
    out = pd.DataFrame(index=index, columns=[f"reason_{i}" for i in range(1, n + 1)], dtype=object)
    if len(reasons):
        if (index.get_indexer(reasons.index) < 0).any():
            raise ValueError("the reasons' index does not match the scored rows")
        for rank in range(1, n + 1):
            part = reasons[reasons["rank"] == rank]
            records = part[["feature", "text_zh", "text_en", "value", "contribution"]].to_dict("records")
            column = np.full(len(index), None, dtype=object)
            column[index.get_indexer(part.index)] = [
                {**r, "contribution": round(float(r["contribution"]), 6)} for r in records
            ]
            out[f"reason_{rank}"] = column
    return out


def _json_value(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def score_frame(model, X, n_reasons: int = 3) -> pd.DataFrame:
    """What the nightly batch stores per row: ``probability`` (calibrated), ``points`` (higher = safer) and
    ``reason_1 … reason_n`` (dicts, or None), indexed like ``X``."""
    frame = as_frame(X)
    out = pd.DataFrame(
        {"probability": model.predict_proba(frame)[:, 1], "points": model.points(frame)}, index=frame.index
    )
    reasons = reason_codes(model, frame, n=n_reasons)
    return out.join(reasons_wide(reasons, frame.index, n=n_reasons))
