"""Bulk loads, all-or-nothing imports and re-imports of unchanged files (features.importer) — on SQLite, and on
PostgreSQL when configured.

A re-import of a file unchanged since its table's last import is skipped (``imported_files``); these tests pin
down that it then writes nothing, and that every change that could alter a verdict — a changed byte, a changed
enterprises file, a later ``today`` for a file with future rows, a table emptied since — reads the file again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import textwrap
import threading
import time
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

import features.importer as importer
from features.errors import DataError
from features.importer import import_directory, imported_files
from features.schema import CONTRACT_TABLES, dialect_indexes, quarantine, truth
from features.store import load_tables, quarantine_frame

TODAY = date(2025, 6, 30)
SAMPLE = Path(__file__).resolve().parents[2] / "data_samples" / "sample"

FILES = {
    "enterprises.csv": """\
        enterprise_id,name,sector,founded_on,x_size
        E1,甲化工,hazchem,2005-03-01,3.5
        E2,乙煤矿,煤矿,1998-07-15,
        E3,丙,spaceport,2001-01-01,
    """,
    "inspections.csv": """\
        inspection_id,enterprise_id,inspected_on,kind
        I1,E1,2024-03-25,routine
        I2,E2,2024-04-01,双随机
        I3,E3,2024-04-02,routine
        I4,E4,2024-04-03,routine
    """,
    "hazards.csv": """\
        hazard_id,enterprise_id,inspection_id,found_on,level
        H1,E1,I1,2024-03-25,major
        H2,E2,I2,2024-04-01,一般隐患
        H3,E1,I1,2025-07-02,general
    """,
}


def write_files(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


@pytest.fixture
def files(tmp_path):
    return write_files(tmp_path / "files", FILES)


def snapshot(engine, *, ignore: tuple[str, ...] = ()) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row (in key order) of every table the import writes, and each table's
    indexes: equal snapshots mean nothing was written. ``ignore``: columns left out (timestamps)."""
    tables = [*CONTRACT_TABLES.values(), truth, quarantine, imported_files]
    out = {}
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in tables:
            columns = [c for c in table.columns if c.name not in ("quarantine_id", *ignore)]
            rows = conn.execute(sa.select(*columns).order_by(*columns[:3])).all()
            digest = hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()
            out[table.name] = (len(rows), digest)
            out[f"{table.name} indexes"] = tuple(sorted(i["name"] for i in inspector.get_indexes(table.name)))
    return out


def notes(summary) -> dict[str, bool]:
    """Per table: whether its file was skipped as unchanged."""
    return {item.table: any("not read again" in w for w in item.warnings) for item in summary.tables}


