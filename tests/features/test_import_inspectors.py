"""Who inspected (features.inspectors): the roster, the link table and the list column, on SQLite and PostgreSQL.

Every file is written by hand; expected quarantine entries are worked out line by line (header = line 1).
"""

from __future__ import annotations

import textwrap
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from features.contract import split_inspectors
from features.importer import import_directory
from features.inspectors import inspection_teams, inspector_roster
from features.store import load_tables, quarantine_frame, read_directory

TODAY = date(2025, 6, 30)

ENTERPRISES = """\
    enterprise_id,name,sector,township
    E1,甲化工,hazchem,城关镇
    E2,乙煤矿,coal_mine,河西镇
"""

# Chinese headers throughout; 张三 is in two departments, 李四 twice in 应急 (namesakes).
ROSTER_ZH = """\
    执法人员编号,姓名,所属部门,任职起始日期,任职截止日期,执法证
    P001,张三,应急,2020-01-01,,是
    P002,张三,住建,2020-01-01,,是
    P003,李四,应急,2020-01-01,,是
    P004,李四,应急,2021-01-01,,否
    P005,王五,应急,2020-01-01,2024-12-31,是
    P006,赵六,应急,2025-01-01,2024-01-01,是
"""

INSPECTIONS_NAMED = """\
    检查编号,企业编号,检查日期,检查部门,检查类型,检查人数,检查人员
    I1,E1,2024-03-25,应急,日常检查,2,张三、王五
    I2,E1,2024-04-01,住建,routine,2,张三；P005
    I3,E2,2024-04-02,应急,routine,2,张三、钱七
    I4,E2,2024-04-03,应急,routine,2,李四、王五
    I5,E2,2024-04-04,,routine,2,王五
    I6,E2,2024-04-05,应急,routine,2,
"""

INSPECTIONS_PLAIN = """\
    inspection_id,enterprise_id,inspected_on,department,kind,n_inspectors
    I1,E1,2024-03-25,应急,routine,2
    I2,E1,2024-04-01,应急,routine,2
    I3,E2,2024-04-02,交通,routine,3
"""

LINKS = """\
    inspection_id,inspector_id
    I1,P001
    I1,P005
    I2,P999
    I2,P003
    I3,P001
"""

ROSTER = """\
    inspector_id,name,department,active_from,active_to,certified
    P001,张三,应急,2020-01-01,,true
    P003,李四,应急,2020-01-01,,true
    P005,王五,应急,2020-01-01,,false
"""


def write(directory, files: dict[str, str]):
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def quarantined(engine) -> set[tuple]:
    frame = quarantine_frame(engine)
    return {(r.table_name, r.line, r.column_name, r.value, r.rule) for r in frame.itertuples()}


def test_split_inspectors_accepts_the_usual_separators_and_full_width_forms():
    assert split_inspectors("张三、李四") == ["张三", "李四"]
    assert split_inspectors(" P017；P203 ,P017/ ") == ["P017", "P203"]
    assert split_inspectors("Ｐ０１７") == ["P017"]  # full-width letters and digits folded
    assert split_inspectors("、；") == []


def test_names_resolve_within_the_department_and_unknown_or_ambiguous_ones_are_quarantined(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "执法人员.csv": ROSTER_ZH,
                                   "inspections.csv": INSPECTIONS_NAMED})

    summary = import_directory(engine, world, today=TODAY)

    # 赵六's service ends before it starts: the end is held back, the inspector loads
    assert summary["inspectors"].loaded == 6 and summary["inspectors"].held_cells == 1
    tables = load_tables(engine)
    inspections = tables["inspections"].set_index("inspection_id")
    # 张三 of 应急 is P001, of 住建 P002; an id among names is kept; no department: any department, if unique
    assert inspections.loc["I1", "inspectors"] == "P001;P005"
    assert inspections.loc["I2", "inspectors"] == "P002;P005"
    assert inspections.loc["I5", "inspectors"] == "P005"
    assert inspections.loc[["I3", "I4", "I6"], "inspectors"].isna().all()  # held back (I6: none given)
    assert set(inspections.index) == {"I1", "I2", "I3", "I4", "I5", "I6"}  # the inspections themselves load
    assert quarantined(engine) == {
        ("inspectors", 7, "active_to", "2024-01-01", "active_to_after_from"),
        ("inspections", 4, "inspectors", "张三、钱七", "unknown_inspector"),
        ("inspections", 5, "inspectors", "李四、王五", "ambiguous_inspector"),
    }
    reasons = quarantine_frame(engine).set_index("line")["reason"]
    assert "'钱七'" in reasons[4] and "department 应急" in reasons[4] and "without its inspectors" in reasons[4]
    assert "P003, P004" in reasons[5]
    assert summary["inspections"].held_cells == 2 and summary["inspections"].reasons == {
        "unknown_inspector": 1, "ambiguous_inspector": 1}

    teams = inspection_teams(tables)
    assert list(teams.itertuples(index=False, name=None)) == [
        ("I1", "P001"), ("I1", "P005"), ("I2", "P002"), ("I2", "P005"), ("I5", "P005")]
    roster = tables["inspectors"].set_index("inspector_id")
    assert roster.loc["P004", "certified"] == False  # noqa: E712 (a nullable boolean)
    assert roster.loc["P005", "active_to"] == pd.Timestamp("2024-12-31")


