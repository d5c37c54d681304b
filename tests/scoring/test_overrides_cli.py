"""`riskgrade override add|revoke|list`: manual tier overrides from the command line, audited, township-scoped
functions behind them (scoring.results.overrides) — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import DataError
from scoring.cli import app
from scoring.results.audit import audit_frame
from scoring.results.overrides import LIST_COLUMNS, lift_override, override_list, set_override
from scoring.results.tables import manual_overrides

from batch_world import import_world, world_csv  # noqa: F401  (world_csv is a fixture)
from test_rank import _code, _message

runner = CliRunner()


@pytest.fixture
def world_db(db_url, world_csv):
    engine = import_world(db_url, world_csv)
    yield db_url, engine
    engine.dispose()


def _ok(*args):
    result = runner.invoke(app, ["override", *args])
    assert result.exit_code == 0, _message(result)
    return result


def test_add_list_revoke(world_db):
    url, engine = world_db
    today = date.today()
    until = today + timedelta(days=30)
    added = _ok("add", "E000007", "--tier", "high", "--reason", "约谈后仍未整改 <b>'\"", "--until", str(until),
                "--by", "王科长", "--db", url)
    assert "override 1: E000007 → high" in added.output
    _ok("add", "E000008", "--tier", "low", "--reason", "已整改", "--from", str(today + timedelta(days=5)),
        "--until", str(until), "--by", "王科长", "--db", url)
    listed = json.loads(_ok("list", "--format", "json", "--db", url).stdout)
    assert [o["override_id"] for o in listed] == [2, 1] and list(listed[0]) == LIST_COLUMNS
    assert [o["status"] for o in listed] == ["scheduled", "active"]
    assert listed[1]["reason"] == "约谈后仍未整改 <b>'\"" and listed[1]["name"]  # stored as typed, name joined
    active = json.loads(_ok("list", "--active-on", str(today), "--format", "json", "--db", url).stdout)
    assert [o["enterprise_id"] for o in active] == ["E000007"]
    one = json.loads(_ok("list", "--enterprise", "E000008", "--format", "json", "--db", url).stdout)
    assert [o["override_id"] for o in one] == [2]

    _ok("revoke", "1", "--reason", "复查合格", "--by", "赵主任", "--db", url)
    listed = json.loads(_ok("list", "--format", "json", "--db", url).stdout)
    assert listed[1]["status"] == "revoked" and listed[1]["revoked_by"] == "赵主任"
    again = runner.invoke(app, ["override", "revoke", "1", "--reason", "x", "--by", "赵主任", "--db", url])
    assert _code(again) == 3 and "already revoked" in _message(again)

    audit = audit_frame(engine, target_kind="override")
    assert list(audit["action"]) == ["override.revoke", "override.add", "override.add"]
    assert list(audit["actor"]) == ["赵主任", "王科长", "王科长"]

    table = _ok("list", "--db", url)
    assert "E000007" in table.output and "revoked" in table.output
    csv = _ok("list", "--format", "csv", "--db", url).stdout
    assert csv.splitlines()[0] == ",".join(LIST_COLUMNS)


def test_refusals(world_db):
    url, engine = world_db
    until = str(date.today() + timedelta(days=10))
    unknown = runner.invoke(app, ["override", "add", "NOPE", "--tier", "high", "--reason", "r", "--until", until,
                                  "--by", "王", "--db", url])
    assert _code(unknown) == 3 and "unknown enterprise 'NOPE'" in _message(unknown)
    bad_tier = runner.invoke(app, ["override", "add", "E000001", "--tier", "medium", "--reason", "r", "--until",
                                   until, "--by", "王", "--db", url])
    assert bad_tier.exit_code == 2 and "expected high, general or low" in bad_tier.output
    bad_date = runner.invoke(app, ["override", "add", "E000001", "--tier", "high", "--reason", "r", "--until",
                                   "2025-13-01", "--by", "王", "--db", url])
    assert bad_date.exit_code == 2 and "expected a date like" in bad_date.output
    too_long = runner.invoke(app, ["override", "add", "E000001", "--tier", "high", "--reason", "r", "--until",
                                   str(date.today() + timedelta(days=4000)), "--by", "王", "--db", url])
    assert _code(too_long) == 3 and "longer than the policy allows" in _message(too_long)
    no_reason = runner.invoke(app, ["override", "add", "E000001", "--tier", "high", "--reason", "  ", "--until",
                                    until, "--by", "王", "--db", url])
    assert _code(no_reason) == 3 and "a reason (why) is required" in _message(no_reason)
    missing = runner.invoke(app, ["override", "revoke", "77", "--reason", "r", "--by", "王", "--db", url])
    assert _code(missing) == 3 and "manual override 77 does not exist" in _message(missing)
    assert len(override_list(engine)) == 0 and len(audit_frame(engine)) == 0


def test_township_scope(world_db, policy):
    url, engine = world_db
    from features.schema import CONTRACT_TABLES

    with engine.connect() as conn:
        rows = conn.execute(CONTRACT_TABLES["enterprises"].select()).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows])
    mine, other = frame["township"].value_counts().index[:2]
    inside = frame.loc[frame["township"] == mine, "enterprise_id"].iloc[0]
    outside = frame.loc[frame["township"] == other, "enterprise_id"].iloc[0]
    until = date.today() + timedelta(days=10)
    rules = policy.overrides.manual
    with pytest.raises(DataError, match=f"unknown enterprise '{outside}'"):
        set_override(engine, outside, tier="high", reason="r", by="乡镇", valid_until=until, policy=rules,
                     townships=[mine])
    own = set_override(engine, inside, tier="high", reason="r", by="乡镇", valid_until=until, policy=rules,
                       townships=[mine])
    theirs = set_override(engine, outside, tier="low", reason="r", by="县局", valid_until=until, policy=rules)
    assert override_list(engine, townships=[mine])["override_id"].tolist() == [own]
    with pytest.raises(DataError, match=f"manual override {theirs} does not exist"):
        lift_override(engine, theirs, by="乡镇", reason="r", townships=[mine])
    assert lift_override(engine, own, by="乡镇", reason="r", townships=[mine]) == inside
    with engine.connect() as conn:
        revoked = dict(conn.execute(manual_overrides.select().with_only_columns(
            manual_overrides.c.override_id, manual_overrides.c.revoked_by)).all())
    assert revoked == {own: "乡镇", theirs: None}


def test_status_on_a_day():
    from scoring.results.overrides import override_status

    frame = pd.DataFrame({
        "valid_from": pd.to_datetime(["2025-01-01", "2025-02-01", "2024-01-01", "2025-01-01"]),
        "valid_until": pd.to_datetime(["2025-03-01", "2025-03-01", "2024-12-31", "2025-03-01"]),
        "revoked_at": pd.to_datetime([None, None, None, datetime(2025, 1, 10, 23, 59)]),
    })
    assert override_status(frame, date(2025, 1, 10)).tolist() == ["active", "scheduled", "expired", "revoked"]
    assert override_status(frame, date(2025, 1, 9)).tolist()[3] == "active"
