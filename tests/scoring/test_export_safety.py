"""Exports that cannot attack the reader: formula-like text neutralised in every CSV and xlsx writer; whole files
or none (a full disk leaves nothing half-written)."""

from __future__ import annotations

import errno
import io
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.errors import OutputError
from scoring.cli import app
from scoring.exports import (
    FORMULA_TRIGGERS,
    neutralise_formulas,
    write_csv,
    write_csv_rows,
    write_json,
    write_xlsx,
)

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

runner = CliRunner()

EVIL = {
    "E000001": "=HYPERLINK(\"http://evil.example\",\"点我\")",
    "E000002": "+cmd|' /C calc'!A0",
    "E000003": "-2+3+cmd|' /C calc'!A0",
    "E000004": "@SUM(1+1)*cmd|' /C calc'!A0",
}


def test_formula_like_text_gets_a_quote_and_numbers_stay_numbers():
    frame = pd.DataFrame({
        "text": ["=1+1", "+86 10 1234", "-x", "@a", "\tTAB", "\rCR", "plain", "东城街道", None, "-3.5", "1e-3"],
        "number": [-1.5, 2.0, -3.0, 0.0, 1.0, -7.25, 3.0, 4.0, 5.0, 6.0, 7.0],
        "category": pd.Categorical(["=x", "ok"] * 5 + ["ok"]),
        "day": pd.to_datetime(["2025-01-01"] * 11),
    })
    safe = neutralise_formulas(frame)
    texts = safe["text"].tolist()
    assert texts[:8] + texts[9:] == ["'=1+1", "'+86 10 1234", "'-x", "'@a", "'\tTAB", "'\rCR", "plain", "东城街道",
                                     "-3.5", "1e-3"]
    assert pd.isna(texts[8])
    assert safe["number"].tolist() == frame["number"].tolist() and safe["number"].dtype == float
    assert safe["category"].tolist()[:2] == ["'=x", "ok"]
    assert safe["day"].equals(frame["day"])
    assert frame["text"].iloc[0] == "=1+1"  # the caller's frame is not changed


@given(st.text(max_size=12))
def test_no_cell_starts_a_formula_and_the_text_is_kept(text):
    (cell,) = neutralise_formulas(pd.DataFrame({"c": [text]}))["c"]
    if cell != text:
        assert cell == "'" + text and text.startswith(FORMULA_TRIGGERS)
    else:
        assert not text.startswith(FORMULA_TRIGGERS) or pd.to_numeric(text, errors="coerce") == pd.to_numeric(
            text, errors="coerce")  # untouched only when it is a plain number


_ROW = st.tuples(
    st.none() | st.text(max_size=10),  # text, formula-like, quotes, newlines and all
    st.none() | st.floats(allow_infinity=False),  # a nullable REAL (NaN written empty)
    st.none() | st.integers(-10**12, 10**12),  # a nullable INTEGER
    st.none() | st.dates(date(1900, 1, 1), date(2200, 12, 31)).map(date.isoformat),  # a DATE, as ISO text
)


@given(st.lists(_ROW, max_size=8))
def test_the_row_writer_writes_the_file_the_frame_writer_writes(rows):
    """The ranked list's CSV is written from the database's rows, the other exports from frames: one file."""
    columns = ["text", "real", "integer", "day"]
    frame = pd.DataFrame({
        "text": pd.Series([r[0] for r in rows], dtype=object),
        "real": pd.Series([np.nan if r[1] is None else r[1] for r in rows], dtype=float),
        "integer": pd.Series([pd.NA if r[2] is None else r[2] for r in rows], dtype="Int64"),
        "day": pd.Series(np.array([r[3] for r in rows], dtype="datetime64[D]"), dtype="datetime64[ns]"),
    })
    from_frame, from_rows = io.BytesIO(), io.BytesIO()
    write_csv(frame, from_frame)
    write_csv_rows(columns, rows, from_rows)
    assert from_rows.getvalue() == from_frame.getvalue()


def _assert_no_formula(path: Path, expected: str) -> None:
    """No cell of the workbook is a formula; ``expected`` is there as text with the quote in front."""
    book = openpyxl.load_workbook(path)
    seen = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                seen.append(cell.value)
    assert "'" + expected in seen


def test_xlsx_keeps_numbers_numeric(tmp_path):
    out = tmp_path / "t.xlsx"
    write_xlsx({"s": pd.DataFrame({"name": ["=1+2", "ok"], "delta": [-3.5, 2.0]})}, out)
    sheet = openpyxl.load_workbook(out).active
    assert [c.value for c in sheet["B"]] == ["delta", -3.5, 2]
    assert sheet["B2"].data_type == "n"
    _assert_no_formula(out, "=1+2")


