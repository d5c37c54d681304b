"""Expected finds: the hazards a visit by a given team finds at a given enterprise (issue 16, item 4 — started).

:class:`ExpectedFindsRegressor` is a Poisson gradient-boosting regressor (scikit-learn
``HistGradientBoostingRegressor(loss="poisson")``) on the rows of :func:`features.visits.visit_examples`: the
enterprise's point-in-time features as of the planning date, the visit's kind, and — unless ``use_team=False`` —
its team (``team_stringency``, ``team_size``). Predicting for a typical team (stringency 1) gives the enterprise's
expected finds; for the team actually assigned, that team's. :func:`finds_backtest` compares models on a later
time slice by Poisson deviance and by how well they rank the visits that found a major hazard.

Not yet done (see the issue): MLflow logging and registration beside the risk model with its own gate, the nightly
expected finds per enterprise, the plan ranking by them, and ``riskgrade plan score``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_poisson_deviance, roc_auc_score
from sklearn.utils.validation import check_is_fitted

from features.contract import INSPECTION_KINDS

__all__ = ["ExpectedFindsRegressor", "TEAM_COLUMNS", "finds_backtest"]

TEAM_COLUMNS = ("team_stringency", "team_size")
_NOT_FEATURES = ("enterprise_id", "as_of", "inspected_on", "department", "hazards_found", "major_hazards_found")


class ExpectedFindsRegressor(RegressorMixin, BaseEstimator):
    """Hazards a visit finds (a count), Poisson boosting on the enterprise's numeric features, the visit's kind
    (one column per kind) and, with ``use_team``, the team's stringency and size (a missing stringency — team not
    recorded — counts as a typical team, 1)."""

    def __init__(self, *, use_team: bool = True, learning_rate: float = 0.08, max_iter: int = 200,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 40, l2_regularization: float = 1.0,
                 random_state: int = 0):
        self.use_team = use_team
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ExpectedFindsRegressor takes the DataFrame of features.visits.visit_examples")
        columns = {}
        for name in self.feature_names_in_:
            if name.startswith("kind="):
                columns[name] = (X["kind"] == name.removeprefix("kind=")).to_numpy(dtype=float, na_value=0.0) \
                    if "kind" in X else np.zeros(len(X))
            elif name == "team_stringency":
                columns[name] = pd.to_numeric(X[name]).fillna(1.0).to_numpy(dtype=float)
            else:
                columns[name] = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan) \
                    if name in X else np.full(len(X), np.nan)
        return np.column_stack([columns[n] for n in self.feature_names_in_]) if columns else np.zeros((len(X), 0))

    def fit(self, X: pd.DataFrame, y: Sequence[float]) -> ExpectedFindsRegressor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ExpectedFindsRegressor takes the DataFrame of features.visits.visit_examples")
        y = np.asarray(y, dtype=float)
        if (y < 0).any() or not np.isfinite(y).all():
            raise ValueError("expected finds are fitted to counts >= 0")
        numeric = [c for c in X.columns if c not in _NOT_FEATURES and c != "kind" and c not in TEAM_COLUMNS
                   and pd.api.types.is_numeric_dtype(X[c])]
        self.feature_names_in_ = np.array(numeric + [f"kind={k}" for k in INSPECTION_KINDS]
                                          + (list(TEAM_COLUMNS) if self.use_team else []), dtype=object)
        self.model_ = HistGradientBoostingRegressor(
            loss="poisson", learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, random_state=self.random_state)
        self.model_.fit(self._matrix(X), y)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected hazards found by each visit (> 0)."""
        check_is_fitted(self, "model_")
        return self.model_.predict(self._matrix(X))


def finds_backtest(visits: pd.DataFrame, split: pd.Timestamp, *, target: str = "hazards_found",
                   models: dict[str, ExpectedFindsRegressor] | None = None) -> pd.DataFrame:
    """Fit each model on the visits of as-of dates before ``split`` and score those from ``split`` on: Poisson
    deviance of ``target`` (lower is better) and ROC-AUC of the predictions for "found a major hazard"."""
    models = models or {"with team": ExpectedFindsRegressor(), "without team": ExpectedFindsRegressor(use_team=False)}
    train, test = visits[visits["as_of"] < split], visits[visits["as_of"] >= split]
    if not len(train) or not len(test):
        raise ValueError(f"split {split.date()} leaves {len(train)} training and {len(test)} test visits")
    rows = []
    for name, model in models.items():
        model.fit(train, train[target])
        predicted = model.predict(test)
        major = (test["major_hazards_found"] > 0).to_numpy()
        auc = roc_auc_score(major, predicted) if 0 < major.sum() < len(major) else np.nan
        rows.append({"model": name, "train_visits": len(train), "test_visits": len(test),
                     "poisson_deviance": mean_poisson_deviance(test[target], predicted), "major_auc": auc})
    return pd.DataFrame(rows).set_index("model")
