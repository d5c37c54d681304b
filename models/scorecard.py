"""The scorecard: optimal monotone binning, weight of evidence, logistic regression, points by PDO.

Credit-scoring practice, applied to work-safety risk:

1. every feature is binned by optbinning's optimal binning, with the event rate forced to move in the
   catalog's direction (``ascending`` when more of the feature means more risk, ``descending`` when less;
   features without a direction get the best monotone trend either way; ``sector`` is categorical);
2. features whose information value is below ``min_iv`` are left out;
3. a logistic regression on the bins' weights of evidence (WoE = ln(%non-event / %event), higher = safer)
   gives each feature a coefficient; a feature whose coefficient has the wrong sign (it would turn its
   monotone trend upside down) is dropped and the regression refitted, so the card stays monotone;
4. points: ``score = offset + factor·ln(odds of no adverse outcome)``, ``factor = pdo / ln 2``,
   ``offset = base_points − factor·ln(base_odds)``: ``base_points`` at odds ``base_odds``:1, and every
   ``pdo`` points double the odds. Each feature's bin gets ``−factor·β·WoE`` plus an equal share of the
   intercept, so a row's score is the sum of its bins' points (:meth:`ScorecardClassifier.points_table`).

Reason codes follow the credit-scoring convention: a feature's contribution is its shortfall against the
best bin of that feature (points the enterprise would gain by being in the best bin).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from models import _catalog
from models._frame import as_frame, binary_target, numeric_matrix, split_columns

_TRENDS = {1: "ascending", -1: "descending", 0: "auto_asc_desc"}


@contextlib.contextmanager
def _quiet_optbinning():
    """optbinning 1.0 still uses pandas idioms pandas 3 deprecates; silence exactly those, from optbinning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"optbinning\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"optbinning\.")
        try:
            from pandas.errors import Pandas4Warning
        except ImportError:  # pragma: no cover - pandas < 3
            pass
        else:
            warnings.filterwarnings("ignore", category=Pandas4Warning, module=r"optbinning\.")
        yield


