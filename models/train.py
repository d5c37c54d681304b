"""Training end to end: tables → features and labels → temporal backtest → final models → MLflow → promotion.

:func:`train_and_evaluate` is what ``riskgrade train`` and the analysts' notebooks call. ``as_of`` is the
day of training: features as of each date use only records known before that date, labels only outcomes
whose horizon closed before ``as_of`` (and recorded before it), so that a model trained "as of" a past day
sees exactly what the bureau knew on that day.

The as-of dates of the training matrix step back from the latest date whose labels are complete
(``labels_complete_on(d, horizon) < as_of``) every ``step_days``, no earlier than ``warmup_days`` after the
first inspection on record. The latest ``n_test_dates`` of them are the backtest's test dates; the final
models are fitted on all dates and calibrated on the latest one.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError
from features.labels import oracle_risk
from models import metrics as _metrics
from models.backtest import BacktestResult, temporal_backtest
from models.boosting import BoostingClassifier
from models.calibrate import TimeSliceCalibrated
from models.config import TrainingConfig
from models.expert import ExpertCard, ExpertCardRules
from models.scorecard import ScorecardClassifier

Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------ model kinds


def _expert(config: TrainingConfig, rules: ExpertCardRules | None):
    if rules is None:
        raise ValueError(
            "the expert card needs its rules: pass expert_rules=ExpertCardRules (the policy file's "
            "[expert_card] section, e.g. build_section(ExpertCardRules, load_policy().expert_card, ...))"
        )
    return ExpertCard(rules=rules)


def _scorecard(config: TrainingConfig, rules: ExpertCardRules | None):
    s, p = config.scorecard, config.points
    return ScorecardClassifier(
        pdo=p.pdo, base_points=p.base_points, base_odds=p.base_odds, max_n_bins=s.max_n_bins,
        min_bin_size=s.min_bin_size, min_iv=s.min_iv, C=s.C,
    )


def _boosting(config: TrainingConfig, rules: ExpertCardRules | None):
    b, p = config.boosting, config.points
    return BoostingClassifier(
        learning_rate=b.learning_rate, max_iter=b.max_iter, max_leaf_nodes=b.max_leaf_nodes,
        min_samples_leaf=b.min_samples_leaf, l2_regularization=b.l2_regularization,
        sector_smoothing=b.sector_smoothing, larger_sizes=b.larger_sizes, size_confidence=b.size_confidence,
        pdo=p.pdo, base_points=p.base_points, base_odds=p.base_odds,
        random_state=config.seed,
    )


MODEL_KINDS: dict[str, Callable[[TrainingConfig, ExpertCardRules | None], Any]] = {
    "expert": _expert,
    "scorecard": _scorecard,
    "boosting": _boosting,
}
"""Model kind → factory of its (uncalibrated) estimator from the training config and the card rules."""


def make_model(kind: str, config: TrainingConfig = TrainingConfig(), expert_rules: ExpertCardRules | None = None):
    """An unfitted :class:`TimeSliceCalibrated` model of ``kind`` ("expert", "scorecard", "boosting")."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)})")
    return TimeSliceCalibrated(MODEL_KINDS[kind](config, expert_rules), method=config.calibration)


# ------------------------------------------------------------------------------------------ dates


def training_as_of_dates(
    tables: Mapping[str, pd.DataFrame], as_of, horizon_days: int, config: TrainingConfig = TrainingConfig()
) -> list[pd.Timestamp]:
    """The as-of dates of the training matrix (oldest first); see the module docstring.

    Refuses (:class:`DataError`) only when not even one honest test date exists (:func:`backtest_test_dates`),
    saying how many more days of records one would take.
    """
    from features.labels import labels_complete_on

    day = pd.Timestamp(as_of)
    # labels_complete_on is as_of + horizon: the latest date d with complete_on(d) < day.
    latest = day - pd.Timedelta(days=horizon_days + 1)
    while pd.Timestamp(labels_complete_on(latest, horizon_days)) >= day:  # in case the rule ever changes
        latest -= pd.Timedelta(days=1)
    first_record = _first_record(tables, day)
    earliest = first_record + pd.Timedelta(days=config.warmup_days)
    grid = [latest - pd.Timedelta(days=config.step_days * k) for k in range(config.max_as_of_dates)]
    dates = sorted(d for d in grid if d >= earliest)
    if not backtest_test_dates(dates, horizon_days, config.n_test_dates):
        raise DataError(_too_short(day, horizon_days, config, grid, earliest, first_record, len(dates)))
    return dates


