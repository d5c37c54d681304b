"""`riskgrade plan` and `riskgrade simulate`: formats, seed, capacity file, errors (heavy parts stubbed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import scoring.domain.simulate
import scoring.results.tables
from scoring.cli import app
from scoring.domain.simulate import SimulationResult
from scoring.domain.supervision import supervision_limits

from scoring_frames import enterprises

runner = CliRunner()


@pytest.fixture
def fake_limits(monkeypatch, policy):
    """current_limits without a database or a champion model: 40 general commerce enterprises and one high."""
    ids = [f"E{i:02d}" for i in range(40)] + ["HI"]
    tables = {"enterprises": enterprises(ids)}
    tiers = pd.DataFrame({"enterprise_id": ids, "final_tier": ["general"] * 40 + ["high"],
                          "probability": [i / 100 for i in range(40)] + [0.9]})
    seen = {}

    def current_limits(engine, as_of, policy_, *, tracking_uri=None):
        seen["as_of"] = as_of
        return supervision_limits(tiers, tables, as_of=as_of, policy=policy_.supervision)

    monkeypatch.setattr(scoring.results.tables, "current_limits", current_limits)
    return seen


def test_plan_json_records_the_seed_and_uses_the_capacity_file(fake_limits, tmp_path):
    capacity = tmp_path / "capacity.csv"
    capacity.write_text("department,visits\n应急,5\n", encoding="utf-8")
    args = ["plan", "--period", "2025-04", "--capacity", str(capacity), "--format", "json",
            "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["seed"] == 202504 and plan["period"] == "2025-04"  # default seed: the period
    assert str(fake_limits["as_of"]) == "2025-04-01"
    assert len(plan["items"]) == 5 and plan["items"][0]["enterprise_id"] == "HI"  # the floor first
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["items"] == plan["items"]  # same seed, same plan
    other = json.loads(runner.invoke(app, [*args, "--seed", "99"]).stdout)
    assert other["seed"] == 99


def test_plan_writes_csv_and_xlsx(fake_limits, tmp_path):
    out = tmp_path / "plan.csv"
    result = runner.invoke(app, ["plan", "--period", "2025-04", "--format", "csv", "--out", str(out),
                                 "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert {"enterprise_id", "departments", "window_start", "n_inspectors", "reason"} <= set(frame.columns)
    xlsx = tmp_path / "plan.xlsx"
    result = runner.invoke(app, ["plan", "--period", "2025-04", "--format", "xlsx", "--out", str(xlsx),
                                 "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 0, result.output
    assert set(pd.read_excel(xlsx, sheet_name=None)) == {"plan", "summary", "draws", "unmet"}


def test_plan_refuses_bad_options(fake_limits, tmp_path):
    result = runner.invoke(app, ["plan", "--period", "2025-04", "--format", "xlsx"])
    assert result.exit_code == 2 and "needs --out" in result.output
    result = runner.invoke(app, ["plan", "--period", "2025-04", "--format", "pdf"])
    assert result.exit_code == 2 and "expected one of table, csv, json, xlsx" in result.output


def test_simulate_prints_the_ratios_as_json(monkeypatch):
    monthly = pd.DataFrame({
        "arm": ["risk_based", "random", "equal_frequency"], "month": pd.Timestamp("2024-01-01"),
        "visits": [100, 100, 100], "hazards_found": [500, 250, 400], "major_hazards_found": [5, 2, 3],
        "accidents": [1, 2, 1], "deaths": [0, 1, 0]})
    calls = {}

    def fake_loop(policy, **kwargs):
        calls.update(kwargs)
        return SimulationResult(monthly=monthly, settings={"seed": kwargs["seed"]}, capacity=pd.DataFrame())

    monkeypatch.setattr(scoring.domain.simulate, "closed_loop", fake_loop)
    result = runner.invoke(app, ["simulate", "--months", "3", "--enterprises", "200", "--seed", "5",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (calls["months"], calls["enterprises"], calls["seed"]) == (3, 200, 5)
    assert report["policies"]["risk_based"]["hazards_per_visit"] == 5.0
    assert (report["ratio_vs_random"], report["ratio_vs_equal_frequency"]) == (2.0, 1.25)
    table = runner.invoke(app, ["simulate", "--months", "3"])
    assert table.exit_code == 0 and "2.0× random" in table.output
