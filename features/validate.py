"""Row validation against the data contract (DESIGN.md §3), one table and one chunk at a time.

A :class:`TableValidator` checks the rows of one file, chunk after chunk, and splits every chunk into
*good rows* (typed: canonical dtypes, indexed by line number) and *issues* (one per bad cell: file, line,
column, offending value, a readable reason and the :data:`RULES` entry that failed). Everything is derived
from :data:`features.contract.TABLES`: column kinds, nullability, choices, minimums, references and the
table checks named in each :class:`~features.contract.TableSpec`. Nothing here reads a file or a database;
:mod:`features.importer` and :func:`features.store.read_directory` do the I/O and share this code path.

How a cell is read
    Cells are stripped; an empty cell is a missing value. Dates are ISO ``YYYY-MM-DD``. Counts are whole
    numbers (``3`` or ``3.0``) that fit the database's 32-bit integers. Booleans accept ``true/false``,
    ``1/0``, ``yes/no`` and ``是/否`` (any case). Category codes are compared in lower case; USCCs and credit
    grades are stored upper-case.

What sends a row to quarantine (:data:`RULES`)
    Parsing (``bad_date``, ``bad_number``, ``bad_bool``) is vectorised pandas; the per-column domain checks
    (``missing``, ``not_a_choice``, ``below_minimum``, ``too_long``) are a pandera schema validated lazily, so
    every failing cell of a chunk is reported at once; cross-column and cross-table checks are vectorised
    functions (:data:`ROW_CHECKS` for the checks a ``TableSpec`` names, plus ``dangling_reference``,
    ``future_date`` and ``recorded_before_event`` for every event table). A row with several problems yields
    one issue per problem column.

Duplicate keys (decision)
    The first copy of a key in a file is the record. A later copy with *identical* content is harmless: it
    is dropped and counted (``identical_duplicates``). A later copy with *different* content is quarantined
    (rule ``duplicate_key``, naming the first copy's line): we never guess which version is right — fix the
    file and re-import, the corrected row then replaces its quarantined twin. A key is claimed by its first
    copy even when that copy is itself quarantined. Only compact key hashes are kept across chunks, so
    memory stays bounded (about 28 bytes per key).

Accident grades
    ``grade`` must equal the grade Decree 493 gives for ``deaths``, ``serious_injuries`` and
    ``direct_loss_yuan`` (:func:`features.contract.accident_grade`); when some of those are missing, the given
    grade must be at least the one implied by the known values. An empty grade is derived from the known
    values (missing ones counted as zero) and stored.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute
import sqlalchemy as sa

from features.contract import (
    ACCIDENT_GRADES,
    BOOL_WORDS,
    CREDIT_GRADES,
    STANDARDIZATION_LEVELS,
    STANDARDIZATION_LOOKUP,
    TABLE_BY_NAME,
    TRUTH_TABLE,
    Column,
    TableSpec,
    accident_grade,
    label_lookup,
    normalise_name,
)
from features.errors import DataError, MissingInputError
from features.frames import canonical_dtype, is_in, spec_for
from features.schema import CONTRACT_TABLES, quarantine
from features.schema import truth as _TRUTH_SQL
from features.uscc import USCC_CHARSET, USCC_LENGTH, USCC_WEIGHTS, uscc_check_char

__all__ = [
    "BOOL_WORDS",
    "parse_dates",
    "ISSUE_COLUMNS",
    "ROW_CHECKS",
    "RULES",
    "ChunkResult",
    "RowCheck",
    "TableValidator",
    "ValidationContext",
    "check_header",
    "ignored_columns",
    "key_columns",
]

#: Columns of the issues frame (the quarantine table's columns, minus its id and timestamp).
ISSUE_COLUMNS = ("table_name", "source_file", "line", "column_name", "value", "reason", "rule", "row_key", "raw")

_INT_MAX = 2**31 - 1  # sa.Integer is 32-bit on PostgreSQL
_DATE_MIN = pd.Timestamp("1700-01-01")  # inside datetime64[ns]; older dates are typing errors
_DATE_MAX = pd.Timestamp("2261-12-31")
_HASH_KEYS = ("riskgrade-key-01", "riskgrade-key-02")  # two independent 64-bit hashes = 128 bits per key


# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------


def key_columns(table: str) -> tuple[str, ...]:
    """The columns forming ``table``'s key (its primary key in :mod:`features.schema`)."""
    return tuple(c.name for c in _sql_table(table).primary_key.columns)


def check_header(table: str, header: Sequence[str], source_file: str, *,
                 file_header: Sequence[str] | None = None) -> tuple[str, ...]:
    """Check a file's header against the contract; return warnings about the columns that will be ignored.

    ``header``: contract column names (:func:`features.sources.canonical_header` maps Chinese ones);
    ``file_header``: the names as the file has them, for the messages. Raises
    :class:`~features.errors.MissingInputError` naming the file and the column (and its Chinese name) when a
    required column is absent, and :class:`~features.errors.DataError` when a column name appears twice.
    ``x_*`` columns are kept on tables with an ``extra_prefix`` (enterprises); other unknown columns are
    ignored with a warning.
    """
    spec = spec_for(table)
    names = [str(name).strip() for name in header]
    counts = Counter(names)
    repeated = [name for name, n in counts.items() if n > 1]
    if repeated:
        raise DataError(f"{source_file}: column {repeated[0]!r} appears {counts[repeated[0]]} times in the header")
    missing = [c for c in spec.columns if c.required and c.name not in counts]
    if missing:
        also = f" (also missing: {', '.join(c.name for c in missing[1:])})" if len(missing) > 1 else ""
        zh = f" ({missing[0].zh[0]})" if missing[0].zh else ""
        shown = [str(h).strip() for h in (file_header if file_header is not None else header)]
        raise MissingInputError(
            f"{source_file}: required column {missing[0].name!r}{zh} is missing{also}; "
            f"the header has: {', '.join(shown) or '(nothing)'}"
        )
    return tuple(f"{source_file}: column {name!r} is not part of the contract and was ignored"
                 for name in ignored_columns(table, names))


def ignored_columns(table: str, header: Sequence[str]) -> tuple[str, ...]:
    """The columns of ``header`` that are neither contract columns nor kept extras (``x_*`` on enterprises)."""
    spec = spec_for(table)
    known = set(spec.column_names)
    return tuple(name for name in (str(h).strip() for h in header)
                 if name not in known and not (spec.extra_prefix and name.startswith(spec.extra_prefix)))


