"""Reading the contract back (features.store): directories without a database, and the quarantine table."""

from __future__ import annotations

import textwrap
from datetime import date

import pandas as pd
import pytest

from features.db import connect
from features.errors import MissingInputError
from features.importer import import_directory
from features.store import load_tables, quarantine_frame, read_directory
from features.validate import ISSUE_COLUMNS

TODAY = date(2025, 6, 30)


def write_files(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


@pytest.fixture
def small(tmp_path):
    return write_files(tmp_path / "small", {
        "enterprises.csv": """\
            enterprise_id,sector,employees,x_b,x_a
            E2,gas,5,x,1
            E1,hazchem,7,y,2.5
        """,
        "inspections.csv": """\
            inspection_id,enterprise_id,inspected_on
            I2,E1,2024-02-01
            I1,E9,2024-01-01
        """,
        "hazards.csv": "hazard_id,enterprise_id,found_on,level\n",
        "truth.csv": """\
            enterprise_id,month,accident_prob,hazard_rate,major_share,adverse_prob
            E1,2024-01-01,0.1,2,0.01,0.3
        """,
    })


def test_read_directory_returns_canonical_frames_sorted_by_key_and_the_refused_rows(small):
    tables, refused = read_directory(small, today=TODAY)

    assert set(tables) == {"enterprises", "inspections"}  # hazards.csv is empty: no hazard data
    enterprises = tables["enterprises"]
    assert enterprises.enterprise_id.tolist() == ["E1", "E2"]
    assert list(enterprises.columns[-2:]) == ["x_a", "x_b"]
    assert enterprises.x_a.tolist() == [2.5, 1.0] and enterprises.x_b.tolist() == ["y", "x"]
    assert enterprises.employees.dtype == "Int64"
    assert tables["inspections"].inspection_id.tolist() == ["I2"]
    assert list(refused.columns) == list(ISSUE_COLUMNS)
    assert refused[["line", "column_name", "value", "rule"]].values.tolist() == [
        [3, "enterprise_id", "E9", "dangling_reference"]]
    assert refused.reason.iloc[0] == "enterprise_id 'E9' is not in enterprises.csv"  # no database here


def test_read_directory_reads_truth_only_when_asked(small):
    tables, _ = read_directory(small, today=TODAY, tables=["enterprises", "truth"])

    assert set(tables) == {"enterprises", "truth"}
    assert tables["truth"].month.tolist() == [pd.Timestamp("2024-01-01")]


def test_read_directory_needs_the_required_files(tmp_path):
    directory = write_files(tmp_path / "d", {"inspections.csv": "inspection_id,enterprise_id,inspected_on\n"})
    with pytest.raises(MissingInputError, match=r"required file enterprises\.csv"):
        read_directory(directory, today=TODAY)
    with pytest.raises(MissingInputError, match=r"input directory .*nowhere does not exist"):
        read_directory(tmp_path / "nowhere", today=TODAY)


def test_empty_optional_tables_are_omitted_after_import_too(db_url, small):
    engine = connect(db_url)
    import_directory(engine, small, today=TODAY)

    tables = load_tables(engine, ["enterprises", "hazards", "truth"])

    assert set(tables) == {"enterprises", "truth"}
    assert len(quarantine_frame(engine)) == 1
    assert quarantine_frame(engine, "hazards").empty
    entry = quarantine_frame(engine, "inspections").iloc[0]
    assert (entry.line, entry.row_key, entry.rule) == (3, "I1", "dangling_reference")
    assert entry.raw == {"inspection_id": "I1", "enterprise_id": "E9", "inspected_on": "2024-01-01"}
    engine.dispose()
