"""The nightly stores each enterprise's expected finds for a typical team (issue 16, item 4), on SQLite and
PostgreSQL: with an expected-finds champion the rows hold them (and ``explain``, ``rank`` and the workbench show
them); without one the run succeeds, the columns are NULL and its warnings say so; an older database gets the
columns added.

(MLflow itself is exercised by tests/models/test_expected_finds.py: here the registry hands back a model trained
on the test world.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.errors import NoChampionError
from models import registry
from scoring.cli import app
from scoring.results.batch import FindsModel, run_nightly, typical_team_finds
from scoring.results.tables import create_scoring_tables, latest_run, scores_frame

from batch_world import AS_OF, import_world, world_csv  # noqa: F401  (world_csv is a fixture)
from web_helpers import fast_hashes, login, make_accounts, web_client  # noqa: F401  (fast_hashes: autouse)

runner = CliRunner()


@pytest.fixture(scope="module")
def finds_models(world_csv, tmp_path_factory):  # noqa: F811
    """Expected-finds models trained on the world: with the major hazards, and without (an older champion)."""
    from threadpoolctl import threadpool_limits

    from features.contract import TABLES
    from features.store import load_tables
    from models.expected_finds import train_expected_finds

    engine = import_world(f"sqlite:///{tmp_path_factory.mktemp('train') / 'riskgrade.db'}", world_csv)
    tables = load_tables(engine, [t.name for t in TABLES])
    engine.dispose()
    options = dict(months=12, test_months=3, params={"max_iter": 20}, register=False)
    with threadpool_limits(1):
        both = train_expected_finds(tables, pd.Timestamp(AS_OF), with_major=True, **options).model
        total = train_expected_finds(tables, pd.Timestamp(AS_OF), **options).model
    assert both.predicts_major and not total.predicts_major
    return both, total


def _registry(monkeypatch, tmp_path, finds_model):
    """A tracking store that exists, with no risk champion and ``finds_model`` (None: none) as the expected-finds
    champion, version 4."""
    store = tmp_path / "mlflow.db"
    store.touch()

    def load_champion(uri=None, *, model_name=registry.MODEL_NAME):
        if model_name == registry.FINDS_MODEL_NAME and finds_model is not None:
            return registry.ChampionModel(model=finds_model, name=model_name, version="4", run_id="r",
                                          kind="expected_finds", as_of=None)
        raise NoChampionError(f"no model {model_name!r} carries the alias 'champion'")

    monkeypatch.setattr(registry, "load_champion", load_champion)
    return f"sqlite:///{store}"


@pytest.fixture
def engine(db_url, world_csv):  # noqa: F811
    engine = import_world(db_url, world_csv)
    yield engine
    engine.dispose()


def test_with_a_champion_every_row_holds_the_typical_teams_expected_finds(engine, db_url, finds_models, policy,
                                                                           tmp_path, monkeypatch):
    from features import build_features
    from features.store import load_tables

    model = finds_models[0]
    uri = _registry(monkeypatch, tmp_path, model)
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert not [w for w in run.warnings if "expected" in w]  # only the risk model's fallback is reported
    rows = scores_frame(engine, AS_OF).set_index("enterprise_id")
    assert rows["expected_hazards"].notna().all() and (rows["expected_hazards"] > 0).all()
    assert (rows["expected_major_hazards"] <= rows["expected_hazards"] + 1e-12).all()
    assert (rows["expected_major_hazards"] > 0).all()
    assert set(rows["finds_model_version"]) == {f"{registry.FINDS_MODEL_NAME} v4"}

    # what was stored is the model's prediction for a typical team: [supervision.inspectors] min inspectors of
    # stringency 1, a focused visit for the high tier and a routine one otherwise
    features = build_features(load_tables(engine), [pd.Timestamp(AS_OF)])
    typical = typical_team_finds(FindsModel(model, "m", "1"), features,
                                 team_size=policy.supervision.inspectors.min).set_index("enterprise_id")
    typical = typical.reindex(rows.index)
    high = (rows["final_tier"] == "high").to_numpy()
    assert high.any() and (~high).any()
    np.testing.assert_allclose(rows["expected_hazards"], np.where(high, typical["focused_hazards"],
                                                                  typical["routine_hazards"]), rtol=1e-9)
    np.testing.assert_allclose(rows["expected_major_hazards"], np.where(
        high, typical["focused_major_hazards"], typical["routine_major_hazards"]), rtol=1e-9)

    # shown where a planner reads it: explain (table and JSON) and the ranked list's export
    eid = rows.index[0]
    shown = runner.invoke(app, ["explain", eid, "--db", db_url])
    assert shown.exit_code == 0, shown.output
    assert "expected finds 预计发现隐患" in shown.output and "per " in shown.output and "major 重大" in shown.output
    data = json.loads(runner.invoke(app, ["explain", eid, "--db", db_url, "--format", "json"]).output)
    assert data["current"]["expected_hazards"] == pytest.approx(rows.loc[eid, "expected_hazards"])
    items = json.loads(runner.invoke(app, ["rank", "--db", db_url, "--format", "json", "--top", "5"]).stdout)
    assert all(item["expected_hazards"] > 0 and item["expected_major_hazards"] is not None for item in items)


def test_without_an_expected_finds_model_the_run_succeeds_and_says_so(engine, db_url, policy, tmp_path,
                                                                       monkeypatch):
    uri = _registry(monkeypatch, tmp_path, None)
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert run.status == "succeeded"
    warning = [w for w in run.warnings if "expected finds" in w]
    assert len(warning) == 1 and "'riskgrade-expected-finds' carries" in warning[0]
    assert "riskgrade train-finds" in warning[0]
    assert "expected finds per enterprise not stored" in latest_run(engine, AS_OF)["warning"]
    rows = scores_frame(engine, AS_OF)
    assert rows["expected_hazards"].isna().all() and rows["expected_major_hazards"].isna().all()
    assert rows["finds_model_version"].isna().all()
    # the plan reads the stored limits: without these columns it ranks by probability, as before (with a champion
    # it recomputes the finds as of the period's first day), never by an empty expected_hazards column
    from scoring.results.tables import current_limits

    limits = current_limits(engine, AS_OF, policy)
    assert len(limits) == len(rows) and "expected_hazards" not in limits and "probability" in limits
    shown = runner.invoke(app, ["explain", rows["enterprise_id"].iloc[0], "--db", db_url])
    assert shown.exit_code == 0 and "no expected-finds model was registered" in shown.output


def test_a_champion_trained_without_the_major_hazards_stores_the_total_only(engine, finds_models, policy, tmp_path,
                                                                            monkeypatch):
    uri = _registry(monkeypatch, tmp_path, finds_models[1])
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert any("trained without the major hazards" in w for w in run.warnings)
    rows = scores_frame(engine, AS_OF)
    assert rows["expected_hazards"].notna().all() and rows["expected_major_hazards"].isna().all()


def test_an_older_database_gets_the_expected_finds_columns(db_url):
    from features.db import connect

    first = connect(db_url)
    create_scoring_tables(first)
    with first.begin() as conn:
        for column in ("expected_hazards", "expected_major_hazards", "finds_model_version"):
            conn.execute(sa.text(f"ALTER TABLE scores_history DROP COLUMN {column}"))
    first.dispose()
    engine = connect(db_url)  # a new engine: the upgrade runs once per engine
    create_scoring_tables(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("scores_history")}
    assert {"expected_hazards", "expected_major_hazards", "finds_model_version"} <= columns
    create_scoring_tables(engine)  # idempotent
    engine.dispose()


def test_the_workbench_enterprise_file_shows_the_expected_finds(engine, finds_models, policy, tmp_path,
                                                                 monkeypatch):
    uri = _registry(monkeypatch, tmp_path, finds_models[0])
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    row = scores_frame(engine, AS_OF).iloc[0]
    make_accounts(engine)
    client, _ = web_client(engine, policy=policy)
    login(client, "viewer")
    page = client.get(f"/enterprise/{row['enterprise_id']}")
    assert page.status_code == 200
    assert "预计发现隐患" in page.text and f"{row['expected_hazards']:,.2f}" in page.text
    assert f"{registry.FINDS_MODEL_NAME} v4" in page.text