# ---------------------------------------------------------------------------------------------
# Context and results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationContext:
    """What a table's rows are checked against besides their own values.

    ``known_enterprises``: enterprise ids an ``enterprise_id`` may refer to (the good rows of the
    enterprises file, plus those already in the database when importing); ``None`` skips the check.
    ``quarantined_enterprises`` maps ids whose enterprise row was quarantined to its line, for a clearer
    reason. ``today``: later event and knowledge dates are refused. ``uscc_allowlist``: codes accepted
    despite failing the check character.
    """

    today: date
    known_enterprises: pd.Index | None = None
    quarantined_enterprises: Mapping[str, int] = field(default_factory=dict)
    enterprises_source: str = "the enterprises file"
    in_database: bool = False
    uscc_allowlist: frozenset[str] = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "uscc_allowlist", frozenset(c.strip().upper() for c in self.uscc_allowlist))
        if self.known_enterprises is not None:
            known = pd.Index(self.known_enterprises, dtype="str").dropna().unique()
            object.__setattr__(self, "known_enterprises", known)
            arrow = pyarrow.array(known.to_numpy(dtype=object), pyarrow.large_string())
            object.__setattr__(self, "_known_arrow", arrow)

    def is_known_enterprise(self, ids: pd.Series) -> pd.Series:
        """Whether each id is among :attr:`known_enterprises` (all True when no check is configured)."""
        if self.known_enterprises is None:
            return pd.Series(True, index=ids.index)
        values = pyarrow.array(ids.to_numpy(dtype=object, na_value=None), pyarrow.large_string())
        found = pyarrow.compute.is_in(values, value_set=self._known_arrow)  # C++ hash set: 200k ids in ~10 ms
        return pd.Series(found.to_numpy(zero_copy_only=False), index=ids.index).fillna(False).astype(bool)


@dataclass(frozen=True)
class ChunkResult:
    """One validated chunk.

    ``good``: rows that passed, contract columns in canonical dtypes (plus ``x_*`` extras as text),
    indexed by line; a held cell (a bad optional value) is empty there. ``issues``: one row per problem,
    columns :data:`ISSUE_COLUMNS`. ``first_keys``: the row keys seen for the first time in this file in this
    chunk (good or not), so the importer can replace their quarantined twins from earlier imports.
    ``quarantined_lines``: the lines refused as a whole; ``held_cells``: issues whose row loaded without the
    value. ``rows_read`` = ``len(good)`` + ``len(quarantined_lines)`` + ``identical_duplicates``.
    """

    good: pd.DataFrame
    issues: pd.DataFrame
    first_keys: pd.Series
    rows_read: int
    identical_duplicates: int
    quarantined_lines: pd.Index = field(default_factory=lambda: pd.Index([], dtype="int64"))
    held_cells: int = 0

    @property
    def quarantined_rows(self) -> int:
        return len(self.quarantined_lines)


# ---------------------------------------------------------------------------------------------
# Table checks named in TableSpec.checks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowCheck:
    """A check across columns of one row, named in ``TableSpec.checks``.

    ``normalise`` (optional) runs first and may fill or normalise the columns listed in ``fills``;
    ``find`` returns the issues (see :func:`_issues`).
    """

    name: str
    description: str
    find: Callable[[pd.DataFrame, ValidationContext], pd.DataFrame]
    normalise: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    fills: tuple[str, ...] = ()


def _order_check(name: str, earlier: str, later: str, description: str) -> RowCheck:
    def find(frame: pd.DataFrame, _context: ValidationContext) -> pd.DataFrame:
        bad = frame[later] < frame[earlier]
        return _issues(bad, later, name, lambda a, b: f"{later} {_fmt(a)} is before {earlier} {_fmt(b)}",
                       frame[later], frame[earlier])

    return RowCheck(name, description, find)


def _find_exam(frame: pd.DataFrame, _context: ValidationContext) -> pd.DataFrame:
    bad = frame["exam_passed"] > frame["exam_takers"]
    return _issues(bad, "exam_passed", "exam_passed_le_takers",
                   lambda p, t: f"exam_passed {_fmt(p)} is more than exam_takers {_fmt(t)}",
                   frame["exam_passed"], frame["exam_takers"])


