"""Training end to end on a synthetic world: the models recover real risk, the report is honest, the CLI works.

The world (2 000 enterprises, 5 years, seed 7) is small enough for a test and large enough that the floors
below cannot pass by chance: with ~390 adverse outcomes among ~3 200 test rows, the standard error of a
ROC-AUC is about 0.015, so 0.70 is more than ten standard errors above a coin.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.explain import reason_codes
from models.train import train_and_evaluate, training_as_of_dates

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")]

AS_OF = pd.Timestamp("2026-01-01")


@pytest.fixture(scope="module")
def world():
    from data_samples.world import generate_world

    return generate_world(2000, 5, 7, start=date(2021, 1, 1))


@pytest.fixture(scope="module")
def trained(world, expert_rules, training_config):
    return train_and_evaluate(world, AS_OF, expert_rules=expert_rules, config=training_config, log=False)


def test_models_recover_real_risk(trained):
    models, oracle = trained.report["models"], trained.report["oracle"]
    expert, scorecard, boosting = (models[k]["roc_auc"] for k in ("expert", "scorecard", "boosting"))
    assert boosting > 0.70 and scorecard > 0.70
    assert boosting > expert + 0.05 and scorecard > expert + 0.05
    assert expert > 0.55  # the card, built without any outcome data, still ranks
    best = max(scorecard, boosting)
    assert oracle["roc_auc"] > best  # the hidden truth is not reachable from the records…
    assert oracle["roc_auc"] - best < 0.08  # …but the learned models get close (measured: 0.044)
    assert models["boosting"]["high_tier_capture_worst"] > 0.2  # top 10 % holds > 2× its share of events


def test_report_is_honest_and_complete(trained):
    report = trained.report
    json.dumps(report)  # strictly JSON (no NaN, no timestamps)
    assert report["comparison"]["best"] in ("scorecard", "boosting")
    assert any("oracle ROC-AUC" in note for note in report["notes"])
    # At a bureau's scale boosting compares its sizes and keeps the small one (larger trees overfit there).
    assert any(note.startswith("boosting: final size 3 leaves × 100 trees (held-out enterprises")
               and "7×300: ROC-AUC" in note for note in report["notes"])
    for kind, entry in report["models"].items():
        for key in ("roc_auc", "pr_auc", "brier", "precision_at_5pct_worst", "recall_at_20pct_best",
                    "high_tier_capture_worst", "by_sector", "by_township", "by_test_date", "calibration_curve"):
            assert key in entry, (kind, key)
        if kind != "expert":
            below = entry["sectors_below_expert_roc_auc"]
            if not entry["beats_expert_roc_auc"]:
                assert any(f"{kind} does NOT beat" in note for note in report["notes"])
            if below:
                assert any(f"{kind} is below the expert card" in note for note in report["notes"])
    sector = next(iter(report["models"]["boosting"]["by_sector"].values()))
    assert "n" in sector


def test_calibrated_on_a_later_slice_and_no_future_outcomes(trained):
    assert trained.as_of_dates[-1] + pd.Timedelta(days=365) < AS_OF
    for kind, model in trained.models.items():
        assert model.calibration_as_of_ == trained.as_of_dates[-1]
        assert model.calibrated_
    folds = trained.backtest.folds
    assert (folds["calibration_as_of"] + pd.Timedelta(days=365) < folds["test_date"]).all()
    # Calibrated probabilities, not just a ranking: on each test date the mean probability follows the outcome
    # rate of the slice the model was calibrated on (the world's base rate drifts after it, unknowably).
    known = trained.labels[trained.labels["label_known"]]
    slice_rate = known["label"].astype(float).groupby(level="as_of").mean()
    rows = trained.backtest.of("boosting")
    for fold in folds[folds["kind"] == "boosting"].itertuples():
        predicted = rows.loc[rows["test_date"] == fold.test_date, "probability"].mean()
        assert abs(predicted - slice_rate[fold.calibration_as_of]) < 0.02, fold


def test_final_models_give_reasons(trained):
    X = trained.features.xs(trained.as_of_dates[-1], level="as_of", drop_level=False).head(200)
    for kind, model in trained.models.items():
        reasons = reason_codes(model, X)
        assert len(reasons) > 0, kind
        assert reasons["text_zh"].str.len().gt(0).all()


def test_history_too_short_is_explained(world, training_config):
    from features.errors import DataError

    with pytest.raises(DataError, match="the history is too short"):
        training_as_of_dates(world, pd.Timestamp("2022-06-01"), 365, training_config)


def test_cli_train_promote_and_refuse(tmp_path, monkeypatch):
    """`riskgrade train` on an imported world: JSON report, MLflow run, champion; a weaker challenger is refused."""
    from typer.testing import CliRunner

    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory
    from models.registry import load_champion
    from scoring.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tables = generate_world(800, 4, 3, start=date(2021, 1, 1))
    write_world(tables, tmp_path / "world")
    db = f"sqlite:///{tmp_path / 'riskgrade.db'}"
    import_directory(connect(db), tmp_path / "world", today=date(2025, 1, 1))

    runner = CliRunner()
    first = runner.invoke(app, ["train", "--as-of", "2025-01-01", "--model", "scorecard", "--promote",
                                "--report", "first.json", "--db", db])
    assert first.exit_code == 0, first.output
    assert "oracle" in first.output and "promoted: no champion yet" in first.output
    report = json.loads((tmp_path / "first.json").read_text(encoding="utf-8"))
    assert set(report["models"]) == {"scorecard"}
    for key in ("roc_auc", "pr_auc", "by_sector", "by_township"):
        assert key in report["models"]["scorecard"]
    assert report["oracle"]["roc_auc"] > 0.5
    assert report["promoted"] is True
    assert (tmp_path / "mlflow.db").exists()  # default store beside the SQLite database

    champion = load_champion(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert champion.kind == "scorecard"

    second = runner.invoke(app, ["train", "--as-of", "2025-01-01", "--model", "expert", "--promote",
                                 "--report", "second.json", "--db", db])
    assert second.exit_code == 0, second.output
    refused = json.loads((tmp_path / "second.json").read_text(encoding="utf-8"))
    assert refused["promoted"] is False
    assert "on the same backtest" in refused["promotion"]["reason"]
    assert load_champion(f"sqlite:///{tmp_path / 'mlflow.db'}").version == champion.version
    assert np.isfinite(refused["champion_backtest"]["roc_auc"])


MAJOR_HAZARD_FEATURES = ["major_hazards_90d", "major_hazards_365d", "major_hazards_1095d", "unrectified_major_hazards",
                         "overdue_major_hazards", "major_hazards_per_inspection_365d"]


def test_more_major_hazards_never_lower_the_calibrated_risk(trained):
    """Property (Hypothesis): on real rows, adding major hazards never lowers any final model's probability."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rows = trained.features.xs(trained.as_of_dates[-1], level="as_of", drop_level=False)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(row=st.integers(0, len(rows) - 1), feature=st.sampled_from(MAJOR_HAZARD_FEATURES),
           extra=st.integers(1, 10))
    def check(row, feature, extra):
        before = rows.iloc[[row]]
        after = before.assign(**{feature: before[feature].fillna(0) + extra})
        before = before.assign(**{feature: before[feature].fillna(0)})
        for kind, model in trained.models.items():
            assert model.predict_proba(after)[0, 1] >= model.predict_proba(before)[0, 1] - 1e-12, (kind, feature)

    check()
