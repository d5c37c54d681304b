"""Reason codes: one shape for every model, bilingual catalog text, only risk-raising features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.explain import reason_codes, reasons_wide, top_reasons


def test_top_reasons_hand_worked():
    index = pd.MultiIndex.from_tuples([("E1", pd.Timestamp("2024-01-01")), ("E2", pd.Timestamp("2024-01-01"))],
                                      names=["enterprise_id", "as_of"])
    X = pd.DataFrame({"major_hazards_365d": [3.0, 0.0], "blacklisted": [1.0, 0.0], "insured": [0.0, 1.0],
                      "penalties_365d": [2.0, 0.0]}, index=index)
    contributions = pd.DataFrame({"major_hazards_365d": [30.0, 0.0], "blacklisted": [40.0, 0.0],
                                  "insured": [0.0, -3.0], "penalties_365d": [10.0, 0.0]}, index=index)
    long = top_reasons(contributions, X, n=3, unit="card points deducted")
    first = long.loc[("E1", pd.Timestamp("2024-01-01"))]
    assert first["feature"].tolist() == ["blacklisted", "major_hazards_365d", "penalties_365d"]
    assert first["rank"].tolist() == [1, 2, 3]
    assert first["value"].tolist() == [1, 3, 2]
    assert first["text_zh"].iloc[0] == "评估日处于严重失信主体名单"
    assert "E2" not in long.index.get_level_values("enterprise_id")  # nothing raises E2's risk: no reason

    wide = reasons_wide(long, X.index, n=3)
    assert wide.loc[("E1", pd.Timestamp("2024-01-01")), "reason_1"]["feature"] == "blacklisted"
    assert wide.loc[("E2", pd.Timestamp("2024-01-01"))].isna().all()
    json.dumps(wide.iloc[0].to_dict(), ensure_ascii=False)  # JSON-able as stored by the batch


@pytest.mark.parametrize("kind", ["expert", "scorecard", "boosting"])
def test_same_shape_for_every_model(kind, matrix, expert_rules, training_config):
    from models.train import make_model

    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    model = make_model(kind, training_config, expert_rules)
    if kind == "boosting":
        model.set_params(estimator__max_iter=30)
    model.fit(features[known], labels["label"][known])
    X = features.head(40)
    long = reason_codes(model, X, n=3)
    assert list(long.columns) == ["rank", "feature", "text_zh", "text_en", "value", "contribution", "unit"]
    assert (long["contribution"] > 0).all()
    assert long.groupby(level=[0, 1])["rank"].max().max() <= 3
    assert set(long["feature"]) <= set(X.columns)
    per_row = long.groupby(level=[0, 1])["contribution"]
    assert (per_row.apply(lambda c: c.is_monotonic_decreasing)).all()
    assert long["unit"].iloc[0] == model.contribution_unit


def test_n_must_be_positive(matrix, expert_rules):
    from models.expert import ExpertCard

    card = ExpertCard(expert_rules).fit(matrix[0])
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        reason_codes(card, matrix[0].head(), n=0)


def test_misaligned_index_is_refused():
    reasons = pd.DataFrame({"rank": [1], "feature": ["blacklisted"], "text_zh": [""], "text_en": [""],
                            "value": [1], "contribution": [1.0]}, index=pd.Index(["nope"]))
    with pytest.raises(ValueError, match="does not match the scored rows"):
        reasons_wide(reasons, pd.Index(["E1"]))


def test_score_frame_for_the_batch(matrix, expert_rules):
    from models.calibrate import TimeSliceCalibrated
    from models.expert import ExpertCard
    from models.explain import score_frame

    features, labels, _ = matrix
    model = TimeSliceCalibrated(ExpertCard(expert_rules)).fit(features, labels["label"])
    X = features.head(30)
    scored = score_frame(model, X)
    assert list(scored.columns) == ["probability", "points", "reason_1", "reason_2", "reason_3"]
    assert scored.index.equals(X.index)
    np.testing.assert_allclose(scored["points"], model.points(X))
    assert scored["probability"].between(0, 1).all()