def _normalise_uscc(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(uscc=frame["uscc"].str.upper())


def _find_uscc(frame: pd.DataFrame, context: ValidationContext) -> pd.DataFrame:
    codes = frame["uscc"]
    present = codes.notna()
    bad = present & ~_valid_usccs(codes)
    if context.uscc_allowlist and bad.any():
        bad &= ~codes.isin(context.uscc_allowlist)

    def reason(code: str) -> str:
        hint = "; add it to the allow-list if the code is genuine"
        if len(code) != USCC_LENGTH:
            return f"USCC {code!r} has {len(code)} characters, not {USCC_LENGTH}{hint}"
        strange = [c for c in code if c not in USCC_CHARSET]
        if strange:
            return f"USCC {code!r} contains {strange[0]!r}, not a USCC character (0-9, A-Y without I O S V Z){hint}"
        return (f"USCC {code!r} fails its check character (GB 32100-2015): expected "
                f"{uscc_check_char(code[:17])!r} at the end, got {code[-1]!r}{hint}")

    return _issues(bad, "uscc", "uscc", reason, codes)


_USCC_VALUE = np.full(128, -1, dtype=np.int64)  # ASCII code -> position in the USCC charset (-1: not a USCC char)
_USCC_VALUE[np.frombuffer(USCC_CHARSET.encode("ascii"), dtype=np.uint8)] = np.arange(len(USCC_CHARSET))


def _valid_usccs(codes: pd.Series) -> np.ndarray:
    """:func:`features.uscc.is_valid_uscc` of every cell, vectorised (missing cells count as valid): the
    18-character ASCII codes as a byte matrix, the check character's weighted sum (GB 32100-2015) in numpy."""
    ok = np.ones(len(codes), dtype=bool)
    text = codes.to_numpy(dtype=object, na_value=None)
    present = codes.notna().to_numpy()
    if not present.any():
        return ok
    values = pd.Series(text[present], dtype=object)
    shaped = values.map(lambda c: len(c) == USCC_LENGTH and c.isascii()).to_numpy(dtype=bool)
    verdict = np.zeros(len(values), dtype=bool)
    if shaped.any():
        matrix = np.frombuffer("".join(values[shaped]).encode("ascii"), dtype=np.uint8).reshape(-1, USCC_LENGTH)
        digits = _USCC_VALUE[np.minimum(matrix, 127)]
        charset_ok = (digits >= 0).all(axis=1)
        total = (digits[:, :-1] * np.asarray(USCC_WEIGHTS, dtype=np.int64)).sum(axis=1)
        verdict[shaped] = charset_ok & ((31 - total % 31) % 31 == digits[:, -1])
    ok[present] = verdict
    return ok


def _normalise_credit(frame: pd.DataFrame) -> pd.DataFrame:
    """Credit grades upper-case; standardization levels given as 一级/二级/三级 (or 1级 …) as 1/2/3."""
    is_grade = (frame["kind"] == "credit_grade").fillna(False)
    value = frame["value"].where(~is_grade, frame["value"].str.upper())
    is_level = ((frame["kind"] == "standardization") & value.notna()).fillna(False)
    if is_level.any():
        levels = value[is_level]
        value = value.where(~is_level, levels.map(lambda v: STANDARDIZATION_LOOKUP.get(normalise_name(v), v)))
    return frame.assign(value=value.astype("str"))


def _find_credit(frame: pd.DataFrame, _context: ValidationContext) -> pd.DataFrame:
    domains = {"standardization": STANDARDIZATION_LEVELS, "credit_grade": CREDIT_GRADES}
    found = []
    for kind, allowed in domains.items():
        bad = (frame["kind"] == kind) & ~frame["value"].isin(allowed)
        found.append(_issues(bad, "value", "credit_value",
                             lambda v, k=kind, a=allowed: f"a {k} record needs a value among {', '.join(a)}, "
                                                          f"got {_quote(v)}", frame["value"]))
    return pd.concat(found)


_GRADE_RANK = {grade: rank for rank, grade in enumerate(ACCIDENT_GRADES)}
_CASUALTIES = ("deaths", "serious_injuries", "direct_loss_yuan")


def _implied_grade(frame: pd.DataFrame) -> pd.Series:
    """Decree 493 grade from the known casualties and loss (missing counted as zero)."""
    values = [frame[c].astype("float64").fillna(0).to_numpy() for c in _CASUALTIES]
    grades = np.frompyfunc(accident_grade, 3, 1)(*values) if len(frame) else np.array([], dtype=object)
    return pd.Series(grades, index=frame.index, dtype="str")


def _normalise_accident(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(grade=frame["grade"].fillna(_implied_grade(frame)))


def _find_accident(frame: pd.DataFrame, _context: ValidationContext) -> pd.DataFrame:
    implied = _implied_grade(frame)
    given_rank = frame["grade"].map(_GRADE_RANK).astype("float64")
    implied_rank = implied.map(_GRADE_RANK).astype("float64")
    known = frame[list(_CASUALTIES)].notna().all(axis=1)
    exact_bad = known & (given_rank != implied_rank) & given_rank.notna()
    floor_bad = ~known & (given_rank < implied_rank)

    def reason(grade, deaths, injuries, loss, expected, all_known):
        facts = f"deaths={_fmt(deaths)}, serious_injuries={_fmt(injuries)}, direct_loss_yuan={_fmt(loss)}"
        need = repr(expected) if all_known else f"at least {expected!r}"
        return f"grade {grade!r} is inconsistent with {facts}: Decree 493 gives {need}"

    return _issues(exact_bad | floor_bad, "grade", "accident_grade", reason, frame["grade"],
                   *(frame[c] for c in _CASUALTIES), implied, known)


#: The checks ``TableSpec.checks`` may name, by name.
ROW_CHECKS: dict[str, RowCheck] = {
    check.name: check
    for check in (
        RowCheck("uscc", "invalid USCC check character (not allow-listed)", _find_uscc, _normalise_uscc),
        _order_check("closed_after_founded", "founded_on", "closed_on", "closed_on before founded_on"),
        RowCheck("exam_passed_le_takers", "more exams passed than taken", _find_exam),
        _order_check("rectified_after_found", "found_on", "rectified_on", "rectified_on before found_on"),
        _order_check("deadline_after_found", "found_on", "rectify_by", "rectify_by before found_on"),
        _order_check("valid_to_after_from", "valid_from", "valid_to", "valid_to before valid_from"),
        _order_check("active_to_after_from", "active_from", "active_to", "active_to before active_from"),
        RowCheck("credit_value", "credit value not valid for its kind", _find_credit, _normalise_credit),
        RowCheck("accident_grade", "grade inconsistent with casualties and loss", _find_accident,
                 _normalise_accident, fills=("grade",)),
    )
}

#: Every rule a quarantined cell can fail, with a short description (the quarantine's ``rule`` column).
RULES: dict[str, str] = {
    "bad_date": "unparseable date (expected ISO YYYY-MM-DD)",
    "bad_number": "not a number, a fraction where a count is expected, or too large",
    "bad_bool": "not a yes/no value",
    "missing": "no value in a column that requires one",
    "not_a_choice": "value not among the allowed codes",
    "below_minimum": "negative count or amount",
    "too_long": "longer than the database column allows",
    "dangling_reference": "enterprise_id not among the enterprises",
    "duplicate_key": "a later copy of a key, with different content",
    "future_date": "event or knowledge date after today",
    "recorded_before_event": "recorded_on earlier than the event date",
    "nul_byte": "a NUL byte (\\x00) in a cell: a damaged file or a binary value",
    "too_many_fields": "a row with more fields than the header: not read into columns",
    "formula_without_value": "an Excel formula cell without a saved value",
    "unknown_inspector": "an inspector id or name not on the roster (features.inspectors)",
    "ambiguous_inspector": "a name shared by several inspectors of the department (features.inspectors)",
    **{name: check.description for name, check in ROW_CHECKS.items()},
}

_unknown = {name for spec in (*TABLE_BY_NAME.values(), TRUTH_TABLE) for name in spec.checks} - ROW_CHECKS.keys()
if _unknown:  # pragma: no cover - guards the contract against typos
    raise ImportError(f"features.contract names checks that features.validate lacks: {sorted(_unknown)}")


# ---------------------------------------------------------------------------------------------
# Cell parsers, by column kind
# ---------------------------------------------------------------------------------------------


class _Parsed(NamedTuple):
    values: pd.Series  # canonical dtype, NA where missing or bad
    bad: pd.Series  # bool: present but unreadable
    rule: str
    reason: Callable[[str], str]


def _parse_text(cells: pd.Series, column: Column) -> _Parsed:
    return _Parsed(cells, _none(cells), "", str)


@functools.cache
def _code_lookup(column: Column) -> dict[str, str]:
    return label_lookup(column.labels)


def _parse_category(cells: pd.Series, column: Column) -> _Parsed:
    """Codes in any case; labels (煤矿, 重大隐患, 日常检查 …) mapped to their code. The words looked up one by
    one are only the distinct cells that are not codes already (none, for files written with codes)."""
    lowered = cells.str.lower()
    if not column.labels:
        return _Parsed(lowered, _none(cells), "", str)
    other = cells.notna().to_numpy() & ~is_in(lowered, column.choices)
    if other.any():
        lookup = _code_lookup(column)
        words = lowered[other]
        mapped = {w: lookup.get(normalise_name(w)) for w in words.unique()}
        found = words.map(lambda w: mapped[w] or w)  # unknown words stay, for the not_a_choice message
        lowered = lowered.copy()
        lowered[other] = found.astype("str")
    return _Parsed(lowered, _none(cells), "", str)


_DATE_REASON = "expected a date like 2025-03-25 (or 2025/3/25, 2025.3.25, 2025年3月25日, an Excel serial), got {!r}"
_DATE_FORMS = re.compile(
    r"^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:[\sT]+\d{1,2}(?::\d{1,2}(?::\d{1,2}(?:\.\d+)?)?|时(?:\d{1,2}分(?:\d{1,2}秒)?)?)\s*)?$"
    r"|^(?P<cy>\d{4})(?P<cm>\d{2})(?P<cd>\d{2})$"
    r"|^(?P<serial>\d{5})(?:\.\d+)?$"
)
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")  # serial 1 = 1900-01-01, counting Excel's phantom 1900-02-29


def _parse_date(cells: pd.Series, column: Column | None) -> _Parsed:
    """ISO dates first (vectorised); only the cells that are not ISO are tried against the other forms:
    ``2025/3/5``, ``2025.3.5``, ``2025年3月5日`` (each with an optional time), ``20250305`` and Excel serial
    numbers (5 digits, the fraction a time of day). A time of day is dropped."""
    codes, distinct = _factorized(cells)  # a file holds a few thousand distinct days: parse each once
    parsed = pd.to_datetime(distinct, format="%Y-%m-%d", errors="coerce")
    rest = parsed.isna()
    if rest.any():
        parsed = parsed.copy()
        parsed[rest] = _other_dates(distinct[rest])
    fine = ((parsed >= _DATE_MIN) & (parsed <= _DATE_MAX)).to_numpy()
    day = np.append(parsed.where(fine).astype("datetime64[ns]").to_numpy(), np.datetime64("NaT", "ns"))
    values = pd.Series(day[codes], index=cells.index, dtype="datetime64[ns]")  # code -1 (missing): NaT
    bad = pd.Series(np.append(~fine, False)[codes], index=cells.index)
    return _Parsed(values, bad, "bad_date", _DATE_REASON.format)


def parse_dates(cells: pd.Series) -> pd.Series:
    """Text cells as days by the contract's date forms (see :func:`_parse_date`: ISO, ``2025/3/5``, ``2025.3.5``,
    ``2025年3月5日``, ``20250305``, an Excel serial); NaT where a cell is missing, fits none or is out of range.
    For files other than the contract tables (a planner's draft plan) that should read dates as the import does."""
    text = cells.map(lambda v: None if pd.isna(v) else str(v)).astype("str")
    parsed = _parse_date(text, None)
    return parsed.values.where(~parsed.bad)


def _factorized(cells: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(code of each cell, -1 where missing; the distinct cells as text), by Arrow's hash table."""
    encoded = _arrow_text(cells).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, pd.Series(encoded.dictionary.to_pylist(), dtype="str")


def _other_dates(cells: pd.Series) -> pd.Series:
    """The non-ISO forms of :func:`_parse_date` (NaT where none fits), on the distinct cells."""
    distinct = pd.Series(cells.unique())
    folded = distinct.map(lambda text: unicodedata.normalize("NFKC", text).strip()).astype("str")
    parts = folded.str.extract(_DATE_FORMS)
    numbers = parts.drop(columns="serial").apply(pd.to_numeric, errors="coerce")
    plain = pd.to_datetime(pd.DataFrame({"year": numbers["y"], "month": numbers["m"], "day": numbers["d"]}),
                           errors="coerce")
    compact = pd.to_datetime(pd.DataFrame({"year": numbers["cy"], "month": numbers["cm"], "day": numbers["cd"]}),
                             errors="coerce")
    serial = pd.to_numeric(parts["serial"], errors="coerce")
    excel = _EXCEL_EPOCH + pd.to_timedelta(serial, unit="D")
    found = plain.fillna(compact).fillna(excel)
    # Outside the accepted range the day is bad anyway (and a year before 1678 does not fit datetime64[ns]).
    found = found.where((found >= _DATE_MIN) & (found <= _DATE_MAX)).astype("datetime64[ns]")
    by_cell = pd.Series(found.to_numpy(), index=distinct.to_numpy())
    return pd.Series(by_cell.reindex(cells.to_numpy()).to_numpy(), index=cells.index, dtype="datetime64[ns]")


def _numbers(cells: pd.Series) -> pd.Series:
    """Cells as float64: plain numbers vectorised; the rest retried with thousands separators removed and
    full-width digits folded (``1,200``, ``１２``). NaN where not a number."""
    try:  # Arrow parses a column of plain numbers ~10x faster than pandas; anything else fails the whole cast
        numbers = pd.Series(_arrow_text(cells).cast(pyarrow.float64()).to_numpy(zero_copy_only=False),
                            index=cells.index, dtype="float64")
    except pyarrow.ArrowInvalid:
        numbers = pd.to_numeric(cells, errors="coerce").astype("float64")
    rest = cells.notna() & numbers.isna()
    if rest.any():
        distinct = cells[rest].unique()
        retried = {text: _number_or_nan(text) for text in distinct}
        numbers = numbers.copy()
        numbers[rest] = cells[rest].map(retried).astype("float64")
    return numbers


def _arrow_text(cells: pd.Series) -> pyarrow.Array:
    """The cells as one Arrow string array (nulls where missing), without a copy for Arrow-backed text."""
    if isinstance(cells.dtype, pd.StringDtype) and cells.dtype.storage == "pyarrow":
        return cells.array._pa_array.combine_chunks()
    return pyarrow.array(cells.to_numpy(dtype=object, na_value=None), pyarrow.large_string())


_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


def _number_text(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).strip()
    return folded.replace(",", "") if _THOUSANDS.fullmatch(folded) else folded


def _number_or_nan(text: str) -> float:
    try:
        return float(_number_text(text))
    except ValueError:
        return math.nan


def _parse_int(cells: pd.Series, column: Column) -> _Parsed:
    numbers = _numbers(cells)
    fine = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (numbers.abs() <= _INT_MAX)
    bad = cells.notna() & ~fine
    reason = functools.partial(_number_reason, whole=True)
    return _Parsed(numbers.where(~bad).astype("Int64"), bad, "bad_number", reason)


def _parse_float(cells: pd.Series, column: Column) -> _Parsed:
    numbers = _numbers(cells)
    bad = cells.notna() & ~np.isfinite(numbers)
    return _Parsed(numbers.where(~bad), bad, "bad_number", functools.partial(_number_reason, whole=False))


def _parse_bool(cells: pd.Series, column: Column) -> _Parsed:
    # Per distinct word (a chunk has a handful): full-width or padded words through normalise_name.
    codes, words = pd.factorize(cells.str.lower())
    meanings = pd.array([BOOL_WORDS.get(w, BOOL_WORDS.get(normalise_name(w))) for w in words], dtype="boolean")
    mapped = pd.Series(meanings.take(codes, allow_fill=True), index=cells.index)
    bad = cells.notna() & mapped.isna()
    return _Parsed(mapped, bad, "bad_bool",
                   lambda v: f"expected true/false, 1/0, yes/no, 是/否 or 有/无, got {v!r}")


_PARSERS: dict[str, Callable[[pd.Series, Column], _Parsed]] = {
    "id": _parse_text,
    "text": _parse_text,
    "category": _parse_category,
    "date": _parse_date,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
}


def _number_reason(value: str, *, whole: bool) -> str:
    try:
        number = float(_number_text(value))
    except ValueError:
        return f"expected a number, got {value!r}"
    if not math.isfinite(number):
        return f"expected a finite number, got {value!r}"
    if whole and not number.is_integer():
        return f"expected a whole number, got {value!r}"
    if whole and abs(number) > _INT_MAX:
        return f"{value!r} is too large (at most {_INT_MAX:,})"
    return f"expected a number, got {value!r}"


# ---------------------------------------------------------------------------------------------
# Per-column domain checks: a pandera schema built from the contract
# ---------------------------------------------------------------------------------------------


class _DomainRule(NamedTuple):
    rule: str
    reason: Callable[[object], str]


@functools.cache
def _domain_schema(table: str) -> tuple[pa.DataFrameSchema, dict[tuple[str, int], _DomainRule]]:
    """The pandera schema of ``table`` (dtype, nullability, choices, minimum, length) and, per
    ``(column, check number)``, the rule and reason to report when that check fails."""
    spec, sql = spec_for(table), _sql_table(table)
    columns, rules = {}, {}
    for column in spec.columns:
        checks: list[pa.Check] = []
        if column.choices:
            choices = ", ".join(column.choices)
            rules[column.name, len(checks)] = _DomainRule(
                "not_a_choice",
                lambda v, n=column.name, c=choices: f"{v!r} is not an allowed {n}; expected one of: {c}")
            checks.append(pa.Check.isin(column.choices))
        if column.min_value is not None:
            low = column.min_value
            rules[column.name, len(checks)] = _DomainRule(
                "below_minimum",
                lambda v, low=low: f"must not be negative, got {_fmt(v)}" if low == 0 else f"must be ≥ {low}, got {v}")
            checks.append(pa.Check.ge(low))
        length = getattr(sql.c[column.name].type, "length", None)
        if length:
            rules[column.name, len(checks)] = _DomainRule(
                "too_long", lambda v, n=length: f"{len(str(v))} characters, more than the {n} allowed")
            checks.append(pa.Check.str_length(max_value=length))
        columns[column.name] = pa.Column(canonical_dtype(column.kind), nullable=column.nullable, checks=checks)
    return pa.DataFrameSchema(columns, strict=False, coerce=False, name=table), rules


def _domain_issues(table: str, typed: pd.DataFrame) -> pd.DataFrame:
    schema, rules = _domain_schema(table)
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return _no_issues()
    if cases["index"].isna().any():  # a dtype or schema-level failure: a bug here, not bad input
        raise RuntimeError(f"validation of {table} produced non-row failures:\n{cases.to_string()}")
    found = []
    for (column, check, number), group in cases.groupby(["column", "check", "check_number"], dropna=False, sort=False):
        lines = group["index"].astype("int64").to_numpy()
        if check == "not_nullable":
            rule, reasons = "missing", [f"a value is required in column {column}"] * len(lines)
        else:
            domain = rules[column, int(number)]
            rule, reasons = domain.rule, [domain.reason(v) for v in group["failure_case"]]
        found.append(pd.DataFrame({"column_name": column, "reason": reasons, "rule": rule}, index=lines))
    return pd.concat(found)


# ---------------------------------------------------------------------------------------------
# The validator
# ---------------------------------------------------------------------------------------------


class TableValidator:
    """Validates the rows of one file of ``table``, chunk by chunk (keeps only key hashes between chunks).

    ``header`` is the file's header (checked with :func:`check_header`: a missing required column raises
    :class:`~features.errors.MissingInputError`). Each :meth:`validate` call takes a chunk of raw cells
    (strings, missing as NA or ``""``) whose index is the 1-based line number in the source file, and
    returns a :class:`ChunkResult`. Running totals: :attr:`rows_read`, :attr:`identical_duplicates`,
    :attr:`quarantined_rows`, :attr:`held_cells`, :attr:`rule_counts`.
    """

    def __init__(self, table: str, *, header: Sequence[str], source_file: str, context: ValidationContext):
        self.table = table
        self.spec: TableSpec = spec_for(table)
        self.source_file = source_file
        self.context = context
        self.warnings = check_header(table, header, source_file)
        names = [str(h).strip() for h in header]
        self.key_columns = key_columns(table)
        self.extra_columns = tuple(
            n for n in names if self.spec.extra_prefix and n.startswith(self.spec.extra_prefix))
        fills = {c for name in self.spec.checks for c in ROW_CHECKS[name].fills}
        #: Contract columns this file gives a value for (absent optional columns are left alone on upsert).
        self.columns_present = tuple(c for c in self.spec.column_names if c in names or c in fills)
        self._seen = _SeenKeys()
        #: Columns of kinds with few distinct values (a file's own key is not hashed), hashed per distinct value
        #: by :func:`_row_hashes`; numbers and free text are joined.
        self._few_distinct = frozenset(c.name for c in self.spec.columns
                                       if c.kind in ("id", "category", "date", "bool"))
        #: Columns whose bad values hold back the cell, not the row (optional values and ``x_*`` extras).
        self._cell_level = frozenset(
            [c.name for c in self.spec.columns if not c.holds_row] + list(self.extra_columns))
        self.rows_read = 0
        self.identical_duplicates = 0
        self.quarantined_rows = 0
        self.held_cells = 0
        self.rule_counts: Counter[str] = Counter()

    def validate(self, raw: pd.DataFrame, *, rejected: pd.DataFrame | None = None,
                 problems: pd.DataFrame | None = None, check_nul: bool = True) -> ChunkResult:
        """Split one chunk of raw cells into typed good rows and issues (see :class:`ChunkResult`).

        ``rejected``: rows the reader could not split into columns (index line; ``key``, ``raw``, ``reason``,
        ``rule``): counted as read and quarantined whole. ``problems``: cells the reader found bad (index line;
        ``column_name``, ``value``, ``reason``, ``rule``), e.g. formulas without a value. ``check_nul``: look
        for NUL bytes in the cells (the CSV reader knows when a file has none).

        A problem in a column whose :attr:`~features.contract.Column.holds_row` is false (an optional value:
        USCC, employees, founded_on, a flag, an ``x_*`` extra …) *holds back the cell*: the row loads with that
        value empty, and the cell is quarantined all the same. Any other problem refuses the row.
        """
        raw = raw.rename(columns=lambda c: str(c).strip())
        cells = _clean_cells(raw)
        filled = cells.notna().any(axis=1)  # wholly blank lines are skipped, not counted
        raw, cells = raw[filled], cells[filled]
        keys = self._row_keys(cells)
        duplicate, identical, first_line = self._duplicates(keys, cells)

        candidates = cells[~duplicate & ~identical]
        found = [_nul_issues(candidates)] if check_nul else []
        if problems is not None and len(problems):
            found.append(problems[problems.index.isin(candidates.index)][["column_name", "reason", "rule", "value"]])
        typed, checked = self._check(candidates)
        found.extend(checked)
        if duplicate.any():
            key_name = ", ".join(self.key_columns)
            dup_lines = cells.index[duplicate]
            found.insert(0, pd.DataFrame({
                "column_name": key_name,
                "reason": [f"duplicate {key_name} {k!r}: line {n} has the same key with different values "
                           f"(the first copy is kept)" for k, n in zip(keys[duplicate], first_line[duplicate])],
                "rule": "duplicate_key",
                "value": keys[duplicate].to_numpy(dtype=object),
            }, index=dup_lines))
        issues = self._assemble(found, raw, cells, keys)
        holds = issues["column_name"].map(lambda c: c not in self._cell_level).astype(bool)
        bad_lines = pd.Index(issues.loc[holds, "line"].unique(), dtype="int64")
        held = issues[~holds & ~issues["line"].isin(bad_lines)]
        good = typed[~typed.index.isin(bad_lines)]
        if len(held):
            good = _without(good, held)
            issues.loc[held.index, "reason"] = held["reason"] + "; the row was loaded without this value"

        first_keys = keys[~duplicate & ~identical & keys.notna()]
        if rejected is not None and len(rejected):
            issues, new_keys = self._rejected(rejected, issues)
            bad_lines = bad_lines.append(pd.Index(rejected.index, dtype="int64"))
            first_keys = pd.concat([first_keys, new_keys])
        rows_read = len(cells) + (0 if rejected is None else len(rejected))
        if check_nul:
            first_keys = first_keys.str.replace("\x00", "\\x00", regex=False)
        result = ChunkResult(good, issues, first_keys.reset_index(drop=True), rows_read,
                             int(identical.sum()), bad_lines, len(held))
        self.rows_read += result.rows_read
        self.identical_duplicates += result.identical_duplicates
        self.quarantined_rows += len(bad_lines)
        self.held_cells += len(held)
        self.rule_counts.update(issues["rule"].tolist())
        return result

    def _rejected(self, rejected: pd.DataFrame, issues: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """Issues for rows the reader could not read into columns; their keys claim the key like any first
        copy (a later copy of it is a duplicate)."""
        keys = rejected["key"].astype(object).where(rejected["key"].notna(), None)
        new_keys = []
        for key, line in zip(keys, rejected.index):
            if key is None or len(key) > _ROW_KEY_MAX:
                continue
            h1, h2 = (pd.util.hash_array(np.array([key], dtype=object), hash_key=hk, categorize=False)
                      for hk in _HASH_KEYS)
            found, _line, _content = self._seen.lookup(h1, h2)
            if not found[0]:
                self._seen.add(h1, h2, np.zeros(1, np.uint64), np.array([line]))
                new_keys.append(key)
        entries = pd.DataFrame({
            "table_name": self.table, "source_file": self.source_file,
            "line": rejected.index.astype("int64"), "column_name": None, "value": None,
            "reason": rejected["reason"].to_numpy(dtype=object), "rule": rejected["rule"].to_numpy(dtype=object),
            "row_key": [None if k is None or len(k) > _ROW_KEY_MAX else _visible(k) for k in keys],
            "raw": [_visible_raw(r) for r in rejected["raw"]],
        })
        combined = pd.concat([issues, entries], ignore_index=True) if len(issues) else entries
        return combined.sort_values("line", kind="stable").reset_index(drop=True), pd.Series(new_keys, dtype="str")

    # -- steps ---------------------------------------------------------------------------------

    def _row_keys(self, cells: pd.DataFrame) -> pd.Series:
        parts = [cells[c] if c in cells.columns else pd.Series(pd.NA, index=cells.index, dtype="str")
                 for c in self.key_columns]
        key = parts[0]
        for part in parts[1:]:
            key = key + "|" + part  # NA if any part is missing
        return key.astype("str")

    def _duplicates(self, keys: pd.Series, cells: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
        """(conflicting duplicate, identical duplicate, line of the first copy) for every row."""
        index = cells.index
        duplicate = pd.Series(False, index=index)
        identical = pd.Series(False, index=index)
        first_line = pd.Series(0, index=index, dtype="int64")
        has = keys.notna().to_numpy()
        if not has.any():
            return duplicate, identical, first_line
        k = keys[has].to_numpy(dtype=object)
        lines = index.to_numpy()[has].astype("int64")
        content = _row_hashes(cells[has].drop(columns=[c for c in self.key_columns if c in cells.columns]),
                              self._few_distinct)
        h1, h2 = (pd.util.hash_array(k, hash_key=hk, categorize=False) for hk in _HASH_KEYS)

        codes, uniques = pd.factorize(k)
        first_pos = np.empty(len(uniques), dtype=np.int64)
        first_pos[codes[::-1]] = np.arange(len(k))[::-1]  # first occurrence of each key in the chunk
        at = first_pos[codes]
        is_first = at == np.arange(len(k))

        found, seen_line, seen_content = self._seen.lookup(h1[at], h2[at])
        prev_line = np.where(found, seen_line, lines[at])
        prev_content = np.where(found, seen_content, content[at])
        is_dup = found | ~is_first
        same = is_dup & (content == prev_content)
        new = is_first & ~found
        self._seen.add(h1[new], h2[new], content[new], lines[new])

        duplicate.iloc[np.flatnonzero(has)] = is_dup & ~same
        identical.iloc[np.flatnonzero(has)] = same
        first_line.iloc[np.flatnonzero(has)] = prev_line
        return duplicate, identical, first_line

    def _check(self, cells: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
        """Parse, check the domains (pandera) and the rows; return the typed frame and the issues found."""
        found: list[pd.DataFrame] = []
        typed = {}
        for column in self.spec.columns:
            present = column.name in cells.columns
            values = cells[column.name] if present else pd.Series(pd.NA, index=cells.index, dtype="str")
            parsed = _PARSERS[column.kind](values, column)
            typed[column.name] = parsed.values
            if parsed.bad.any():
                found.append(_issues(parsed.bad, column.name, parsed.rule, parsed.reason, values))
        frame = pd.DataFrame(typed, index=cells.index)
        for name in self.spec.checks:
            if ROW_CHECKS[name].normalise is not None:
                frame = ROW_CHECKS[name].normalise(frame)
        if len(frame):
            found.append(_domain_issues(self.table, frame))
            found.extend(self._event_issues(frame))
            found.extend(ROW_CHECKS[name].find(frame, self.context) for name in self.spec.checks)
        for name in self.extra_columns:
            frame[name] = cells[name]
        return frame, found

    def _event_issues(self, frame: pd.DataFrame) -> Iterable[pd.DataFrame]:
        context, spec = self.context, self.spec
        if context.known_enterprises is not None:
            for column in spec.columns:
                if column.references != "enterprises":
                    continue
                ids = frame[column.name]
                bad = ids.notna() & ~context.is_known_enterprise(ids)
                yield _issues(bad, column.name, "dangling_reference", self._dangling_reason, ids)
        today = pd.Timestamp(context.today)
        already = pd.Series(False, index=frame.index)
        for column in (c.name for c in spec.columns if c.not_after_today):
            future = (frame[column] > today) & ~already  # a future event is not reported twice
            already |= future
            yield _issues(future, column, "future_date",
                          lambda d, c=column: f"{c} {_fmt(d)} is after today ({today.date()})", frame[column])
        if spec.event_date and spec.has_recorded_on:
            event = spec.event_date
            yield _issues(frame["recorded_on"] < frame[event], "recorded_on", "recorded_before_event",
                          lambda r, e: f"recorded_on {_fmt(r)} is earlier than the event date {event} {_fmt(e)}",
                          frame["recorded_on"], frame[event])

    def _dangling_reason(self, enterprise_id: str) -> str:
        context = self.context
        line = context.quarantined_enterprises.get(enterprise_id)
        if line is not None:
            return (f"enterprise_id {enterprise_id!r} refers to an enterprise that is in quarantine "
                    f"({context.enterprises_source} line {line}); fix that row first")
        where = f"neither in {context.enterprises_source} nor in the database" if context.in_database \
            else f"not in {context.enterprises_source}"
        return f"enterprise_id {enterprise_id!r} is {where}"

    def _assemble(self, found: list[pd.DataFrame], raw: pd.DataFrame, cells: pd.DataFrame,
                  keys: pd.Series) -> pd.DataFrame:
        found = [f for f in found if len(f)]
        if not found:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "line" else object) for c in ISSUE_COLUMNS})
        issues = pd.concat(found).rename_axis("line").reset_index()
        issues = issues.drop_duplicates(["line", "column_name"], keep="first")  # the first reason per cell
        issues = issues.sort_values("line", kind="stable").reset_index(drop=True)
        if "value" not in issues.columns:
            issues["value"] = None
        values = issues["value"].astype(object)
        for column, group in issues[values.isna()].groupby("column_name", sort=False):
            if column in cells.columns:
                looked_up = cells[column].reindex(group["line"].to_numpy()).to_numpy(dtype=object)
                values.loc[group.index] = looked_up
        issues["value"] = pd.Series([None if _missing(v) else _visible(str(v)) for v in values], dtype=object)
        issues["reason"] = issues["reason"].map(_visible)
        row_keys = keys.reindex(issues["line"].to_numpy()).to_numpy(dtype=object)
        issues["row_key"] = pd.Series(
            [_visible(k) if isinstance(k, str) and len(k) <= _ROW_KEY_MAX else None for k in row_keys], dtype=object)
        lines = issues["line"].unique()
        raw_rows = raw.loc[lines].astype(object)
        raw_rows = raw_rows.where(raw_rows.notna(), None)
        by_line = dict(zip(lines.tolist(), (_visible_raw(r) for r in raw_rows.to_dict("records"))))
        issues["raw"] = [by_line[n] for n in issues["line"].tolist()]
        issues["table_name"] = self.table
        issues["source_file"] = self.source_file
        issues["line"] = issues["line"].astype("int64")
        return issues[list(ISSUE_COLUMNS)]


_ROW_KEY_MAX = quarantine.c.row_key.type.length  # longer keys are stored as NULL (matched by file and line)


class _SeenKeys:
    """Keys met so far in one file, as two 64-bit hashes, with the row's content hash and line: ~28 bytes a key,
    exact up to a 2⁻¹²⁸ collision chance.

    Held as a few runs sorted by the first hash, of sizes that at least double from the newest to the oldest (a
    chunk's run is merged with the newer runs while they are not larger), so that each key is copied O(log n)
    times in all; one sorted store copied every key met so far for each chunk. A chunk's keys are looked up in
    hash order, so that the binary searches walk each run from its start to its end instead of jumping about it.
    For 55 chunks of 200k keys (a province's 11M-row truth file) the two took the lookups and additions from 19 s
    to 5 s."""

    def __init__(self) -> None:
        self._runs: list[list[np.ndarray]] = []  # [h1, h2, content, line], sorted by h1

    def lookup(self, h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = np.zeros(len(h1), bool)
        line = np.zeros(len(h1), np.int64)
        content = np.zeros(len(h1), np.uint64)
        if not self._runs:
            return found, line, content
        order = np.argsort(h1)
        sorted_h1 = h1[order]
        for run_h1, run_h2, run_content, run_line in self._runs:  # a key is in one run at most
            pos = np.empty(len(h1), np.int64)
            pos[order] = np.searchsorted(run_h1, sorted_h1)
            np.minimum(pos, len(run_h1) - 1, out=pos)
            hit = (run_h1[pos] == h1) & (run_h2[pos] == h2)
            line[hit] = run_line[pos[hit]]
            content[hit] = run_content[pos[hit]]
            found |= hit
        return found, line, content

    def add(self, h1: np.ndarray, h2: np.ndarray, content: np.ndarray, line: np.ndarray) -> None:
        if not len(h1):
            return
        order = np.argsort(h1, kind="stable")
        run = [h1[order], h2[order], content[order], line[order].astype(np.int32)]
        while self._runs and len(self._runs[-1][0]) <= len(run[0]):
            older = self._runs.pop()
            merged = np.argsort(np.concatenate([older[0], run[0]]), kind="stable")  # timsort: merges two runs
            for i in range(len(run)):  # one column at a time, each let go once merged: less memory at once
                old, new = older[i], run[i]
                older[i] = run[i] = None
                run[i] = np.concatenate([old, new])[merged]
                del old, new
            del older, merged
        self._runs.append(run)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _sql_table(table: str) -> sa.Table:
    return _TRUTH_SQL if table == TRUTH_TABLE.name else CONTRACT_TABLES[table]


def _row_hashes(cells: pd.DataFrame, few: frozenset[str] = frozenset()) -> np.ndarray:
    """A 64-bit hash of each row's cells. Columns in ``few`` (kinds with few distinct values in a chunk:
    references, codes, dates, flags) are hashed per distinct value; the others are joined into one text per row, hashed once. The
    joining is one-to-one (a backslash is doubled, the separator written ``\\s``, a missing cell ``\\N``),
    so rows differing in any cell hash alike only by a 64-bit collision."""
    combined = np.zeros(len(cells), np.uint64)
    parts = []
    for name in cells.columns:
        if name not in few:
            parts.append(_escaped(cells[name]))
            continue
        codes, uniques = pd.factorize(cells[name])
        hashes = pd.util.hash_array(np.asarray(uniques, dtype=object), categorize=False)
        column = np.where(codes >= 0, hashes[codes] if len(hashes) else 0, np.uint64(0x9E3779B97F4A7C15))
        combined = (combined * np.uint64(1_000_003)) ^ column.astype(np.uint64)
    if parts:
        rows = pyarrow.compute.binary_join_element_wise(*parts, pyarrow.scalar(_SEPARATOR, pyarrow.large_string()))
        combined = (combined * np.uint64(1_000_003)) ^ pd.util.hash_array(rows.to_numpy(zero_copy_only=False),
                                                                           categorize=False)
    return combined


def _escaped(cells: pd.Series) -> pyarrow.Array:
    """``cells`` as Arrow text for :func:`_row_hashes`' joining: backslash doubled, separator ``\\s``, missing
    ``\\N``."""
    text = pyarrow.array(cells, from_pandas=True).cast(pyarrow.large_string())
    for char, escaped in (("\\", "\\\\"), (_SEPARATOR, "\\s")):
        if pyarrow.compute.any(pyarrow.compute.match_substring(text, char)).as_py():
            text = pyarrow.compute.replace_substring(text, char, escaped)
    return pyarrow.compute.fill_null(text, "\\N")


_SEPARATOR = "\x1f"  # between a row's cells in :func:`_row_hashes`


def _visible(text):
    """Text as the quarantine can store it on every database: a NUL byte written as the four characters
    ``\\x00`` (PostgreSQL text cannot hold NUL; SQLite could, but both must say the same)."""
    return text.replace("\x00", "\\x00") if isinstance(text, str) and "\x00" in text else text


def _visible_raw(row: Mapping) -> dict:
    return {_visible(str(k)): ([_visible(v) for v in value] if isinstance(value, list) else _visible(value))
            for k, value in row.items()}


def _nul_issues(cells: pd.DataFrame) -> pd.DataFrame:
    """One ``nul_byte`` issue per cell holding a NUL byte (vectorised per column)."""
    found = []
    for name in cells.columns:
        has = cells[name].str.contains("\x00", regex=False).fillna(False).to_numpy(dtype=bool)
        if has.any():
            values = cells[name][has]
            found.append(pd.DataFrame({
                "column_name": name,
                "reason": [f"contains a NUL byte (\\x00) at character {v.index(chr(0)) + 1}: a damaged file or a "
                           f"binary value; retype the cell" for v in values],
                "rule": "nul_byte",
                "value": values.to_numpy(dtype=object),
            }, index=values.index))
    return pd.concat(found) if found else _no_issues()


def _without(good: pd.DataFrame, held: pd.DataFrame) -> pd.DataFrame:
    """``good`` with the held cells emptied (NA in the column's own dtype)."""
    good = good.copy()
    for column, group in held.groupby("column_name", sort=False):
        if column in good.columns:
            good[column] = good[column].mask(good.index.isin(group["line"].to_numpy()))
    return good


def _clean_cells(raw: pd.DataFrame) -> pd.DataFrame:
    """Stripped text cells, NA where empty."""
    out = {}
    for name in raw.columns:
        text = raw[name].astype("str").str.strip()
        out[name] = text.mask(text == "")
    return pd.DataFrame(out, index=raw.index)


def _issues(mask, column: str, rule: str, reason: Callable[..., str], *series: pd.Series) -> pd.DataFrame:
    """Issues for the rows where ``mask`` holds; the reason is built from those rows' values of ``series``."""
    if isinstance(mask, pd.Series):
        index = mask.index
        mask = mask.fillna(False).to_numpy(dtype=bool)
    else:
        index = series[0].index if series else pd.RangeIndex(len(mask))
    if not mask.any():
        return _no_issues()
    values = [s.to_numpy(dtype=object)[mask] for s in series]
    return pd.DataFrame(
        {"column_name": column, "reason": [reason(*row) for row in zip(*values)], "rule": rule},
        index=index[mask],
    )


def _no_issues() -> pd.DataFrame:
    return pd.DataFrame({"column_name": [], "reason": [], "rule": []}, index=pd.Index([], dtype="int64"))


def _none(cells: pd.Series) -> pd.Series:
    return pd.Series(False, index=cells.index)


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


def _fmt(value) -> str:
    if _missing(value):
        return "?"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _quote(value) -> str:
    return "nothing" if _missing(value) else repr(str(value))

