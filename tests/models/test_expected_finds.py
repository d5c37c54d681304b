"""The expected-finds model (models.expected_finds; issue 16 item 4, first increment): on the world with
inspector heterogeneity, knowing the team makes the predicted finds of later visits better."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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
