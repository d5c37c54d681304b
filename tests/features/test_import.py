"""Validated, idempotent import (features.importer) — on SQLite, and on PostgreSQL when configured.

Every CSV here is written by hand; the expected quarantine entries are worked out line by line
(header = line 1).
"""

from __future__ import annotations

import textwrap
from datetime import date, datetime

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract import ENTERPRISE_KEY, INSPECTOR_TABLES, TABLES
from features.errors import DataError, MissingInputError
from features.frames import canonical_dtype
from features.importer import ImportSummary, import_directory
from features.schema import CONTRACT_TABLES, create_schema, quarantine, truth
from features.store import load_tables, quarantine_frame, read_directory
from features.validate import TableValidator, ValidationContext, check_header

TODAY = date(2025, 6, 30)

ENTERPRISES = """\
    enterprise_id,name,uscc,sector,township,employees,founded_on,closed_on,major_hazard_source,x_size,x_note
    E1,甲化工,91350100M000100Y43,hazchem,城关镇,120,2005-03-01,,是,3.5,老厂
    E2,乙煤矿,,coal_mine,河西镇,800,1998-07-15,,no,12,
    E3,丙,91350100M000100Y44,hazchem,,10,2001-01-01,,0,,
    E4,丁,,spaceport,,10,2001-01-01,,0,,
    E5,戊,,machinery,,-4,2001-01-01,,0,,
    E6,己,,machinery,,10,2001-02-30,,0,,
    E7,庚,,machinery,,10,2010-01-01,2009-12-31,0,,
    E8,辛,,machinery,,10,2010-01-01,,maybe,,
    E9,壬,,,,10,2010-01-01,,0,,
    E1,甲化工,91350100M000100Y43,hazchem,城关镇,120,2005-03-01,,是,3.5,老厂
    E2,乙煤矿(改),,coal_mine,河西镇,800,1998-07-15,,no,12,
    E10,癸,,commerce,,ten,2010-01-01,,1,,
"""

INSPECTIONS = """\
    inspection_id,enterprise_id,inspected_on,department,kind,n_inspectors,exam_takers,exam_passed,recorded_on
    I1,E1,2024-03-25,应急,routine,2,5,4,2024-03-26
    I2,E2,2024-04-01,应急,random,2,,,
    I3,E404,2024-04-02,应急,routine,2,,,
    I4,E1,2025-13-01,应急,routine,2,,,
    I5,E1,2025-07-01,应急,routine,2,,,
    I6,E1,2024-05-01,应急,routine,2,,,2024-04-30
    I7,E1,2024-05-02,应急,routine,2,3,4,
    I8,E1,2024-05-03,应急,inspection,2,,,
    I9,E3,2024-05-04,应急,routine,2,,,
"""

ACCIDENTS = """\
    accident_id,enterprise_id,occurred_on,grade,deaths,serious_injuries,direct_loss_yuan,road_traffic,concealed
    A1,E1,2024-06-01,,0,1,50000,0,0
    A2,E2,2024-06-02,general,3,0,0,0,0
    A3,E2,2024-06-03,general,,12,,0,0
    A4,E2,2024-06-04,major,,12,,0,0
    A5,E2,2024-06-05,,4,,,,
"""

HAZARDS = """\
    hazard_id,enterprise_id,inspection_id,found_on,level,category,rectify_by,rectified_on,recorded_on
    H1,E1,I1,2024-03-25,major,电气,2024-04-25,2024-04-20,
    H2,E1,I1,2024-03-25,general,电气,2024-03-01,,
    H3,E1,I1,2024-03-25,general,电气,,2024-03-24,
    H4,E1,,2024-03-25,,电气,,,
"""

CREDIT_RECORDS = """\
    record_id,enterprise_id,kind,value,valid_from,valid_to
    C1,E1,standardization,2,2023-01-01,2026-01-01
    C2,E1,standardization,4,2023-01-01,
    C3,E2,credit_grade,b2,2023-01-01,
    C4,E2,credit_grade,E,2023-01-01,
    C5,E2,blacklist,,2024-01-01,2023-01-01
"""

PENALTIES = """\
    penalty_id,enterprise_id,decided_on,amount_yuan,person_penalized,suspension
    P1,E1,2024-02-01,30000,是,否
    P2,E1,2024-02-01,-5,否,否
    P3,E1,2024-02-01,3万,否,否
"""

COMPLAINTS = """\
    complaint_id,enterprise_id,received_on,substantiated
    Q1,E2,2024-08-08,yes
"""

