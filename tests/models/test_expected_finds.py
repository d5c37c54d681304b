"""The expected-finds model (models.expected_finds; issue 16 item 4, first increment): on the world with
inspector heterogeneity, knowing the team makes the predicted finds of later visits better."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from features.visits import visit_examples
from models.expected_finds import ExpectedFindsRegressor, finds_backtest


@pytest.fixture(scope="module", params=[5, 6])
def visits(request):
    from data_samples.world import generate_world

    world = generate_world(1000, 3, seed=request.param)
    return visit_examples(world, pd.date_range("2022-07-01", "2023-12-01", freq="MS"))


def test_the_team_improves_the_expected_finds_of_later_visits(visits):
    models = {"with team": ExpectedFindsRegressor(max_iter=60),
              "without team": ExpectedFindsRegressor(use_team=False, max_iter=60)}
    with threadpool_limits(1):  # (OpenMP threads on a shared machine only slow small fits down)
        result = finds_backtest(visits, pd.Timestamp("2023-04-01"), models=models)
    assert result.loc["with team", "poisson_deviance"] < 0.95 * result.loc["without team", "poisson_deviance"]


def test_a_stricter_team_is_expected_to_find_more_at_the_same_enterprise(visits):
    with threadpool_limits(1):
        model = ExpectedFindsRegressor(max_iter=60).fit(visits, visits["hazards_found"])
    lenient, strict = visits.assign(team_stringency=0.6), visits.assign(team_stringency=1.6)
    assert (model.predict(strict) >= model.predict(lenient)).mean() > 0.9
    assert model.predict(strict).mean() > 1.5 * model.predict(lenient).mean()


def test_bad_input_is_refused():
    with pytest.raises(TypeError, match="DataFrame of features.visits.visit_examples"):
        ExpectedFindsRegressor().fit(np.zeros((3, 2)), [1, 2, 3])
    frame = pd.DataFrame({"kind": ["routine"] * 3, "x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="counts >= 0"):
        ExpectedFindsRegressor().fit(frame, [1, -2, 3])


# --------------------------------------------------------------------------- training, registry, gate (item 4)

@pytest.fixture(scope="module")
def small_world():
    from data_samples.world import generate_world

    return generate_world(500, 3, seed=7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
def test_trained_registered_beside_the_risk_model_and_gated_on_the_same_backtest(small_world, tmp_path,
                                                                                 monkeypatch):
    from features.errors import NoChampionError
    from models import registry
    from models.expected_finds import expected_finds, train_expected_finds

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = dict(months=12, test_months=4, params={"max_iter": 30}, tracking_uri=uri, promote=True)
    with threadpool_limits(1):
        first = train_expected_finds(small_world, pd.Timestamp("2024-01-01"), **options)
    assert first.version.name == registry.FINDS_MODEL_NAME
    assert first.promotion.promoted and "no champion yet" in first.promotion.reason
    assert list(first.backtest.index) == ["with team", "without team"]
    champion = registry.load_champion(uri, model_name=registry.FINDS_MODEL_NAME)
    assert isinstance(champion.model, ExpectedFindsRegressor) and champion.kind == "expected_finds"
    with pytest.raises(NoChampionError, match="no model 'riskgrade' carries"):  # the risk model's alias untouched
        registry.load_champion(uri)

    with threadpool_limits(1):  # the same data again: no better than the champion re-fitted on the same split
        second = train_expected_finds(small_world, pd.Timestamp("2024-01-01"), **options)
    assert "champion" in second.backtest.index
    assert second.backtest.loc["champion", "poisson_deviance"] == pytest.approx(
        second.backtest.loc["with team", "poisson_deviance"])
    assert not second.promotion.promoted and "does not exceed" in second.promotion.reason
    assert registry.champion_version(uri, model_name=registry.FINDS_MODEL_NAME).version == first.version.version

    from features.build import build_features

    features = build_features(small_world, ["2024-01-01"])
    typical = expected_finds(champion.model, features)
    strict = expected_finds(champion.model, features, team_stringency=1.8)
    assert typical.index.equals(features.index) and (typical > 0).all()
    assert strict.mean() > typical.mean()
    with pytest.raises(ValueError, match="kind 'raid'"):
        expected_finds(champion.model, features, kind="raid")
    # the registered model learnt the major hazards too (what the nightly stores beside the total)
    assert champion.model.predicts_major
    major = expected_finds(champion.model, features, level="major")
    assert (major > 0).all() and major.mean() < typical.mean()
    with pytest.raises(ValueError, match="level 'minor'"):
        expected_finds(champion.model, features, level="minor")


def test_major_hazards_are_learnt_only_when_given(visits):
    with threadpool_limits(1):
        total = ExpectedFindsRegressor(max_iter=20).fit(visits, visits["hazards_found"])
        both = ExpectedFindsRegressor(max_iter=20).fit(visits, visits["hazards_found"],
                                                       major=visits["major_hazards_found"])
    assert not total.predicts_major and both.predicts_major
    with pytest.raises(ValueError, match="fitted without the major hazards"):
        total.predict_major(visits)
    np.testing.assert_allclose(both.predict(visits), total.predict(visits))  # the total model is unchanged
    assert both.predict_major(visits).mean() == pytest.approx(visits["major_hazards_found"].mean(), rel=0.2)
    with pytest.raises(ValueError, match="at most the hazards that visit found"):
        ExpectedFindsRegressor(max_iter=5).fit(visits, visits["hazards_found"],
                                               major=visits["hazards_found"] + 1)


def test_training_refuses_a_test_slice_as_long_as_the_history(small_world):
    from models.expected_finds import train_expected_finds

    with pytest.raises(ValueError, match="test_months must be between 1 and months - 1"):
        train_expected_finds(small_world, pd.Timestamp("2024-01-01"), months=6, test_months=6, register=False)


def test_no_visit_before_the_date_is_a_clear_error(small_world):
    from models.expected_finds import train_expected_finds

    with pytest.raises(ValueError, match="no visit recorded in the 6 months before 2019-01-01"):
        train_expected_finds(small_world, pd.Timestamp("2019-01-01"), months=6, test_months=2, register=False)


@given(day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
       horizon=st.integers(1, 120), months=st.integers(1, 36))
@settings(max_examples=60, deadline=None)
def test_training_dates_only_hold_windows_closed_by_the_as_of_date(day, horizon, months):
    from models.expected_finds import training_dates

    dates = training_dates(pd.Timestamp(day), horizon_days=horizon, months=months)
    assert len(dates) == months and (dates.day == 1).all()
    assert (dates + pd.Timedelta(days=horizon) <= pd.Timestamp(day)).all()
    assert dates[-1] + pd.DateOffset(months=1) + pd.Timedelta(days=horizon) > pd.Timestamp(day)  # the latest one
