"""The data commands end to end through the CLI: samples → import → features, and their failure paths."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from scoring.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    result = runner.invoke(app, ["samples", "--out", str(out), "--enterprises", "120", "--years", "2",
                                 "--seed", "5", "--start", "2023-01-01"])
    assert result.exit_code == 0, result.output
    return out


def test_samples_writes_every_contract_table_and_prints_the_realism_figures(world):
    for table in ("enterprises", "inspections", "hazards", "credit_records", "truth"):
        assert (world / f"{table}.csv").is_file(), table
    enterprises = pd.read_csv(world / "enterprises.csv")
    assert len(enterprises) == 120


def test_import_then_features_as_of_two_dates(world, tmp_path):
    db = f"sqlite:///{tmp_path / 'riskgrade.db'}"
    imported = runner.invoke(app, ["import", str(world), "--db", db, "--today", "2025-01-02"])
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "features.parquet"
    built = runner.invoke(app, ["features", "--as-of", "2024-06-01", "--as-of", "2025-01-01", "--out", str(out),
                                "--db", db])
    assert built.exit_code == 0, built.output
    matrix = pd.read_parquet(out)
    assert set(matrix.index.get_level_values("as_of").astype(str)) == {"2024-06-01", "2025-01-01"}
    assert {"major_hazards_365d", "days_since_last_inspection", "sector"} <= set(matrix.columns)
    assert "rows ×" in built.output


def test_features_refuses_an_unknown_output_format(tmp_path):
    result = runner.invoke(app, ["features", "--as-of", "2025-01-01", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "expected a .parquet or .csv file" in result.output


def test_features_refuses_a_bad_date(tmp_path):
    result = runner.invoke(app, ["features", "--as-of", "2025-13-01", "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert "expected a date like 2025-03-25, got '2025-13-01'" in result.output


def test_import_of_a_directory_without_enterprises_exits_3_naming_the_file(tmp_path):
    (tmp_path / "inspections.csv").write_text("inspection_id,enterprise_id,inspected_on\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "scoring.cli", "import", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert "enterprises" in result.stderr
