"""Accounts: argon2 hashes, roles, township scope, every change audited; the `riskgrade users` commands."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.db import connect
from features.errors import DataError
from scoring.cli import app
from scoring.results.accounts import (
    ROLES,
    accounts,
    accounts_frame,
    add_account,
    disable_account,
    get_account,
    role_at_least,
    set_password,
    set_role,
    set_townships,
    verify_password,
)
from scoring.results.audit import audit_frame

from web_helpers import PASSWORD, fast_hashes, insert_enterprises  # noqa: F401  (fixture)

runner = CliRunner()


def _add(engine, name="wang", role="planner", **kwargs):
    return add_account(engine, username=name, role=role, password=kwargs.pop("password", PASSWORD), by="admin",
                       min_password_length=15, **kwargs)


def test_roles_are_ordered():
    assert ROLES == ("viewer", "planner", "supervisor", "admin")
    assert role_at_least("admin", "viewer") and role_at_least("planner", "planner")
    assert not role_at_least("planner", "supervisor") and not role_at_least("root", "viewer")
    from scoring.cli.users import _ROLES

    assert _ROLES == ROLES


def test_passwords_are_argon2_hashes_and_verified(engine):
    record = _add(engine, townships=["东城街道"])
    assert (record.username, record.role, record.townships, record.disabled) == ("wang", "planner",
                                                                                 frozenset({"东城街道"}), False)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(accounts.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(engine, "wang", PASSWORD).username == "wang"
    assert verify_password(engine, "wang", PASSWORD + "x") is None
    assert verify_password(engine, "nobody", PASSWORD) is None
    assert verify_password(engine, "wang", "") is None
    set_password(engine, "wang", "another long passphrase", by="admin", min_password_length=15)
    assert verify_password(engine, "wang", PASSWORD) is None
    assert verify_password(engine, "wang", "another long passphrase") is not None
    disable_account(engine, "wang", by="admin")
    assert verify_password(engine, "wang", "another long passphrase") is None


def test_every_change_is_audited_without_the_password(engine):
    _add(engine, name="boss", role="admin")
    _add(engine)
    set_role(engine, "wang", "supervisor", by="boss")
    set_townships(engine, "wang", ["西城街道", "东城街道"], by="boss")
    set_townships(engine, "wang", None, by="boss")
    disable_account(engine, "wang", by="boss")
    log = audit_frame(engine, target_kind="account", target_id="wang").iloc[::-1]
    assert list(log["action"]) == ["account.add", "account.set_role", "account.set_townships",
                                   "account.set_townships", "account.disable"]
    assert log.iloc[1]["before"]["role"] == "planner" and log.iloc[1]["after"]["role"] == "supervisor"
    assert log.iloc[2]["after"]["townships"] == ["东城街道", "西城街道"] and log.iloc[3]["after"]["townships"] is None
    assert log.iloc[4]["after"]["disabled"] is True and set(log.iloc[1:]["actor"]) == {"boss"}
    assert PASSWORD not in json.dumps(audit_frame(engine)[["before", "after", "note"]].to_dict("records"),
                                      ensure_ascii=False, default=str)
    record = get_account(engine, "wang")
    assert record.session_version == 5  # every change ended the sessions
    frame = accounts_frame(engine)
    assert list(frame["username"]) == ["boss", "wang"] and "password_hash" not in frame.columns


def test_refusals_say_what_is_wrong(engine):
    _add(engine)
    with pytest.raises(DataError, match="an account named 'wang' already exists"):
        _add(engine)
    with pytest.raises(DataError, match="role must be one of viewer, planner, supervisor, admin, got 'root'"):
        _add(engine, name="li", role="root")
    with pytest.raises(DataError, match="the password is empty"):
        _add(engine, name="li", password="   ")
    with pytest.raises(DataError, match=r"the password has 5 characters; at least 15 are required"):
        _add(engine, name="li", password="short")
    with pytest.raises(DataError, match=r"account name '<script>': expected 1 to 64 letters"):
        _add(engine, name="<script>")
    with pytest.raises(DataError, match="no account named 'ghost'"):
        disable_account(engine, "ghost", by="admin")
    with pytest.raises(DataError, match="a township scope needs at least one township"):
        set_townships(engine, "wang", [" "], by="admin")
    assert len(audit_frame(engine)) == 1


def test_unknown_townships_are_refused_once_enterprises_are_imported(engine):
    _add(engine, townships=["anything before an import"])
    insert_enterprises(engine, {"E1": "东城街道"})
    set_townships(engine, "wang", ["东城街道"], by="admin")
    with pytest.raises(DataError, match=r"unknown township '东城' \(townships of the imported enterprises: 东城街道\)"):
        set_townships(engine, "wang", ["东城"], by="admin")


def test_the_last_active_admin_stays(engine):
    _add(engine, name="boss", role="admin")
    with pytest.raises(DataError, match="'boss' is the last active admin"):
        disable_account(engine, "boss", by="boss")
    with pytest.raises(DataError, match="'boss' is the last active admin"):
        set_role(engine, "boss", "viewer", by="boss")
    _add(engine, name="deputy", role="admin")
    disable_account(engine, "boss", by="deputy")
    assert get_account(engine, "boss").disabled


def _code(result) -> int:
    from features.errors import RiskgradeError
    from scoring.cli import EXIT_CODES

    if isinstance(result.exception, RiskgradeError):
        return next((code for kind, code in EXIT_CODES.items() if isinstance(result.exception, kind)), 1)
    return result.exit_code


def _message(result) -> str:
    return result.output + (str(result.exception) if result.exception else "")


def test_users_commands(db_url):
    def users(*args, stdin=None):
        return runner.invoke(app, ["users", *args, "--db", db_url], input=stdin)

    added = users("add", "wang", "--role", "planner", "--township", "东城街道", stdin=PASSWORD + "\n")
    assert added.exit_code == 0, _message(added)
    assert "account wang created: planner, townships 东城街道" in added.output
    assert PASSWORD not in added.output
    listed = json.loads(users("list", "--format", "json").stdout)
    assert [(a["username"], a["role"], a["townships"], a["disabled"]) for a in listed] == [
        ("wang", "planner", ["东城街道"], False)]
    assert users("set-role", "wang", "supervisor").exit_code == 0
    assert users("set-townships", "wang").exit_code == 0
    table = users("list")
    assert "supervisor" in table.output and "all" in table.output
    assert users("disable", "wang").exit_code == 0
    assert json.loads(users("list", "--format", "json").stdout)[0]["disabled"] is True
    engine = connect(db_url)
    assert set(audit_frame(engine)["actor"].str.startswith("cli")) == {True}
    engine.dispose()

    duplicate = users("add", "wang", "--role", "viewer", stdin=PASSWORD + "\n")
    assert _code(duplicate) == 3 and "an account named 'wang' already exists" in _message(duplicate)
    role = users("add", "li", "--role", "root", stdin=PASSWORD + "\n")
    assert role.exit_code == 2 and "got 'root'" in role.output and "expected one of viewer" in role.output
    empty = users("add", "li", "--role", "viewer", stdin="\n")
    assert _code(empty) == 3 and "the password is empty" in _message(empty)
    unknown = users("disable", "ghost")
    assert _code(unknown) == 3 and "no account named 'ghost'" in _message(unknown)
    assert _code(users("set-role", "ghost", "viewer")) == 3
    assert users("set-role", "wang", "god").exit_code == 2
