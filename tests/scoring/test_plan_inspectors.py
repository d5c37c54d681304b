"""Stored plans with their inspector draw (scoring.results.plans): drawn from the imported roster, stored in
``plan_teams``, named in the plan's items and exports, re-drawn by verify — on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from features.store import load_tables
from scoring.results.batch import policy_fingerprint, run_nightly
from scoring.results.plans import generate_plan, plan_detail, plan_export_sheets, plan_teams, verify_draws

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

PERIOD = f"{AS_OF:%Y-%m}"


@pytest.fixture
def planned(db_url, world_csv, tmp_path, policy):
    engine = import_world(db_url, world_csv)
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(tmp_path))
    made = generate_plan(engine, PERIOD, by="李规划", policy=policy, policy_hash=policy_fingerprint(policy))
    yield engine, made
    engine.dispose()


def test_every_visit_is_staffed_from_its_departments_roster_or_says_why_not(planned, policy):
    engine, made = planned
    view = plan_detail(engine, made.plan_id)
    teams = view.teams
    assert teams is not None and len(teams) == len(view.items)
    staffed = teams[teams["unstaffed_reason"] == ""]
    assert len(staffed) > 0.8 * len(teams)
    tables = load_tables(engine, ["inspections", "inspectors", "inspection_inspectors"])
    roster = tables["inspectors"].set_index("inspector_id")
    for visit in staffed.itertuples(index=False):
        team = visit.inspectors.split(";")
        assert len(team) == visit.n_inspectors
        assert policy.supervision.inspectors.min <= len(team) <= policy.supervision.inspectors.max
        assert set(roster.loc[team, "department"]) == set(visit.departments.split(";"))
        assert roster.loc[team, "certified"].all()
    # 回避: nobody inspected the enterprise in the year before the period
    history = tables["inspection_inspectors"].merge(tables["inspections"], on="inspection_id")
    recent = history[history["inspected_on"] >= pd.Timestamp(AS_OF) - pd.Timedelta(days=365)]
    recent_pairs = set(zip(recent["enterprise_id"], recent["inspector_id"]))
    drawn_pairs = {(v.enterprise_id, i) for v in staffed.itertuples(index=False) for i in v.inspectors.split(";")}
    assert not drawn_pairs & recent_pairs
    load = pd.Series([i for v in staffed["inspectors"] for i in v.split(";")]).value_counts()
    assert load.max() <= policy.planning.inspectors.monthly_workload

    items = view.items.set_index("priority")
    assert (items.loc[staffed["priority"], "inspectors"].to_numpy() == staffed["inspectors"].to_numpy()).all()
    sheet = plan_export_sheets(view)["plan"]
    assert {"inspectors", "inspector_names"} <= set(sheet.columns)
    assert sheet["inspector_names"].str.len().gt(0).sum() == len(staffed)


def test_verify_redraws_the_inspectors_and_catches_a_changed_team(planned, policy):
    engine, made = planned
    check = verify_draws(engine, made.plan_id, policy=policy, policy_hash=policy_fingerprint(policy))
    assert check.teams is not None and check.teams["reproduced"].all() and check.reproduced

    first = check.teams.iloc[0]
    with engine.begin() as conn:
        conn.execute(plan_teams.update().where(plan_teams.c.plan_id == made.plan_id,
                                               plan_teams.c.priority == int(first["priority"]))
                     .values(inspectors="J99999;J99998"))
    again = verify_draws(engine, made.plan_id, policy=policy)
    assert not again.reproduced
    bad = again.teams[~again.teams["reproduced"]]
    assert list(bad["priority"]) == [int(first["priority"])] and bool(bad["pool_matches"].iloc[0])


def test_same_seed_same_teams_and_another_seed_other_teams(planned, policy):
    engine, made = planned
    again = generate_plan(engine, PERIOD, by="李规划", policy=policy, seed=made.plan.seed)
    assert again.plan.teams.equals(made.plan.teams)
    other = generate_plan(engine, PERIOD, by="李规划", policy=policy, seed=made.plan.seed + 1)
    assert not other.plan.teams["inspectors"].equals(made.plan.teams["inspectors"])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(plan_teams)).scalar_one()
    assert stored == 3 * len(made.plan.teams)


# --------------------------------------------------------------------------- ranking by expected finds (item 4)

def _finds_champion(engine, tmp_path, monkeypatch, version="7", model=None):
    """``(model, uri, full tables)``: an expected-finds model trained on the test database, handed back by the
    registry as the champion of ``uri`` (MLflow itself is exercised by tests/models/test_expected_finds.py); no
    risk model is registered there, so a nightly run on ``uri`` scores with the expert card."""
    from threadpoolctl import threadpool_limits

    from features.contract import TABLES
    from features.errors import NoChampionError
    from models import registry
    from models.expected_finds import train_expected_finds

    full = load_tables(engine, [t.name for t in TABLES])
    with threadpool_limits(1):
        model = model or train_expected_finds(full, pd.Timestamp(AS_OF), months=12, test_months=3, params={"max_iter": 20},
                                     register=False).model
    store = tmp_path / "finds.db"
    store.touch()
    uri = f"sqlite:///{store}"

    def load_champion(given=None, *, model_name=registry.MODEL_NAME):
        assert given == uri
        if model_name != registry.FINDS_MODEL_NAME:
            raise NoChampionError(f"no {model_name} champion in this test")
        return registry.ChampionModel(model=model, name=model_name, version=version, run_id="r",
                                      kind="expected_finds", as_of=None)

    monkeypatch.setattr(registry, "load_champion", load_champion)
    return model, uri, full


def _risk_visits_follow(risk: pd.DataFrame, order: pd.Series) -> bool:
    """Whether the risk-based visits of each department were chosen in descending ``order`` (per enterprise_id)."""
    ranked = risk.assign(order=risk["enterprise_id"].map(order).to_numpy())
    return all((g.sort_values("priority")["order"].diff().dropna() <= 1e-12).all()
               for _, g in ranked.groupby("departments"))


def test_with_an_expected_finds_champion_the_plan_ranks_by_it_and_recomputes_finds_for_the_team_drawn(
        db_url, world_csv, tmp_path, policy, monkeypatch):
    from models import registry
    from models.expected_finds import visit_finds

    engine = import_world(db_url, world_csv)
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(tmp_path))  # no finds model: NULLs stored
    model, uri, full = _finds_champion(engine, tmp_path, monkeypatch)
    assert policy.planning.rank_by == "expected_finds"  # the shipped policy file

    without = generate_plan(engine, PERIOD, by="李规划", policy=policy, tracking_uri=no_mlflow(tmp_path))
    assert without.plan.ranked_by == "the adverse-outcome probability (no expected-finds champion registered)"
    made = generate_plan(engine, PERIOD, by="李规划", policy=policy, tracking_uri=uri)
    assert made.plan.ranked_by == (f"expected finds (model {registry.FINDS_MODEL_NAME} version 7, computed as of "
                                   f"{AS_OF}: the limits carry none from it)")
    from scoring.results.audit import audit_frame

    logged = audit_frame(engine, action="plan.generate")
    assert logged["after"].astype(str).str.contains("expected finds").sum() == 1

    items = made.plan.items
    risk = items[items["stages"].str.contains("risk")]
    assert len(risk) > 0
    start = pd.Timestamp(AS_OF)
    # each visit's stored figure is the model's finds for the team actually drawn ...
    expected = visit_finds(model, full, start, items[["enterprise_id", "kind", "n_inspectors", "inspectors"]])
    assert items["expected_hazards"].to_numpy() == pytest.approx(expected.to_numpy())
    assert not items["expected_hazards"].equals(without.plan.items["expected_hazards"])
    # ... and the risk-based visits were chosen in the order of the finds of a typical team, per department
    typical = visit_finds(model, full, start, risk[["enterprise_id", "kind"]].assign(n_inspectors=2))
    assert _risk_visits_follow(risk, pd.Series(typical.to_numpy(), index=risk["enterprise_id"].to_numpy()))
    stored = plan_detail(engine, made.plan_id).items.sort_values("priority")
    assert stored["expected_hazards"].to_numpy() == pytest.approx(items.sort_values("priority")[
        "expected_hazards"].to_numpy())
    engine.dispose()


def test_the_plan_ranks_by_the_finds_the_nightly_stored_with_the_same_champion(
        db_url, world_csv, tmp_path, policy, monkeypatch):
    from models import registry
    from models.expected_finds import visit_finds
    from scoring.results.tables import scores_history

    engine = import_world(db_url, world_csv)
    model, uri, full = _finds_champion(engine, tmp_path, monkeypatch)
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    label = f"{registry.FINDS_MODEL_NAME} v7"
    # The stored figures are made to disagree with the model (highest where it says lowest): a plan that ranks by
    # what the nightly stored follows them, one that recomputes does not.
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(scores_history.c.finds_model_version == label)
                            ).scalar_one() > 0
        conn.execute(scores_history.update().values(expected_hazards=1.0 - scores_history.c.probability))
        published = pd.DataFrame(conn.execute(sa.select(scores_history.c.enterprise_id,
                                                        scores_history.c.expected_hazards)).all())
    published = published.set_index("enterprise_id")["expected_hazards"]

    made = generate_plan(engine, PERIOD, by="李规划", policy=policy, tracking_uri=uri)
    assert made.plan.ranked_by == (f"expected finds stored by nightly run {run.run_id} (model "
                                   f"{registry.FINDS_MODEL_NAME} version 7)")
    items = made.plan.items
    risk = items[items["stages"].str.contains("risk")]
    assert len(risk) > 1 and _risk_visits_follow(risk, published)
    model_typical = visit_finds(model, full, pd.Timestamp(AS_OF), risk[["enterprise_id", "kind"]].assign(
        n_inspectors=policy.supervision.inspectors.min))
    assert not _risk_visits_follow(risk, pd.Series(model_typical.to_numpy(), index=risk["enterprise_id"].to_numpy()))
    # each visit's own figure is still the model's, for the team drawn
    expected = visit_finds(model, full, pd.Timestamp(AS_OF), items[["enterprise_id", "kind", "n_inspectors",
                                                                    "inspectors"]])
    assert items["expected_hazards"].to_numpy() == pytest.approx(expected.to_numpy())

    # A champion promoted since the run: its figures are not the stored ones, so the plan computes them afresh.
    _finds_champion(engine, tmp_path, monkeypatch, version="8", model=model)
    again = generate_plan(engine, PERIOD, by="李规划", policy=policy, tracking_uri=uri)
    assert "version 8, computed as of" in again.plan.ranked_by
    engine.dispose()