def backtest_test_dates(dates: Sequence, horizon_days: int, n_test_dates: int) -> list[pd.Timestamp]:
    """The latest ``n_test_dates`` (at most) of ``dates`` that can be honest test dates: each needs two earlier
    as-of dates whose outcomes were complete before it (one to fit, a later one to calibrate). On a short history
    fewer are returned, down to one; none means no honest backtest is possible."""
    from models.backtest import training_dates

    ordered = sorted(pd.Timestamp(d) for d in dates)
    usable = [t for t in ordered if len(training_dates(ordered, t, horizon_days)) >= 2]
    return usable[-n_test_dates:]


def _too_short(day, horizon_days, config, grid, earliest, first_record, found) -> str:
    """Why no test date exists, and how many more days of records would give one."""
    from models.backtest import training_dates

    head = (f"training as of {day.date()} with a {horizon_days}-day horizon: no honest test date — one needs two "
            f"earlier as-of dates (every {config.step_days} days, the first at least {config.warmup_days} warm-up "
            f"days after the first inspection, {first_record.date()}) whose outcomes were complete before it; "
            f"found {found} as-of date(s) and none qualifies")
    latest = grid[0]  # the grid runs newest first; the newest date is the best test date (most history before it)
    needed = next((m for m in range(1, len(grid) + 1)
                   if len(training_dates(grid[:m], latest, horizon_days)) >= 2), None)
    if needed is None:
        return (head + f"; [training] max_as_of_dates = {config.max_as_of_dates} is too few for this horizon and "
                f"spacing at any history length (raise it, shorten --horizon-days or [training] step_days)")
    oldest = grid[needed - 1]  # the oldest as-of date the first test date needs
    more = (earliest - oldest).days
    days = f"{more} day{'' if more == 1 else 's'}"
    return (head + f"; the history is too short by {days}: records from "
            f"{(first_record - pd.Timedelta(days=more)).date()} on, or training {days} later as records accumulate "
            f"(or lower [training] warmup_days / step_days, or a shorter --horizon-days)")


def _first_record(tables: Mapping[str, pd.DataFrame], day: pd.Timestamp) -> pd.Timestamp:
    inspections = tables.get("inspections")
    if inspections is None or inspections.empty:
        raise DataError("training needs the inspections table: it is missing or empty")
    dates = pd.to_datetime(inspections["inspected_on"])
    dates = dates[dates < day]
    if dates.empty:
        raise DataError(f"no inspection before the training date {day.date()}")
    return pd.Timestamp(dates.min()).normalize()


# ----------------------------------------------------------------------------------------- result


@dataclass
class TrainingResult:
    """Everything one training produced; ``report`` is the JSON-able summary ``riskgrade train`` writes."""

    as_of: pd.Timestamp
    horizon_days: int
    target: str
    as_of_dates: list[pd.Timestamp]
    test_dates: list[pd.Timestamp]
    features: pd.DataFrame
    labels: pd.DataFrame
    backtest: BacktestResult
    report: dict[str, Any]
    models: dict[str, TimeSliceCalibrated] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    promotion: Any = None

    def comparison(self) -> pd.DataFrame:
        """One row per model (and the oracle): the headline backtest metrics."""
        return comparison_table(self.report)


HEADLINE = (
    "roc_auc", "pr_auc", "precision_at_10pct_worst", "recall_at_10pct_worst", "high_tier_capture_worst", "brier",
)


def comparison_table(report: Mapping[str, Any]) -> pd.DataFrame:
    rows = []
    for kind, entry in report["models"].items():
        rows.append({"model": kind, **{k: entry.get(k) for k in HEADLINE}})
    oracle = report.get("oracle")
    if oracle:
        rows.append({"model": "oracle (hidden truth)", **{k: oracle.get(k) for k in HEADLINE}})
    return pd.DataFrame(rows).set_index("model")