@pytest.fixture(autouse=True)
def private_temp(tmp_path, monkeypatch):
    """Scratch files of these tests' imports in a folder of their own (so that leftovers can be seen)."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def leftover_staging() -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).glob("riskgrade-import-*")]


# ---------------------------------------------------------------------------------------------
# Bulk loads
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("staged", [False, True], ids=["executemany", "staged"])
def test_a_bulk_load_leaves_every_index_in_place(engine, monkeypatch, staged):
    if staged and engine.dialect.name != "sqlite":
        pytest.skip("staging through a scratch file is SQLite's (PostgreSQL COPYs)")
    monkeypatch.setattr(importer, "_STAGE_MIN_ROWS", 1 if staged else 10**12)
    expected = {name: {i.name for i in dialect_indexes(table, engine.dialect)}
                for name, table in {**CONTRACT_TABLES, "truth": truth}.items()}

    summary = import_directory(engine, SAMPLE, today=date(2026, 1, 2))

    inspector = sa.inspect(engine)
    assert {name: {i["name"] for i in inspector.get_indexes(name)} for name in expected} == expected
    # PostgreSQL bulk loads without the primary key and builds it again at the end: it must be back, whole
    keys = {name: tuple(c.name for c in table.primary_key.columns)
            for name, table in {**CONTRACT_TABLES, "truth": truth}.items()}
    assert {name: tuple(inspector.get_pk_constraint(name)["constrained_columns"]) for name in keys} == keys
    assert summary.loaded > 19_000 and summary.quarantined == 0
    stored = {name: len(frame) for name, frame in load_tables(engine, [*CONTRACT_TABLES, "truth"]).items()}
    assert stored == {item.table: item.loaded for item in summary.tables}
    assert not leftover_staging()


def test_a_staged_bulk_load_stores_what_executemany_stores(tmp_path, monkeypatch):
    """The SQLite staging path (ADBC ingest + INSERT ... SELECT) against the executemany path, value by value
    and storage class by storage class, on files with bad rows, held cells, Chinese labels and extras."""
    import sqlite3

    from features.db import connect

    directory = write_files(tmp_path / "files", FILES)
    stored = {}
    for mode, threshold in (("executemany", 10**12), ("staged", 1)):
        monkeypatch.setattr(importer, "_STAGE_MIN_ROWS", threshold)
        path = tmp_path / f"{mode}.db"
        engine = connect(f"sqlite:///{path}")
        import_directory(engine, directory, today=TODAY)
        engine.dispose()
        with sqlite3.connect(path) as conn:
            stored[mode] = {
                name: conn.execute(
                    f'SELECT {", ".join(f"typeof({c.name}), quote({c.name})" for c in table.columns)} '
                    f'FROM {name} ORDER BY {", ".join(c.name for c in table.primary_key.columns)}').fetchall()
                for name, table in CONTRACT_TABLES.items()}
    assert stored["staged"] == stored["executemany"]
    assert len(stored["staged"]["hazards"]) == 2  # H3 is in the future
    assert not leftover_staging()


# ---------------------------------------------------------------------------------------------
# All or nothing
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("staged", [False, True], ids=["executemany", "staged"])
@pytest.mark.parametrize("before", ["empty", "imported"])
def test_a_file_failing_half_way_leaves_the_database_unchanged(engine, files, before, staged, monkeypatch):
    if staged and engine.dialect.name != "sqlite":
        pytest.skip("staging through a scratch file is SQLite's (PostgreSQL COPYs)")
    monkeypatch.setattr(importer, "_STAGE_MIN_ROWS", 1 if staged else 10**12)
    if before == "imported":
        import_directory(engine, files, today=TODAY)
        (files / "inspections.csv").write_text("inspection_id,enterprise_id,inspected_on\nI9,E1,2024-05-01\n",
                                               encoding="utf-8")
    state = snapshot(engine)
    with (files / "hazards.csv").open("a", encoding="utf-8") as handle:
        handle.write('H9,E1,I1,2024-03-25,"general\n')  # a quote never closed: hazards fails after its first rows

    with pytest.raises(DataError, match=r"hazards\.csv line 5 cannot be parsed as CSV"):
        import_directory(engine, files, today=TODAY, chunk_rows=1)

    assert snapshot(engine) == state  # rows, quarantine, the import record and the indexes dropped for a bulk load
    assert not leftover_staging()


@pytest.mark.parametrize("staged", [False, True], ids=["executemany", "staged"])
def test_ctrl_c_while_the_file_before_is_still_being_written_leaves_the_database_unchanged(engine, files, staged,
                                                                                         monkeypatch):
    """The next file is read while the one before is written on the import's work thread: an interrupt then
    stops both, and the transaction is rolled back with the work thread's writes in it."""
    if staged and engine.dialect.name != "sqlite":
        pytest.skip("staging through a scratch file is SQLite's (PostgreSQL COPYs)")
    monkeypatch.setattr(importer, "_STAGE_MIN_ROWS", 1 if staged else 10**12)
    import_directory(engine, files, today=TODAY)
    for name in FILES:  # every file read and written again
        with (files / name).open("a", encoding="utf-8") as handle:
            handle.write("\n")
    state = snapshot(engine)
    writing, interrupted = threading.Event(), []
    real_reindex = importer._Writer._reindex

    def slow_reindex(self, table, indexes):  # the inspections file's writes, still going on
        if table == "inspections":
            writing.set()
            time.sleep(0.5)
        real_reindex(self, table, indexes)

    def progress(table, done, total):
        if table == "hazards" and writing.wait(5):
            interrupted.append(table)
            raise KeyboardInterrupt

    monkeypatch.setattr(importer._Writer, "_reindex", slow_reindex)
    with pytest.raises(KeyboardInterrupt):
        import_directory(engine, files, today=TODAY, progress=progress)

    assert interrupted == ["hazards"]
    assert snapshot(engine) == state
    assert not leftover_staging()
    assert not [t for t in threading.enumerate() if t.name == "riskgrade-import-writer"]


def test_a_failure_after_some_tables_are_written_leaves_the_database_unchanged(engine, files, monkeypatch):
    import_directory(engine, files, today=TODAY)
    state = snapshot(engine)
    for name in FILES:  # every file changed (a blank line): none is skipped, all are written again
        with (files / name).open("a", encoding="utf-8") as handle:
            handle.write("\n")
    (files / "inspections.csv").write_text("inspection_id,enterprise_id,inspected_on\nI9,E1,2024-05-01\n",
                                           encoding="utf-8")
    recorded = []
    real_record = importer._ImportLedger.record

    def record_then_fail(self, table, *args, **kwargs):
        real_record(self, table, *args, **kwargs)
        recorded.append(table)
        if table == "inspections":
            raise RuntimeError("the machine went down")

    monkeypatch.setattr(importer._ImportLedger, "record", record_then_fail)
    with pytest.raises(RuntimeError, match="went down"):
        import_directory(engine, files, today=TODAY)

    assert recorded == ["enterprises", "inspections"]
    assert snapshot(engine) == state


# ---------------------------------------------------------------------------------------------
# Re-imports
# ---------------------------------------------------------------------------------------------