@pytest.fixture(scope="module")
def evil_world(tmp_path_factory, world_csv, policy):  # noqa: F811
    """The batch world with townships and names an attacker chose, a bad inspection date that looks like a formula,
    imported and scored by one nightly run."""
    directory = tmp_path_factory.mktemp("evil")
    files = directory / "files"
    shutil.copytree(world_csv, files)
    enterprises = pd.read_csv(files / "enterprises.csv", dtype=str, keep_default_na=False)
    enterprises["name"] = "=" + enterprises["name"]  # every name: whichever the plan picks
    for eid, text in EVIL.items():
        enterprises.loc[enterprises["enterprise_id"] == eid, "township"] = text
        enterprises.loc[enterprises["enterprise_id"] == eid, "name"] = text
    enterprises.to_csv(files / "enterprises.csv", index=False)
    header = list(pd.read_csv(files / "inspections.csv", nrows=0).columns)
    with (files / "inspections.csv").open("a", encoding="utf-8") as handle:
        row = {name: "" for name in header}
        row.update(inspection_id="EVIL-1", enterprise_id="E000001", inspected_on="=1+1")
        handle.write(",".join(row[name] for name in header) + "\n")
    url = f"sqlite:///{directory / 'riskgrade.db'}"
    engine = import_world(url, files)
    from scoring.results.batch import run_nightly

    run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(directory))
    engine.dispose()
    return url, directory


def _cli(*args):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_rank_csv_and_xlsx_are_neutralised(evil_world, tmp_path):
    url, _ = evil_world
    out = tmp_path / "rank.csv"
    _cli("rank", "--db", url, "--format", "csv", "--out", str(out))
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    row = frame[frame["enterprise_id"] == "E000001"].iloc[0]
    assert row["township"] == "'" + EVIL["E000001"] and row["name"] == "'" + EVIL["E000001"]
    assert set(frame.loc[frame["enterprise_id"].isin(EVIL), "township"]) == {"'" + t for t in EVIL.values()}
    assert pd.to_numeric(frame["score"]).notna().all()  # numbers stay numbers
    stdout = _cli("rank", "--db", url, "--format", "csv").stdout  # standard output too
    assert "'" + EVIL["E000002"] in stdout
    xlsx = tmp_path / "rank.xlsx"
    _cli("rank", "--db", url, "--format", "xlsx", "--out", str(xlsx))
    _assert_no_formula(xlsx, EVIL["E000001"])

    from features.db import connect
    from scoring.results.ranking import export_frame, ranked_list

    by_frame = tmp_path / "frame.csv"  # the rows written as the frame of the same list would be
    write_csv(export_frame(ranked_list(connect(url, create=False))[1]), by_frame)
    assert out.read_bytes() == by_frame.read_bytes()


def test_plan_csv_and_xlsx_are_neutralised(evil_world, tmp_path):
    url, _ = evil_world
    period = f"{AS_OF:%Y-%m}"
    out = tmp_path / "plan.csv"
    _cli("plan", "--db", url, "--period", period, "--no-store", "--format", "csv", "--out", str(out))
    text = out.read_text(encoding="utf-8-sig")
    names = pd.read_csv(io.StringIO(text), dtype=str)["name"].dropna()
    assert not names.str.startswith(FORMULA_TRIGGERS).any()
    # every name was made formula-like ("=" + name, or an attacker's text): each one quoted
    assert len(names) > 0 and all(n.startswith("'=") or n[1:] in EVIL.values() for n in names)
    xlsx = tmp_path / "plan.xlsx"
    _cli("plan", "--db", url, "--period", period, "--no-store", "--format", "xlsx", "--out", str(xlsx))
    _assert_no_formula(xlsx, names.iloc[0][1:])


def test_quarantine_csv_and_xlsx_are_neutralised(evil_world, tmp_path):
    url, _ = evil_world
    out = tmp_path / "q.csv"
    _cli("quarantine", "--db", url, "--format", "csv", "--out", str(out))
    frame = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert "'=1+1" in set(frame["value"])
    xlsx = tmp_path / "q.xlsx"
    _cli("quarantine", "--db", url, "--format", "xlsx", "--out", str(xlsx))
    _assert_no_formula(xlsx, "=1+1")


def test_features_csv_is_neutralised(evil_world, tmp_path):
    url, _ = evil_world
    frame = pd.DataFrame({"enterprise_id": ["=E1"], "sector": ["-x"], "v": [-1.0]})
    assert neutralise_formulas(frame).iloc[0].tolist() == ["'=E1", "'-x", -1.0]  # what `features --out x.csv` uses
    out = tmp_path / "f.csv"
    _cli("features", "--db", url, "--as-of", str(AS_OF), "--out", str(out))
    written = pd.read_csv(out, encoding="utf-8-sig", dtype=str)
    assert not written.apply(lambda c: c.fillna("").str.startswith(("=", "+", "@"))).any().any()


def test_monitoring_report_escapes_html():
    from scoring.report import _e

    assert _e("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert _e('=HYPERLINK("x")') == "=HYPERLINK(&quot;x&quot;)"  # HTML is no spreadsheet: text as text


@pytest.mark.parametrize("writer", ["csv", "json", "xlsx"])
def test_disk_full_leaves_nothing_behind(tmp_path, monkeypatch, writer):
    out = tmp_path / f"out.{writer}"
    out.write_text("the previous export", encoding="utf-8")
    frame = pd.DataFrame({"a": ["x"] * 10})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if writer == "xlsx":
        monkeypatch.setattr("openpyxl.workbook.workbook.Workbook.save", full)
    else:
        monkeypatch.setattr(Path, "write_text", full)
    write = {"csv": lambda: write_csv(frame, out), "json": lambda: write_json(frame, out),
             "xlsx": lambda: write_xlsx({"s": frame}, out)}[writer]
    with pytest.raises(OutputError, match=rf"could not write {out}: No space left on device \(the disk is full"):
        write()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left
    assert out.read_text(encoding="utf-8") == "the previous export"  # the old export untouched
