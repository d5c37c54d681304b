"""The [training] and [expert_card] sections: the shipped file documents the defaults, errors name the key."""

from __future__ import annotations

import copy

import pytest

from features.errors import PolicyError
from models.config import TrainingConfig
from scoring.domain.policy import build_section


def test_shipped_training_section_is_the_documented_default(training_config):
    assert training_config == TrainingConfig()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("promotion", "metric"), "accuracy", r"training\.promotion\.metric: expected one of 'roc_auc'"),
        (("max_as_of_dates",), 3, r"training\.max_as_of_dates: expected at least n_test_dates \+ 2 = 5, got 3"),
        (("calibration",), "beta", r"training\.calibration: expected one of 'sigmoid', 'isotonic'"),
        (("points", "pdo"), -20, r"training\.points\.pdo: expected a positive number"),
        (("boosting", "learning_rate"), 2.0, r"training\.boosting\.learning_rate: expected a number in \(0, 1\]"),
        (("boosting", "larger_sizes"), [[7, 300], [1, 50]],
         r"training\.boosting\.larger_sizes: expected \[max_leaf_nodes ≥ 2, max_iter ≥ 1\] pairs, got \[1, 50\]"),
        (("boosting", "larger_sizes"), [[7]], r"training\.boosting\.larger_sizes: expected \[max_leaf_nodes ≥ 2"),
        (("high_tier_share",), 1.5, r"training\.high_tier_share: expected a share between 0 and 1"),
        (("scorecard", "unknown_knob"), 1, r"training\.scorecard\.unknown_knob: unknown key"),
    ],
)
def test_bad_training_values_name_the_key(policy_mapping, path, value, message):
    section = copy.deepcopy(dict(policy_mapping["training"]))
    target = section
    for key in path[:-1]:
        target[key] = dict(target[key])
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PolicyError, match=message):
        build_section(TrainingConfig, section, "policy.toml: training")


def test_expert_card_needs_rules():
    from models.expert import ExpertCardRules

    with pytest.raises(ValueError, match="rules: the card needs at least one rule"):
        ExpertCardRules()
