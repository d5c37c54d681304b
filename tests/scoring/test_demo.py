"""`riskgrade demo` end to end on a small world: every section runs and leaves a champion, a run and a plan."""

from __future__ import annotations

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
                   "5. top 5 of the ranked list", "6. inspection plan for 2025-12"):
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