def test_a_reimport_of_unchanged_files_writes_nothing(engine, files):
    first = import_directory(engine, files, today=TODAY)
    state = snapshot(engine)
    assert state["hazards"][0] == 2 and state["quarantine"][0] > 0  # some rows loaded, some refused

    again = import_directory(engine, files, today=TODAY)

    assert snapshot(engine) == state  # same rows, no duplicate, same quarantine, same record
    assert notes(again) == {"enterprises": True, "inspections": True, "hazards": True}
    assert again.to_table().equals(first.to_table())  # the same figures as the import that read them


def test_the_same_rows_in_other_bytes_are_read_again_and_change_nothing(engine, files):
    first = import_directory(engine, files, today=TODAY)
    state = snapshot(engine, ignore=("imported_at",))
    for name in FILES:
        with (files / name).open("a", encoding="utf-8") as handle:
            handle.write("\n\n")  # blank lines: other bytes, the same rows

    again = import_directory(engine, files, today=TODAY)

    assert notes(again) == {"enterprises": False, "inspections": False, "hazards": False}
    assert again.to_table().equals(first.to_table())
    after = snapshot(engine, ignore=("imported_at",))
    assert {k for k in state if after[k] != state[k]} == {"imported_files"}  # only the record of the bytes read


def test_a_changed_row_is_read_and_written(engine, files):
    import_directory(engine, files, today=TODAY)
    text = (files / "hazards.csv").read_text(encoding="utf-8")
    (files / "hazards.csv").write_text(text.replace("H1,E1,I1,2024-03-25,major", "H1,E1,I1,2024-03-25,general"),
                                       encoding="utf-8")

    again = import_directory(engine, files, today=TODAY)

    assert notes(again) == {"enterprises": True, "inspections": True, "hazards": False}
    hazards = load_tables(engine, ["hazards"])["hazards"].set_index("hazard_id")
    assert hazards.loc["H1", "level"] == "general"


def test_a_later_day_reads_again_a_file_that_had_future_rows(engine, files):
    import_directory(engine, files, today=TODAY)
    assert "H3" in set(quarantine_frame(engine, "hazards").row_key)  # found 2025-07-02, after TODAY

    later = import_directory(engine, files, today=date(2025, 7, 5))

    assert notes(later) == {"enterprises": True, "inspections": True, "hazards": False}
    assert set(load_tables(engine, ["hazards"])["hazards"].hazard_id) == {"H1", "H2", "H3"}
    assert "H3" not in set(quarantine_frame(engine, "hazards").row_key)
    earlier = import_directory(engine, files, today=date(2025, 7, 3))  # before hazards' last import, after the others'
    assert notes(earlier) == {"enterprises": True, "inspections": True, "hazards": False}
    assert not any(notes(import_directory(engine, files, today=date(2025, 6, 1))).values())


def test_a_changed_enterprises_file_reads_the_event_files_again(engine, files):
    import_directory(engine, files, today=TODAY)
    assert "I4" in set(quarantine_frame(engine, "inspections").row_key)  # E4 does not exist
    with (files / "enterprises.csv").open("a", encoding="utf-8") as handle:
        handle.write("E4,丁,hazchem,2001-01-01,\n")

    again = import_directory(engine, files, today=TODAY)

    assert notes(again) == {"enterprises": False, "inspections": False, "hazards": False}
    assert "I4" in set(load_tables(engine, ["inspections"])["inspections"].inspection_id)


def test_a_table_emptied_since_is_loaded_again(engine, files):
    import_directory(engine, files, today=TODAY)
    state = snapshot(engine)
    with engine.begin() as conn:
        conn.execute(CONTRACT_TABLES["hazards"].delete())

    again = import_directory(engine, files, today=TODAY)

    assert notes(again)["hazards"] is False
    assert snapshot(engine)["hazards"] == state["hazards"]


def test_events_read_again_name_the_quarantined_enterprise_of_a_skipped_file(engine, files):
    import_directory(engine, files, today=TODAY)  # E3 is refused (sector spaceport), so is I3
    reason = quarantine_frame(engine, "inspections").set_index("row_key").loc["I3", "reason"]
    assert "in quarantine (enterprises.csv line 4)" in reason
    with (files / "inspections.csv").open("a", encoding="utf-8") as handle:
        handle.write("I5,E1,2024-05-01,routine\n")

    again = import_directory(engine, files, today=TODAY)

    assert notes(again) == {"enterprises": True, "inspections": False, "hazards": True}
    assert quarantine_frame(engine, "inspections").set_index("row_key").loc["I3", "reason"] == reason


def test_a_file_under_another_name_or_table_is_read_again(engine, files, tmp_path):
    import_directory(engine, files, today=TODAY)
    other = tmp_path / "other"
    shutil.copytree(files, other)
    (other / "hazards.csv").rename(other / "隐患.csv")

    again = import_directory(engine, other, today=TODAY)

    assert notes(again) == {"enterprises": True, "inspections": True, "hazards": False}
    assert set(quarantine_frame(engine, "hazards").source_file) == {"隐患.csv"}