def test_a_link_to_an_inspector_not_on_the_roster_is_quarantined_with_its_line(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspectors.csv": ROSTER,
                                   "inspections.csv": INSPECTIONS_PLAIN, "inspection_inspectors.csv": LINKS})

    summary = import_directory(engine, world, today=TODAY)

    assert summary["inspection_inspectors"].loaded == 4 and summary["inspection_inspectors"].quarantined == 1
    assert quarantined(engine) == {("inspection_inspectors", 4, "inspector_id", "P999", "unknown_inspector")}
    row_key = quarantine_frame(engine)["row_key"].tolist()
    assert row_key == ["I2|P999"]
    teams = inspection_teams(load_tables(engine))
    assert len(teams) == 4 and "P999" not in set(teams["inspector_id"])

    again = import_directory(engine, world, today=TODAY)  # re-importing changes nothing
    assert again["inspection_inspectors"].quarantined == 1 and len(quarantine_frame(engine)) == 1


def test_a_roster_stored_by_an_earlier_import_resolves_a_later_one(engine, tmp_path):
    first = write(tmp_path / "a", {"enterprises.csv": ENTERPRISES, "inspectors.csv": ROSTER,
                                   "inspections.csv": INSPECTIONS_PLAIN})
    import_directory(engine, first, today=TODAY)
    later = write(tmp_path / "b", {"enterprises.csv": ENTERPRISES, "inspections.csv": INSPECTIONS_PLAIN,
                                   "inspection_inspectors.csv": LINKS})

    summary = import_directory(engine, later, today=TODAY)

    assert summary["inspection_inspectors"].quarantined == 1  # P999, against the stored roster


def test_without_a_roster_the_ids_seen_are_the_inspectors_and_a_roster_is_built_from_them(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspections.csv": INSPECTIONS_PLAIN,
                                   "inspection_inspectors.csv": LINKS})

    summary = import_directory(engine, world, today=TODAY)

    assert summary["inspection_inspectors"].loaded == 5 and summary.quarantined == 0
    tables = load_tables(engine)
    assert "inspectors" not in tables  # absent, not empty
    roster = inspector_roster(tables).set_index("inspector_id")
    assert list(roster.index) == ["P001", "P003", "P005", "P999"]
    assert roster.loc["P001", "department"] == "交通"  # its latest inspection (I3)
    assert roster.loc["P001", "active_from"] == pd.Timestamp("2024-03-25")
    assert roster["certified"].isna().all() and roster["name"].isna().all()  # unknown, not false


def test_a_list_of_names_without_a_roster_keeps_the_names_as_inspectors(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspections.csv": INSPECTIONS_NAMED})

    import_directory(engine, world, today=TODAY)

    inspections = load_tables(engine)["inspections"].set_index("inspection_id")
    assert inspections.loc["I4", "inspectors"] == "李四;王五"
    assert quarantine_frame(engine).empty


def test_no_inspector_data_leaves_the_teams_absent(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspections.csv": INSPECTIONS_PLAIN})
    import_directory(engine, world, today=TODAY)
    tables = load_tables(engine)
    assert inspection_teams(tables) is None and inspector_roster(tables) is None


def test_a_partition_reads_the_roster_whole_and_the_links_of_its_inspections(engine, tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspectors.csv": ROSTER,
                                   "inspections.csv": INSPECTIONS_PLAIN, "inspection_inspectors.csv": LINKS})
    import_directory(engine, world, today=TODAY)
    with engine.connect() as conn:
        key_e2 = conn.execute(sa.text("SELECT enterprise_key FROM enterprises WHERE enterprise_id = 'E2'")).scalar()

    part = load_tables(engine, key_range=(key_e2, key_e2 + 1))

    assert set(part["enterprises"]["enterprise_id"]) == {"E2"}
    assert len(part["inspectors"]) == 3  # the roster: whole
    assert list(part["inspection_inspectors"].itertuples(index=False, name=None)) == [("I3", "P001")]
    assert list(inspection_teams(part).itertuples(index=False, name=None)) == [("I3", "P001")]


def test_read_directory_resolves_like_the_import(tmp_path):
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "执法人员.csv": ROSTER_ZH,
                                   "inspections.csv": INSPECTIONS_NAMED})

    tables, issues = read_directory(world, today=TODAY)

    assert tables["inspections"].set_index("inspection_id").loc["I1", "inspectors"] == "P001;P005"
    assert set(issues.loc[issues["table_name"] == "inspections", "rule"]) == {"unknown_inspector",
                                                                              "ambiguous_inspector"}


@pytest.mark.parametrize("bad", ["P404"])
def test_a_conflict_naming_an_unknown_enterprise_is_quarantined(engine, tmp_path, bad):
    conflicts = f"""\
        inspector_id,enterprise_id,reason
        P001,E1,亲属
        P003,{bad},曾任职
    """
    world = write(tmp_path / "w", {"enterprises.csv": ENTERPRISES, "inspectors.csv": ROSTER,
                                   "inspections.csv": INSPECTIONS_PLAIN, "inspector_conflicts.csv": conflicts})
    summary = import_directory(engine, world, today=TODAY)
    assert summary["inspector_conflicts"].loaded == 1
    assert quarantined(engine) == {("inspector_conflicts", 3, "enterprise_id", bad, "dangling_reference")}