ALL_FILES = {
    "enterprises.csv": ENTERPRISES,
    "inspections.csv": INSPECTIONS,
    "accidents.csv": ACCIDENTS,
    "hazards.csv": HAZARDS,
    "credit_records.csv": CREDIT_RECORDS,
    "penalties.csv": PENALTIES,
    "complaints.csv": COMPLAINTS,
}

# (table, line, column, value, rule, a fragment of the reason) — worked out by hand from the files above.
# A bad optional value (uscc, employees, founded_on, closed_on, a flag, kind, exam_passed, amount_yuan) holds
# back that cell only: its row loads without it (HELD below); keys, required values and event dates refuse the row.
EXPECTED_QUARANTINE = {
    ("enterprises", 4, "uscc", "91350100M000100Y44", "uscc", "expected '3' at the end, got '4'"),
    ("enterprises", 5, "sector", "spaceport", "not_a_choice", "'spaceport' is not an allowed sector"),
    ("enterprises", 6, "employees", "-4", "below_minimum", "must not be negative, got -4"),
    ("enterprises", 7, "founded_on", "2001-02-30", "bad_date", "expected a date like 2025-03-25 (or 2025/3/25"),
    ("enterprises", 8, "closed_on", "2009-12-31", "closed_after_founded",
     "closed_on 2009-12-31 is before founded_on 2010-01-01"),
    ("enterprises", 9, "major_hazard_source", "maybe", "bad_bool", "got 'maybe'"),
    ("enterprises", 10, "sector", None, "missing", "a value is required in column sector"),
    ("enterprises", 12, "enterprise_id", "E2", "duplicate_key", "line 3 has the same key with different values"),
    ("enterprises", 13, "employees", "ten", "bad_number", "expected a number, got 'ten'"),
    ("inspections", 4, "enterprise_id", "E404", "dangling_reference",
     "'E404' is neither in enterprises.csv nor in the database"),
    ("inspections", 5, "inspected_on", "2025-13-01", "bad_date", "2025年3月25日, an Excel serial), got '2025-13-01'"),
    ("inspections", 6, "inspected_on", "2025-07-01", "future_date", "2025-07-01 is after today (2025-06-30)"),
    ("inspections", 7, "recorded_on", "2024-04-30", "recorded_before_event",
     "recorded_on 2024-04-30 is earlier than the event date inspected_on 2024-05-01"),
    ("inspections", 8, "exam_passed", "4", "exam_passed_le_takers", "exam_passed 4 is more than exam_takers 3"),
    ("inspections", 9, "kind", "inspection", "not_a_choice", "'inspection' is not an allowed kind"),
    ("accidents", 3, "grade", "general", "accident_grade",
     "inconsistent with deaths=3, serious_injuries=0, direct_loss_yuan=0: Decree 493 gives 'larger'"),
    ("accidents", 4, "grade", "general", "accident_grade", "serious_injuries=12, direct_loss_yuan=?: "
                                                           "Decree 493 gives at least 'larger'"),
    ("hazards", 3, "rectify_by", "2024-03-01", "deadline_after_found", "rectify_by 2024-03-01 is before found_on"),
    ("hazards", 4, "rectified_on", "2024-03-24", "rectified_after_found", "rectified_on 2024-03-24 is before"),
    ("hazards", 5, "level", None, "missing", "a value is required in column level"),
    ("credit_records", 3, "value", "4", "credit_value", "a standardization record needs a value among 1, 2, 3"),
    ("credit_records", 5, "value", "E", "credit_value", "a credit_grade record needs a value among A1"),
    ("credit_records", 6, "valid_to", "2023-01-01", "valid_to_after_from", "valid_to 2023-01-01 is before"),
    ("penalties", 3, "amount_yuan", "-5", "below_minimum", "must not be negative, got -5"),
    ("penalties", 4, "amount_yuan", "3万", "bad_number", "expected a number, got '3万'"),
}

HELD = {("enterprises", 4), ("enterprises", 6), ("enterprises", 7), ("enterprises", 8), ("enterprises", 9),
        ("enterprises", 13), ("inspections", 8), ("inspections", 9), ("penalties", 3), ("penalties", 4)}

LOADED = {"enterprises": {"E1", "E2", "E3", "E5", "E6", "E7", "E8", "E10"},
          "inspections": {"I1", "I2", "I7", "I8", "I9"}, "accidents": {"A1", "A4", "A5"},
          "hazards": {"H1"}, "credit_records": {"C1", "C3"}, "penalties": {"P1", "P2", "P3"}, "complaints": {"Q1"},
          "violations": set(), **{name: set() for name in INSPECTOR_TABLES}}


