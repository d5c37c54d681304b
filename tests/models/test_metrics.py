"""Metrics: hand-worked top-k tie bounds, calibration bins, undefined values as None."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import metrics


def test_top_k_without_ties():
    y = [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
    score = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    out = metrics.top_k_bounds(y, score, 0.2)  # top 2 rows: one positive
    assert out == {"precision_worst": 0.5, "precision_best": 0.5, "recall_worst": 1 / 3, "recall_best": 1 / 3}


def test_top_k_tie_bounds_hand_worked():
    # 10 rows, top 30 % = 3 rows; one clear top row (negative), then 4 tied rows with 2 positives.
    y = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    score = [0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1]
    out = metrics.top_k_bounds(y, score, 0.3)
    # two slots among 4 tied rows (2 positive, 2 negative): worst takes 0 positives, best 2
    assert out["precision_worst"] == 0.0
    assert out["precision_best"] == pytest.approx(2 / 3)
    assert out["recall_worst"] == 0.0
    assert out["recall_best"] == pytest.approx(2 / 3)


def test_constant_score_cannot_look_good():
    y = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    out = metrics.top_k_bounds(y, [0.5] * 10, 0.1)
    assert out["recall_worst"] == 0.0 and out["recall_best"] == 1.0


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=1, max_size=60), st.floats(0.01, 1.0))
def test_bounds_bracket_every_tie_order(rows, share):
    y = np.array([r[0] for r in rows])
    score = np.array([r[1] for r in rows], dtype=float)
    out = metrics.top_k_bounds(y, score, share)
    n_top = max(1, math.ceil(share * len(y) - 1e-9))
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = np.lexsort((rng.random(len(y)), -score))  # one arbitrary order of the ties
        precision = y[order[:n_top]].sum() / n_top
        assert out["precision_worst"] - 1e-12 <= precision <= out["precision_best"] + 1e-12


def test_summary_of_a_single_class_has_none_for_ranking_metrics():
    out = metrics.summary([0, 0, 0], [0.1, 0.2, 0.3])
    assert out["roc_auc"] is None and out["pr_auc"] is None
    assert out["n"] == 3 and out["positives"] == 0
    assert out["recall_at_10pct_worst"] is None
    assert out["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_summary_keys():
    out = metrics.summary([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], top_k_percents=(5, 10, 20))
    assert out["roc_auc"] == 1.0
    for key in ("precision_at_5pct_worst", "recall_at_20pct_best", "high_tier_capture_worst", "brier", "pr_auc"):
        assert key in out


def test_calibration_table_bins():
    table = metrics.calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    assert table["n"].tolist() == [2, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.15, 0.8])
    assert table["observed_rate"].tolist() == [0.0, 1.0]


def test_grouped_summary_keeps_small_groups_to_counts():
    out = metrics.grouped_summary([0, 1, 0, 1, 1], [0.1, 0.9, 0.2, 0.8, 0.5], ["a", "a", "a", "a", "b"], min_rows=2)
    assert out["b"] == {"n": 1, "positives": 1}
    assert out["a"]["roc_auc"] == 1.0


def test_share_out_of_range():
    with pytest.raises(ValueError, match=r"share must be in \(0, 1\], got 1.5"):
        metrics.top_k_bounds([0, 1], [0.1, 0.2], 1.5)
