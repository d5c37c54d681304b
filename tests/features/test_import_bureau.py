"""Files as bureaus export them (issue 15 items 1-3): GBK and BOM files, Chinese headers, labels and dates, workbooks
with several sheets, formulas without values, rows with too many fields, NUL bytes, and bad optional cells that hold
back the cell, not the enterprise. On SQLite, and on PostgreSQL when configured (``db_url``).

Every file is written by hand; expected lines count the header as line 1.
"""

from __future__ import annotations

import textwrap
from datetime import date

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.contract import HEADER_LOOKUP, TABLES, normalise_name, sector_code, table_named
from features.db import connect
from features.errors import DataError
from features.importer import import_directory
from features.schema import CONTRACT_TABLES, quarantine
from features.store import load_tables, quarantine_frame
from features.validate import TableValidator, ValidationContext
from scoring.cli import app
from scoring.results.ranking import _sector_code

TODAY = date(2025, 6, 30)

# 企业信息 (enterprises) as Chinese Excel saves it: GBK, Chinese headers and values, Chinese dates.
ENTERPRISES_ZH = """\
    企业编号,企业名称,统一社会信用代码,所属行业,所属乡镇,从业人员数,成立日期,是否重大危险源
    E1,甲化工有限公司,91350100M000100Y43,危险化学品,城关镇,120,2005年3月1日,是
    E2,乙煤矿,,煤矿,河西镇,800,1998/7/15,否
    E3,丙建材厂,91350100M000100Y44,建材,城关镇,"1,200",2001.1.1,无
    E4,丁燃气,,城镇燃气,河西镇,35,2030-01-01,有
"""
INSPECTIONS_ZH = """\
    检查编号,企业编号,检查日期,检查部门,检查类型,检查人数
    I1,E1,2024-03-25 09:30:00,应急,日常检查,2
    I2,E2,2024/4/1,应急,双随机,3
    I3,E3,2024年5月4日,住建,四不两直,2
    I4,E4,45383,消防,联合检查,2
"""
HAZARDS_ZH = """\
    隐患编号,企业编号,检查编号,发现日期,隐患等级,隐患类别,整改期限
    H1,E1,I1,2024-03-25,重大事故隐患,电气,2024-04-25
    H2,E1,I1,2024-03-25,一般隐患,消防,
    H3,E3,I3,2024-05-04,一般,电气,
"""


def write(directory, name: str, text: str, encoding: str = "utf-8") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(textwrap.dedent(text).encode(encoding))


@pytest.fixture
def gbk_world(tmp_path):
    directory = tmp_path / "bureau"
    write(directory, "企业信息.csv", ENTERPRISES_ZH, "gbk")
    write(directory, "检查记录.csv", INSPECTIONS_ZH, "gbk")
    write(directory, "隐患.csv", HAZARDS_ZH, "utf-8-sig")  # another export: UTF-8 with a byte-order mark
    return directory


def entries(engine) -> list[tuple]:
    found = quarantine_frame(engine)
    return sorted((r.source_file, r.line, r.column_name, r.value, r.rule) for r in found.itertuples())


def assert_nothing_lost(summary) -> None:
    for item in summary.tables:
        assert item.rows_read == item.loaded + item.quarantined + item.identical_duplicates, item


def stored_rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {name: sorted(map(tuple, conn.execute(sa.select(table)).all()), key=repr)
                for name, table in {**CONTRACT_TABLES, "quarantine": quarantine}.items()
                if name != "quarantine"}


# ---------------------------------------------------------------------------------------------
# The contract's Chinese names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "header", "column"), [
    ("enterprises", "企业编号", "enterprise_id"), ("enterprises", "企业名称", "name"),
    ("enterprises", "统一社会信用代码", "uscc"), ("enterprises", "所属行业", "sector"),
    ("enterprises", "所属乡镇", "township"), ("inspections", "检查编号", "inspection_id"),
    ("inspections", "检查日期", "inspected_on"), ("inspections", "检查部门", "department"),
    ("hazards", "隐患编号", "hazard_id"), ("hazards", "发现日期", "found_on"), ("hazards", "隐患等级", "level"),
    ("hazards", "检查编号", "inspection_id"), ("accidents", "直接经济损失（元）", "direct_loss_yuan"),
])
def test_every_usual_chinese_header_names_its_column(table, header, column):
    assert HEADER_LOOKUP[table][normalise_name(header)] == column