def write_files(directory, files: dict[str, str]):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def row_counts(engine) -> dict[str, int]:
    tables = {**CONTRACT_TABLES, "truth": truth, "quarantine": quarantine}
    with engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for name, t in tables.items()}


def stored_keys(engine) -> dict[str, set[str]]:
    out = {}
    with engine.connect() as conn:
        for spec in TABLES:
            table = CONTRACT_TABLES[spec.name]
            out[spec.name] = set(conn.execute(sa.select(table.c[spec.key])).scalars())
    return out


def quarantine_set(frame: pd.DataFrame) -> set[tuple]:
    return {(r.table_name, r.line, r.column_name, None if pd.isna(r.value) else r.value, r.rule)
            for r in frame.itertuples()}


@pytest.fixture
def world(tmp_path):
    return write_files(tmp_path / "world", ALL_FILES)


# ---------------------------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------------------------


def test_each_kind_of_bad_row_lands_in_quarantine_with_line_column_value_and_reason(engine, world):
    import_directory(engine, world, today=TODAY)

    found = quarantine_frame(engine)
    assert quarantine_set(found) == {entry[:5] for entry in EXPECTED_QUARANTINE}
    for table, line, column, _value, _rule, fragment in EXPECTED_QUARANTINE:
        entry = found[(found.table_name == table) & (found.line == line) & (found.column_name == column)]
        assert fragment in entry.reason.iloc[0], (table, line, entry.reason.iloc[0])
        assert entry.source_file.iloc[0] == f"{table}.csv"
        held = entry.reason.iloc[0].endswith("; the row was loaded without this value")
        assert held == ((table, line) in HELD), (table, line, entry.reason.iloc[0])
    # The whole raw row is kept, and the row's key so that a corrected twin can replace it.
    bad_date = found[(found.table_name == "inspections") & (found.line == 5)].iloc[0]
    assert bad_date.row_key == "I4"
    assert bad_date.raw == {"inspection_id": "I4", "enterprise_id": "E1", "inspected_on": "2025-13-01",
                            "department": "应急", "kind": "routine", "n_inspectors": "2", "exam_takers": "",
                            "exam_passed": "", "recorded_on": ""}


def test_good_rows_load_beside_the_bad_ones(engine, world):
    summary = import_directory(engine, world, today=TODAY)

    assert stored_keys(engine) == LOADED
    tables = load_tables(engine)
    accidents = tables["accidents"].set_index("accident_id")
    assert accidents.grade.to_dict() == {"A1": "general", "A4": "major", "A5": "larger"}  # A1, A5 derived
    assert tables["credit_records"].set_index("record_id").value.to_dict() == {"C1": "2", "C3": "B2"}
    enterprises = tables["enterprises"].set_index("enterprise_id")
    assert enterprises.loc["E2", "name"] == "乙煤矿"  # the first copy of a duplicated key wins
    assert enterprises.major_hazard_source.loc[["E1", "E2"]].tolist() == [True, False]
    # Held cells: the enterprise loads, without the bad value (and keeps the good ones).
    assert pd.isna(enterprises.loc["E3", "uscc"]) and enterprises.loc["E3", "employees"] == 10
    assert pd.isna(enterprises.loc["E5", "employees"]) and pd.isna(enterprises.loc["E6", "founded_on"])
    assert pd.isna(enterprises.loc["E7", "closed_on"]) and enterprises.loc["E7", "founded_on"] == pd.Timestamp(
        "2010-01-01")
    assert pd.isna(enterprises.loc["E8", "major_hazard_source"]) and pd.isna(enterprises.loc["E10", "employees"])

    ent = summary["enterprises"]
    assert (ent.rows_read, ent.loaded, ent.quarantined, ent.identical_duplicates, ent.held_cells) == (12, 8, 3, 1, 6)
    assert ent.reasons == {"uscc": 1, "not_a_choice": 1, "below_minimum": 1, "bad_date": 1, "bad_bool": 1,
                           "closed_after_founded": 1, "missing": 1, "duplicate_key": 1, "bad_number": 1}
    table = summary.to_table().set_index("table")
    assert table.loc["inspections", ["read", "loaded", "quarantined", "cells held"]].tolist() == [9, 5, 4, 2]
    assert "dangling_reference 1" in table.loc["inspections", "reasons"]
    for item in summary.tables:  # nothing valid lost: every row read is loaded, refused or an identical copy
        assert item.rows_read == item.loaded + item.quarantined + item.identical_duplicates, item.table
    # one problem per bad row in these files
    assert summary.quarantined + sum(t.held_cells for t in summary.tables) == len(EXPECTED_QUARANTINE)


