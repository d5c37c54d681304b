"""Expected finds: the hazards a visit by a given team finds at a given enterprise (issue 16, item 4).

:class:`ExpectedFindsRegressor` is a Poisson gradient-boosting regressor (scikit-learn
``HistGradientBoostingRegressor(loss="poisson")``) on the rows of :func:`features.visits.visit_examples`: the
enterprise's point-in-time features as of the planning date, the visit's kind, and — unless ``use_team=False`` —
its team (``team_stringency``, ``team_size``). Predicting for a typical team (stringency 1) gives the enterprise's
expected finds; for the team actually assigned, that team's. :func:`finds_backtest` compares models on a later
time slice by Poisson deviance and by how well they rank the visits that found a major hazard.

:func:`train_expected_finds` backtests, trains on every visit known before the as-of date, logs and registers the
model in MLflow as ``riskgrade-expected-finds`` (beside the risk model, :mod:`models.registry`) and, when asked,
lets it challenge that model's own champion on the same backtest (Poisson deviance, lower is better).
:func:`expected_finds` predicts for enterprises' features and a team (default: a typical team, stringency 1);
a model fitted with the major hazards too (``fit(..., major=...)``, what :func:`train_expected_finds` registers)
predicts those as well (``level="major"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_poisson_deviance, roc_auc_score
from sklearn.utils.validation import check_is_fitted

from features.contract import INSPECTION_KINDS

__all__ = ["ExpectedFindsRegressor", "FindsTraining", "TEAM_COLUMNS", "expected_finds", "finds_backtest",
           "score_draft", "train_expected_finds", "training_dates", "visit_finds"]

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

    def fit(self, X: pd.DataFrame, y: Sequence[float], *, major: Sequence[float] | None = None
            ) -> ExpectedFindsRegressor:
        """Fit to the hazards ``y`` the visits of ``X`` found (every level); with ``major`` (the major hazards
        among them, same visits), also a second booster of the same settings for :meth:`predict_major`."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("ExpectedFindsRegressor takes the DataFrame of features.visits.visit_examples")
        y = np.asarray(y, dtype=float)
        if (y < 0).any() or not np.isfinite(y).all():
            raise ValueError("expected finds are fitted to counts >= 0")
        if major is not None:
            major = np.asarray(major, dtype=float)
            if major.shape != y.shape or (major < 0).any() or not np.isfinite(major).all() or (major > y).any():
                raise ValueError("major: one count >= 0 per visit, at most the hazards that visit found")
        numeric = [c for c in X.columns if c not in _NOT_FEATURES and c != "kind" and c not in TEAM_COLUMNS
                   and pd.api.types.is_numeric_dtype(X[c])]
        self.feature_names_in_ = np.array(numeric + [f"kind={k}" for k in INSPECTION_KINDS]
                                          + (list(TEAM_COLUMNS) if self.use_team else []), dtype=object)
        self.model_ = HistGradientBoostingRegressor(
            loss="poisson", learning_rate=self.learning_rate, max_iter=self.max_iter,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, random_state=self.random_state)
        matrix = self._matrix(X)
        self.model_.fit(matrix, y)
        if major is not None:
            self.major_model_ = HistGradientBoostingRegressor(**self.model_.get_params()).fit(matrix, major)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected hazards found by each visit (> 0)."""
        check_is_fitted(self, "model_")
        return self.model_.predict(self._matrix(X))

    @property
    def predicts_major(self) -> bool:
        """Whether the model was fitted with the major hazards too (:meth:`predict_major`)."""
        return hasattr(self, "major_model_")

    def predict_major(self, X: pd.DataFrame) -> np.ndarray:
        """Expected major hazards (重大隐患) found by each visit (> 0); :class:`ValueError` for a model fitted
        without ``major``."""
        check_is_fitted(self, "model_")
        if not self.predicts_major:
            raise ValueError("this expected-finds model was fitted without the major hazards (fit(..., major=...)):"
                             " it predicts hazards of every level only")
        return self.major_model_.predict(self._matrix(X))


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


def expected_finds(model: ExpectedFindsRegressor, features: pd.DataFrame, *, kind: str = "routine",
                   team_size: float | Sequence[float] = 2.0,
                   team_stringency: float | Sequence[float] = 1.0, level: str = "all") -> pd.Series:
    """Expected hazards found by one visit of ``kind`` at each row of ``features`` (enterprises' point-in-time
    features, :func:`features.build.build_features`, same index) by a team of ``team_size`` inspectors of mean
    stringency ``team_stringency`` (scalars, or one value per row; default a typical team: stringency 1).
    ``level``: ``all`` (hazards of every level) or ``major`` (major hazards only: a model fitted with them,
    :meth:`ExpectedFindsRegressor.predict_major`)."""
    if kind not in INSPECTION_KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(INSPECTION_KINDS)}")
    if level not in ("all", "major"):
        raise ValueError(f"level {level!r}: expected all or major")
    frame = features.assign(kind=kind, team_size=np.asarray(team_size, dtype=float) * np.ones(len(features)),
                            team_stringency=np.asarray(team_stringency, dtype=float) * np.ones(len(features)))
    predict = model.predict if level == "all" else model.predict_major
    return pd.Series(predict(frame) if len(frame) else np.zeros(0), index=features.index,
                     name="expected_finds" if level == "all" else "expected_major_finds")


def training_dates(as_of: pd.Timestamp, *, horizon_days: int, months: int) -> pd.DatetimeIndex:
    """The monthly as-of dates of the visits to learn from: the first days of the ``months`` months before
    ``as_of`` whose visit window (``horizon_days``) closes by ``as_of`` — every outcome known on ``as_of``."""
    as_of = pd.Timestamp(as_of).normalize()
    last = (as_of - pd.Timedelta(days=horizon_days)).to_period("M").to_timestamp()
    while last + pd.Timedelta(days=horizon_days) > as_of:
        last -= pd.DateOffset(months=1)
    return pd.date_range(end=last, periods=months, freq="MS")


@dataclass
class FindsTraining:
    """What :func:`train_expected_finds` did: the final model, the backtest (with and without team, and the
    champion's configuration on the same split), the report logged, the registered version and the promotion."""

    model: ExpectedFindsRegressor
    backtest: pd.DataFrame
    report: dict[str, Any]
    version: Any = None
    promotion: Any = None
    notes: list[str] = field(default_factory=list)


def train_expected_finds(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, *, horizon_days: int = 31,
                         months: int = 24, test_months: int = 6, params: Mapping[str, Any] | None = None,
                         tracking_uri: str | None = None, register: bool = True, promote: bool = False,
                         with_major: bool | None = None,
                         progress: Callable[[str], None] | None = None) -> FindsTraining:
    """Backtest (the last ``test_months`` of the ``months`` training dates held out), then fit on all of them,
    log and register as ``riskgrade-expected-finds`` (``register``), and with ``promote`` move its champion alias
    when the model beats the current champion's configuration re-fitted on the same split (Poisson deviance of
    hazards found, lower is better). Only visits whose window closed before ``as_of`` are used. ``with_major``
    (default: ``register``): the final model also learns the major hazards found (``predict_major``: what the
    nightly stores per enterprise beside the total); the backtest and the gate judge the total only."""
    from features.visits import visit_examples

    say = progress or (lambda message: None)
    if not 0 < test_months < months:
        raise ValueError(f"test_months must be between 1 and months - 1 ({months - 1}), got {test_months}")
    as_of = pd.Timestamp(as_of).normalize()
    dates = training_dates(as_of, horizon_days=horizon_days, months=months)
    say(f"visits of {len(dates)} months {dates[0].date()} … {dates[-1].date()}")
    visits = visit_examples(tables, dates, horizon_days=horizon_days)
    if visits.empty:
        raise ValueError(f"no visit recorded in the {months} months before {as_of.date()}: nothing to learn from")
    split = dates[-test_months]
    settings = dict(params or {})
    models = {"with team": ExpectedFindsRegressor(**settings),
              "without team": ExpectedFindsRegressor(use_team=False, **settings)}
    champion = None
    if promote:
        from models import registry

        try:
            champion = registry.load_champion(tracking_uri, model_name=registry.FINDS_MODEL_NAME)
        except Exception:  # noqa: BLE001 — no champion yet (or none loadable): the challenger needs no comparison
            champion = None
        if champion is not None:
            from sklearn.base import clone

            models["champion"] = clone(champion.model)
    say(f"backtest: {int((visits['as_of'] < split).sum())} training, {int((visits['as_of'] >= split).sum())} "
        f"test visits (split {split.date()})")
    backtest = finds_backtest(visits, split, models=models)
    with_major = register if with_major is None else with_major
    say("fitting on every visit" + (" (hazards of every level, and major hazards)" if with_major else ""))
    model = ExpectedFindsRegressor(**settings).fit(visits, visits["hazards_found"],
                                                   major=visits["major_hazards_found"] if with_major else None)
    metrics = {f"{name.replace(' ', '_')}_{metric}": float(backtest.loc[name, metric])
               for name in backtest.index for metric in ("poisson_deviance", "major_auc")}
    report = {"as_of": as_of.date().isoformat(), "horizon_days": horizon_days, "months": months,
              "test_months": test_months, "split": split.date().isoformat(), "n_visits": len(visits),
              "backtest": backtest.reset_index().to_dict(orient="records"), "metrics": metrics}
    result = FindsTraining(model=model, backtest=backtest, report=report)
    if register:
        from models import registry

        version = registry.log_model_run(
            model, kind="expected_finds", as_of=report["as_of"], params={**model.get_params(), "months": months,
                                                                         "horizon_days": horizon_days},
            metrics=metrics, report=report, input_example=visits.drop(columns=list(_NOT_FEATURES)),
            tables={"backtest": backtest.reset_index()}, uri=tracking_uri, model_name=registry.FINDS_MODEL_NAME)
        result.version = version
        report["registered"] = {"name": version.name, "version": version.version}
        if promote:
            challenger_value = float(backtest.loc["with team", "poisson_deviance"])
            champion_value = (float(backtest.loc["champion", "poisson_deviance"]) if "champion" in backtest.index
                              else None)
            result.promotion = registry.promote(version, challenger_value, champion_value,
                                                metric="poisson_deviance", higher_is_better=False,
                                                uri=tracking_uri)
            report["promotion"] = result.promotion.to_dict()
    return result


def visit_finds(model: ExpectedFindsRegressor, tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp,
                visits: pd.DataFrame, *, team_size: int = 2, features: pd.DataFrame | None = None) -> pd.Series:
    """Expected hazards found by each visit of ``visits`` (``enterprise_id``, ``kind``; optional ``inspectors``,
    ``;``-joined ids, and ``n_inspectors``) planned as of ``as_of``, from the enterprises' features as of that day
    (``features``: :func:`features.build.build_features` of ``tables`` as of ``as_of``, computed when not given)
    and the team: the mean stringency (:func:`features.build.inspector_stringency` as of ``as_of``; an inspector with
    no known visit counts 1) of the inspectors named, else a typical team of ``n_inspectors`` (else ``team_size``).
    Indexed like ``visits``; NaN for an enterprise without features on that day (not active)."""
    from features.build import build_features, inspector_stringency
    from features.catalog import INSPECTOR_WINDOW_DAYS

    day = pd.Timestamp(as_of).normalize()
    if features is None:
        features = build_features(tables, [day])
    own = features.xs(day, level="as_of") if isinstance(features.index, pd.MultiIndex) else features
    own = own[~own.index.duplicated()]
    eids = visits["enterprise_id"].astype(str)
    known = eids.isin(own.index.astype(str))
    rows = own.set_axis(own.index.astype(str)).reindex(eids.to_numpy())  # one row per visit (NaN: unknown)
    size = (pd.to_numeric(visits["n_inspectors"], errors="coerce") if "n_inspectors" in visits
            else pd.Series(np.nan, index=visits.index)).fillna(team_size).astype(float)
    stringency = pd.Series(1.0, index=visits.index)
    if "inspectors" in visits and visits["inspectors"].astype(str).str.len().gt(0).any():
        table = inspector_stringency(tables, [day], window_days=INSPECTOR_WINDOW_DAYS)
        known_s = table[day] if len(table.columns) else pd.Series(dtype=float)
        for position, team in enumerate(visits["inspectors"].fillna("").astype(str)):
            members = [m for m in team.split(";") if m and m != "nan"]
            if members:
                stringency.iloc[position] = float(np.mean([known_s.get(m, np.nan) if m in known_s.index
                                                           else 1.0 for m in members]))
                size.iloc[position] = float(len(members))
    stringency = stringency.fillna(1.0)
    out = pd.Series(np.nan, index=visits.index, name="expected_finds")
    kinds = visits["kind"].astype(str)
    for kind in kinds[known].unique():
        if kind not in INSPECTION_KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {', '.join(INSPECTION_KINDS)}")
        where = np.flatnonzero((known & (kinds == kind)).to_numpy())
        block = rows.iloc[where]
        out.iloc[where] = expected_finds(model, block, kind=kind, team_size=size.iloc[where].to_numpy(),
                                         team_stringency=stringency.iloc[where].to_numpy()).to_numpy()
    return out


DRAFT_COLUMNS = ("enterprise_id", "date", "inspectors")
"""The columns of a draft plan :func:`score_draft` scores (``kind`` optional, default routine)."""


def score_draft(model: ExpectedFindsRegressor, tables: Mapping[str, pd.DataFrame], draft: pd.DataFrame, *,
                team_size: int = 2) -> pd.DataFrame:
    """A draft plan a planner edited by hand (one row per visit: :data:`DRAFT_COLUMNS`, optional ``kind``), scored:
    the draft with ``team_stringency`` and ``expected_finds`` (:func:`visit_finds` as of each visit's date: what is
    known before that day). ``inspectors``: ``;``-separated ids of the roster, or names (resolved against the
    roster when one inspector bears the name). Unknown enterprises or inspectors: :class:`ValueError` naming the
    rows."""
    from features.build import build_features
    from features.inspectors import inspector_roster
    from features.validate import parse_dates

    missing = [c for c in DRAFT_COLUMNS if c not in draft.columns]
    if missing:
        raise ValueError(f"the draft plan has no column {missing[0]!r} (expected {', '.join(DRAFT_COLUMNS)}"
                         f"; optional kind)")
    frame = draft.reset_index(drop=True).copy()
    frame["enterprise_id"] = frame["enterprise_id"].astype(str).str.strip()
    days = parse_dates(frame["date"])  # the forms the import reads (2025-01-15, 2025/1/15, 2025年1月15日, …)
    if days.isna().any():
        raise ValueError(f"row {int(days.isna().idxmax()) + 2}: date {frame['date'][days.isna()].iloc[0]!r} is not "
                         f"a date (YYYY-MM-DD)")
    frame["date"] = days.dt.normalize()
    frame["kind"] = (frame["kind"].fillna("").astype(str).str.strip().replace("", "routine") if "kind" in frame
                     else "routine")
    bad_kind = ~frame["kind"].isin(INSPECTION_KINDS)
    if bad_kind.any():
        raise ValueError(f"row {int(bad_kind.idxmax()) + 2}: kind {frame['kind'][bad_kind].iloc[0]!r}: expected one "
                         f"of {', '.join(INSPECTION_KINDS)}")
    known = set(tables["enterprises"]["enterprise_id"].astype(str))
    unknown = ~frame["enterprise_id"].isin(known)
    if unknown.any():
        rows = ", ".join(str(i + 2) for i in np.flatnonzero(unknown)[:5])
        raise ValueError(f"unknown enterprise_id {frame['enterprise_id'][unknown].iloc[0]!r} (rows {rows})")
    roster = inspector_roster(tables)
    ids = set() if roster is None else set(roster["inspector_id"].astype(str))
    by_name: dict[str, list[str]] = {}
    if roster is not None and "name" in roster:
        for iid, name in zip(roster["inspector_id"].astype(str), roster["name"], strict=True):
            if isinstance(name, str):
                by_name.setdefault(name.strip(), []).append(iid)
    teams = []
    for row, cell in enumerate(frame["inspectors"].fillna("").astype(str)):
        team = []
        for part in [p.strip() for p in cell.replace("、", ";").replace(",", ";").split(";") if p.strip()]:
            if part in ids:
                team.append(part)
            elif len(by_name.get(part, ())) == 1:
                team.append(by_name[part][0])
            else:
                why = "names several inspectors" if len(by_name.get(part, ())) > 1 else "is not in the roster"
                raise ValueError(f"row {row + 2}: inspector {part!r} {why}")
        teams.append(";".join(team))
    frame["inspectors"] = teams
    frame["expected_finds"] = np.nan
    for day, group in frame.groupby("date", sort=True):
        features = build_features(tables, [day])
        frame.loc[group.index, "expected_finds"] = visit_finds(
            model, tables, day, group[["enterprise_id", "kind", "inspectors"]], team_size=team_size,
            features=features).to_numpy()
    return frame
