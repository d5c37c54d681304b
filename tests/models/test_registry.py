"""MLflow registry: log, register, promote in one process; load the champion by alias in a fresh one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from features.errors import NoChampionError
from models import registry
from models.boosting import BoostingClassifier
from models.calibrate import TimeSliceCalibrated

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working tree
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _fit(matrix, **params):
    features, labels, _ = matrix
    known = labels["label_known"].to_numpy()
    model = TimeSliceCalibrated(BoostingClassifier(max_iter=20, **params))
    return model.fit(features[known], labels["label"][known])


def test_saved_registered_promoted_model_scores_identically_in_a_fresh_process(uri, tmp_path, matrix):
    with pytest.raises(NoChampionError, match="no model 'riskgrade' carries the alias 'champion'"):
        registry.load_champion(uri)

    features = matrix[0]
    model = _fit(matrix)
    version = registry.log_model_run(
        model, kind="boosting", as_of="2024-06-01", params={"kind": "boosting", "n": 3},
        metrics={"roc_auc": 0.71, "by_sector": {"x": 1}}, report={"models": {"boosting": {"roc_auc": 0.71}}},
        input_example=features, tables={"catalog": features.head(3).reset_index()}, uri=uri,
    )
    decision = registry.promote(version, 0.71, None, metric="roc_auc", uri=uri)
    assert decision.promoted and "no champion yet" in decision.reason

    X = features.head(200)
    X.to_parquet(tmp_path / "X.parquet")
    np.save(tmp_path / "expected.npy", model.predict_proba(X)[:, 1])
    np.save(tmp_path / "expected_contrib.npy", model.contributions(X).to_numpy())
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd
        from models.registry import load_champion
        champion = load_champion({uri!r})
        X = pd.read_parquet("X.parquet")
        assert champion.version == {version.version!r} and champion.kind == "boosting", champion
        np.testing.assert_array_equal(champion.model.predict_proba(X)[:, 1], np.load("expected.npy"))
        np.testing.assert_array_equal(champion.model.contributions(X).to_numpy(), np.load("expected_contrib.npy"))
        print("identical")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("identical")

    # A challenger that does not beat the champion on the same backtest is refused, and says why.
    worse = registry.log_model_run(
        _fit(matrix, learning_rate=0.2), kind="boosting", as_of="2024-06-01", params={}, metrics={"roc_auc": 0.69},
        report={}, input_example=features, uri=uri,
    )
    refused = registry.promote(worse, 0.69, 0.71, metric="roc_auc", uri=uri)
    assert not refused.promoted
    assert "0.6900 vs champion (version 1) 0.7100" in refused.reason
    assert registry.champion_version(uri).version == version.version
    assert not list(Path(ROOT).glob("mlruns")) and (tmp_path / "mlartifacts").is_dir()


@pytest.mark.parametrize(
    ("challenger", "champion", "higher", "minimum", "promoted", "reason"),
    [
        (0.72, 0.70, True, 0.0, True, r"\+0\.0200"),
        (0.70, 0.70, True, 0.0, False, "does not exceed the required"),
        (0.705, 0.70, True, 0.01, False, r"improvement \+0\.0050"),
        (0.10, 0.12, False, 0.0, True, "lower is better"),
        (None, 0.70, True, 0.0, False, "has no roc_auc"),
    ],
)
def test_promotion_rule(challenger, champion, higher, minimum, promoted, reason):
    decision = registry.decide_promotion("2", challenger, "1", champion, metric="roc_auc",
                                         min_improvement=minimum, higher_is_better=higher)
    assert decision.promoted is promoted
    assert decision.reason and __import__("re").search(reason, decision.reason)


def test_tracking_uri_resolution(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert registry.tracking_uri() == "sqlite:///elsewhere.db"
    assert registry.tracking_uri("sqlite:///given.db") == "sqlite:///given.db"
