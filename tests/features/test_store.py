"""Reading the contract back (features.store): directories without a database, and the quarantine table."""

from __future__ import annotations

import textwrap
from pathlib import Path
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest

from features.db import connect
from features.errors import MissingInputError
from features.importer import import_directory
from features import store
from features.contract import TABLE_BY_NAME
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


# ---------------------------------------------------------------------------------------------
# load_tables: the ADBC fast path gives exactly the frames of the SQLAlchemy fallback
# ---------------------------------------------------------------------------------------------

def _fallback_tables(engine, monkeypatch, tables=None):
    """load_tables through SQLAlchemy only (as without the ADBC drivers)."""
    with monkeypatch.context() as patch:
        patch.setattr(store, "_adbc_connect", lambda url: None)
        return load_tables(engine, tables)


def _assert_same_tables(fast, slow):
    assert list(fast) == list(slow)
    for name in slow:
        pd.testing.assert_frame_equal(fast[name], slow[name], check_exact=True, obj=name)


@pytest.fixture
def mixed(tmp_path):
    """Every column kind, with NULLs: Int64 and booleans with gaps, missing dates, text extras, numeric extras."""
    return write_files(tmp_path / "mixed", {
        "enterprises.csv": """\
            enterprise_id,name,sector,employees,founded_on,closed_on,major_hazard_source,dust_explosion,x_num,x_text,x_gap
            E3,丙,gas,,2001-03-04,,true,,1.5,a,
            E1,甲,hazchem,12,,2020-01-31,false,1,2,b,7
            E2,"Q, Ltd",gas,0,1999-12-31,,,0,,,
        """,
        "inspections.csv": """\
            inspection_id,enterprise_id,inspected_on,department,kind,n_inspectors,exam_takers,exam_passed,recorded_on
            I2,E1,2024-02-01,fire,routine,2,,,2024-02-03
            I1,E2,2024-01-01,,,,3,1,
        """,
        "hazards.csv": """\
            hazard_id,enterprise_id,inspection_id,found_on,level,category,rectify_by,rectified_on
            H2,E1,I2,2024-02-01,major,electrical,2024-03-01,
            H1,E2,,2024-01-01,general,,,2024-01-15
        """,
        "accidents.csv": """\
            accident_id,enterprise_id,occurred_on,grade,deaths,serious_injuries,direct_loss_yuan,road_traffic,concealed
            A1,E1,2024-05-05,general,1,,12345.67,false,
            A2,E3,2024-06-06,,,2,,,true
        """,
        "credit_records.csv": """\
            record_id,enterprise_id,kind,value,valid_from,valid_to
            C1,E1,blacklist,,2024-01-01,
            C2,E2,credit_grade,A1,2023-01-01,2024-12-31
        """,
        "truth.csv": """\
            enterprise_id,month,accident_prob,hazard_rate,major_share,adverse_prob,management,latent_hazards,suspended
            E1,2024-01-01,0.1,2,0.01,0.3,0.123456789012345,3,true
            E1,2023-12-01,0.2,1.5,0,0.25,,,
        """,
    })


def test_load_tables_fast_path_gives_the_fallback_frames(db_url, mixed, monkeypatch, caplog):
    engine = connect(db_url)
    import_directory(engine, mixed, today=TODAY)
    names = [*TABLE_BY_NAME, "truth"]
    with store._adbc_connection(engine) as adbc:
        assert adbc is not None  # the drivers are installed: this really compares the two paths

    fast, slow = load_tables(engine, names), _fallback_tables(engine, monkeypatch, names)

    assert "ADBC" not in caplog.text  # every table came through the fast path
    _assert_same_tables(fast, slow)
    assert set(fast) == {"enterprises", "inspections", "hazards", "accidents", "credit_records", "truth"}
    enterprises = fast["enterprises"]
    assert enterprises.enterprise_id.tolist() == ["E1", "E2", "E3"]
    assert enterprises.employees.dtype == "Int64" and enterprises.employees.isna().tolist() == [False, False, True]
    assert enterprises.major_hazard_source.dtype == "boolean"
    assert enterprises.major_hazard_source.tolist() == [False, pd.NA, True]
    assert enterprises.founded_on.dtype == "datetime64[ns]" and enterprises.founded_on.isna().tolist() == [True, False, False]
    assert enterprises.x_num.dtype == "float64" and enterprises.x_num.isna().tolist() == [False, True, False]
    assert enterprises.x_text.tolist()[::2] == ["b", "a"] and pd.isna(enterprises.x_text.iloc[1])
    assert enterprises.name.tolist() == ["甲", "Q, Ltd", "丙"]
    assert fast["accidents"].direct_loss_yuan.isna().tolist() == [False, True]
    assert fast["truth"].management.iloc[1] == 0.123456789012345
    assert fast["hazards"].recorded_on.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    engine.dispose()


