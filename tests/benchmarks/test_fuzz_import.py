"""The import fuzz (benchmarks/fuzz_import.py) at 100 cases: Hypothesis-generated bureau files with every defect, through
the real ``riskgrade import``; no traceback, only documented exit codes, read = loaded + quarantined + identical
duplicates in every file. The 2,000-case (SQLite) and 500-case (PostgreSQL) runs are made by hand (see the script).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_import.py"


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_import", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is being made
    spec.loader.exec_module(module)
    return module


def test_a_hundred_fuzzed_bureau_imports_hold_every_invariant(capsys):
    assert _fuzz_module().main(["--cases", "100", "--db", "sqlite", "--seed", "7"]) == 0

    out = capsys.readouterr().out
    assert re.search(r"fuzz_import on sqlite: 100 cases in \d+ s", out), out
    assert "0 tracebacks, 0 undocumented exit codes" in out
    read, loaded, quarantined = (int(n.replace(",", "")) for n in re.search(
        r"rows read ([\d,]+), loaded ([\d,]+) \(with [\d,]+ cells held back\), quarantined ([\d,]+)", out).groups())
    assert 0 < loaded <= read and quarantined > 0  # the cases did load rows, and did refuse some
    for defect in ("chinese_header", "encoding:gb18030", "nul", "formula", "extra_fields", "duplicate"):
        assert re.search(rf"\b{re.escape(defect)} \d+", out), defect


def test_the_check_catches_a_silently_dropped_row(tmp_path):
    fuzz = _fuzz_module()
    case = fuzz.Case(
        tables=[fuzz.Table("enterprises", ["enterprise_id", "sector"], [["E1", "gas"], ["E2", "gas"]]),
                fuzz.Table("inspections", ["inspection_id", "enterprise_id", "inspected_on"], [])],
        layout="files", formats={"enterprises": "csv", "inspections": "csv"},
        encodings={"enterprises": "utf-8", "inspections": "utf-8"},
        file_names={"enterprises": "enterprises", "inspections": "inspections"})
    target = fuzz.write_case(case, tmp_path / "files")
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    outcome = fuzz.run_cli(target, url)
    for engine in outcome.engines:
        engine.dispose()
    fuzz.check(case, target, outcome, url)  # holds

    case.tables[0].rows.append(["E3", "gas"])  # a row the import never saw
    with pytest.raises(AssertionError, match=r"rows_read=2"):
        fuzz.check(case, target, outcome, url)
