"""Evaluation metrics for risk rankings, honest about ties and small groups.

All functions take ``y`` (0/1, known labels only: unknown outcomes never reach evaluation) and ``score``
(higher = riskier; a calibrated probability for the Brier score and the calibration curve).

Top-k% metrics select ``ceil(k% · n)`` rows. When the cut-off falls inside a group of tied scores, which
tied rows are "in" is arbitrary, so both bounds are reported: *worst* ranks the tied positives last,
*best* ranks them first. A model that ties everything cannot look good by luck.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def top_k_bounds(y, score, share: float) -> dict[str, float]:
    """Precision and recall among the top ``share`` of rows, with worst/best bounds over tie orders."""
    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    n = len(y)
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    positives = int(y.sum())
    n_top = max(1, math.ceil(share * n - 1e-9)) if n else 0
    if n == 0:
        return dict.fromkeys(("precision_worst", "precision_best", "recall_worst", "recall_best"), math.nan)
    cutoff = np.sort(score)[::-1][n_top - 1]
    above = score > cutoff
    tied = score == cutoff
    slots = n_top - int(above.sum())
    pos_above = int(y[above].sum())
    pos_tied = int(y[tied].sum())
    neg_tied = int(tied.sum()) - pos_tied
    worst = pos_above + max(0, slots - neg_tied)
    best = pos_above + min(slots, pos_tied)
    return {
        "precision_worst": worst / n_top,
        "precision_best": best / n_top,
        "recall_worst": worst / positives if positives else math.nan,
        "recall_best": best / positives if positives else math.nan,
    }


def calibration_table(y, probability, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability against the observed rate, in ``bins`` equal-count bins of probability."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(probability, dtype=float)
    if len(y) == 0:
        return pd.DataFrame(columns=["bin", "n", "mean_predicted", "observed_rate"])
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(order)))
    rows = [
        {
            "bin": i + 1,
            "n": len(g),
            "mean_predicted": float(p[g].mean()),
            "observed_rate": float(y[g].mean()),
        }
        for i, g in enumerate(groups)
        if len(g)
    ]
    return pd.DataFrame(rows)


def lift_table(y, score, steps: int = 20) -> pd.DataFrame:
    """Cumulative share of adverse events captured against the share of enterprises ranked (worst ties)."""
    rows = []
    for i in range(1, steps + 1):
        share = i / steps
        bounds = top_k_bounds(y, score, share)
        rows.append({"share_ranked": share, "captured_worst": bounds["recall_worst"],
                     "captured_best": bounds["recall_best"]})
    return pd.DataFrame(rows)


def summary(
    y,
    probability,
    *,
    top_k_percents: Sequence[float] = (5, 10, 20),
    high_tier_share: float = 0.10,
) -> dict[str, float | int | None]:
    """The headline metrics of one set of scored rows (NaN-free: undefined values are ``None``)."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(probability, dtype=float)
    n, positives = len(y), int(y.sum()) if len(y) else 0
    two_classes = 0 < positives < n
    out: dict[str, float | int | None] = {
        "n": n,
        "positives": positives,
        "event_rate": positives / n if n else None,
        "mean_probability": float(p.mean()) if n else None,
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else None,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if n else None,
    }
    for k in top_k_percents:
        bounds = top_k_bounds(y, p, k / 100) if n else {}
        tag = f"{k:g}"
        for key in ("precision_worst", "precision_best", "recall_worst", "recall_best"):
            metric, bound = key.split("_")
            out[f"{metric}_at_{tag}pct_{bound}"] = _clean(bounds.get(key))
    high = top_k_bounds(y, p, high_tier_share) if n else {}
    out["high_tier_capture_worst"] = _clean(high.get("recall_worst"))
    out["high_tier_capture_best"] = _clean(high.get("recall_best"))
    return out


def grouped_summary(
    y,
    probability,
    groups,
    *,
    min_rows: int = 1,
    **kwargs,
) -> dict[str, dict[str, float | int | None]]:
    """:func:`summary` per group value (groups with fewer than ``min_rows`` rows report only their size)."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=int), "p": np.asarray(probability, dtype=float),
                          "g": pd.Series(np.asarray(groups, dtype=object)).fillna("(missing)").astype(str)})
    out = {}
    for name, part in frame.groupby("g", sort=True):
        if len(part) < min_rows:
            out[str(name)] = {"n": len(part), "positives": int(part["y"].sum())}
        else:
            out[str(name)] = summary(part["y"], part["p"], **kwargs)
    return out


def _clean(value) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)