def test_every_column_has_a_chinese_name_and_every_table_one():
    for spec in TABLES:
        assert spec.zh and table_named(spec.zh[0]) == spec.name
        for column in spec.columns:
            assert column.zh, (spec.name, column.name)


def test_rank_and_import_read_sector_labels_from_the_same_definitions():
    for label, code in [("煤矿", "coal_mine"), ("危险化学品", "hazchem"), ("化工", "hazchem"),
                        ("危险化学品/化工", "hazchem"), ("非煤矿山", "noncoal_mine"), (" Coal_Mine ", "coal_mine")]:
        assert sector_code(label) == code
        assert _sector_code(label) == code
    with pytest.raises(DataError, match="unknown sector '矿'"):
        _sector_code("矿")


# ---------------------------------------------------------------------------------------------
# Encodings, headers, values and dates
# ---------------------------------------------------------------------------------------------


def test_a_gbk_bureau_export_with_chinese_headers_values_and_dates_imports(engine, gbk_world):
    summary = import_directory(engine, gbk_world, today=TODAY)

    tables = load_tables(engine)
    enterprises = tables["enterprises"].set_index("enterprise_id")
    assert enterprises.sector.to_dict() == {"E1": "hazchem", "E2": "coal_mine", "E3": "building_materials",
                                            "E4": "gas"}
    assert enterprises.loc["E1", "name"] == "甲化工有限公司" and enterprises.loc["E2", "township"] == "河西镇"
    assert enterprises.founded_on[["E1", "E2", "E3"]].tolist() == [
        pd.Timestamp("2005-03-01"), pd.Timestamp("1998-07-15"), pd.Timestamp("2001-01-01")]
    assert enterprises.employees.to_dict() == {"E1": 120, "E2": 800, "E3": 1200, "E4": 35}
    assert enterprises.major_hazard_source.tolist() == [True, False, False, True]
    inspections = tables["inspections"].set_index("inspection_id")
    assert inspections.inspected_on.tolist() == [pd.Timestamp(d) for d in
                                                 ("2024-03-25", "2024-04-01", "2024-05-04", "2024-04-01")]
    assert inspections.kind.tolist() == ["routine", "random", "unannounced", "joint"]
    assert tables["hazards"].set_index("hazard_id").level.to_dict() == {"H1": "major", "H2": "general",
                                                                        "H3": "general"}
    # E3's USCC fails its check character and E4 is founded in the future: those cells are held back, the
    # enterprises and their events load.
    assert pd.isna(enterprises.loc["E3", "uscc"]) and pd.isna(enterprises.loc["E4", "founded_on"])
    assert entries(engine) == [
        ("企业信息.csv", 4, "uscc", "91350100M000100Y44", "uscc"),
        ("企业信息.csv", 5, "founded_on", "2030-01-01", "future_date"),
    ]
    assert [(t.source_file, t.rows_read, t.loaded, t.quarantined, t.held_cells) for t in summary.tables] == [
        ("企业信息.csv", 4, 4, 0, 2), ("检查记录.csv", 4, 4, 0, 0), ("隐患.csv", 3, 3, 0, 0)]
    assert_nothing_lost(summary)


def test_reimporting_the_same_chinese_files_changes_nothing(engine, gbk_world):
    first = import_directory(engine, gbk_world, today=TODAY)
    rows, refused = stored_rows(engine), entries(engine)

    second = import_directory(engine, gbk_world, today=TODAY)

    assert stored_rows(engine) == rows
    assert entries(engine) == refused
    assert second.to_table().equals(first.to_table())


def test_a_header_naming_a_column_in_both_languages_is_refused(engine, tmp_path):
    write(tmp_path / "d", "enterprises.csv", "enterprise_id,企业编号,sector\nE1,E1,gas\n")
    write(tmp_path / "d", "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")

    with pytest.raises(DataError, match=r"enterprises\.csv: column 'enterprise_id' appears 2 times in the header "
                                        r"\(as 'enterprise_id', '企业编号'\)"):
        import_directory(engine, tmp_path / "d", today=TODAY)