def test_a_row_with_several_problems_reports_each(engine, tmp_path):
    directory = write_files(tmp_path / "d", {
        "enterprises.csv": """\
            enterprise_id,sector,employees,founded_on
            E1,mine,-1,01/02/2003
        """,
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\n",
    })
    summary = import_directory(engine, directory, today=TODAY)

    found = quarantine_frame(engine)
    assert sorted(found.rule) == ["bad_date", "below_minimum", "not_a_choice"]
    assert set(found.line) == {2} and set(found.row_key) == {"E1"}
    assert summary["enterprises"].quarantined == 1


# ---------------------------------------------------------------------------------------------
# Missing inputs stop the import before anything is written
# ---------------------------------------------------------------------------------------------


def test_missing_required_file_raises_and_writes_nothing(engine, tmp_path):
    directory = write_files(tmp_path / "d", {"enterprises.csv": ENTERPRISES, "hazards.csv": HAZARDS})

    with pytest.raises(MissingInputError,
                       match=r"required file inspections\.csv \(or inspections\.xlsx, or named 检查记录\.csv"):
        import_directory(engine, directory, today=TODAY)
    assert set(row_counts(engine).values()) == {0}


@pytest.mark.parametrize(
    ("file", "column", "zh"),
    [("inspections.csv", "inspected_on", "检查日期"), ("hazards.csv", "level", "隐患等级"),
     ("enterprises.csv", "sector", "所属行业")],
)
def test_missing_required_column_raises_naming_file_and_column_and_writes_nothing(engine, world, file, column, zh):
    path = world / file
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.drop(columns=[column]).to_csv(path, index=False)

    with pytest.raises(MissingInputError, match=rf"{file}: required column '{column}' \({zh}\) is missing"):
        import_directory(engine, world, today=TODAY)
    assert set(row_counts(engine).values()) == {0}


def test_an_unreadable_file_rolls_the_whole_import_back(engine, world):
    with (world / "hazards.csv").open("a", encoding="utf-8") as handle:
        handle.write('H9,E1,I1,2024-03-25,general,"电气,,,\n')  # the quote is never closed

    with pytest.raises(DataError, match=r"hazards\.csv line 6 cannot be parsed as CSV \(.*EOF inside string starting at line 6"):
        import_directory(engine, world, today=TODAY)
    assert set(row_counts(engine).values()) == {0}  # enterprises and inspections were loaded, then rolled back


# ---------------------------------------------------------------------------------------------
# Idempotency and upserts
# ---------------------------------------------------------------------------------------------


def test_reimporting_the_same_files_changes_nothing(engine, world):
    first = import_directory(engine, world, today=TODAY)
    counts, tables = row_counts(engine), load_tables(engine)
    entries = quarantine_set(quarantine_frame(engine))

    second = import_directory(engine, world, today=TODAY)

    assert row_counts(engine) == counts
    assert quarantine_set(quarantine_frame(engine)) == entries
    again = load_tables(engine)
    assert again.keys() == tables.keys()
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(again[name], frame)
    assert second.to_table().equals(first.to_table())


def test_keyless_bad_rows_are_not_duplicated_by_a_reimport(engine, tmp_path):
    directory = write_files(tmp_path / "d", {
        "enterprises.csv": "enterprise_id,sector\nE1,gas\n,gas\n",
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\n",
    })
    import_directory(engine, directory, today=TODAY)
    import_directory(engine, directory, today=TODAY)

    found = quarantine_frame(engine)
    assert len(found) == 1
    assert (found.line.iloc[0], found.column_name.iloc[0], found.row_key.iloc[0]) == (3, "enterprise_id", None)


def test_a_corrected_row_replaces_its_quarantined_twin(engine, world, tmp_path):
    import_directory(engine, world, today=TODAY)
    assert "I4" in set(quarantine_frame(engine).row_key)

    fixed = write_files(tmp_path / "fixed", {
        "enterprises.csv": "enterprise_id,sector\n",  # nothing new; E1 is already in the database
        "inspections.csv": """\
            inspection_id,enterprise_id,inspected_on,kind
            I4,E1,2025-01-13,routine
        """,
    })
    summary = import_directory(engine, fixed, today=TODAY)

    assert summary["inspections"].loaded == 1
    remaining = quarantine_frame(engine, "inspections")
    assert "I4" not in set(remaining.row_key)
    assert len(remaining) == 5  # the other bad inspections (and held cells) stay quarantined
    assert "I4" in stored_keys(engine)["inspections"]