class ScorecardClassifier(ClassifierMixin, BaseEstimator):
    """Monotone-binned logistic scorecard with PDO points.

    Parameters
    ----------
    pdo, base_points, base_odds : float
        Points scaling: ``base_points`` at odds ``base_odds``:1 (no adverse outcome : adverse outcome);
        ``pdo`` points double the odds.
    max_n_bins : int
        At most this many bins per feature.
    min_bin_size : float
        Smallest bin as a share of the rows.
    min_iv : float
        Features with a smaller information value are left out of the card.
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    """

    def __init__(
        self,
        pdo: float = 20.0,
        base_points: float = 600.0,
        base_odds: float = 50.0,
        max_n_bins: int = 6,
        min_bin_size: float = 0.05,
        min_iv: float = 0.02,
        C: float = 1.0,
    ):
        self.pdo = pdo
        self.base_points = base_points
        self.base_odds = base_odds
        self.max_n_bins = max_n_bins
        self.min_bin_size = min_bin_size
        self.min_iv = min_iv
        self.C = C

    # ------------------------------------------------------------------------------------------ fit

    def fit(self, X, y):
        from optbinning import BinningProcess

        if self.pdo <= 0 or self.base_odds <= 0:
            raise ValueError(f"pdo and base_odds must be positive, got pdo={self.pdo}, base_odds={self.base_odds}")
        frame = as_frame(X)
        target, self.classes_ = binary_target(y, len(frame))
        numeric, categorical = split_columns(frame)
        self.feature_names_in_ = np.array([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.numeric_features_ = tuple(numeric)
        self.categorical_features_ = tuple(categorical)

        data = self._binning_input(frame)
        # A feature without a single value (its table is absent) cannot be binned: leave it out, saying why.
        empty = [name for name in data.columns if data[name].isna().all()]
        names = [name for name in data.columns if name not in empty]
        if not names:
            raise ValueError("every feature column is empty: nothing to bin")
        data = data[names]
        fit_params = {name: {"monotonic_trend": _TRENDS[_catalog.info(name).direction]}
                      for name in numeric if name in names}
        self.binned_features_ = tuple(names)
        with _quiet_optbinning():
            self.binning_process_ = BinningProcess(
                names,
                categorical_variables=[name for name in categorical if name in names],
                max_n_bins=self.max_n_bins,
                min_bin_size=self.min_bin_size,
                binning_fit_params=fit_params,
            ).fit(data, target)
            summary = self.binning_process_.summary().set_index("name")
        iv = summary["iv"].astype(float)
        candidates = [name for name in names if iv.get(name, 0.0) >= self.min_iv]
        woe = self._woe(data)
        self.dropped_features_ = {name: "no value in the training rows" for name in empty}
        self.dropped_features_.update({name: f"information value {iv.get(name, 0.0):.4f} < {self.min_iv}"
                                       for name in names if name not in candidates})
        # Refit without any feature whose coefficient would reverse its trend (WoE is higher = safer,
        # so every coefficient of the adverse outcome must be ≤ 0).
        while True:
            if not candidates:
                raise ValueError(
                    f"no feature has an information value of at least min_iv={self.min_iv}: "
                    "the scorecard would be constant"
                )
            regression = LogisticRegression(C=self.C, max_iter=1000).fit(woe[candidates].to_numpy(), target)
            coef = regression.coef_[0]
            worst = int(np.argmax(coef))
            if coef[worst] <= 0:
                break
            self.dropped_features_[candidates[worst]] = f"coefficient {coef[worst]:+.4f} reverses its trend"
            candidates.pop(worst)
        self.selected_features_ = tuple(candidates)
        self.coef_ = coef.copy()
        self.intercept_ = float(regression.intercept_[0])
        self.factor_ = self.pdo / math.log(2.0)
        self.offset_ = self.base_points - self.factor_ * math.log(self.base_odds)
        self.points_table_ = self._build_points_table()
        self.best_points_ = self.points_table_.groupby("feature", sort=False)["best_points"].first()
        return self

    def _binning_input(self, frame: pd.DataFrame) -> pd.DataFrame:
        numeric = list(self.numeric_features_)
        data = pd.DataFrame(numeric_matrix(frame, numeric), columns=numeric, index=frame.index)
        for name in self.categorical_features_:
            data[name] = frame[name].astype(object).where(frame[name].notna(), np.nan).to_numpy()
        return data

    def _woe(self, data: pd.DataFrame) -> pd.DataFrame:
        data = data[list(self.binned_features_)]
        with _quiet_optbinning():
            woe = self.binning_process_.transform(data, metric="woe", metric_missing="empirical",
                                                  metric_special="empirical")
        return pd.DataFrame(np.asarray(woe, dtype=float), columns=list(data.columns), index=data.index)

    def _intercept_share(self) -> float:
        return (self.offset_ - self.factor_ * self.intercept_) / len(self.selected_features_)

    def _build_points_table(self) -> pd.DataFrame:
        share = self._intercept_share()
        rows = []
        for name, beta in zip(self.selected_features_, self.coef_):
            with _quiet_optbinning():
                table = self.binning_process_.get_binned_variable(name).binning_table.build()
            table = table[table.index != "Totals"]
            info = _catalog.info(name)
            for _, row in table.iterrows():
                rows.append(
                    {
                        "feature": name,
                        "text_zh": info.text_zh,
                        "text_en": info.text_en,
                        "bin": _bin_label(row["Bin"]),
                        "count": int(row["Count"]),
                        "event_rate": float(row["Event rate"]),
                        "woe": float(row["WoE"]),
                        "coefficient": float(beta),
                        "points": float(-self.factor_ * beta * float(row["WoE"]) + share),
                    }
                )
        table = pd.DataFrame(rows)
        populated = table[table["count"] > 0]
        best = populated.groupby("feature", sort=False)["points"].max()
        table["best_points"] = table["feature"].map(best)
        return table

    # -------------------------------------------------------------------------------------- predict

    def points_table(self) -> pd.DataFrame:
        """Points per feature and bin (with counts, event rates, WoE and the best bin's points)."""
        check_is_fitted(self, "points_table_")
        return self.points_table_.copy()

    def feature_points(self, X) -> pd.DataFrame:
        """Each selected feature's points per row (their sum is :meth:`points`)."""
        check_is_fitted(self, "points_table_")
        frame = as_frame(X, self)
        woe = self._woe(self._binning_input(frame))[list(self.selected_features_)]
        points = -self.factor_ * woe.to_numpy() * self.coef_ + self._intercept_share()
        return pd.DataFrame(points, columns=list(self.selected_features_), index=frame.index)

    def points(self, X) -> np.ndarray:
        """Score per row (higher = safer): ``base_points`` at odds ``base_odds``:1, ``pdo`` to double them."""
        return self.feature_points(X).to_numpy().sum(axis=1)

    def decision_function(self, X) -> np.ndarray:
        """Log-odds of the adverse outcome (higher = riskier)."""
        check_is_fitted(self, "points_table_")
        return (self.offset_ - self.points(X)) / self.factor_

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # adverse outcome or not
        tags.input_tags.allow_nan = True  # missing values are information (never inspected, no record)
        return tags

    def contributions(self, X) -> pd.DataFrame:
        """Points short of each feature's best bin, per row (≥ 0; features left out of the card give 0)."""
        own = self.feature_points(X)
        shortfall = (self.best_points_.reindex(own.columns).to_numpy() - own.to_numpy()).clip(min=0.0)
        out = pd.DataFrame(0.0, index=own.index, columns=list(self.feature_names_in_))
        out[list(own.columns)] = shortfall
        return out

    @property
    def contribution_unit(self) -> str:
        return "scorecard points short of the best bin"


def _bin_label(value) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