def test_a_file_in_neither_encoding_is_refused_naming_line_and_byte_offset(engine, tmp_path):
    write(tmp_path / "d", "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")
    body = "enterprise_id,sector,name\nE1,gas,ok\nE2,gas,caf".encode() + b"\xe9,\n"  # Latin-1 é before a comma
    (tmp_path / "d" / "enterprises.csv").write_bytes(body)

    offset = body.index(b"\xe9")
    with pytest.raises(DataError, match=rf"enterprises\.csv line 3 \(byte offset {offset}\): byte e9 "
                                        r"is not UTF-8, and the file is not GB18030/GBK text either"):
        import_directory(engine, tmp_path / "d", today=TODAY)


def validate(table: str, frame: pd.DataFrame):
    validator = TableValidator(table, header=list(frame.columns), source_file="x.csv",
                               context=ValidationContext(today=TODAY))
    return validator.validate(frame)


@pytest.mark.parametrize(("cell", "expected"), [
    ("2025-03-05", "2025-03-05"), ("2025-3-5", "2025-03-05"), ("2025/3/5", "2025-03-05"),
    ("2025.3.5", "2025-03-05"), ("2025年3月5日", "2025-03-05"), ("2025 年 03 月 05 日", "2025-03-05"),
    ("２０２５年３月５日", "2025-03-05"), ("20250305", "2025-03-05"), ("45721", "2025-03-05"),
    ("45721.604", "2025-03-05"), ("2025-03-05 14:30:00", "2025-03-05"), ("2025-03-05T14:30", "2025-03-05"),
    ("2025/3/5 8:05", "2025-03-05"), ("2025年3月5日 14时30分", "2025-03-05"),
])
def test_dates_in_the_forms_bureaus_use(cell, expected):
    frame = pd.DataFrame({"enterprise_id": ["E1"], "sector": ["gas"], "founded_on": [cell]}, index=[2], dtype="str")
    result = validate("enterprises", frame)
    assert result.issues.empty
    assert result.good.founded_on.tolist() == [pd.Timestamp(expected)]


@pytest.mark.parametrize("cell", ["2025/2/30", "2025年13月1日", "3/5/2025", "2025-03", "4572", "2025年3月5号"])
def test_impossible_or_unknown_dates_are_refused_naming_the_cell(cell):
    frame = pd.DataFrame({"inspection_id": ["I1"], "enterprise_id": ["E1"], "inspected_on": [cell]}, index=[7],
                         dtype="str")
    result = validate("inspections", frame)
    assert result.good.empty
    issue = result.issues.iloc[0]
    assert (issue.line, issue.column_name, issue.value, issue.rule) == (7, "inspected_on", cell, "bad_date")
    assert issue.reason == (f"expected a date like 2025-03-25 (or 2025/3/25, 2025.3.25, 2025年3月25日, an Excel "
                            f"serial), got {cell!r}")


@pytest.mark.parametrize(("table", "column", "cell", "code"), [
    ("enterprises", "sector", "煤矿", "coal_mine"), ("enterprises", "sector", "非煤矿山", "noncoal_mine"),
    ("enterprises", "sector", "危险化学品", "hazchem"), ("enterprises", "sector", "ＨＡＺＣＨＥＭ", "hazchem"),
    ("hazards", "level", "一般", "general"), ("hazards", "level", "一般隐患", "general"),
    ("hazards", "level", "重大", "major"), ("hazards", "level", "重大隐患", "major"),
    ("hazards", "level", "重大事故隐患", "major"), ("accidents", "grade", "较大事故", "larger"),
    ("violations", "kind", "违章作业", "illegal_operation"), ("credit_records", "kind", "严重失信主体名单", "blacklist"),
])
def test_category_labels_load_as_their_codes(table, column, cell, code):
    base = {"enterprises": {"enterprise_id": "E1", "sector": "gas"},
            "hazards": {"hazard_id": "H1", "enterprise_id": "E1", "found_on": "2024-01-01", "level": "general"},
            "accidents": {"accident_id": "A1", "enterprise_id": "E1", "occurred_on": "2024-01-01", "deaths": "3"},
            "violations": {"violation_id": "V1", "enterprise_id": "E1", "found_on": "2024-01-01"},
            "credit_records": {"record_id": "C1", "enterprise_id": "E1", "kind": "redlist",
                               "valid_from": "2024-01-01"}}[table]
    frame = pd.DataFrame([{**base, column: cell}], index=[2], dtype="str")
    result = validate(table, frame)
    assert result.issues.empty, result.issues.reason.tolist()
    assert result.good[column].tolist() == [code]


