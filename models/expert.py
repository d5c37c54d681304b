"""The expert card: a points-based safety-credit evaluation that needs no outcome labels.

Liaocheng/Shanxi-style: every enterprise starts from a base of 100 points; records cost points (major hazards,
accidents by grade, penalties, overdue major hazards, blacklisting) and good standing earns some back
(standardization level, a signed commitment, liability insurance). Every number comes from the policy file's
``[expert_card]`` section, typed by :class:`ExpertCardRules`; the features come from the catalog.

Higher points mean *safer*. The card's own probability is a fixed logistic mapping of points
(``prior_midpoint``, ``prior_scale``) so that a new bureau without any outcome data still gets a ranking;
:class:`models.calibrate.TimeSliceCalibrated` replaces it by a mapping calibrated on a later time slice
as soon as labels exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from models import _catalog
from models._frame import as_frame, numeric_matrix


class RuleError(ValueError):
    """A rule of the card is invalid; ``args[0]`` is ``(key, message)`` so the policy loader can locate it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__((key, message))
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class CardRule:
    """Points for one feature: ``points`` per unit of its value, or ``levels`` points by value.

    Negative points are deductions (riskier), positive points bonuses. ``cap`` bounds the absolute points
    one rule can give (deductions stop at the cap, like the regulations' "扣完为止"). A missing value
    gives no points: the card does not guess what it was not told.
    """

    feature: str
    points: float = 0.0
    cap: float | None = None
    levels: Mapping[str, float] | None = None  # stored as ((value, points), ...)

    def __post_init__(self) -> None:
        if self.levels is not None:  # a plain, hashable, picklable copy (the loader hands in a read-only proxy)
            levels = tuple((_level_key(k), float(v)) for k, v in dict(self.levels).items())
            object.__setattr__(self, "levels", levels)
        if not _catalog.known(self.feature):
            raise RuleError("feature", f"unknown feature {self.feature!r} (not in the feature catalog)")
        if self.levels is None and self.points == 0.0:
            raise RuleError("points", f"rule for {self.feature!r} needs non-zero points per unit or a levels table")
        if self.levels is not None and self.points != 0.0:
            raise RuleError("levels", f"rule for {self.feature!r} gives both points per unit and levels: pick one")
        if self.cap is not None and self.cap <= 0:
            raise RuleError("cap", f"expected a positive number of points, got {self.cap!r}")
        direction = _catalog.info(self.feature).direction
        if self.levels is None and direction and np.sign(-self.points) != direction:
            kind = "deducts" if self.points < 0 else "adds"
            raise RuleError(
                "points",
                f"rule for {self.feature!r} {kind} points per unit but the catalog says more of it means "
                f"{'more' if direction > 0 else 'less'} risk",
            )

    def points_for(self, values: np.ndarray) -> np.ndarray:
        """Points this rule gives to each value (0 for missing values)."""
        if self.levels is not None:
            table = dict(self.levels)
            out = np.array([table.get(_level_key(v), 0.0) if not np.isnan(v) else 0.0 for v in values])
        else:
            out = np.where(np.isnan(values), 0.0, values * self.points)
        if self.cap is not None:
            out = np.clip(out, -self.cap, self.cap)
        return out