def test_load_tables_fast_path_without_extras_and_with_a_long_null_prefix(db_url, tmp_path, monkeypatch, caplog):
    # The SQLite ADBC driver infers a column's type from its first batch: a text column NULL in the first
    # thousands of rows must still come back as text.
    n = 3000
    hazards = "hazard_id,enterprise_id,found_on,level,category,rectified_on\n" + "".join(
        f"H{i:05d},E1,2024-01-01,general,{'gas' if i == n - 1 else ''},{'2024-02-02' if i == n - 1 else ''}\n"
        for i in range(n))
    directory = write_files(tmp_path / "long", {
        "enterprises.csv": "enterprise_id,sector,employees\nE1,gas,\n",
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\n",
        "hazards.csv": hazards,
    })
    engine = connect(db_url)
    import_directory(engine, directory, today=TODAY)

    fast, slow = load_tables(engine), _fallback_tables(engine, monkeypatch)

    assert "ADBC" not in caplog.text
    _assert_same_tables(fast, slow)
    category = fast["hazards"].category
    assert category.dtype == "str" and category.isna().sum() == n - 1 and category.iloc[-1] == "gas"
    assert fast["hazards"].rectified_on.iloc[-1] == pd.Timestamp("2024-02-02")
    assert list(fast["enterprises"].columns) == list(slow["enterprises"].columns)  # no x_* columns
    assert fast["inspections"].empty and fast["inspections"].inspected_on.dtype == "datetime64[ns]"
    engine.dispose()


def test_load_tables_falls_back_when_the_adbc_driver_fails(tmp_path, small, monkeypatch, caplog):
    engine = connect(f"sqlite:///{tmp_path / 'f.db'}")
    import_directory(engine, small, today=TODAY)
    expected = load_tables(engine)

    def no_driver(url):
        raise OSError("no driver")

    def bad_arrow(table, arrow):
        raise pa.ArrowInvalid("cannot parse")

    with monkeypatch.context() as patch:
        patch.setattr(store, "_typed_arrow", bad_arrow)
        _assert_same_tables(load_tables(engine), expected)
    assert "ADBC read of enterprises failed" in caplog.text
    monkeypatch.setattr(store, "_adbc_connect", no_driver)
    _assert_same_tables(load_tables(engine), expected)
    assert "ADBC connection" in caplog.text
    engine.dispose()


def test_adbc_is_used_only_for_file_sqlite_and_postgresql():
    import sqlalchemy as sa

    assert store._adbc_connect(sa.make_url("sqlite://")) is None
    assert store._adbc_connect(sa.make_url("sqlite:///:memory:")) is None
    assert store._adbc_connect(sa.make_url("mysql://u@h/db")) is None


def test_features_from_the_database_equal_features_from_the_files(db_url):
    """The database's enterprise keys (the build's fast path) give exactly the features of the files' ids."""
    from features import build_features
    from features.build import active_rows

    sample = Path(__file__).resolve().parents[2] / "data_samples" / "sample"
    today = date(2026, 1, 1)
    engine = connect(db_url)
    import_directory(engine, sample, today=today)
    stored = load_tables(engine)
    engine.dispose()
    files, _refused = read_directory(sample, today=today)
    as_of = [pd.Timestamp("2025-01-01"), pd.Timestamp("2025-07-01")]

    rows = active_rows(stored["enterprises"], as_of)
    assert rows.code_of_key is not None and rows.keys_in_id_order  # a first import numbers them in id order
    pd.testing.assert_frame_equal(build_features(stored, as_of), build_features(files, as_of))