def test_standardization_levels_and_flags_in_chinese():
    frame = pd.DataFrame({"record_id": ["C1", "C2"], "enterprise_id": ["E1", "E1"], "kind": ["安全生产标准化", "标准化"],
                          "value": ["二级", "一级"], "valid_from": ["2024-01-01", "2024-01-01"]}, index=[2, 3],
                         dtype="str")
    assert validate("credit_records", frame).good.value.tolist() == ["2", "1"]
    flags = pd.DataFrame({"enterprise_id": ["E1", "E2", "E3", "E4"], "sector": "gas",
                          "confined_space": ["是", "否", "有", "无"]}, index=[2, 3, 4, 5], dtype="str")
    assert validate("enterprises", flags).good.confined_space.tolist() == [True, False, True, False]


# ---------------------------------------------------------------------------------------------
# Workbooks: sheets, formulas, values right of the header
# ---------------------------------------------------------------------------------------------


def workbook(path, sheets: dict[str, list[list]]) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


ENTERPRISE_SHEET = [["企业编号", "所属行业", "从业人员数"], ["E1", "煤矿", 10], ["E2", "化工", 20]]
INSPECTION_SHEET = [["检查编号", "企业编号", "检查日期"], ["I1", "E1", date(2024, 2, 3)], ["I2", "E2", "2024年2月4日"]]


def test_a_workbook_with_several_sheets_is_read_sheet_by_sheet_by_table_name(engine, tmp_path):
    path = tmp_path / "数据导出.xlsx"
    workbook(path, {"企业信息": ENTERPRISE_SHEET, "inspections": INSPECTION_SHEET, "空表": []})

    summary = import_directory(engine, path, today=TODAY)

    assert [(t.table, t.source_file, t.loaded) for t in summary.tables] == [
        ("enterprises", "数据导出.xlsx[企业信息]", 2), ("inspections", "数据导出.xlsx[inspections]", 2)]
    assert load_tables(engine)["inspections"].inspected_on.tolist() == [pd.Timestamp("2024-02-03"),
                                                                         pd.Timestamp("2024-02-04")]
    assert entries(engine) == []


