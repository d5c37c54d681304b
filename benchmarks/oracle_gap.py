"""Benchmark: where the gap between the best model and the oracle comes from (issue 4, DESIGN.md §6, §9).

The oracle ranks the backtest's test rows by the hidden true risk of the horizon. A model only sees the
records. This script measures, on the same test rows and labels (ROC-AUC, pooled over the test dates of
``models.train.train_and_evaluate``), a ladder of rankings from the models up to the oracle:

1. ``scorecard``, ``boosting``: the backtest, exactly as ``riskgrade train`` runs it (policy file's settings).
2. ``truth-fit on features``: a gradient-boosted *regression of the true risk* (log of the as-of month's
   ``adverse_prob``) on the same feature matrix, cross-fitted over enterprises (5 folds, all as-of dates).
   It is trained on the hidden truth, which no real model has, so it bounds what these features can reveal:
   if it falls short of the oracle by more than some margin, no model on these features can do better.
3. ``truth-fit + every latent hazard seen at past visits``: the same regression, also given the number of
   latent hazards the enterprise really had at each visit of the five years before the date (the last one,
   their mean, the days since the last visit). That is what the inspection records would show if every visit
   found every hazard, so it bounds what any count of *found* hazards can reveal.
4. ``truth-fit + true state at past visits``: also given the hidden state itself at those visits (true risk,
   hazard rate, management quality, unrectified major hazards), which no record shows: what sparse visits
   could reveal at best.
5. ``true risk, past 12 months``: the mean true ``adverse_prob`` over the 12 months before the date — a
   perfect, noise-free memory of the past, as if every hazard had been seen as it arose.
6. ``true risk at the date``: the true ``adverse_prob`` of the month of the as-of date (no drift after it).
7. ``oracle``: the true risk of the horizon itself (``features.labels.oracle_risk``), future drift included.

Steps 1→2 is the cost of learning from labels, 2→3 the cost of partial detection, 3→4 the cost of a state the
records never show, 4→5 the cost of visiting rarely, 5→7 the cost of drift. Several seeds give the spread
between worlds.

    .venv/bin/python benchmarks/oracle_gap.py                               # 20 000 × 5 years, seed 7
    .venv/bin/python benchmarks/oracle_gap.py --seeds 1,2,3,7 --json gap.json
    .venv/bin/python benchmarks/oracle_gap.py --enterprises 200000 --seeds 1 --no-truth-fits   # province scale
    .venv/bin/python benchmarks/oracle_gap.py --seeds 1,2,3,4 --without-inspectors   # issue 16: the gaps without
                                                                                     # the inspector features
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_samples.world import generate_world  # noqa: E402
from features import build_features, build_labels  # noqa: E402
from features.labels import oracle_risk  # noqa: E402
from models.backtest import temporal_backtest  # noqa: E402
from models.config import TrainingConfig  # noqa: E402
from models.train import make_model, training_as_of_dates  # noqa: E402
from scoring.domain.policy import build_section, read_policy_mapping  # noqa: E402

MODELS = ("scorecard", "boosting")
SEEN_ALL = "truth-fit + every latent hazard seen at past visits"
STATE_AT_VISITS = "truth-fit + true state at past visits"
RUNGS = ("scorecard", "boosting", "truth-fit on features", SEEN_ALL, STATE_AT_VISITS, "true risk, past 12 months",
         "true risk at the date", "oracle")
VISIT_LOOKBACK_DAYS = 1825  # the longest window of the feature catalog


def _monthly_truth(truth: pd.DataFrame, as_of_dates: list[pd.Timestamp], months_before: int) -> pd.Series:
    """Mean true ``adverse_prob`` per (enterprise_id, as_of) over the ``months_before`` months before each date's
    month (0: the month of the date itself)."""
    parts = []
    for as_of in as_of_dates:
        month = as_of.to_period("M").to_timestamp()
        if months_before == 0:
            rows = truth[truth["month"] == month]
        else:
            rows = truth[(truth["month"] < month) & (truth["month"] >= month - pd.DateOffset(months=months_before))]
        parts.append(_at(rows.groupby("enterprise_id")["adverse_prob"].mean(), as_of))
    return pd.concat(parts)


def _at(risk: pd.Series, as_of: pd.Timestamp) -> pd.Series:
    """``risk`` by enterprise_id, re-indexed by (enterprise_id, as_of) like the feature rows."""
    index = pd.MultiIndex.from_arrays([risk.index.astype(str), pd.DatetimeIndex([as_of] * len(risk))],
                                      names=["enterprise_id", "as_of"])
    return pd.Series(risk.to_numpy(dtype=float), index=index)


def _numeric(features: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: features[c].cat.codes if isinstance(features[c].dtype, pd.CategoricalDtype)
                         else features[c].astype(float) for c in features.columns}, index=features.index)


def _state_at_visits(tables: dict[str, pd.DataFrame], as_of_dates: list[pd.Timestamp]) -> pd.DataFrame:
    """Per (enterprise_id, as_of): the hidden state of the months of the visits in the five years before the date.

    The truth is monthly (state at the start of the month), so a visit sees its month's row. Columns: for the
    last visit and averaged over the visits, the latent hazards, and the hidden state no record shows.
    """
    truth = tables["truth"]
    visits = pd.DataFrame({
        "enterprise_id": tables["inspections"]["enterprise_id"].astype(str).to_numpy(),
        "visited": pd.to_datetime(tables["inspections"]["inspected_on"]).to_numpy(),
    })
    visits["month"] = visits["visited"].dt.to_period("M").dt.to_timestamp()
    state = pd.DataFrame({
        "enterprise_id": truth["enterprise_id"].astype(str).to_numpy(), "month": truth["month"].to_numpy(),
        "latent_hazards": truth["latent_hazards"].to_numpy(),
        "log_risk": np.log(truth["adverse_prob"].to_numpy()),
        "log_hazard_rate": np.log(np.maximum(truth["hazard_rate"].to_numpy(dtype=float), 1e-9)),
        "management": truth["management"].to_numpy(),
        "unrectified_major": truth["unrectified_major"].to_numpy(),
    })
    visits = visits.merge(state, on=["enterprise_id", "month"]).sort_values("visited", kind="stable")
    hidden = [c for c in state.columns if c not in ("enterprise_id", "month")]
    parts = []
    for as_of in as_of_dates:
        lookback = as_of - pd.Timedelta(days=VISIT_LOOKBACK_DAYS)
        seen = visits[(visits["visited"] < as_of) & (visits["visited"] >= lookback)]
        by_enterprise = seen.groupby("enterprise_id")
        frame = by_enterprise[hidden].last().add_prefix("last_visit_").join(
            by_enterprise[hidden].mean().add_prefix("mean_visit_"))
        frame["days_since_visit"] = (as_of - by_enterprise["visited"].max()).dt.days
        frame.index = pd.MultiIndex.from_arrays([frame.index, pd.DatetimeIndex([as_of] * len(frame))],
                                                names=["enterprise_id", "as_of"])
        parts.append(frame)
    return pd.concat(parts)


def _truth_fit(features: pd.DataFrame, now: pd.Series, seed: int) -> pd.Series:
    """Cross-fitted (by enterprise) regression of log true risk at the date on the features."""
    target = np.log(now.reindex(features.index).to_numpy())
    has = np.isfinite(target)
    X = _numeric(features)[has]
    categorical = [isinstance(features[c].dtype, pd.CategoricalDtype) for c in features.columns]
    model = HistGradientBoostingRegressor(max_iter=300, categorical_features=categorical, random_state=seed)
    groups = features.index.get_level_values("enterprise_id")[has]
    predicted = cross_val_predict(model, X, target[has], groups=groups, cv=GroupKFold(5))
    return pd.Series(predicted, index=X.index)


def measure(n_enterprises: int, years: int, seed: int, start: date, config: TrainingConfig, labels_cfg,
            truth_fits: bool = True, inspectors: bool = True) -> dict:
    began = time.perf_counter()
    tables = generate_world(n_enterprises, years, seed, start=start)
    if not inspectors:  # the same world with nobody recorded as inspecting: the inspector features are absent
        tables = {name: frame for name, frame in tables.items()
                  if name not in ("inspectors", "inspection_inspectors", "truth_inspectors")}
        tables["inspections"] = tables["inspections"].drop(columns=["inspectors"], errors="ignore")
    day = pd.Timestamp(start.replace(year=start.year + years))
    horizon = int(labels_cfg["horizon_days"])
    options = {"horizon_days": horizon, "target": str(labels_cfg["target"]),
               "exclude_road_traffic": bool(labels_cfg["exclude_road_traffic"])}
    dates = training_as_of_dates(tables, day, horizon, config)
    test_dates = dates[-config.n_test_dates:]
    features = build_features(tables, dates)
    labels = build_labels(tables, dates, known_before=day, **options)
    fold_labels = {t: build_labels(tables, dates, known_before=t, **options) for t in test_dates}
    backtest = temporal_backtest(features, labels, {k: make_model(k, config) for k in MODELS}, test_dates,
                                 horizon_days=horizon, train_labels=fold_labels)

    test = backtest.of(MODELS[0])
    y = test["label"].to_numpy()
    truth = tables["truth"]
    oracle = pd.concat([_at(oracle_risk(truth, t, horizon), t) for t in test_dates])
    now = _monthly_truth(truth, dates, 0)
    scores = {kind: backtest.of(kind)["probability"].reindex(test.index) for kind in MODELS}
    if truth_fits:
        scores["truth-fit on features"] = _truth_fit(features, now, seed).reindex(test.index)
        at_visits = _state_at_visits(tables, dates).reindex(features.index)
        seen_all = ["last_visit_latent_hazards", "mean_visit_latent_hazards", "days_since_visit"]
        scores[SEEN_ALL] = _truth_fit(features.join(at_visits[seen_all]), now, seed).reindex(test.index)
        scores[STATE_AT_VISITS] = _truth_fit(features.join(at_visits), now, seed).reindex(test.index)
    scores["true risk, past 12 months"] = _monthly_truth(truth, test_dates, 12).reindex(test.index)
    scores["true risk at the date"] = now.reindex(test.index)
    scores["oracle"] = oracle.reindex(test.index)
    # Every test row has a truth row; those without past truth (founded within the year) are ranked lowest.
    auc = {name: float(roc_auc_score(y, s.fillna(s.min()).to_numpy())) for name, s in scores.items()}
    return {"seed": seed, "test_rows": int(len(y)), "positives": int(y.sum()), "roc_auc": auc,
            "seconds": round(time.perf_counter() - began, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seeds", default="7", help="comma-separated world seeds")
    parser.add_argument("--start", default="2021-01-01", help="first simulated month")
    parser.add_argument("--policy", default=None, help="policy file (default: the shipped one)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--no-truth-fits", action="store_true",
                        help="skip the three truth-fit rungs (cross-fitted regressions: the slow part at province "
                             "scale)")
    parser.add_argument("--without-inspectors", action="store_true",
                        help="drop who inspected (issue 16's roster and links) from each world: the inspector "
                             "features are then absent; compare the gaps with and without them")
    args = parser.parse_args(argv)

    mapping, source = read_policy_mapping(args.policy)
    config = build_section(TrainingConfig, mapping["training"], f"{source}: training")
    start = date.fromisoformat(args.start)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        # The policy's thread count, as `riskgrade train` uses: OpenMP threads spinning on a busy machine can
        # slow a run down a hundredfold.
        with threadpool_limits(config.threads or None):
            result = measure(args.enterprises, args.years, seed, start, config, mapping["labels"],
                             truth_fits=not args.no_truth_fits, inspectors=not args.without_inspectors)
        results.append(result)
        print(f"seed {seed}: {result['test_rows']:,} test rows, {result['positives']:,} positive "
              f"({result['seconds']} s)", flush=True)

    table = pd.DataFrame({f"seed {r['seed']}": r["roc_auc"] for r in results})
    table = table.loc[[rung for rung in RUNGS if rung in table.index]]
    if len(results) > 1:
        table["mean"] = table.mean(axis=1)
    table["gap to oracle"] = table.iloc[:, -1].iloc[-1] - table.iloc[:, -1]
    print(f"\nROC-AUC on the backtest's test rows ({args.enterprises:,} enterprises × {args.years} years)")
    print(table.round(4).to_string())
    best = [max(r["roc_auc"][k] for k in MODELS) for r in results]
    gaps = [r["roc_auc"]["oracle"] - b for r, b in zip(results, best)]
    print(f"\nbest model's gap to the oracle: median {statistics.median(gaps):.4f} "
          f"(range {min(gaps):.4f}–{max(gaps):.4f})")
    for rung in [r for r in ("truth-fit on features", SEEN_ALL) if r in table.index]:
        ceiling = [r["roc_auc"]["oracle"] - r["roc_auc"][rung] for r in results]
        print(f"{rung}: gap median {statistics.median(ceiling):.4f} (range {min(ceiling):.4f}–{max(ceiling):.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
        print(f"written to {args.json}")


if __name__ == "__main__":
    main()
