"""Plans as the bureau manages them (scoring.results.plans): versions, approval (frozen), verifying the draws,
township scope, and the upgrade of databases made before plan versions — on SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from features.errors import DataError
from scoring.results.audit import audit_frame
from scoring.results.batch import policy_fingerprint, run_nightly
from scoring.results.plans import (
    approve_plan,
    enterprise_plans,
    generate_plan,
    plan_detail,
    plan_export_sheets,
    plan_list,
    verify_draws,
)
from scoring.results.tables import create_scoring_tables, load_plan, plans

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

PERIOD = f"{AS_OF:%Y-%m}"


@pytest.fixture
def planned(db_url, world_csv, tmp_path, policy):
    engine = import_world(db_url, world_csv)
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(tmp_path))
    yield engine
    engine.dispose()


def _generate(engine, policy, **options):
    return generate_plan(engine, PERIOD, by=options.pop("by", "李规划"), policy=policy,
                         policy_hash=policy_fingerprint(policy), **options)


def test_versions_approval_and_frozen_plans(planned, policy):
    engine = planned
    first = _generate(engine, policy)
    assert first.version == 1 and len(first.plan.items) > 0
    header, items = load_plan(engine, plan_id=first.plan_id)
    assert header["status"] == "draft" and header["created_by"] == "李规划" and header["version"] == 1
    capacity = {department: visits * 2 for department, visits in policy.planning.capacity.items()}
    second = _generate(engine, policy, capacity=capacity)
    assert second.version == 2 and second.plan_id != first.plan_id

    audit = audit_frame(engine, target_kind="plan")
    assert list(audit["action"]) == ["plan.capacity", "plan.generate", "plan.generate"]  # newest first
    assert audit["after"].iloc[0] == capacity and audit["before"].iloc[0] == dict(policy.planning.capacity)
    assert audit["after"].iloc[1]["version"] == 2 and set(audit["actor"]) == {"李规划"}

    with pytest.raises(DataError, match=r"version 1 of 2025-01, superseded by version 2"):
        approve_plan(engine, first.plan_id, by="张科长")
    approved = approve_plan(engine, second.plan_id, by="张科长")
    assert approved["status"] == "approved"
    with pytest.raises(DataError, match=r"approved by 张科长 on .* and is frozen"):
        approve_plan(engine, second.plan_id, by="张科长")
    before = load_plan(engine, plan_id=second.plan_id)

    third = _generate(engine, policy, capacity=capacity)
    assert third.version == 3
    after = load_plan(engine, plan_id=second.plan_id)
    assert after[0] == before[0] and after[1].equals(before[1])  # regenerating never touches the approved plan
    listed = plan_list(engine)
    assert list(listed["version"]) == [3, 2, 1] and list(listed["status"]) == ["draft", "approved", "draft"]
    assert audit_frame(engine, action="plan.approve")["target_id"].tolist() == [str(second.plan_id)]

    with pytest.raises(DataError, match="plan 999999 does not exist"):
        approve_plan(engine, 999999, by="张科长")
    with pytest.raises(DataError, match="needs who"):
        approve_plan(engine, third.plan_id, by="  ")


def test_scoped_accounts_see_their_townships_and_cannot_plan(planned, policy):
    engine = planned
    made = _generate(engine, policy)
    full = plan_detail(engine, made.plan_id)
    township = full.items["township"].mode().iloc[0]
    mine = plan_detail(engine, made.plan_id, townships=[township])
    assert len(mine.items) and set(mine.items["township"]) == {township}
    assert len(mine.items) < len(full.items)
    drawn = [i for text in mine.draws["drawn_ids"] for i in text.split(";") if i]
    where = dict(zip(full.items["enterprise_id"], full.items["township"]))
    assert all(where[i] == township for i in drawn)
    sheets = plan_export_sheets(mine)
    assert set(sheets["plan"]["township"]) == {township} and list(sheets) == ["plan", "summary", "draws", "unmet"]
    assert plan_list(engine, townships=[township])["n_items"].tolist() == [len(mine.items)]
    assert plan_list(engine, townships=["无此乡镇"])["n_items"].tolist() == [0]
    eid = mine.items["enterprise_id"].iloc[0]
    assert enterprise_plans(engine, eid)["plan_id"].tolist() == [made.plan_id]

    with pytest.raises(DataError, match="a plan covers every township"):
        _generate(engine, policy, townships=[township])
    with pytest.raises(DataError, match="a plan covers every township"):
        approve_plan(engine, made.plan_id, by="张科长", townships=[township])
    assert len(plan_list(engine)) == 1


def test_verify_reproduces_and_detects_a_tampered_draw(planned, policy):
    engine = planned
    made = _generate(engine, policy, seed=4242)
    check = verify_draws(engine, made.plan_id, policy=policy, policy_hash=policy_fingerprint(policy))
    assert check.reproduced and check.seed == 4242 and check.notes == ()
    assert (check.strata["digest_recorded"] == check.strata["digest_rebuilt"]).all()
    assert check.strata["n_drawn"].sum() == (made.plan.items["stages"].str.contains("random")).sum() > 0

    header, _ = load_plan(engine, plan_id=made.plan_id)
    draws = header["draws"]
    victim = next(i for i, d in enumerate(draws) if d["drawn"] >= 2)
    ids = draws[victim]["drawn_ids"].split(";")
    draws[victim] = {**draws[victim], "drawn_ids": ";".join([ids[1], ids[0], *ids[2:]])}  # order swapped
    with engine.begin() as conn:
        conn.execute(plans.update().where(plans.c.plan_id == made.plan_id).values(draws=draws))
    check = verify_draws(engine, made.plan_id, policy=policy)
    bad = check.strata.loc[~check.strata["reproduced"]]
    assert not check.reproduced and len(bad) == 1
    assert bool(bad["pool_matches"].iloc[0]) and not bool(bad["draw_matches"].iloc[0])

    draws[victim] = {**draws[victim], "pool_digest": "0" * 16}
    with engine.begin() as conn:
        conn.execute(plans.update().where(plans.c.plan_id == made.plan_id).values(draws=draws, seed=1))
    check = verify_draws(engine, made.plan_id, policy=policy, policy_hash="different")
    assert not check.strata.loc[victim, "pool_matches"] and not check.reproduced
    assert any("the policy changed" in note for note in check.notes)


def test_databases_made_before_plan_versions_are_upgraded(db_url, policy):
    from features.db import connect

    engine = connect(db_url)
    create_scoring_tables(engine)
    with engine.begin() as conn:
        for period in ("2025-01", "2025-01", "2025-02"):
            conn.execute(plans.insert().values(period=period, as_of=pd.Timestamp(period + "-01").date(), seed=1,
                                               created_at=pd.Timestamp("2025-01-01").to_pydatetime(), n_items=0))
        conn.execute(sa.text("DROP INDEX ux_plans_period_version"))
        conn.execute(sa.text("DROP INDEX ix_scores_history_as_of_probability"))
        for column in ("version", "status", "approved_by", "approved_at"):
            conn.execute(sa.text(f"ALTER TABLE plans DROP COLUMN {column}"))
    engine.dispose()
    engine = connect(db_url)  # a new engine: the upgrade runs on first use
    listed = plan_list(engine).sort_values("plan_id")
    assert listed["version"].tolist() == [1, 2, 1] and set(listed["status"]) == {"draft"}
    names = {i["name"] for i in sa.inspect(engine).get_indexes("scores_history")}
    assert {"ix_scores_history_as_of_probability", "ix_scores_history_as_of_rank_id"} <= names
    assert "ux_plans_period_version" in {i["name"] for i in sa.inspect(engine).get_indexes("plans")}
    engine.dispose()