def test_a_workbook_with_a_data_sheet_named_after_no_table_is_refused_naming_it(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    workbook(directory / "enterprises.xlsx", {"enterprises": ENTERPRISE_SHEET, "Sheet2": INSPECTION_SHEET})
    write(directory, "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")

    with pytest.raises(DataError, match=r"enterprises\.xlsx has 2 data sheets, read each as the table it is named "
                                        r"after: 'enterprises' → enterprises, 'Sheet2' → no table of that name; "
                                        r"rename sheet 'Sheet2' after its table"):
        import_directory(engine, directory, today=TODAY)
    assert load_tables(engine)["enterprises"].empty


def test_a_table_found_twice_is_refused_naming_both(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    workbook(directory / "enterprises.xlsx", {"企业信息": ENTERPRISE_SHEET, "检查记录": INSPECTION_SHEET})
    write(directory, "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")

    with pytest.raises(DataError, match=r"table inspections is in both enterprises\.xlsx \(sheet '检查记录'\) and "
                                        r"inspections\.csv; keep one of them"):
        import_directory(engine, directory, today=TODAY)


def test_formula_cells_without_a_saved_value_are_refused_naming_the_cell(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    workbook(directory / "enterprises.xlsx", {"Sheet1": [
        ["enterprise_id", "sector", "employees", "name"],
        ["E1", "gas", "=1+1", "甲"],  # an optional value: the cell is held back, E1 loads
        ["E2", "gas", 5, "乙"]]})
    workbook(directory / "inspections.xlsx", {"Sheet1": [
        ["inspection_id", "enterprise_id", "inspected_on"],
        ["I1", "E1", "=TODAY()"],  # the event date: the inspection is refused
        ["I2", "E2", "2024-01-02"]]})

    summary = import_directory(engine, directory, today=TODAY)

    found = quarantine_frame(engine).sort_values("source_file")
    assert found[["source_file", "line", "column_name", "value", "rule"]].values.tolist() == [
        ["enterprises.xlsx", 2, "employees", "=1+1", "formula_without_value"],
        ["inspections.xlsx", 2, "inspected_on", "=TODAY()", "formula_without_value"]]
    assert found.reason.tolist() == [
        "cell C2 holds the formula =1+1 without a saved value; open the file in Excel and save it (or paste "
        "values); the row was loaded without this value",
        "cell C2 holds the formula =TODAY() without a saved value; open the file in Excel and save it (or paste "
        "values)"]
    tables = load_tables(engine)
    assert tables["enterprises"].employees.isna().tolist() == [True, False]
    assert tables["inspections"].inspection_id.tolist() == ["I2"]
    assert_nothing_lost(summary)


def test_a_value_right_of_the_last_header_cell_refuses_its_row_only(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    workbook(directory / "enterprises.xlsx", {"Sheet1": [["enterprise_id", "sector"], ["E1", "gas", "备注: 旧厂"],
                                                         ["E2", "gas"]]})
    write(directory, "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")

    summary = import_directory(engine, directory, today=TODAY)

    entry = quarantine_frame(engine).iloc[0]
    assert (entry.source_file, entry.line, entry.rule, entry.row_key) == ("enterprises.xlsx", 2, "too_many_fields",
                                                                          "E1")
    assert "C onwards: '备注: 旧厂'" in entry.reason
    assert entry.raw == {"enterprise_id": "E1", "sector": "gas", "(extra fields)": ["备注: 旧厂"]}
    assert load_tables(engine)["enterprises"].enterprise_id.tolist() == ["E2"]
    assert_nothing_lost(summary)


# ---------------------------------------------------------------------------------------------
# CSV rows with too many fields
# ---------------------------------------------------------------------------------------------


def test_a_csv_row_with_too_many_fields_is_quarantined_and_the_rest_loads(engine, tmp_path):
    directory = tmp_path / "d"
    write(directory, "enterprises.csv", "enterprise_id,sector\nE1,gas\nE2,gas\n")
    write(directory, "inspections.csv", """\
        inspection_id,enterprise_id,inspected_on,department
        I1,E1,2024-01-02,应急
        I2,E1,2024-01-03,应急,住建
        "I3",E2,2024-01-04,"消防
        大队"
        I4,E2,2024-01-05,应急,,
        I5,E2,2024-01-06
    """)

    summary = import_directory(engine, directory, today=TODAY, chunk_rows=2)

    found = quarantine_frame(engine)
    assert found[["source_file", "line", "rule", "row_key"]].values.tolist() == [
        ["inspections.csv", 3, "too_many_fields", "I2"], ["inspections.csv", 5, "too_many_fields", "I4"]]
    assert found.column_name.isna().all()  # the whole row
    assert found.reason.iloc[0] == ("the row has 5 fields, the header 4: it was not read (a comma or quote inside an "
                                    "unquoted cell?); fix the row and import again")
    assert found.raw.iloc[0] == {"inspection_id": "I2", "enterprise_id": "E1", "inspected_on": "2024-01-03",
                                 "department": "应急", "(extra fields)": ["住建"]}
    inspections = load_tables(engine)["inspections"].set_index("inspection_id")
    assert list(inspections.index) == ["I1", "I3", "I5"]
    assert inspections.department[["I1", "I3"]].tolist() == ["应急", "消防\n大队"]  # a quoted cell over two lines
    assert pd.isna(inspections.department["I5"])  # a short row: empty trailing cells
    assert inspections.inspected_on["I5"] == pd.Timestamp("2024-01-06")  # line numbers count records, not lines
    item = summary["inspections"]
    assert (item.rows_read, item.loaded, item.quarantined) == (5, 3, 2)
    assert_nothing_lost(summary)


# ---------------------------------------------------------------------------------------------
# Item 2: a bad optional cell holds back that cell, not the enterprise
# ---------------------------------------------------------------------------------------------


def test_a_bad_optional_value_loads_the_enterprise_and_its_events_without_it(engine, tmp_path):
    directory = tmp_path / "d"
    write(directory, "enterprises.csv", """\
        enterprise_id,name,uscc,sector,employees,founded_on,x_rating,x_note
        E1,甲,91350100M000100Y44,gas,12,2001-01-01,A,ok
        E2,乙,,gas,twelve,2031-05-01,B,ok
        E3,丙,,mine,5,2001-01-01,C,ok
    """)
    write(directory, "inspections.csv", """\
        inspection_id,enterprise_id,inspected_on
        I1,E1,2024-01-02
        I2,E2,2024-01-03
        I3,E3,2024-01-04
    """)
    write(directory, "hazards.csv", "hazard_id,enterprise_id,found_on,level\nH1,E1,2024-01-02,major\n")

    summary = import_directory(engine, directory, today=TODAY)

    found = quarantine_frame(engine)
    assert found[["source_file", "line", "column_name", "value", "rule", "row_key"]].values.tolist() == [
        ["enterprises.csv", 2, "uscc", "91350100M000100Y44", "uscc", "E1"],
        ["enterprises.csv", 3, "employees", "twelve", "bad_number", "E2"],
        ["enterprises.csv", 3, "founded_on", "2031-05-01", "future_date", "E2"],
        ["enterprises.csv", 4, "sector", "mine", "not_a_choice", "E3"],  # a required value: the row is refused
        ["inspections.csv", 4, "enterprise_id", "E3", "dangling_reference", "I3"],
    ]
    assert found.reason.iloc[0] == ("USCC '91350100M000100Y44' fails its check character (GB 32100-2015): expected "
                                    "'3' at the end, got '4'; add it to the allow-list if the code is genuine; the "
                                    "row was loaded without this value")
    assert found.reason.iloc[2] == "founded_on 2031-05-01 is after today (2025-06-30); the row was loaded without " \
                                   "this value"
    tables = load_tables(engine)
    enterprises = tables["enterprises"].set_index("enterprise_id")
    assert list(enterprises.index) == ["E1", "E2"]
    assert pd.isna(enterprises.loc["E1", "uscc"]) and enterprises.loc["E1", "employees"] == 12
    assert pd.isna(enterprises.loc["E2", "employees"]) and pd.isna(enterprises.loc["E2", "founded_on"])
    assert enterprises.x_rating.tolist() == ["A", "B"]
    assert tables["inspections"].inspection_id.tolist() == ["I1", "I2"]  # the enterprises' events load
    assert tables["hazards"].hazard_id.tolist() == ["H1"]
    assert [(t.rows_read, t.loaded, t.quarantined, t.held_cells) for t in summary.tables] == [
        (3, 2, 1, 3), (3, 2, 1, 0), (1, 1, 0, 0)]
    assert_nothing_lost(summary)


def test_a_corrected_cell_replaces_its_held_twin_on_reimport(engine, tmp_path):
    directory = tmp_path / "d"
    write(directory, "enterprises.csv", "enterprise_id,sector,employees\nE1,gas,twelve\n")
    write(directory, "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")
    import_directory(engine, directory, today=TODAY)
    assert len(quarantine_frame(engine)) == 1

    write(directory, "enterprises.csv", "enterprise_id,sector,employees\nE1,gas,12\n")
    import_directory(engine, directory, today=TODAY)

    assert quarantine_frame(engine).empty
    assert load_tables(engine)["enterprises"].employees.tolist() == [12]


# ---------------------------------------------------------------------------------------------
# NUL bytes: bad input with a located message, the same on both databases
# ---------------------------------------------------------------------------------------------


def test_nul_bytes_are_located_and_never_reach_the_database(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "enterprises.csv").write_bytes(
        b"enterprise_id,name,sector,x_note\nE1,\xe7\x94\xb2\x00\xe5\x8e\x82,gas,ok\nE\x002,b,gas,ok\nE3,c,gas,a\x00b\n")
    (directory / "inspections.csv").write_bytes(
        b"inspection_id,enterprise_id,inspected_on,department\nI1,E1,2024-01-02,\x00\nI3,E3,2024-01-03,x\n")

    summary = import_directory(engine, directory, today=TODAY)

    found = quarantine_frame(engine)
    assert found[["source_file", "line", "column_name", "value", "rule", "row_key"]].values.tolist() == [
        ["enterprises.csv", 2, "name", "甲\\x00厂", "nul_byte", "E1"],
        ["enterprises.csv", 3, "enterprise_id", "E\\x002", "nul_byte", "E\\x002"],  # a key: the row is refused
        ["enterprises.csv", 4, "x_note", "a\\x00b", "nul_byte", "E3"],
        ["inspections.csv", 2, "department", "\\x00", "nul_byte", "I1"],
    ]
    assert found.reason.iloc[0] == ("contains a NUL byte (\\x00) at character 2: a damaged file or a binary value; "
                                    "retype the cell; the row was loaded without this value")
    assert found.raw.iloc[1] == {"enterprise_id": "E\\x002", "name": "b", "sector": "gas", "x_note": "ok"}
    tables = load_tables(engine)
    enterprises = tables["enterprises"].set_index("enterprise_id")
    assert list(enterprises.index) == ["E1", "E3"]
    assert pd.isna(enterprises.loc["E1", "name"]) and pd.isna(enterprises.loc["E3", "x_note"])
    assert tables["inspections"].inspection_id.tolist() == ["I1", "I3"]
    assert_nothing_lost(summary)


def test_a_nul_byte_in_the_header_refuses_the_file(engine, tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "enterprises.csv").write_bytes(b"enterprise_id,sec\x00tor\nE1,gas\n")
    write(directory, "inspections.csv", "inspection_id,enterprise_id,inspected_on\n")

    with pytest.raises(DataError, match=r"enterprises\.csv: header cell 2 contains a NUL byte \('sec\\\\x00tor'\)"):
        import_directory(engine, directory, today=TODAY)


# ---------------------------------------------------------------------------------------------
# One file: riskgrade import FILE [--table T]
# ---------------------------------------------------------------------------------------------


def test_cli_imports_one_file_whose_name_is_not_a_table_with_table(db_url, tmp_path):
    path = tmp_path / "企业台账.xlsx"
    workbook(path, {"Sheet1": ENTERPRISE_SHEET})
    inspections = tmp_path / "检查记录.csv"
    inspections.write_bytes(textwrap.dedent(INSPECTIONS_ZH).replace("E3", "E1").replace("E4", "E2").encode("gbk"))
    runner = CliRunner()

    refused = runner.invoke(app, ["import", str(path), "--db", db_url, "--today", "2025-06-30"])
    assert refused.exit_code == 1 and isinstance(refused.exception, DataError)
    assert "企业台账.xlsx: cannot tell which table sheet 'Sheet1' holds" in str(refused.exception)

    done = runner.invoke(app, ["import", str(path), "--table", "enterprises", "--db", db_url,
                               "--today", "2025-06-30"])
    assert done.exit_code == 0, done.output
    assert "企业台账.xlsx" in done.output
    again = runner.invoke(app, ["import", str(inspections), "--db", db_url, "--today", "2025-06-30"])
    assert again.exit_code == 0, again.output

    engine = connect(db_url)
    tables = load_tables(engine)
    assert tables["enterprises"].sector.tolist() == ["coal_mine", "hazchem"]
    assert tables["inspections"].inspection_id.tolist() == ["I1", "I2", "I3", "I4"]
    engine.dispose()


def test_table_names_a_known_table_and_only_with_one_file(engine, gbk_world):
    with pytest.raises(DataError, match=r"unknown table 'enterprise'; expected one of enterprises, inspectors, inspections"):
        import_directory(engine, gbk_world / "企业信息.csv", today=TODAY, table="enterprise")
    with pytest.raises(DataError, match=r"is a directory: --table names the table of one file"):
        import_directory(engine, gbk_world, today=TODAY, table="enterprises")
