"""Fuzz the import: Hypothesis-generated bureau files with every kind of defect, through the real ``riskgrade import``.

    .venv/bin/python benchmarks/fuzz_import.py [--cases 2000] [--db sqlite|postgresql] [--seed 1]
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--progress 100]

Each case writes a directory (or one workbook) of enterprises, inspections and sometimes hazards, mixing: encodings
(UTF-8, UTF-8 with BOM, GB18030, and undecodable bytes), English and Chinese headers and file/sheet names, codes and
Chinese labels and garbage values, dates in every accepted form and some impossible ones, quoted cells with commas,
quotes and newlines, a stray quote, NUL bytes (in cells and rarely in a header), formulas without a saved value
(xlsx), rows with too many fields, short rows, blank rows, bad optional cells (USCC, employees, future founded_on,
``x_*``), dangling enterprise ids, identical and conflicting duplicates, one workbook holding several tables, and a
data sheet named after no table. Then it runs ``scoring.cli.main`` in-process (``import DIR --db URL --today
2025-06-30``; a subprocess per case would be too slow) on a fresh database and checks:

- no traceback: every exception ends as ``SystemExit``;
- the exit code is a documented one for an import (0 success, 3 bad input; see :mod:`scoring.cli`);
- exit 3 prints one ``error:`` line and writes nothing;
- exit 0: for every file, rows read = loaded + quarantined + identical duplicates (held cells load with their row),
  the database holds exactly the loaded rows, and — unless a stray quote merged records — rows read equals the
  records the case wrote (blank ones aside): nothing is silently dropped.

Prints a progress line on stderr every ``--progress`` cases (cases done, exit codes so far, time a case), then
the number of cases, exit codes and defects seen, and the time taken. Hypothesis shrinks and prints the
smallest failing case if a check fails (exit status 1). Not a test; ``tests/benchmarks/test_fuzz_import.py`` runs
100 cases.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from features.contract import TABLE_BY_NAME  # noqa: E402

TODAY = "2025-06-30"
DOCUMENTED_EXITS = {0, 3}  # success, bad input data (scoring.cli docstring); 2 (usage) is never expected here

# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from("甲乙丙丁化工煤矿镇街道 abcXYZ-_,.\"'\n01239"), max_size=8)
_DATE_FORMS = ("{y:04d}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}.{m}.{d}", "{y}年{m}月{d}日", "{y:04d}{m:02d}{d:02d}",
               "{y:04d}-{m:02d}-{d:02d} 14:30:00", "{y}/{m}/{d} 8:05")


@st.composite
def date_cell(draw, *, future_ok: bool = True):
    kind = draw(st.sampled_from(["form"] * 12 + ["serial", "serial", "impossible", "garbage", "empty", "future"]))
    if kind == "form":
        day = draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2025, 6, 30)))
        return draw(st.sampled_from(_DATE_FORMS)).format(y=day.year, m=day.month, d=day.day)
    if kind == "serial":
        return str(draw(st.integers(32874, 45838)))  # 1990-01-01 .. 2025-06-30
    if kind == "impossible":
        return draw(st.sampled_from(["2024-02-30", "2024/13/1", "2023年2月29日", "2025-00-10", "1677/1/1"]))
    if kind == "garbage":
        return draw(st.sampled_from(["n/a", "去年", "3/5/2025", "2025-03", "#VALUE!"]))
    if kind == "future":
        return "2031-01-01" if future_ok else ""
    return ""


def choice_cell(values: tuple[str, ...], garbage: tuple[str, ...]):
    """Mostly good codes and labels; sometimes garbage or nothing."""
    return st.sampled_from(list(values) * 4 + list(garbage) + [""])


SECTOR = choice_cell(("gas", "coal_mine", "Hazchem", "煤矿", "危险化学品", "化工", "非煤矿山", "城镇燃气", "建材"),
                     ("spaceport", "矿"))
KIND = choice_cell(("routine", "random", "日常检查", "双随机", "四不两直", "联合检查"), ("inspection",))
LEVEL = choice_cell(("general", "major", "一般", "一般隐患", "重大隐患", "重大事故隐患"), ("严重",))
FLAG = choice_cell(("是", "否", "有", "无", "true", "0"), ("maybe",))
USCC = st.sampled_from(["", "", "91350100M000100Y43", "91350100M000100Y43", "91350100M000100Y44", "9135010",
                        "91350100M000100YI3"])
COUNT = st.one_of(st.integers(0, 5000).map(str), st.integers(0, 50).map(str),
                  st.sampled_from(["1,200", "ten", "-3", "2.5", "", "１２"]))
ENTERPRISE_IDS = st.sampled_from(["E1", "E2", "E3", "E4", "E5"] * 3 + ["", "E 6", "企业7"])
DANGLING_IDS = st.sampled_from(["E1", "E2", "E3", "E4", "E5"] * 3 + ["E404", "企业7"])


@st.composite
def with_defects(draw, value):
    """A cell, sometimes with a NUL byte or (xlsx) written as a formula without a saved value."""
    defect = draw(st.sampled_from(["none"] * 40 + ["nul", "formula"]))
    if defect == "nul":
        at = draw(st.integers(0, len(value)))
        return value[:at] + "\x00" + value[at:], "nul"
    if defect == "formula":
        return Formula(draw(st.sampled_from(["=1+1", "=TODAY()", "=A2&B2", "=SUM(C2:C3)"]))), "formula"
    return value, None


@dataclass(frozen=True)
class Formula:
    text: str


# ---------------------------------------------------------------------------------------------
# Tables and files
# ---------------------------------------------------------------------------------------------

_COLUMNS = {
    "enterprises": {"enterprise_id": ENTERPRISE_IDS, "name": _TEXT, "uscc": USCC, "sector": SECTOR,
                    "township": _TEXT, "employees": COUNT, "founded_on": date_cell(), "major_hazard_source": FLAG,
                    "x_note": _TEXT},
    "inspections": {"inspection_id": st.sampled_from(["I1", "I2", "I3", "I4", "I5", "I6", "I7", ""]),
                    "enterprise_id": DANGLING_IDS, "inspected_on": date_cell(), "department": _TEXT, "kind": KIND,
                    "n_inspectors": COUNT},
    "hazards": {"hazard_id": st.sampled_from(["H1", "H2", "H3", "H4"]), "enterprise_id": DANGLING_IDS,
                "inspection_id": st.sampled_from(["I1", "I2", ""]), "found_on": date_cell(), "level": LEVEL,
                "rectify_by": date_cell()},
}


@dataclass
class Table:
    name: str
    header: list[str]  # as written (English or Chinese names)
    rows: list[list]  # cells: str or Formula; a row may be longer than the header
    defects: set[str] = field(default_factory=set)


@st.composite
def table(draw, name: str) -> Table:
    spec = TABLE_BY_NAME[name]
    columns = list(_COLUMNS[name])
    keep = [c for c in columns if c.startswith("x_") or spec.column(c).required or draw(st.booleans())]
    header = [draw(st.sampled_from([c, *spec.column(c).zh])) if not c.startswith("x_") else c for c in keep]
    defects: set[str] = set()
    if any(h != c for h, c in zip(header, keep)):
        defects.add("chinese_header")
    rows = []
    for _ in range(draw(st.integers(0, 7))):
        row = []
        for column in keep:
            cell, defect = draw(with_defects(draw(_COLUMNS[name][column])))
            row.append(cell)
            if defect:
                defects.add(defect)
        shape = draw(st.sampled_from(["ok"] * 20 + ["extra", "short", "blank"]))
        if shape == "extra":
            row += draw(st.lists(st.sampled_from(["多余", "x", ""]), min_size=1, max_size=3))
            if len(row) > len(keep):
                defects.add("extra_fields")
        elif shape == "short" and len(row) > 1:
            row = row[:draw(st.integers(1, len(row) - 1))]
            defects.add("short_row")
        elif shape == "blank":
            row = [""] * len(keep)
            defects.add("blank_row")
        rows.append(row)
        if draw(rarely(9)) and rows:
            rows.append(list(rows[-1]))  # identical duplicate
            defects.add("duplicate")
    return Table(name, header, rows, defects)


@dataclass
class Case:
    tables: list[Table]
    layout: str  # "csv" / "xlsx" per file (see formats), or "workbook": one xlsx holding every table
    formats: dict[str, str]
    encodings: dict[str, str]
    file_names: dict[str, str]
    stray_quote: str | None = None
    nul_header: str | None = None
    unnamed_sheet: bool = False

    def defects(self) -> set[str]:
        found = set().union(*(t.defects for t in self.tables))
        found.update(f"encoding:{e}" for e in self.encodings.values() if e != "utf-8")
        found.update(f"format:{f}" for f in self.formats.values())
        if any(n != t for t, n in self.file_names.items()):
            found.add("chinese_file_name")
        for flag, name in ((self.stray_quote, "stray_quote"), (self.nul_header, "nul_header"),
                           (self.unnamed_sheet, "unnamed_sheet"), (self.layout == "workbook", "workbook")):
            if flag:
                found.add(name)
        return found


def rarely(n: int):
    """True about once in ``n + 1`` draws (Hypothesis favours small integers, so not ``integers(0, n) == 0``)."""
    return st.sampled_from([False] * n + [True])


@st.composite
def cases(draw) -> Case:
    names = ["enterprises", "inspections"] + (["hazards"] if draw(rarely(2)) else [])
    tables = [draw(table(name)) for name in names]
    layout = draw(st.sampled_from(["files"] * 8 + ["workbook"]))
    formats = {name: draw(st.sampled_from(["csv", "csv", "xlsx"])) for name in names}
    encodings = {name: draw(st.sampled_from(["utf-8"] * 3 + ["utf-8-sig", "gb18030", "gb18030"] * 2 + ["broken"]))
                 for name in names}
    encodings = {n: (e if e != "broken" or draw(rarely(3)) else "utf-8") for n, e in encodings.items()}
    file_names = {name: draw(st.sampled_from([name, *TABLE_BY_NAME[name].zh[:2]])) for name in names}
    csv_tables = [n for n in names if formats[n] == "csv" and layout == "files"]
    stray = draw(st.sampled_from(csv_tables)) if csv_tables and draw(rarely(15)) else None
    nul_header = draw(st.sampled_from(names)) if draw(rarely(40)) else None
    unnamed = layout == "workbook" and draw(rarely(5))
    return Case(tables, layout, formats, encodings, file_names, stray, nul_header, unnamed)


def _text(cell) -> str:
    return cell.text if isinstance(cell, Formula) else cell


def write_case(case: Case, directory: Path) -> Path:
    """Write the case's files; return what to import (the directory, or the one workbook)."""
    directory.mkdir(parents=True)
    if case.layout == "workbook":
        path = directory / "数据导出.xlsx"
        _write_workbook(path, [(t.name if i or not case.unnamed_sheet else "Sheet1", t, case)
                               for i, t in enumerate(case.tables)])
        return path
    for t in case.tables:
        name = case.file_names[t.name]
        if case.formats[t.name] == "xlsx":
            _write_workbook(directory / f"{name}.xlsx", [(TABLE_BY_NAME[t.name].zh[0], t, case)])
        else:
            (directory / f"{name}.csv").write_bytes(_csv_bytes(t, case))
    return directory