def test_a_row_still_wrong_after_correction_keeps_one_entry_with_the_new_reason(engine, world, tmp_path):
    import_directory(engine, world, today=TODAY)
    again = write_files(tmp_path / "again", {
        "enterprises.csv": "enterprise_id,sector\n",
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\nI4,E1,2025-12-01\n",
    })
    import_directory(engine, again, today=TODAY)

    entries = quarantine_frame(engine, "inspections")
    twin = entries[entries.row_key == "I4"]
    assert twin[["line", "rule", "value"]].values.tolist() == [[2, "future_date", "2025-12-01"]]


def test_upsert_updates_a_modified_row_and_leaves_absent_columns_alone(engine, world, tmp_path):
    import_directory(engine, world, today=TODAY)
    changed = write_files(tmp_path / "changed", {
        "enterprises.csv": """\
            enterprise_id,sector,employees,x_size
            E1,hazchem,150,4
        """,
        "inspections.csv": """\
            inspection_id,enterprise_id,inspected_on,kind
            I1,E1,2024-03-25,focused
        """,
    })
    import_directory(engine, changed, today=TODAY)

    tables = load_tables(engine)
    e1 = tables["enterprises"].set_index("enterprise_id").loc["E1"]
    assert (e1.employees, e1.township, e1.x_size) == (150, "城关镇", 4.0)  # township: not in the file, kept
    assert pd.isna(e1.x_note)  # the extras travel together: the new file has no x_note
    i1 = tables["inspections"].set_index("inspection_id").loc["I1"]
    assert (i1.kind, i1.exam_takers) == ("focused", 5)
    assert len(tables["enterprises"]) == len(LOADED["enterprises"])
    assert len(tables["inspections"]) == len(LOADED["inspections"])


# ---------------------------------------------------------------------------------------------
# Other inputs
# ---------------------------------------------------------------------------------------------


def test_xlsx_files_import_with_sheet_rows_as_line_numbers(engine, tmp_path):
    directory = tmp_path / "xlsx"
    directory.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["enterprise_id", "sector", "employees", "founded_on", "major_hazard_source", "x_score"])
    sheet.append(["E1", "gas", 12, datetime(2010, 5, 6), True, 0.5])
    sheet.append([101, "hazchem", 3.0, "2011-01-02", "否", "n/a"])
    book.save(directory / "enterprises.xlsx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["inspection_id", "enterprise_id", "inspected_on"])
    sheet.append(["I1", "E1", date(2024, 2, 3)])
    sheet.append([])
    sheet.append(["I2", "101", "2024/02/30"])
    book.save(directory / "inspections.xlsx")

    summary = import_directory(engine, directory, today=TODAY)

    tables = load_tables(engine)
    enterprises = tables["enterprises"].set_index("enterprise_id")
    assert enterprises.employees.to_dict() == {"101": 3, "E1": 12}
    assert enterprises.loc["E1", "founded_on"] == pd.Timestamp("2010-05-06")
    assert enterprises.major_hazard_source.tolist() == [False, True]
    assert enterprises.x_score.tolist() == ["n/a", "0.5"]  # not all numbers: stays text
    assert tables["inspections"].inspection_id.tolist() == ["I1"]
    found = quarantine_frame(engine)
    assert found[["source_file", "line", "column_name", "value"]].values.tolist() == [
        ["inspections.xlsx", 4, "inspected_on", "2024/02/30"]]
    assert summary["inspections"].rows_read == 2  # the empty sheet row is skipped


def test_truth_csv_is_stored_in_the_truth_table(engine, world):
    (world / "truth.csv").write_text(
        "enterprise_id,month,accident_prob,hazard_rate,major_share,adverse_prob\n"
        "E1,2024-01-01,0.01,3.5,0.02,0.2\n"
        "E1,2024-02-01,0.02,3.0,0.02,0.25\n"
        "E2,2024-01-01,0.05,1.0,0.01,0.1\n"
        "E1,2024-01-01,0.01,3.5,0.02,0.2\n",  # identical duplicate of (E1, 2024-01-01): harmless
        encoding="utf-8",
    )
    summary = import_directory(engine, world, today=TODAY)

    assert row_counts(engine)["truth"] == 3
    assert summary["truth"].identical_duplicates == 1
    assert "truth" not in load_tables(engine)
    stored = load_tables(engine, ["truth"])["truth"]
    assert stored.month.tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"),
                                     pd.Timestamp("2024-01-01")]
    assert stored.adverse_prob.tolist() == [0.2, 0.25, 0.1]


