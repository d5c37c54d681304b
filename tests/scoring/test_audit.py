"""The general audit trail: one row per change, written in the change's own transaction, read with filters."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pytest

from features.db import connect
from features.errors import DataError
from scoring.results.audit import audit_frame, create_audit_table, jsonable, record_audit
from scoring.results.tables import add_override, expire_overrides, override_audit_trail, revoke_override

from web_helpers import insert_enterprises


@pytest.fixture
def engine(db_url):
    engine = connect(db_url)
    create_audit_table(engine)
    yield engine
    engine.dispose()


def test_record_and_read_with_filters_newest_first(engine):
    with engine.begin() as conn:
        first = record_audit(conn, actor="admin", action="account.add", target_kind="account", target_id="wang",
                             after={"role": "viewer", "townships": frozenset({"西城", "东城"})},
                             now=datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc))
        second = record_audit(conn, actor="wang", action="override.add", target_kind="override", target_id=7,
                              enterprise_id="E1", before=None, after={"tier": "high", "until": date(2025, 5, 31)},
                              note="群众举报", now=datetime(2025, 3, 2, 9, 30))
    frame = audit_frame(engine)
    assert list(frame["audit_id"]) == [second, first]
    newest = frame.iloc[0]
    assert (newest["actor"], newest["action"], newest["target_kind"], newest["target_id"], newest["enterprise_id"]) \
        == ("wang", "override.add", "override", "7", "E1")
    assert newest["after"] == {"tier": "high", "until": "2025-05-31"} and newest["before"] is None
    assert newest["at"] == pd.Timestamp("2025-03-02 09:30") and newest["note"] == "群众举报"
    assert frame.iloc[1]["after"] == {"role": "viewer", "townships": ["东城", "西城"]}  # sets sorted, UTC naive
    assert frame.iloc[1]["at"] == pd.Timestamp("2025-03-01 08:00")

    assert list(audit_frame(engine, actor="admin")["audit_id"]) == [first]
    assert list(audit_frame(engine, target_kind="override", target_id=7)["audit_id"]) == [second]
    assert list(audit_frame(engine, action="account.add")["audit_id"]) == [first]
    assert list(audit_frame(engine, since=datetime(2025, 3, 2))["audit_id"]) == [second]
    assert list(audit_frame(engine, limit=1)["audit_id"]) == [second]
    assert list(audit_frame(engine, limit=1, offset=1)["audit_id"]) == [first]
    assert audit_frame(engine, actor="' OR 1=1 --").empty  # a value, never SQL


def test_township_scope_shows_only_rows_about_enterprises_in_scope(engine):
    insert_enterprises(engine, {"E1": "东城街道", "E2": "西城街道"})
    with engine.begin() as conn:
        about_e1 = record_audit(conn, actor="a", action="override.add", target_kind="override", target_id=1,
                                enterprise_id="E1")
        record_audit(conn, actor="a", action="override.add", target_kind="override", target_id=2, enterprise_id="E2")
        record_audit(conn, actor="a", action="account.add", target_kind="account", target_id="b")
    assert len(audit_frame(engine)) == 3
    assert list(audit_frame(engine, townships={"东城街道"})["audit_id"]) == [about_e1]
    assert audit_frame(engine, townships=set()).empty
    assert audit_frame(engine, townships={"南城"}).empty


def test_an_audit_row_is_rolled_back_with_its_change(engine):
    with pytest.raises(RuntimeError, match="the change failed"):
        with engine.begin() as conn:
            record_audit(conn, actor="a", action="plan.approve", target_kind="plan", target_id=1)
            raise RuntimeError("the change failed")
    assert audit_frame(engine).empty


def test_an_audit_row_must_say_who_and_what(engine):
    with engine.begin() as conn:
        with pytest.raises(ValueError, match=r"the actor \(who\) is required"):
            record_audit(conn, actor="  ", action="x.y", target_kind="x", target_id=1)
        with pytest.raises(ValueError, match=r"the action and the target kind \(what\) are required"):
            record_audit(conn, actor="a", action="", target_kind="x", target_id=1)


def test_jsonable_plain_data():
    import numpy as np

    assert jsonable({"a": np.int64(3), "b": float("nan"), "c": (1, 2), "d": pd.Timestamp("2025-01-02"),
                     "e": pd.NA}) == {"a": 3, "b": None, "c": [1, 2], "d": "2025-01-02T00:00:00", "e": None}


def test_override_actions_write_audit_log_rows_beside_the_old_trail(engine, policy):
    manual = policy.overrides.manual
    override_id = add_override(engine, enterprise_id="E1", tier="high", reason="约谈后仍未整改", by="王科长",
                               valid_from="2025-03-01", valid_until="2025-03-31", policy=manual,
                               now=datetime(2025, 3, 1, 9, 0))
    other = add_override(engine, enterprise_id="E2", tier="low", reason="复核通过", by="李股长",
                         valid_from="2025-03-01", valid_until="2025-03-10", policy=manual,
                         now=datetime(2025, 3, 1, 9, 5))
    revoke_override(engine, override_id, by="张局长", reason="复查已整改", now=datetime(2025, 3, 5, 15, 0))
    assert expire_overrides(engine, "2025-03-12", by="riskgrade batch", now=datetime(2025, 3, 12, 2, 0)) == 1

    log = audit_frame(engine).iloc[::-1].reset_index(drop=True)
    assert log[["actor", "action", "target_id", "enterprise_id"]].values.tolist() == [
        ["王科长", "override.add", str(override_id), "E1"], ["李股长", "override.add", str(other), "E2"],
        ["张局长", "override.revoke", str(override_id), "E1"], ["riskgrade batch", "override.expire", str(other), "E2"]]
    assert log.at[0, "after"]["tier"] == "high" and log.at[0, "after"]["valid_until"] == "2025-03-31"
    assert log.at[2, "before"] == {"revoked_by": None, "revoked_at": None, "revoke_reason": None}
    assert log.at[2, "after"] == {"revoked_by": "张局长", "revoked_at": "2025-03-05T15:00:00",
                                  "revoke_reason": "复查已整改"}
    assert log.at[3, "after"] == {"expired_at": "2025-03-12T02:00:00"}
    assert list(log["at"]) == list(override_audit_trail(engine)["at"])  # the same moments as the old trail

    with pytest.raises(DataError, match="already revoked"):
        revoke_override(engine, override_id, by="张局长", reason="again")
    assert len(audit_frame(engine)) == 4  # a refused change writes no audit row