def _header(t: Table, case: Case) -> list[str]:
    header = list(t.header)
    if case.nul_header == t.name:
        header[-1] = header[-1][:1] + "\x00" + header[-1][1:]
    return header


def _csv_bytes(t: Table, case: Case) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_header(t, case))
    for row in t.rows:
        writer.writerow([_text(c) for c in row])
    text = buffer.getvalue()
    if case.stray_quote == t.name and "\n" in text:
        at = text.index("\n") + 1  # the first data record opens a quote it never closes (or closes too late)
        text = text[:at] + '"' + text[at:]
    encoding = case.encodings[t.name]
    if encoding == "broken":
        return text.encode("utf-8") + b"E9,\xff\xfe,gas\n"
    return text.encode(encoding)


def _write_workbook(path: Path, sheets: list[tuple[str, Table, Case]]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, t, case in sheets:
        sheet = book.create_sheet(title)
        sheet.append([h.replace("\x00", "") for h in _header(t, case)])  # XML cannot hold NUL: a NUL-free header
        for row in t.rows:
            sheet.append([_xlsx_value(c) for c in row])
    book.save(path)


def _xlsx_value(cell):
    if isinstance(cell, Formula):
        return cell.text  # openpyxl writes it as a formula, with no cached value
    cell = cell.replace("\x00", "")  # XML cannot hold NUL either
    if cell.isdigit() and cell.isascii() and not cell.startswith("0") and len(cell) < 9:
        return int(cell)  # counts and Excel serial dates as numbers
    if len(cell) == 10 and cell[4] == "-" and cell[7] == "-":
        with contextlib.suppress(ValueError):
            return datetime.strptime(cell, "%Y-%m-%d")  # a date cell
    return cell or None


def expected_records(t: Table, case: Case) -> int:
    """Records the file holds that the import must count as read (wholly blank ones are skipped)."""
    width = len(t.header)
    total = 0
    for row in t.rows:
        cells = [_text(c) for c in row]
        if case.formats.get(t.name) == "xlsx" or case.layout == "workbook":
            cells = [c.replace("\x00", "") for c in cells]
            if any(c.strip() for c in cells[width:]):
                total += 1  # a value right of the header: rejected, but read
                continue
            cells = cells[:width]
        elif len(cells) > width:
            total += 1
            continue
        total += any(c.strip() for c in cells)
    return total


# ---------------------------------------------------------------------------------------------
# Running one case through the CLI
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    summary: object | None
    engines: list


def run_cli(target: Path, url: str) -> Outcome:
    import features.db
    import features.importer
    from scoring import cli

    seen: dict = {"summary": None}
    engines: list = []
    real_import, real_connect = features.importer.import_directory, features.db.connect

    def observed_import(*args, **kwargs):
        seen["summary"] = real_import(*args, **kwargs)
        return seen["summary"]

    def observed_connect(*args, **kwargs):
        engine = real_connect(*args, **kwargs)
        engines.append(engine)
        return engine

    out, err = io.StringIO(), io.StringIO()
    argv = ["riskgrade", "import", str(target), "--db", url, "--today", TODAY]
    features.importer.import_directory, features.db.connect = observed_import, observed_connect
    old_argv, typer_app = sys.argv, cli.app
    code = None
    try:
        sys.argv = argv
        cli.app = _click_command(cli.app)  # what Typer builds on every call, built once (a sixth of a case's time)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except Exception:  # noqa: BLE001 - what the user would see as a traceback
                err.write(traceback.format_exc())
                code = None
    finally:
        sys.argv, cli.app = old_argv, typer_app
        features.importer.import_directory, features.db.connect = real_import, real_connect
    return Outcome(code, out.getvalue(), err.getvalue(), seen["summary"], engines)


_COMMANDS: dict[int, object] = {}


def _click_command(app):
    """The Click command Typer makes of ``app`` (``app()`` is ``get_command(app)()``), made once per app."""
    import typer.main

    if id(app) not in _COMMANDS:
        _COMMANDS[id(app)] = typer.main.get_command(app)
    return _COMMANDS[id(app)]


def contract_counts(url: str) -> dict[str, int]:
    import sqlalchemy as sa

    from features.schema import CONTRACT_TABLES

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            return {name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for name, table in CONTRACT_TABLES.items() if inspector.has_table(name)}
    finally:
        engine.dispose()


def check(case: Case, target: Path, outcome: Outcome, url: str) -> None:
    """The invariants of the module docstring; raises AssertionError with what went wrong."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr[-3000:]
    assert outcome.code in DOCUMENTED_EXITS, f"exit code {outcome.code}\n{outcome.stderr[-2000:]}"
    counts = contract_counts(url)
    if outcome.code == 3:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert lines and lines[0].startswith("error:"), outcome.stderr
        assert sum(counts.values()) == 0, f"refused import wrote rows: {counts}"
        return
    summary = outcome.summary
    assert summary is not None
    by_table = {t.name: t for t in case.tables}
    for item in summary.tables:
        assert item.rows_read == item.loaded + item.quarantined + item.identical_duplicates, item
        assert counts[item.table] == item.loaded, (item, counts)
        written = by_table[item.table]
        if case.stray_quote != item.table:
            assert item.rows_read == expected_records(written, case), (item, expected_records(written, case))


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


class Databases:
    """One database per run, emptied before every case (the import writes the contract tables, ``truth``,
    ``quarantine`` and ``imported_files`` only): a SQLite file, or a throw-away PostgreSQL database."""

    def __init__(self, kind: str, pg_url: str, scratch: Path):
        import sqlalchemy as sa

        self.kind, self.n = kind, 0
        self._admin = None
        if kind == "postgresql":
            self._admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
            self._name = f"riskgrade_fuzz_{os.getpid()}"
            with self._admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{self._name}"'))
            self.url = pg_url.rsplit("/", 1)[0] + f"/{self._name}"
        else:
            self.url = f"sqlite:///{scratch / 'fuzz.db'}"
        self._engine = sa.create_engine(self.url)

    def fresh(self) -> str:
        import sqlalchemy as sa

        from features.importer import imported_files
        from features.schema import CONTRACT_TABLES, quarantine, truth

        self.n += 1
        inspector = sa.inspect(self._engine)
        with self._engine.begin() as conn:
            for table in (*CONTRACT_TABLES.values(), truth, quarantine, imported_files):
                if inspector.has_table(table.name):
                    conn.execute(table.delete())
        return self.url

    def close(self) -> None:
        self._engine.dispose()
        if self._admin is not None:
            import sqlalchemy as sa

            with self._admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
            self._admin.dispose()


def fuzz(n_cases: int, db: str, seed_value: int, pg_url: str, progress_every: int = 0) -> dict:
    """Run ``n_cases`` cases; return the tallies (raises AssertionError, after shrinking, if a case fails).
    ``progress_every`` > 0: one line on stderr every that many cases (cases done, exit codes, rate)."""
    began = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="riskgrade-fuzz-"))
    databases = Databases(db, pg_url, scratch)
    tally = {"cases": 0, "exits": Counter(), "defects": Counter(), "rows_read": 0, "loaded": 0, "quarantined": 0,
             "held_cells": 0, "refusals": Counter()}

    @seed(seed_value)
    @settings(max_examples=n_cases, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=cases())
    def one(case: Case) -> None:
        directory = scratch / f"files{databases.n + 1}"
        url = databases.fresh()
        try:
            target = write_case(case, directory)
            outcome = run_cli(target, url)
            for engine in outcome.engines:
                engine.dispose()
            check(case, target, outcome, url)
        except BaseException:
            # Hypothesis replays the shrunk case last: the copy left is the smallest failing one
            failed = Path(tempfile.gettempdir()) / "riskgrade-fuzz-failed"
            shutil.rmtree(failed, ignore_errors=True)
            if directory.exists():
                shutil.copytree(directory, failed)
            print(f"  a failing case's files: {failed}", file=sys.stderr, flush=True)
            raise
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        tally["cases"] += 1
        tally["exits"][outcome.code] += 1
        tally["defects"].update(case.defects())
        if outcome.code == 3:
            tally["refusals"][_refusal_kind(outcome.stderr)] += 1
        if outcome.summary is not None and outcome.code == 0:
            for item in outcome.summary.tables:
                tally["rows_read"] += item.rows_read
                tally["loaded"] += item.loaded
                tally["quarantined"] += item.quarantined
                tally["held_cells"] += item.held_cells
        if progress_every and tally["cases"] % progress_every == 0:
            seconds = time.perf_counter() - began
            exits = ", ".join(f"exit {code}: {n}" for code, n in sorted(tally["exits"].items()))
            print(f"  {tally['cases']:,}/{n_cases:,} cases, {seconds:.0f} s ({seconds / tally['cases'] * 1000:.0f} ms "
                  f"a case), {exits}; rows read {tally['rows_read']:,}", file=sys.stderr, flush=True)

    try:
        one()
    finally:
        databases.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return tally


_REFUSALS = (("not UTF-8", "undecodable file"), ("cannot be parsed as CSV", "CSV quoting"),
             ("NUL byte", "NUL in a header"), ("data sheets", "sheet named after no table"),
             ("appears", "column named twice"), ("required column", "required column missing"),
             ("cannot tell which table", "table of a file unknown"), ("was refused", "every row refused"))


def _refusal_kind(stderr: str) -> str:
    return next((kind for fragment, kind in _REFUSALS if fragment in stderr), stderr.strip()[:80])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pg-url", default=os.environ.get("RISKGRADE_TEST_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--progress", type=int, default=100, metavar="N",
                        help="a progress line on stderr every N cases (0: none; default 100)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    began = time.perf_counter()
    try:
        tally = fuzz(args.cases, args.db, args.seed, args.pg_url, args.progress)
    except AssertionError as failure:
        print(f"FAILED after shrinking: {failure}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - began
    exits = ", ".join(f"exit {code}: {n}" for code, n in sorted(tally["exits"].items()))
    print(f"fuzz_import on {args.db}: {tally['cases']} cases in {seconds:.0f} s "
          f"({seconds / max(tally['cases'], 1) * 1000:.0f} ms a case), seed {args.seed}")
    print(f"  0 tracebacks, 0 undocumented exit codes; {exits}")
    print(f"  read = loaded + quarantined + identical duplicates in every file of every case: rows read "
          f"{tally['rows_read']:,}, loaded {tally['loaded']:,} (with {tally['held_cells']:,} cells held back), "
          f"quarantined {tally['quarantined']:,}")
    print("  refused whole (exit 3): " + ", ".join(f"{kind} {n}" for kind, n in tally["refusals"].most_common()))
    print("  defects seen (cases): " + ", ".join(f"{name} {n}" for name, n in sorted(tally["defects"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