def test_uscc_allowlist_lets_a_failing_code_through(engine, world):
    import_directory(engine, world, today=TODAY, uscc_allowlist=frozenset({"91350100m000100y44"}))

    assert "E3" in stored_keys(engine)["enterprises"]
    assert "uscc" not in set(quarantine_frame(engine).rule)
    assert "I9" in stored_keys(engine)["inspections"]  # E3's inspection now has its enterprise


def test_unknown_columns_are_ignored_with_a_warning(engine, tmp_path):
    directory = write_files(tmp_path / "d", {
        "enterprises.csv": "enterprise_id,sector,x_flag,remarks\nE1,gas,yes,hello\n",
        "inspections.csv": "inspection_id,enterprise_id,inspected_on,x_weather\nI1,E1,2024-01-01,rain\n",
    })
    summary = import_directory(engine, directory, today=TODAY)

    assert summary.warnings == (
        "enterprises.csv: column 'remarks' is not part of the contract and was ignored",
        "inspections.csv: column 'x_weather' is not part of the contract and was ignored",
    )
    assert summary.to_table()["ignored columns"].tolist() == ["remarks", "x_weather"]
    tables = load_tables(engine)
    assert tables["enterprises"].x_flag.tolist() == ["yes"]
    assert "x_weather" not in tables["inspections"].columns


# ---------------------------------------------------------------------------------------------
# Chunks and progress
# ---------------------------------------------------------------------------------------------


def test_small_chunks_give_the_same_result_and_catch_duplicates_across_chunks(engine, world):
    calls = []
    summary = import_directory(engine, world, today=TODAY, chunk_rows=2,
                               progress=lambda *args: calls.append(args))

    assert stored_keys(engine) == LOADED
    assert quarantine_set(quarantine_frame(engine)) == {entry[:5] for entry in EXPECTED_QUARANTINE}
    assert summary["enterprises"].identical_duplicates == 1
    enterprise_calls = [c for c in calls if c[0] == "enterprises"]
    assert enterprise_calls[0] == ("enterprises", 0, 12)
    assert [c[1] for c in enterprise_calls] == [0, 2, 4, 6, 8, 10, 12, 12]
    assert enterprise_calls[-1] == ("enterprises", 12, 12)


def test_summary_table_is_printable():
    summary = ImportSummary(())
    assert list(summary.to_table().columns) == [
        "table", "file", "read", "loaded", "quarantined", "identical dups", "cells held", "reasons",
        "ignored columns"]


# ---------------------------------------------------------------------------------------------
# Reading back
# ---------------------------------------------------------------------------------------------


def test_load_tables_round_trips_canonical_dtypes_and_extras(engine, world):
    import_directory(engine, world, today=TODAY)

    tables = load_tables(engine)

    assert set(tables) == {"enterprises", "inspections", "hazards", "accidents", "penalties", "credit_records",
                           "complaints"}  # violations: no file, so absent (not empty)
    for name, frame in tables.items():
        spec = next(s for s in TABLES if s.name == name)
        for column in spec.columns:
            assert str(frame[column.name].dtype) == str(pd.Series(dtype=canonical_dtype(column.kind)).dtype), \
                (name, column.name)
    enterprises = tables["enterprises"]
    assert list(enterprises.columns[-3:]) == ["x_note", "x_size", "enterprise_key"]
    by_id = enterprises.set_index("enterprise_id")
    assert enterprises.x_size.dtype == "float64" and by_id.x_size[["E1", "E2"]].tolist() == [3.5, 12.0]
    assert by_id.x_note["E1"] == "老厂" and pd.isna(by_id.x_note["E2"])
    inspections = tables["inspections"].set_index("inspection_id")
    assert inspections.recorded_on[["I1", "I2"]].to_dict() == {  # empty recorded_on = the event date
        "I1": pd.Timestamp("2024-03-26"), "I2": pd.Timestamp("2024-04-01")}
    assert inspections.exam_takers[["I1", "I2"]].isna().tolist() == [False, True]


