"""The expert card: hand-worked points, caps and levels, rule validation against the catalog, ranking."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from features.errors import PolicyError
from models.calibrate import TimeSliceCalibrated
from models.expert import CardRule, ExpertCard, ExpertCardRules
from scoring.domain.policy import build_section


def _rules(**kwargs) -> ExpertCardRules:
    rules = (
        CardRule("major_hazards_365d", points=-10.0, cap=30.0),
        CardRule("blacklisted", points=-40.0),
        CardRule("standardization_level", levels={"1": 10.0, "2": 6.0, "3": 3.0}),
        CardRule("insured", points=3.0),
    )
    return ExpertCardRules(rules=rules, **kwargs)


def test_points_hand_worked():
    X = pd.DataFrame(
        {
            "major_hazards_365d": [0.0, 2.0, 5.0, np.nan],
            "blacklisted": [0.0, 0.0, 1.0, 0.0],
            "standardization_level": [1.0, 4.0, 3.0, np.nan],
            "insured": [1.0, 0.0, 1.0, 1.0],
        }
    )
    card = ExpertCard(_rules()).fit(X)
    # row 0: 100 + 10 (level 1) + 3 (insured)        row 1: 100 - 2·10
    # row 2: 100 - 30 (5·10 capped at 30) - 40 + 3 + 3   row 3: missing values give nothing: 100 + 3
    np.testing.assert_allclose(card.points(X), [113.0, 80.0, 36.0, 103.0])
    np.testing.assert_allclose(card.decision_function(X), [-13.0, 20.0, 64.0, -3.0])
    contributions = card.contributions(X)
    assert contributions.loc[2, "major_hazards_365d"] == 30.0  # capped deduction
    assert contributions.loc[0, "standardization_level"] == -10.0  # a bonus lowers risk
    np.testing.assert_allclose(100.0 - contributions.sum(axis=1), card.points(X))


def test_points_are_bounded():
    X = pd.DataFrame({"major_hazards_365d": [9.0], "blacklisted": [1.0], "standardization_level": [4.0],
                      "insured": [0.0]})
    card = ExpertCard(_rules(min_points=50.0)).fit(X)
    assert card.points(X)[0] == 50.0


def test_absent_feature_gives_no_points_and_is_listed():
    X = pd.DataFrame({"major_hazards_365d": [1.0, 0.0]})
    card = ExpertCard(_rules()).fit(X)
    assert card.absent_features_ == ("blacklisted", "standardization_level", "insured")
    np.testing.assert_allclose(card.points(X), [90.0, 100.0])


def test_ranks_without_any_label(matrix):
    features, _, risk = matrix
    model = TimeSliceCalibrated(ExpertCard(_rules())).fit(features)  # no y at all: a new bureau
    assert model.calibrated_ is False
    p = model.predict_proba(features)[:, 1]
    assert np.all((p > 0) & (p < 1))
    assert np.corrcoef(p, risk.to_numpy())[0, 1] > 0.2  # the card's ranking follows the hidden risk


def test_more_major_hazards_never_lower_risk(expert_rules, matrix):
    features, _, _ = matrix
    card = ExpertCard(expert_rules).fit(features)
    more = features.assign(major_hazards_365d=features["major_hazards_365d"] + 1)
    assert np.all(card.decision_function(more) >= card.decision_function(features))


def test_shipped_policy_section_loads(expert_rules):
    assert expert_rules.base_points == 100.0
    assert "major_hazards_365d" in expert_rules.features
    table = expert_rules.to_frame()
    assert {"feature", "text_zh", "text_en", "points_per_unit", "levels", "cap"} <= set(table.columns)


def test_unknown_feature_is_named_with_its_rule(policy_mapping):
    section = copy.deepcopy(policy_mapping["expert_card"])
    section["rules"][1]["feature"] = "major_hazard_365"
    with pytest.raises(PolicyError, match=r"expert_card\.rules\[1\]\.feature: unknown feature 'major_hazard_365'"):
        build_section(ExpertCardRules, section, "policy.toml: expert_card")


def test_rule_against_catalog_direction_is_refused():
    with pytest.raises(ValueError, match="points: rule for 'insured' deducts points per unit but the catalog says"):
        CardRule("insured", points=-3.0)


def test_duplicate_rule_is_refused():
    rule = CardRule("blacklisted", points=-40.0)
    with pytest.raises(ValueError, match=r"rules\[1\]\.feature: second rule for 'blacklisted'"):
        ExpertCardRules(rules=(rule, rule))


def test_base_outside_bounds_is_refused():
    with pytest.raises(ValueError, match="base_points: expected min_points <= base_points <= max_points"):
        _rules(base_points=130.0)


def test_fit_without_rules_says_what_to_pass():
    with pytest.raises(ValueError, match=r"ExpertCard needs rules=ExpertCardRules"):
        ExpertCard().fit(pd.DataFrame({"blacklisted": [0.0]}))


def test_sklearn_contract():
    card = ExpertCard(_rules())
    assert card.get_params() == {"rules": card.rules}
    assert not [k for k in vars(card) if k.endswith("_")]
    clone(card)  # parameters survive cloning (deep-copyable, unchanged)
    fitted = card.fit(pd.DataFrame({"blacklisted": [0.0, 1.0]}))
    assert {"feature_names_in_", "n_features_in_", "absent_features_", "used_features_"} <= set(vars(fitted))