@dataclass(frozen=True)
class ExpertCardRules:
    """The ``[expert_card]`` section: base, bounds, the uncalibrated mapping and the rules."""

    base_points: float = 100.0
    min_points: float = 0.0
    max_points: float = 120.0
    # Uncalibrated probability before any labels exist: 1 / (1 + exp((points - prior_midpoint) / prior_scale)).
    prior_midpoint: float = 70.0
    prior_scale: float = 10.0
    rules: tuple[CardRule, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.min_points <= self.base_points <= self.max_points:
            raise RuleError(
                "base_points",
                f"expected min_points <= base_points <= max_points, got {self.min_points} / "
                f"{self.base_points} / {self.max_points}",
            )
        if self.prior_scale <= 0:
            raise RuleError("prior_scale", f"expected a positive number, got {self.prior_scale}")
        if not self.rules:
            raise RuleError("rules", "the card needs at least one rule")
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.feature in seen:
                raise RuleError(
                    f"rules[{i}].feature", f"second rule for {rule.feature!r} (the first is rules[{seen[rule.feature]}])"
                )
            seen[rule.feature] = i

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(rule.feature for rule in self.rules)

    def to_frame(self) -> pd.DataFrame:
        """The rules as a table a reviewer can read (logged with the model)."""
        return pd.DataFrame(
            [
                {
                    "feature": r.feature,
                    "text_zh": _catalog.info(r.feature).text_zh,
                    "text_en": _catalog.info(r.feature).text_en,
                    "points_per_unit": r.points if r.levels is None else None,
                    "levels": None if r.levels is None else str(dict(r.levels)),
                    "cap": r.cap,
                }
                for r in self.rules
            ]
        )


def _level_key(value) -> str:
    if isinstance(value, str):
        value = float(value) if value.replace(".", "", 1).lstrip("-").isdigit() else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ExpertCard(ClassifierMixin, BaseEstimator):
    """Points-based card: ``points = clip(base + Σ rule points, min, max)``; higher points mean safer.

    Parameters
    ----------
    rules : ExpertCardRules
        The card (``[expert_card]`` of the policy file, loaded by ``scoring.domain.policy``).

    ``fit`` learns nothing from labels (``y`` is ignored and may be omitted): it records the feature columns and which rule
    features the matrix lacks (those rules then give no points, listed in ``absent_features_``).
    """

    def __init__(self, rules: ExpertCardRules | None = None):
        self.rules = rules

    def fit(self, X, y=None):
        if not isinstance(self.rules, ExpertCardRules):
            raise ValueError(
                "ExpertCard needs rules=ExpertCardRules(...) (the policy file's [expert_card] section, "
                f"loaded with scoring.domain.policy); got {self.rules!r}"
            )
        frame = as_frame(X)
        self.feature_names_in_ = np.array([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.absent_features_ = tuple(f for f in self.rules.features if f not in set(self.feature_names_in_))
        self.used_features_ = tuple(f for f in self.rules.features if f not in self.absent_features_)
        self.classes_ = np.array([0, 1])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # the card learns nothing from outcomes
        return tags

    def rule_points(self, X) -> pd.DataFrame:
        """Points each rule gives each row (columns = rule features; absent features give 0)."""
        check_is_fitted(self, "used_features_")
        frame = as_frame(X, self)
        values = numeric_matrix(frame, list(self.used_features_))
        by_feature = {f: j for j, f in enumerate(self.used_features_)}
        columns = {}
        for rule in self.rules.rules:
            if rule.feature in by_feature:
                columns[rule.feature] = rule.points_for(values[:, by_feature[rule.feature]])
            else:
                columns[rule.feature] = np.zeros(len(frame))
        return pd.DataFrame(columns, index=frame.index)

    def points(self, X) -> np.ndarray:
        """Card points per row (higher is safer), bounded by ``min_points`` and ``max_points``."""
        total = self.rules.base_points + self.rule_points(X).to_numpy().sum(axis=1)
        return np.clip(total, self.rules.min_points, self.rules.max_points)

    def decision_function(self, X) -> np.ndarray:
        """Risk score: points below the base (higher means riskier)."""
        return self.rules.base_points - self.points(X)

    def predict_proba(self, X) -> np.ndarray:
        """Uncalibrated probability from the fixed prior mapping of points (ranks even without labels)."""
        z = (self.points(X) - self.rules.prior_midpoint) / self.rules.prior_scale
        p = 1.0 / (1.0 + np.exp(np.clip(z, -500, 500)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def contributions(self, X) -> pd.DataFrame:
        """Points each rule takes away per row (positive = raises risk; bonuses are negative), in card points."""
        return -self.rule_points(X)

    @property
    def contribution_unit(self) -> str:
        return "card points deducted"
