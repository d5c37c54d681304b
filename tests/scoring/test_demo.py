"""`riskgrade demo` end to end on a small world: every section runs and leaves a champion, a run, a plan and a
workbench admin whose random password it printed once."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from scoring.cli import app

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")]


def test_demo_runs_every_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "160")
    result = CliRunner().invoke(app, ["demo", "--workdir", str(tmp_path), "--enterprises", "400", "--years", "5",
                                      "--models", "expert", "--top", "5"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for header in ("1. synthetic world", "2. import", "3. train, backtest and promote", "4. nightly batch as of 2025-12-01",
                   "5. top 5 of the ranked list", "6. inspection plan for 2025-12", "7. workbench account"):
        assert header in result.output
    assert "no champion yet: version 1 becomes champion" in result.output
    assert "riskgrade v1 (expert)" in result.output  # the nightly run scored with the promoted champion

    from features.db import connect
    from scoring.results.tables import latest_run, load_plan

    engine = connect(f"sqlite:///{tmp_path / 'riskgrade.db'}")
    run = latest_run(engine)
    assert run["model_source"] == "champion" and run["status"] == "succeeded"
    header, items = load_plan(engine, period="2025-12")
    assert header["source_run_id"] == run["run_id"] and len(items) > 0
    assert (tmp_path / "mlflow.db").exists() and (tmp_path / "demo_world" / "enterprises.csv").exists()

    from scoring.results.accounts import get_account, verify_password

    (password,) = re.findall(r"admin account demo-admin, password (\S+) \(random, shown only", result.output)
    assert verify_password(engine, "demo-admin", password) is not None
    assert get_account(engine, "demo-admin").role == "admin"
    assert f"riskgrade serve --db sqlite:///{tmp_path / 'riskgrade.db'}" in result.output


def test_demo_admin_gets_a_new_random_password_each_time(tmp_path):
    from features.db import connect
    from scoring.cli import _demo_admin
    from scoring.domain.policy import load_policy
    from scoring.results.accounts import accounts_frame, verify_password

    engine = connect(f"sqlite:///{tmp_path / 'riskgrade.db'}")
    policy = load_policy()
    _, first = _demo_admin(engine, policy)
    _, second = _demo_admin(engine, policy)  # a second demo in the same directory

    assert first != second and len(second) >= policy.web.password_min_length
    assert verify_password(engine, "demo-admin", first) is None
    assert verify_password(engine, "demo-admin", second) is not None
    assert accounts_frame(engine)["username"].tolist() == ["demo-admin"]