def assert_keys_match_ids(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Every event row carries its enterprise's key; keys are distinct int32. Returns the key by id."""
    enterprises = tables["enterprises"]
    assert enterprises[ENTERPRISE_KEY].dtype == "int32" and enterprises[ENTERPRISE_KEY].is_unique
    key_of = dict(zip(enterprises["enterprise_id"], enterprises[ENTERPRISE_KEY]))
    for name, frame in tables.items():
        assert frame[ENTERPRISE_KEY].dtype == "int32", name
        assert frame[ENTERPRISE_KEY].tolist() == frame["enterprise_id"].map(key_of).tolist(), name
    return key_of


def test_enterprise_keys_stay_with_their_enterprise_across_imports(engine, world, tmp_path):
    import_directory(engine, world, today=TODAY)
    before = assert_keys_match_ids(load_tables(engine))

    more = write_files(tmp_path / "more", {
        "enterprises.csv": "enterprise_id,sector\nE0,gas\nE9,gas\n",  # sort before and after the others
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\nI90,E0,2025-01-02\nI91,E9,2025-01-03\n",
    })
    import_directory(engine, more, today=TODAY)
    import_directory(engine, world, today=TODAY)

    after = assert_keys_match_ids(load_tables(engine))
    assert {i: after[i] for i in before} == before  # kept, whatever was imported since
    assert {after["E0"], after["E9"]} == {max(before.values()) + 1, max(before.values()) + 2}


def test_enterprises_stored_without_a_key_get_one_at_the_next_import(engine, world, tmp_path):
    import_directory(engine, world, today=TODAY)
    with engine.begin() as conn:  # written by some other tool than the import
        conn.execute(sa.text("INSERT INTO enterprises (enterprise_id, sector) VALUES ('E77', 'gas')"))
    events = write_files(tmp_path / "events", {
        "enterprises.csv": "enterprise_id,sector\n",
        "inspections.csv": "inspection_id,enterprise_id,inspected_on\nI70,E77,2025-01-02\n",
    })

    import_directory(engine, events, today=TODAY)

    key_of = assert_keys_match_ids(load_tables(engine))
    assert key_of["E77"] == max(key_of.values())


def test_a_database_made_before_enterprise_keys_gets_them(engine, world):
    import_directory(engine, world, today=TODAY)
    expected = load_tables(engine)
    with engine.begin() as conn:  # the schema of an earlier version: no key column, no key index
        conn.execute(sa.text("DROP INDEX ux_enterprises_enterprise_key"))
        for name, table in CONTRACT_TABLES.items():
            if ENTERPRISE_KEY in table.c:  # the roster and the links have none
                conn.execute(sa.text(f"ALTER TABLE {name} DROP COLUMN {ENTERPRISE_KEY}"))
    unkeyed = load_tables(engine)
    assert all(ENTERPRISE_KEY not in frame.columns for frame in unkeyed.values())
    pd.testing.assert_frame_equal(unkeyed["hazards"], expected["hazards"].drop(columns=ENTERPRISE_KEY))

    create_schema(engine)
    create_schema(engine)  # idempotent

    upgraded = load_tables(engine)
    assert_keys_match_ids(upgraded)
    assert sorted(upgraded["enterprises"][ENTERPRISE_KEY]) == list(range(1, len(upgraded["enterprises"]) + 1))


def test_postgresql_reads_partitions_through_key_range_indexes_and_older_databases_get_them(engine, world):
    """A partition's read (``WHERE enterprise_key`` in a range) must not scan the whole table on the Dask
    nightly's database; SQLite (one machine) does without the extra indexes."""
    import_directory(engine, world, today=TODAY)
    wanted = {f"ix_{name}_{ENTERPRISE_KEY}": name for name, table in CONTRACT_TABLES.items()
              if ENTERPRISE_KEY in table.c and name != "enterprises"}

    def present() -> set[str]:
        inspector = sa.inspect(engine)
        return {index["name"] for name in set(wanted.values()) for index in inspector.get_indexes(name)} & set(wanted)

    if engine.dialect.name != "postgresql":
        assert present() == set()
        return
    assert present() == set(wanted)  # made with the tables, kept through the first import's bulk load
    with engine.begin() as conn:  # the schema of an earlier version
        for index in wanted:
            conn.execute(sa.text(f"DROP INDEX {index}"))
    assert present() == set()

    create_schema(engine)

    assert present() == set(wanted)
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: ask whether the index serves it
        plan = "\n".join(conn.execute(sa.text(
            f"EXPLAIN SELECT * FROM hazards WHERE {ENTERPRISE_KEY} >= 1 AND {ENTERPRISE_KEY} < 3")).scalars())
    assert f"ix_hazards_{ENTERPRISE_KEY}" in plan


def test_postgresql_has_planner_statistics_of_what_an_import_wrote(engine, world):
    """Without them the nightly right after an import plans its reads blind (a bulk-loaded table has none until
    autovacuum comes round)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans without ANALYZE statistics")
    summary = import_directory(engine, world, today=TODAY)
    written = {outcome.table for outcome in summary.tables if outcome.loaded}
    assert {"enterprises", "inspections", "hazards"} <= written
    with engine.connect() as conn:
        analysed = set(conn.execute(sa.text(
            "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()")).scalars())
    assert written <= analysed


def test_load_tables_keeps_required_tables_even_when_empty(engine):
    tables = load_tables(engine)
    assert set(tables) == {"enterprises", "inspections"}
    assert tables["inspections"].empty
    with pytest.raises(ValueError, match="unknown table 'hazard'"):
        load_tables(engine, ["hazard"])


def test_read_directory_validates_like_the_import(engine, world):
    import_directory(engine, world, today=TODAY)

    tables, refused = read_directory(world, today=TODAY)

    assert quarantine_set(refused) == quarantine_set(quarantine_frame(engine))
    stored = load_tables(engine)
    assert tables.keys() == stored.keys()
    for name in tables:  # the same frames, but for the database's own enterprise keys
        pd.testing.assert_frame_equal(tables[name], stored[name].drop(columns=ENTERPRISE_KEY))


# ---------------------------------------------------------------------------------------------
# The validator on its own (no database)
# ---------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["K1", "K2", "K3", "K4"]), st.sampled_from(["a", "b"])),
                  min_size=1, max_size=25),
    chunk=st.integers(1, 6),
)
def test_the_first_copy_of_a_key_wins_whatever_the_chunking(rows, chunk):
    lines = list(range(2, len(rows) + 2))
    frame = pd.DataFrame({"enterprise_id": [k for k, _ in rows], "sector": "gas", "name": [c for _, c in rows]},
                         index=lines, dtype="str")
    validator = TableValidator("enterprises", header=list(frame.columns), source_file="e.csv",
                               context=ValidationContext(today=TODAY))
    results = [validator.validate(frame.iloc[i:i + chunk]) for i in range(0, len(frame), chunk)]

    first: dict[str, tuple[int, str]] = {}
    good, conflicts, identical = [], [], 0
    for line, (key, content) in zip(lines, rows):
        if key not in first:
            first[key] = (line, content)
            good.append(line)
        elif first[key][1] == content:
            identical += 1
        else:
            conflicts.append((line, f"line {first[key][0]} has the same key"))
    assert [n for r in results for n in r.good.index] == good
    issues = pd.concat([r.issues for r in results])
    assert [(n, reason[reason.index("line"):][:len(f)]) for n, reason, f in
            zip(issues.line, issues.reason, [f for _, f in conflicts])] == conflicts
    assert set(issues.rule) <= {"duplicate_key"}
    assert validator.identical_duplicates == identical
    assert sorted(k for r in results for k in r.first_keys) == sorted(first)


def test_a_header_naming_a_column_twice_is_refused():
    with pytest.raises(DataError, match=r"e\.csv: column 'sector' appears 2 times"):
        check_header("enterprises", ["enterprise_id", "sector", " sector"], "e.csv")


@pytest.mark.parametrize(("cell", "value"), [("true", True), ("FALSE", False), ("1", True), ("0", False),
                                             ("Yes", True), ("no", False), ("是", True), ("否", False)])
def test_boolean_cells_accept_the_usual_words(cell, value):
    frame = pd.DataFrame({"enterprise_id": ["E1"], "sector": ["gas"], "confined_space": [cell]}, index=[2],
                         dtype="str")
    validator = TableValidator("enterprises", header=list(frame.columns), source_file="e.csv",
                               context=ValidationContext(today=TODAY))
    assert validator.validate(frame).good.confined_space.tolist() == [value]


def test_an_identifier_too_long_for_the_database_is_quarantined_without_a_row_key():
    long_id = "E" * 70
    frame = pd.DataFrame({"enterprise_id": [long_id, "E1"], "sector": ["gas", "gas"]}, index=[2, 3], dtype="str")
    validator = TableValidator("enterprises", header=list(frame.columns), source_file="e.csv",
                               context=ValidationContext(today=TODAY))
    result = validator.validate(frame)

    assert result.good.enterprise_id.tolist() == ["E1"]
    issue = result.issues.iloc[0]
    assert (issue.line, issue.rule, issue.reason, issue.row_key) == (
        2, "too_long", "70 characters, more than the 64 allowed", None)


def test_a_file_neither_utf8_nor_gb18030_stops_the_import_naming_line_and_byte(engine, tmp_path):
    directory = write_files(tmp_path / "d", {"inspections.csv": "inspection_id,enterprise_id,inspected_on\n"})
    (directory / "enterprises.csv").write_bytes("enterprise_id,sector,name\nE1,gas,城关燃气\n".encode("utf-16"))

    with pytest.raises(DataError, match=r"enterprises\.csv line 1 \(byte offset 0\): byte ff is not UTF-8, and the "
                                        r"file is not GB18030/GBK text either"):
        import_directory(engine, directory, today=TODAY)
    assert set(row_counts(engine).values()) == {0}
