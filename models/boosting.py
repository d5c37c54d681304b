"""Gradient boosting with monotone constraints from the catalog, and exact per-row attributions.

:class:`BoostingClassifier` wraps scikit-learn's ``HistGradientBoostingClassifier``:

- every catalog feature with a risk direction is constrained to move the risk that way
  (``monotonic_cst``), so more major hazards never lower the score;
- ``sector`` enters as its smoothed training event rate (a number, constrained increasing), which keeps the
  trees purely numeric and the attribution below simple and exact;
- the model's size can follow the data: a bureau's few thousand labelled rows need small trees (larger ones
  overfit), a province's million rows support larger ones. Given ``larger_sizes``, every size is fitted on the
  rows of three quarters of the enterprises and ranks the rows of the others (ROC-AUC). Holding out whole
  enterprises matters: an enterprise's rows at nearby as-of dates share features and, through overlapping
  outcome windows, events, so a large model that has memorised enterprises would look better than it is. A
  larger size replaces the default only if it ranks better on ``size_confidence`` of bootstrap resamples of
  the held-out enterprises; the chosen size is then refitted on all the rows.

Attribution (reason codes). scikit-learn has no TreeSHAP. We use the path-dependent decomposition of
Saabas (2014): in every tree, the expected output of a node is the training-cover-weighted mean of its
leaves; walking a row from the root to its leaf, each split moves that expectation, and the move is
credited to the split's feature. Along a path the moves telescope, so for every row, exactly,

    raw score (log-odds) = expected_value_ + Σ_features contribution

where ``expected_value_`` is the baseline prediction plus every tree's root expectation. Unlike SHAP it
credits only features on the row's path and depends on split order, but it is cheap (one vectorised walk
per tree), faithful to the fitted trees, and consistent in sign with the monotone constraints.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted

from models import _catalog
from models._frame import as_frame, binary_target, categorical_values, numeric_matrix, split_columns

ENTERPRISE_LEVEL = "enterprise_id"
SIZE_HELD_OUT_SHARE = 0.25  # enterprises held out to compare sizes
SIZE_RESAMPLES = 200  # bootstrap resamples judging a larger size: a share of 0.95 is then known to ±0.015


class BoostingClassifier(ClassifierMixin, BaseEstimator):
    """Monotone-constrained histogram gradient boosting with exact Saabas attributions.

    Parameters
    ----------
    learning_rate, max_iter, max_leaf_nodes, max_depth, min_samples_leaf, l2_regularization :
        passed to ``HistGradientBoostingClassifier``; ``max_leaf_nodes`` and ``max_iter`` are the default size.
    larger_sizes : tuple of (max_leaf_nodes, max_iter) pairs
        Larger sizes to try (see the module docstring). Empty: the default size, no comparison.
    size_confidence : float
        Share of bootstrap resamples of the held-out enterprises on which a larger size must rank better
        (ROC-AUC) than the default one to replace it.
    sector_smoothing : float
        Pseudo-count pulling a sector's event rate towards the overall rate.
    pdo, base_points, base_odds : float
        Points scaling of the (uncalibrated) log-odds, as for the scorecard.
    random_state : int
    """

    def __init__(
        self,
        learning_rate: float = 0.1,
        max_iter: int = 100,
        max_leaf_nodes: int = 3,
        max_depth: int | None = None,
        min_samples_leaf: int = 200,
        l2_regularization: float = 10.0,
        sector_smoothing: float = 50.0,
        larger_sizes: tuple[tuple[int, int], ...] = (),
        size_confidence: float = 0.95,
        pdo: float = 20.0,
        base_points: float = 600.0,
        base_odds: float = 50.0,
        random_state: int = 0,
    ):
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.sector_smoothing = sector_smoothing
        self.larger_sizes = larger_sizes
        self.size_confidence = size_confidence
        self.pdo = pdo
        self.base_points = base_points
        self.base_odds = base_odds
        self.random_state = random_state

    def fit(self, X, y):
        frame = as_frame(X)
        target, self.classes_ = binary_target(y, len(frame))
        numeric, categorical = split_columns(frame)
        self.feature_names_in_ = np.array([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        # A feature without a single value (its table is absent) carries nothing to split on: left out.
        values = numeric_matrix(frame, numeric)
        empty = np.isnan(values).all(axis=0) if len(values) else np.ones(len(numeric), dtype=bool)
        self.dropped_features_ = {name: "no value in the training rows" for name, e in zip(numeric, empty) if e}
        self.numeric_features_ = tuple(name for name, e in zip(numeric, empty) if not e)
        self.categorical_features_ = tuple(categorical)
        if not self.numeric_features_ and not self.categorical_features_:
            raise ValueError("every feature column is empty: nothing to learn from")

        prior = float(target.mean())
        self.category_rates_ = {}
        for name in categorical:
            values = pd.Series(categorical_values(frame, name)).fillna("")
            stats = pd.DataFrame({"v": values, "y": target}).groupby("v")["y"].agg(["sum", "count"])
            rates = (stats["sum"] + self.sector_smoothing * prior) / (stats["count"] + self.sector_smoothing)
            self.category_rates_[name] = (rates.to_dict(), prior)

        self.columns_ = self.numeric_features_ + self.categorical_features_
        constraints = _catalog.directions(self.numeric_features_) + [1] * len(categorical)
        self.monotonic_cst_ = np.array(constraints, dtype=int)
        self._compare_sizes(frame, target)
        self.size_ = self._chosen_size()
        max_leaf_nodes, max_iter = self.size_
        self.model_ = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=max_iter,
            max_leaf_nodes=max_leaf_nodes,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            monotonic_cst=self.monotonic_cst_,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(self._encode(frame), target)
        self.n_iter_ = self.model_.n_iter_
        self._prepare_attribution()
        return self

    def _compare_sizes(self, frame: pd.DataFrame, target: np.ndarray) -> None:
        """Fit every size on most enterprises and rank the others: ``size_scores_`` (ROC-AUC) and ``size_wins_``
        (share of bootstrap resamples of the held-out enterprises on which a size ranks better than the default
        one). Both stay empty without ``larger_sizes`` or when a side lacks one of the outcomes.

        Enterprises are the first level of a ``(enterprise_id, as_of)`` index; any other index makes every row
        its own enterprise.
        """
        self.size_scores_, self.size_wins_ = {}, {}
        if not self.larger_sizes:
            return
        names = frame.index.names or []
        groups = frame.index.get_level_values(ENTERPRISE_LEVEL) if ENTERPRISE_LEVEL in names else frame.index
        codes, uniques = pd.factorize(groups)
        rng = np.random.default_rng(self.random_state)
        held_out = (rng.random(len(uniques)) < SIZE_HELD_OUT_SHARE)[codes]
        if any(len(np.unique(target[rows])) < 2 for rows in (held_out, ~held_out)):
            return
        truth = target[held_out]
        # Poisson(1) weights per enterprise resample whole enterprises (their rows are not independent); the
        # same resamples judge every size, so the comparison is paired.
        held_codes = pd.factorize(codes[held_out])[0]
        weights = rng.poisson(1.0, (SIZE_RESAMPLES, held_codes.max() + 1))[:, held_codes]
        resampled = {}
        for leaves, trees in ((self.max_leaf_nodes, self.max_iter), *self.larger_sizes):
            size = (int(leaves), int(trees))
            trial = clone(self).set_params(max_leaf_nodes=size[0], max_iter=size[1], larger_sizes=())
            score = trial.fit(frame[~held_out], target[~held_out]).decision_function(frame[held_out])
            self.size_scores_[size] = float(roc_auc_score(truth, score))
            resampled[size] = np.array([roc_auc_score(truth, score, sample_weight=w) for w in weights])
        default = (self.max_leaf_nodes, self.max_iter)
        self.size_wins_ = {size: float(np.mean(aucs > resampled[default]))
                           for size, aucs in resampled.items() if size != default}

    def _chosen_size(self) -> tuple[int, int]:
        """The larger size ranking best, if it beats the default on ``size_confidence`` of the resamples."""
        confident = [size for size, share in self.size_wins_.items() if share >= self.size_confidence]
        if not confident:
            return self.max_leaf_nodes, self.max_iter
        return max(confident, key=self.size_scores_.get)

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        numeric = numeric_matrix(frame, list(self.numeric_features_))
        encoded = [numeric]
        for name in self.categorical_features_:
            if name not in frame.columns:
                raise ValueError(f"the feature matrix lacks column(s) seen in fit: {name}")
            rates, prior = self.category_rates_[name]
            values = categorical_values(frame, name)
            encoded.append(np.array([rates.get("" if v is None else v, prior) for v in values]).reshape(-1, 1))
        return np.hstack(encoded) if encoded else numeric

    # ---------------------------------------------------------------------------------- prediction

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the adverse outcome (uncalibrated; higher = riskier)."""
        check_is_fitted(self, "model_")
        return self.model_.decision_function(self._encode(as_frame(X, self)))

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self._encode(as_frame(X, self)))

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # adverse outcome or not
        tags.input_tags.allow_nan = True  # missing values are information (never inspected, no record)
        return tags

    def points(self, X) -> np.ndarray:
        """The log-odds on the scorecard's points scale (higher = safer)."""
        factor = self.pdo / math.log(2.0)
        return self.base_points - factor * math.log(self.base_odds) - factor * self.decision_function(X)

    # --------------------------------------------------------------------------------- attribution

    def _prepare_attribution(self) -> None:
        trees = []
        expected = float(np.ravel(self.model_._baseline_prediction)[0])
        for (predictor,) in self.model_._predictors:
            nodes = predictor.nodes
            value = nodes["value"].astype(float)
            count = nodes["count"].astype(float)
            left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
            leaf = nodes["is_leaf"].astype(bool)
            mean = value.copy()
            # Children follow their parent in the node array (depth-first), so one backward pass suffices.
            for i in range(len(nodes) - 1, -1, -1):
                if not leaf[i]:
                    cl, cr = count[left[i]], count[right[i]]
                    total = cl + cr
                    mean[i] = (cl * mean[left[i]] + cr * mean[right[i]]) / total if total else 0.5 * (
                        mean[left[i]] + mean[right[i]]
                    )
            expected += mean[0]
            trees.append(
                (
                    nodes["feature_idx"].astype(np.int64),
                    nodes["num_threshold"].astype(float),
                    nodes["missing_go_to_left"].astype(bool),
                    left,
                    right,
                    leaf,
                    mean,
                )
            )
        self._trees = trees
        self.expected_value_ = expected

    def contributions(self, X) -> pd.DataFrame:
        """Per-row, per-feature change of the log-odds (Saabas path attribution; sums exactly to
        ``decision_function(X) - expected_value_``). Columns follow the fitted feature order."""
        check_is_fitted(self, "model_")
        frame = as_frame(X, self)
        data = self._encode(frame)
        n = len(data)
        out = np.zeros((n, len(self.columns_)))
        rows_all = np.arange(n)
        for feature, threshold, missing_left, left, right, leaf, mean in self._trees:
            node = np.zeros(n, dtype=np.int64)
            active = rows_all[~leaf[node]]
            while active.size:
                current = node[active]
                f = feature[current]
                x = data[active, f]
                go_left = np.where(np.isnan(x), missing_left[current], x <= threshold[current])
                child = np.where(go_left, left[current], right[current])
                out[active, f] += mean[child] - mean[current]
                node[active] = child
                active = active[~leaf[child]]
        result = pd.DataFrame(out, columns=list(self.columns_), index=frame.index)
        return result.reindex(columns=list(self.feature_names_in_), fill_value=0.0)

    @property
    def contribution_unit(self) -> str:
        return "log-odds"

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_trees", None)  # derived from model_, rebuilt on load
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "model_" in state:
            self._prepare_attribution()
