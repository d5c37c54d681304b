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


def test_quarantine_lists_what_the_import_refused(world, tmp_path):
    import csv
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(world, bad)
    with open(bad / "inspections.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][rows[0].index("inspected_on")] = "2023-13-01"  # line 2 of the file
    with open(bad / "inspections.csv", "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    db = f"sqlite:///{tmp_path / 'q.db'}"
    assert runner.invoke(app, ["import", str(bad), "--db", db, "--today", "2025-01-02"]).exit_code == 0

    listed = runner.invoke(app, ["quarantine", "--db", db, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    entries = json.loads(listed.stdout)
    assert [(e["table_name"], e["source_file"], e["line"], e["column_name"], e["value"]) for e in entries] == [
        ("inspections", "inspections.csv", 2, "inspected_on", "2023-13-01")
    ]
    assert "expected a date like" in entries[0]["reason"]
    assert entries[0]["raw"]["inspected_on"] == "2023-13-01"  # the whole row is kept

    hazards_only = runner.invoke(app, ["quarantine", "--db", db, "--table", "hazards", "--format", "csv"])
    assert hazards_only.exit_code == 0
    assert hazards_only.stdout.splitlines()[1:] == []  # header only: nothing refused from hazards

    unknown = runner.invoke(app, ["quarantine", "--db", db, "--table", "hazard"])
    assert unknown.exit_code == 2
    assert "expected one of enterprises" in unknown.output