# ------------------------------------------------------------------------------------- evaluation


def evaluate_backtest(
    backtest: BacktestResult,
    context: pd.DataFrame,
    *,
    config: TrainingConfig = TrainingConfig(),
    oracle: pd.Series | None = None,
) -> dict[str, Any]:
    """Metrics per model kind, overall and per sector / township / test date, plus the oracle's.

    ``context`` is indexed by ``enterprise_id`` with ``sector`` and ``township``; ``oracle`` (synthetic
    worlds only) is the hidden risk indexed like the predictions, ``(enterprise_id, as_of)``.
    """
    options = {"top_k_percents": config.top_k_percents, "high_tier_share": config.high_tier_share}
    models: dict[str, Any] = {}
    for kind in backtest.kinds:
        rows = backtest.of(kind)
        ids = rows.index.get_level_values("enterprise_id")
        y, p = rows["label"].to_numpy(), rows["probability"].to_numpy()
        entry: dict[str, Any] = _metrics.summary(y, p, **options)
        for level in ("sector", "township"):
            groups = context[level].reindex(ids).to_numpy() if level in context.columns else np.full(len(rows), None)
            entry[f"by_{level}"] = _metrics.grouped_summary(y, p, groups, min_rows=config.min_group_rows, **options)
        entry["by_test_date"] = {
            str(pd.Timestamp(date).date()): _metrics.summary(part["label"], part["probability"], **options)
            for date, part in rows.groupby("test_date", sort=True)
        }
        entry["calibration_curve"] = _metrics.calibration_table(y, p, config.calibration_bins).to_dict("records")
        models[kind] = entry
    report: dict[str, Any] = {
        "horizon_days": backtest.horizon_days,
        "test_dates": [str(d.date()) for d in backtest.test_dates],
        "models": models,
        "oracle": None,
    }
    if oracle is not None:
        first = backtest.of(backtest.kinds[0])
        truth = oracle.reindex(first.index).to_numpy(dtype=float)
        has_truth = ~np.isnan(truth)  # every active enterprise has a truth row; kept honest if one does not
        first, truth = first[has_truth], truth[has_truth]
        y = first["label"].to_numpy()
        entry = _metrics.summary(y, truth, **options)
        entry["n_without_truth"] = int((~has_truth).sum())
        ids = first.index.get_level_values("enterprise_id")
        if "sector" in context.columns:
            entry["by_sector"] = {
                k: {"n": v["n"], "roc_auc": v.get("roc_auc")}
                for k, v in _metrics.grouped_summary(
                    y, truth, context["sector"].reindex(ids).to_numpy(), min_rows=config.min_group_rows, **options
                ).items()
            }
        report["oracle"] = entry
    report["comparison"], report["notes"] = _comparison_notes(models, report["oracle"], config)
    return report


def _comparison_notes(models: Mapping[str, Any], oracle: Mapping[str, Any] | None, config: TrainingConfig):
    """Which model is best, how far from the oracle, and where a model does not beat the expert card."""
    metric = config.promotion.metric
    higher = config.promotion.higher_is_better
    scored = {k: v.get(metric) for k, v in models.items() if v.get(metric) is not None}
    notes: list[str] = []
    comparison: dict[str, Any] = {"metric": metric}
    if scored:
        best = (max if higher else min)(scored, key=scored.get)
        comparison["best"] = best
        notes.append(f"best model by {metric}: {best} ({scored[best]:.4f})")
        if oracle and oracle.get("roc_auc") is not None:
            for kind, entry in models.items():
                if entry.get("roc_auc") is not None:
                    entry["gap_to_oracle_roc_auc"] = oracle["roc_auc"] - entry["roc_auc"]
            gap = oracle["roc_auc"] - (models[best].get("roc_auc") or math.nan)
            notes.append(f"oracle ROC-AUC {oracle['roc_auc']:.4f}; the best model is {gap:.4f} below it")
    if "expert" in models and models["expert"].get("roc_auc") is not None:
        expert = models["expert"]
        for kind, entry in models.items():
            if kind == "expert" or entry.get("roc_auc") is None:
                continue
            beats = entry["roc_auc"] > expert["roc_auc"]
            entry["beats_expert_roc_auc"] = beats
            if not beats:
                notes.append(
                    f"{kind} does NOT beat the expert card overall: ROC-AUC {entry['roc_auc']:.4f} vs "
                    f"{expert['roc_auc']:.4f}"
                )
            below = sorted(
                sector
                for sector, part in entry.get("by_sector", {}).items()
                if part.get("roc_auc") is not None
                and expert.get("by_sector", {}).get(sector, {}).get("roc_auc") is not None
                and part["roc_auc"] < expert["by_sector"][sector]["roc_auc"]
            )
            entry["sectors_below_expert_roc_auc"] = below
            if below:
                sectors = entry["by_sector"]
                listed = ", ".join(
                    f"{s} ({sectors[s]['roc_auc']:.3f} vs {expert['by_sector'][s]['roc_auc']:.3f}; "
                    f"{sectors[s]['n']} rows, {sectors[s]['positives']} events)"
                    for s in below
                )
                notes.append(f"{kind} is below the expert card's ROC-AUC in sector(s): {listed}")
    return comparison, notes


