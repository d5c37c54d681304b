"""Manual overrides in the database: add / revoke / expire / active at a date, every change audited."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from features.errors import DataError
from scoring.results.tables import (
    add_override,
    expire_overrides,
    override_audit_trail,
    overrides_active_at,
    revoke_override,
)
from scoring.domain.tiers import assign_tiers

from scoring_frames import enterprises


def test_overrides_are_active_in_their_period_until_revoked_and_audited(engine, policy):
    manual = policy.overrides.manual
    first = add_override(engine, enterprise_id="E1", tier="high", reason="群众举报夜间违规生产", by="王科长",
                         valid_from="2025-03-01", valid_until="2025-05-31", policy=manual,
                         now=datetime(2025, 3, 1, 9, 30))
    second = add_override(engine, enterprise_id="E2", tier="low", reason="整改到位, 复核通过", by="李股长",
                          valid_until="2025-03-31", policy=manual, now=datetime(2025, 3, 2, 10, 0))

    def active(day):
        return overrides_active_at(engine, day).set_index("override_id")

    assert list(active("2025-02-28").index) == []                 # before its period
    assert list(active("2025-03-01").index) == [first]            # second created on the 2nd (from that day)
    on_the_2nd = active("2025-03-02")
    assert list(on_the_2nd.index) == [first, second]
    assert on_the_2nd.at[first, "created_by"] == "王科长" and on_the_2nd.at[second, "tier"] == "low"
    assert list(active("2025-04-01").index) == [first]            # second expired after 31 March (inclusive)

    revoke_override(engine, first, by="张局长", reason="复查已整改", now=datetime(2025, 4, 10, 15, 0))
    assert list(active("2025-04-10").index) == []                 # revoked that day
    assert list(active("2025-04-09").index) == [first]            # an old date still sees it (re-runs agree)

    assert expire_overrides(engine, "2025-04-11", by="batch", now=datetime(2025, 4, 11, 2, 0)) == 1
    assert expire_overrides(engine, "2025-04-12", by="batch") == 0  # idempotent

    trail = override_audit_trail(engine)
    assert trail[["override_id", "action", "actor"]].values.tolist() == [
        [first, "create", "王科长"], [second, "create", "李股长"], [first, "revoke", "张局长"],
        [second, "expire", "batch"]]
    assert list(trail["at"]) == [pd.Timestamp("2025-03-01 09:30"), pd.Timestamp("2025-03-02 10:00"),
                                 pd.Timestamp("2025-04-10 15:00"), pd.Timestamp("2025-04-11 02:00")]
    assert "E1 -> high from 2025-03-01 until 2025-05-31" in trail.at[0, "note"]
    assert list(override_audit_trail(engine, second)["action"]) == ["create", "expire"]

    with pytest.raises(DataError, match=rf"manual override {first} was already revoked on 2025-04-10"):
        revoke_override(engine, first, by="张局长", reason="again")
    with pytest.raises(DataError, match=r"manual override 999 does not exist"):
        revoke_override(engine, 999, by="张局长", reason="?")


def test_bad_overrides_are_refused(engine, policy):
    manual = policy.overrides.manual
    base = dict(enterprise_id="E1", tier="high", reason="why", by="who", valid_from="2025-01-01",
                valid_until="2025-02-01", policy=manual)
    with pytest.raises(DataError, match=r"a reason \(why\) is required"):
        add_override(engine, **{**base, "reason": "  "})
    with pytest.raises(DataError, match=r"the author \(who\) is required"):
        add_override(engine, **{**base, "by": ""})
    with pytest.raises(DataError, match=r"tier must be one of low, general, high, got 'medium'"):
        add_override(engine, **{**base, "tier": "medium"})
    with pytest.raises(DataError, match=r"valid_until 2024-12-01 is before valid_from 2025-01-01"):
        add_override(engine, **{**base, "valid_until": "2024-12-01"})
    with pytest.raises(DataError, match=r"366 days is longer than the policy allows \(overrides.manual.max_days = 365\)"):
        add_override(engine, **{**base, "valid_until": date(2026, 1, 1)})
    assert override_audit_trail(engine).empty


def test_active_overrides_feed_the_tiering(engine, policy):
    add_override(engine, enterprise_id="E1", tier="high", reason="约谈后仍未整改", by="王科长",
                 valid_from="2025-03-01", valid_until="2025-03-31", policy=policy.overrides.manual,
                 now=datetime(2025, 3, 1))
    probs = {f"E{i}": 0.05 for i in range(1, 10)} | {"TOP": 0.9}
    scores = pd.DataFrame({"enterprise_id": list(probs), "probability": list(probs.values())})
    result = assign_tiers(scores, {"enterprises": enterprises(probs)}, as_of="2025-03-15", tiers=policy.tiers,
                          overrides=policy.overrides, manual=overrides_active_at(engine, "2025-03-15"))
    row = result.tiers.set_index("enterprise_id").loc["E1"]
    assert (row["model_tier"], row["final_tier"], row["override_codes"]) == ("general", "high", "manual")


def test_current_limits_compose_champion_scores_overrides_and_limits(engine, policy, monkeypatch):
    import numpy as np

    import features.store
    import models.registry
    from models.registry import ChampionModel

    from scoring.results.tables import current_limits
    from scoring_frames import frame

    ids = [f"E{i}" for i in range(10)]
    tables = {"enterprises": enterprises(ids, name=[f"企业{i}" for i in range(10)]),
              "inspections": frame("inspections", inspection_id=["i1"], enterprise_id="E1",
                                   inspected_on="2025-01-05", department="应急", kind="routine")}

    class Model:
        def predict_proba(self, X):
            p = np.linspace(0.01, 0.5, len(X))
            return np.c_[1 - p, p]

    monkeypatch.setattr(features.store, "load_tables", lambda engine_: tables)
    monkeypatch.setattr(models.registry, "load_champion", lambda uri=None: ChampionModel(
        model=Model(), name="riskgrade", version="3", run_id="r", kind="boosting", as_of="2025-01-01"))
    add_override(engine, enterprise_id="E0", tier="high", reason="复查发现问题", by="王科长",
                 valid_from="2025-03-01", valid_until="2025-06-30", policy=policy.overrides.manual,
                 now=datetime(2025, 2, 20))
    limits = current_limits(engine, "2025-03-01", policy).set_index("enterprise_id")
    assert len(limits) == 10 and limits.at["E0", "final_tier"] == "high"  # the manual override from the DB
    assert limits.at["E9", "final_tier"] == "high" and limits.at["E0", "name"] == "企业0"
    assert limits.at["E1", "visits_used"] == 1
    assert set(limits["model"]) == {"riskgrade v3 (boosting)"}


def test_overrides_active_at_for_one_enterprise(engine, policy):
    manual = policy.overrides.manual
    for eid in ("E1", "E2"):
        add_override(engine, enterprise_id=eid, tier="high", reason="复查", by="王科长", valid_from="2025-03-01",
                     valid_until="2025-05-31", policy=manual, now=datetime(2025, 3, 1, 9, 30))
    everyone = overrides_active_at(engine, "2025-03-02")
    one = overrides_active_at(engine, "2025-03-02", enterprise_id="E2")
    assert list(one["enterprise_id"]) == ["E2"] and list(one.dtypes) == list(everyone.dtypes)


def test_the_planner_statistics_are_refreshed_after_a_bulk_write(engine):
    import sqlalchemy as sa

    from scoring.results.tables import create_scoring_tables, refresh_statistics, scores_history, tier_changes

    create_scoring_tables(engine)
    refresh_statistics(engine, [scores_history, tier_changes])  # on an empty table too
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                                ).scalar_one() == 1