# ------------------------------------------------------------------------------------ orchestration


def train_and_evaluate(
    tables: Mapping[str, pd.DataFrame],
    as_of,
    kinds: Sequence[str] = tuple(MODEL_KINDS),
    *,
    expert_rules: ExpertCardRules | None = None,
    config: TrainingConfig = TrainingConfig(),
    horizon_days: int = 365,
    target: str = "accident+major_hazard+suspension",
    exclude_road_traffic: bool = True,
    log: bool = True,
    tracking_uri: str | None = None,
    promote: bool = False,
    progress: Progress | None = None,
    sample: Mapping[str, Any] | None = None,
) -> TrainingResult:
    """Backtest, fit, log and (optionally) promote the given model kinds, training as of ``as_of``.

    ``sample``: what :func:`sample_training_tables` says of ``tables`` when they are a sample of the
    enterprises (recorded in the report as ``sample``, with a note).

    ``tables`` are canonical frames (``features.store.load_tables`` or a synthetic world; a ``truth`` table
    adds the oracle). With ``log`` every final model is logged to MLflow and registered as ``riskgrade``
    (one version per kind); with ``promote`` the best of them by ``config.promotion.metric`` challenges the
    champion: the champion's configuration is re-run through the same backtest, and the alias moves only if
    the challenger beats it by ``config.promotion.min_improvement``.
    """
    from features import build_features, build_labels

    say = progress or (lambda message: None)
    kinds = tuple(dict.fromkeys(kinds))
    for kind in kinds:
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)})")
    if promote and not log:
        raise ValueError("promotion needs the models logged to MLflow (log=True)")
    day = pd.Timestamp(as_of).normalize()
    dates = training_as_of_dates(tables, day, horizon_days, config)
    test_dates = backtest_test_dates(dates, horizon_days, config.n_test_dates)
    short_note = _short_history_note(dates, test_dates, horizon_days, config)
    if short_note:
        say(short_note)

    timings: dict[str, float] = {}
    clock = _Clock(timings)
    say(f"building features as of {len(dates)} dates ({dates[0].date()} … {dates[-1].date()})")
    with clock("features"):
        features = build_features(tables, dates)
    label_options = {"horizon_days": horizon_days, "target": target, "exclude_road_traffic": exclude_road_traffic}
    with clock("labels"):
        labels = build_labels(tables, dates, known_before=day, **label_options)
        # In each backtest fold, training labels are what was known on the test date (no later corrections).
        fold_labels = {t: build_labels(tables, dates, known_before=t, **label_options) for t in test_dates}

    models = {kind: make_model(kind, config, expert_rules) for kind in kinds}
    say(f"backtesting {', '.join(kinds)} on {len(test_dates)} test dates")
    with _threads(config), clock("backtest"):
        backtest = temporal_backtest(
            features, labels, models, test_dates, horizon_days=horizon_days, train_labels=fold_labels
        )
    context = _context(tables)
    oracle = _oracle(tables, backtest, horizon_days)
    report = evaluate_backtest(backtest, context, config=config, oracle=oracle)
    report.update(
        {
            "as_of": str(day.date()),
            "target": str(target),
            "as_of_dates": [str(d.date()) for d in dates],
            "n_rows": int(len(features)),
            "n_labelled_rows": int(labels["label_known"].sum()),
            "folds": _jsonable_frame(backtest.folds),
            "n_test_dates_wanted": config.n_test_dates,
            "short_history": short_note is not None,
        }
    )
    if short_note:
        report["notes"].insert(0, short_note)
    report["sample"] = dict(sample) if sample else None
    if sample:
        report["notes"].insert(0, sample["note"])

    say("fitting the final models")
    known = labels["label_known"].to_numpy(dtype=bool)
    X, y = features[known], labels["label"][known].astype(int).to_numpy()
    fitted = {}
    for kind, model in models.items():
        with _threads(config), clock(f"fit_{kind}"):
            fitted[kind] = _fit_final(model, X, y, dates[-1])
        size_note = _size_note(kind, fitted[kind].estimator_)
        if size_note:
            report["notes"].append(size_note)
    result = TrainingResult(
        as_of=day, horizon_days=horizon_days, target=str(target), as_of_dates=dates, test_dates=test_dates,
        features=features, labels=labels, backtest=backtest, report=report, models=fitted,
    )
    report["promoted"] = None
    if log:
        from models import registry

        say("logging to MLflow")
        with clock("mlflow_log"):
            for kind, model in fitted.items():
                result.versions[kind] = _log(result, kind, model, config, tracking_uri)
        report["registered"] = {kind: v.version for kind, v in result.versions.items()}
        if promote:
            with clock("promotion"):
                result.promotion = _promote(result, config, tracking_uri, fold_labels, say)
            report["promoted"] = result.promotion.promoted
            report["promotion"] = result.promotion.to_dict()
        report["tracking_uri"] = registry.tracking_uri(tracking_uri)
    report["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _short_history_note(dates, test_dates, horizon_days: int, config: TrainingConfig) -> str | None:
    """What a short history changed in the backtest (None when it has all ``n_test_dates``)."""
    if len(test_dates) >= config.n_test_dates:
        return None
    listed = ", ".join(str(t.date()) for t in test_dates)
    return (f"short history: backtested on {len(test_dates)} test date(s) ({listed}) "
            f"instead of the {config.n_test_dates} of [training] n_test_dates — as-of dates from {dates[0].date()} "
            f"allow no more with a {horizon_days}-day horizon (each test date needs two earlier as-of dates whose "
            f"outcomes were complete before it); the metrics rest on fewer rows and are less certain; about every "
            f"{config.step_days} more days of records add one test date")


class _Clock:
    """``with clock("step"):`` adds the step's wall time to ``timings["step"]``."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, step: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started


def _threads(config: TrainingConfig):
    from threadpoolctl import threadpool_limits

    return threadpool_limits(config.threads or None)


def _fit_final(model: TimeSliceCalibrated, X: pd.DataFrame, y: np.ndarray, calibration_as_of) -> TimeSliceCalibrated:
    from sklearn.base import clone

    return clone(model).set_params(calibration_as_of=calibration_as_of).fit(X, y)


def _size_note(kind: str, estimator) -> str | None:
    """How a model that chooses its size (boosting) chose it for the final fit, or None."""
    scores = getattr(estimator, "size_scores_", None)
    if not scores:
        return None
    leaves, trees = estimator.size_
    compared = "; ".join(
        f"{size[0]}×{size[1]}: ROC-AUC {auc:.4f}"
        + (f", better on {estimator.size_wins_[size]:.0%} of resamples" if size in estimator.size_wins_ else "")
        for size, auc in scores.items())
    return (f"{kind}: final size {leaves} leaves × {trees} trees (held-out enterprises, needing "
            f"{estimator.size_confidence:.0%} of resamples: {compared})")


def _context(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    enterprises = tables["enterprises"]
    columns = [c for c in ("sector", "township") if c in enterprises.columns]
    return enterprises.set_index("enterprise_id")[columns]


def _oracle(tables: Mapping[str, pd.DataFrame], backtest: BacktestResult, horizon_days: int) -> pd.Series | None:
    """The hidden truth's risk of every test row (synthetic worlds only; None for real data)."""
    truth = tables.get("truth")
    if truth is None:
        return None
    parts = []
    for test_date in backtest.test_dates:
        risk = oracle_risk(truth, test_date, horizon_days)
        index = pd.MultiIndex.from_arrays(
            [risk.index.astype(str), pd.DatetimeIndex([test_date] * len(risk))], names=["enterprise_id", "as_of"]
        )
        parts.append(pd.Series(risk.to_numpy(dtype=float), index=index))
    return pd.concat(parts)


def _log(result: TrainingResult, kind: str, model: TimeSliceCalibrated, config: TrainingConfig, uri: str | None):
    from models import plots, registry
    from models._catalog import catalog_frame

    entry = result.report["models"][kind]
    tables = {"feature_catalog": catalog_frame(), "backtest_folds": result.backtest.folds[
        result.backtest.folds["kind"] == kind]}
    estimator = model.estimator_
    if hasattr(estimator, "points_table"):
        tables["points_table"] = estimator.points_table()
    if hasattr(estimator, "rules") and hasattr(estimator.rules, "to_frame"):
        tables["expert_card_rules"] = estimator.rules.to_frame()
    rows = result.backtest.of(kind)
    figures = {
        "calibration": plots.calibration_plot(rows["label"], rows["probability"], config.calibration_bins, kind),
        "lift": plots.lift_plot(rows["label"], rows["probability"], kind),
    }
    params = {
        "kind": kind,
        "as_of": str(result.as_of.date()),
        "horizon_days": result.horizon_days,
        "target": result.target,
        "calibration": model.method,
        "calibration_as_of": str(model.calibration_as_of_.date()),
        "calibrated": model.calibrated_,
        "n_fit_rows": model.n_fit_rows_,
        "n_calibration_rows": model.n_calibration_rows_,
        "test_dates": ",".join(str(d.date()) for d in result.test_dates),
        "as_of_dates": ",".join(str(d.date()) for d in result.as_of_dates),
        **{f"model.{k}": v for k, v in estimator.get_params(deep=False).items() if k != "rules"},
    }
    if getattr(estimator, "size_scores_", None):  # boosting chose its size: which, and on what evidence
        params["model.chosen_size"] = "{} leaves × {} trees".format(*estimator.size_)
        params["model.size_roc_auc_held_out"] = "; ".join(
            f"{leaves}×{trees}: {auc:.4f}" for (leaves, trees), auc in estimator.size_scores_.items())
        params["model.size_wins_in_resamples"] = "; ".join(
            f"{leaves}×{trees}: {share:.2f}" for (leaves, trees), share in estimator.size_wins_.items())
    metrics = {k: v for k, v in entry.items() if not isinstance(v, dict | list)}
    if result.report.get("oracle"):
        metrics["oracle_roc_auc"] = result.report["oracle"].get("roc_auc")
    try:
        return registry.log_model_run(
            model, kind=kind, as_of=str(result.as_of.date()), params=params, metrics=metrics,
            report={**{k: v for k, v in result.report.items() if k != "models"}, "model": entry},
            input_example=result.features, tables=tables, figures=figures, uri=uri,
        )
    finally:
        plots.close(figures.values())


def _promote(result: TrainingResult, config: TrainingConfig, uri: str | None, fold_labels, say: Progress):
    """The best model of this run challenges the champion on the same backtest."""
    from sklearn.base import clone

    from models import registry

    gate = config.promotion
    challenger_kind = result.report["comparison"].get("best")
    if challenger_kind is None:
        return registry.decide_promotion(None, None, None, None, metric=gate.metric)
    challenger_value = result.report["models"][challenger_kind].get(gate.metric)
    current = registry.champion_version(uri)
    champion_value = None
    if current is not None:
        say(f"re-running the champion (version {current.version}) through the same backtest")
        champion = registry.load_champion(uri)
        with _threads(config):
            rerun = temporal_backtest(
                result.features, result.labels, {"champion": clone(champion.model)}, result.test_dates,
                horizon_days=result.horizon_days, train_labels=fold_labels,
            )
        rows = rerun.of("champion")
        champion_value = _metrics.summary(
            rows["label"], rows["probability"], top_k_percents=config.top_k_percents,
            high_tier_share=config.high_tier_share,
        ).get(gate.metric)
        result.report["champion_backtest"] = {"version": current.version, "kind": champion.kind,
                                              gate.metric: champion_value}
    return registry.promote(
        result.versions[challenger_kind], challenger_value, champion_value, metric=gate.metric,
        min_improvement=gate.min_improvement, higher_is_better=gate.higher_is_better, uri=uri,
    )


def _jsonable_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
    return out.to_dict("records")


# ------------------------------------------------------------------------------------ training at scale


def stratified_sample(enterprises: pd.DataFrame, size: int, *, seed: int, by: str = "sector") -> np.ndarray:
    """``size`` of ``enterprises``' ``enterprise_key`` values, drawn without replacement within each ``by``
    group in proportion to its size (largest remainders get the odd ones), with ``seed``; sorted. All of them
    when there are no more than ``size``."""
    from features.contract import ENTERPRISE_KEY

    keys = enterprises[ENTERPRISE_KEY].to_numpy(dtype=np.int64)
    if size >= len(keys):
        return np.sort(keys)
    groups = enterprises[by].astype("str").fillna("").to_numpy(dtype=object)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    exact = counts * (size / len(keys))
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[: size - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(keys[inverse == g], size=int(q), replace=False) for g, q in enumerate(quota) if q]
    return np.sort(np.concatenate(chosen))


def sample_training_tables(source, size: int, *, seed: int, enterprises_per_read: int = 100_000
                           ) -> tuple[dict[str, pd.DataFrame], dict[str, Any] | None]:
    """The contract tables of ``source`` (:class:`features.partitions.DatabaseSource` or ``ParquetSource``) for
    training: all of them when they hold at most ``size`` enterprises (``size`` 0: always all), else the
    records of a :func:`stratified_sample` of ``size`` enterprises by sector, read one key range of
    ``enterprises_per_read`` enterprises at a time (memory: one range plus the sample). Returns the tables and
    what the report says of the sample (None when not sampled)."""
    from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME
    from features.partitions import KeyRanges, combine_extras, extra_kinds
    from features.validate import key_columns

    keys = source.keys()
    ranges = KeyRanges.of_keys(keys, max(1, math.ceil(len(keys) / enterprises_per_read)))
    kinds = extra_kinds(combine_extras([source.profile(r) for r in ranges]))
    names = source.tables()
    sampling = 0 < size < len(keys)
    chosen = None
    if sampling:
        strata = pd.concat([source.read(r, ["enterprises"], kinds)["enterprises"][[ENTERPRISE_KEY, "sector"]]
                            for r in ranges], ignore_index=True)
        chosen = stratified_sample(strata, size, seed=seed)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    for i, key_range in enumerate(ranges):
        for name, frame in source.read(key_range, names, kinds).items():
            spec = TABLE_BY_NAME[name]
            if not spec.split_by_key_range:  # the inspectors' roster: read whole each time
                if i == 0:
                    parts[name].append(frame)
                continue
            sampled = chosen is not None and spec.per_enterprise  # (the links follow their inspections, below)
            parts[name].append(frame.loc[frame[ENTERPRISE_KEY].isin(chosen)] if sampled else frame)
    tables = {name: pd.concat(frames, ignore_index=True).sort_values(list(key_columns(name)), kind="stable")
              .reset_index(drop=True) for name, frames in parts.items()}
    links, inspections = tables.get("inspection_inspectors"), tables.get("inspections")
    if sampling and links is not None and inspections is not None:  # who made the sampled enterprises' visits
        tables["inspection_inspectors"] = links.loc[links["inspection_id"].isin(inspections["inspection_id"])
                                                    ].reset_index(drop=True)
    if not sampling:
        return tables, None
    note = (f"trained on a sample of {size:,} of the {len(keys):,} enterprises, stratified by sector (seed {seed}; "
            f"policy training.sample_enterprises); the model scores every enterprise")
    return tables, {"enterprises": int(size), "of": int(len(keys)), "stratified_by": "sector", "seed": int(seed),
                    "note": note}
