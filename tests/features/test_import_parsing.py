"""The vectorised cell parsers of features.validate against their plain references: Arrow's number parsing with
its pandas fallback, dates parsed once per distinct cell, USCC check characters in numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features import validate
from features.contract import TABLE_BY_NAME
from features.uscc import USCC_CHARSET, is_valid_uscc, uscc_check_char

INSPECTED_ON = TABLE_BY_NAME["inspections"].column("inspected_on")

_NUMBER_CELLS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1,200", "１２", "3.", ".5", "+5", "-0", "1e5", "1e400", "nan", "inf", "-inf", "Infinity", "ten",
                     "0x10", "1_000", "2.5", "12,34", "", "  "]),
)


def _cells(values: list[str]) -> pd.Series:
    return validate._clean_cells(pd.DataFrame({"c": pd.Series(values, dtype="str")}))["c"]


def _reference_numbers(cells: pd.Series) -> pd.Series:
    """What ``_numbers`` did before Arrow: pandas for the plain numbers, one by one for the rest."""
    numbers = pd.to_numeric(cells, errors="coerce").astype("float64")
    rest = cells.notna() & numbers.isna()
    numbers[rest] = [validate._number_or_nan(text) for text in cells[rest]]
    return numbers


@settings(max_examples=60, deadline=None)
@given(st.lists(_NUMBER_CELLS, max_size=12))
def test_numbers_are_read_as_pandas_reads_them(values):
    cells = _cells(values)
    np.testing.assert_array_equal(validate._numbers(cells).to_numpy(), _reference_numbers(cells).to_numpy())


def test_a_column_of_plain_numbers_and_one_of_mixed_forms_read_alike():
    plain, mixed = _cells(["1", "2.5", "", "-3"]), _cells(["1", "2.5", "", "1,200"])
    assert validate._numbers(plain).tolist()[:2] == [1.0, 2.5] and validate._numbers(plain).isna().tolist()[2]
    assert validate._numbers(mixed).tolist()[3] == 1200.0


_DATE_CELLS = st.one_of(
    st.dates(min_value=pd.Timestamp("1650-01-01").date(), max_value=pd.Timestamp("2300-12-31").date()).flatmap(
        lambda d: st.sampled_from([d.isoformat(), f"{d.year}/{d.month}/{d.day}", f"{d.year}年{d.month}月{d.day}日",
                                   f"{d.year}.{d.month}.{d.day}", d.strftime("%Y%m%d"), f"{d.isoformat()} 08:30"])),
    st.integers(20000, 60000).map(str),
    st.sampled_from(["2024-02-30", "2023-02-29", "2025-13-01", "2025-00-10", "2025-1-5", "n/a", "去年", ""]),
)


def _reference_dates(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
    """What ``_parse_date`` did before parsing distinct cells: every cell through pandas, then the other forms."""
    parsed = pd.to_datetime(cells, format="%Y-%m-%d", errors="coerce")
    rest = cells.notna() & parsed.isna()
    if rest.any():
        parsed = parsed.copy()
        parsed[rest] = validate._other_dates(cells[rest])
    bad = cells.notna() & ~((parsed >= validate._DATE_MIN) & (parsed <= validate._DATE_MAX))
    return parsed.where(~bad).astype("datetime64[ns]"), bad


@settings(max_examples=60, deadline=None)
@given(st.lists(_DATE_CELLS, max_size=12))
def test_dates_parsed_once_per_distinct_cell_are_the_dates_of_every_cell(values):
    cells = _cells(values * 2)  # repeated cells: the distinct ones are parsed once
    parsed = validate._parse_date(cells, INSPECTED_ON)
    values_ref, bad_ref = _reference_dates(cells)
    pd.testing.assert_series_equal(parsed.values, values_ref, check_names=False)
    assert parsed.bad.tolist() == bad_ref.tolist()


def test_impossible_dates_are_bad_not_rolled_over():
    parsed = validate._parse_date(_cells(["2024-02-30", "2023年2月29日", "2024-02-29"]), INSPECTED_ON)
    assert parsed.bad.tolist() == [True, True, False]
    assert parsed.values.iloc[2] == pd.Timestamp("2024-02-29")


def test_a_year_before_1678_in_any_form_is_a_bad_date_not_a_crash():
    parsed = validate._parse_date(_cells(["1677/1/1", "1600年3月5日", "1677-01-01", "1700-01-01"]), INSPECTED_ON)
    assert parsed.bad.tolist() == [True, True, True, False]


_USCC_CELLS = st.one_of(
    st.text(alphabet=USCC_CHARSET, min_size=17, max_size=17).map(lambda body: body + uscc_check_char(body)),
    st.text(alphabet=USCC_CHARSET, min_size=18, max_size=18),
    st.text(alphabet=USCC_CHARSET + "IOSVZa-９甲 ", min_size=16, max_size=19),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(_USCC_CELLS, st.none()), max_size=10))
def test_vectorised_uscc_checks_agree_with_the_standard_one(codes):
    series = pd.Series(codes, dtype="str")
    expected = [True if code is None else is_valid_uscc(code) for code in codes]
    assert validate._valid_usccs(series).tolist() == expected


_HASH_CELLS = st.one_of(st.none(), st.lists(st.sampled_from(["a", "\\", "\x1f", "s", "N", " "]), max_size=3).map("".join))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_HASH_CELLS, _HASH_CELLS, _HASH_CELLS), min_size=1, max_size=8), st.booleans())
def test_row_hashes_are_equal_exactly_for_equal_rows(rows, first_few):
    """The joined text of a row's cells is one-to-one: a backslash, the separator or the text ``\\N`` in a cell
    cannot make two different rows hash alike (nor a missing cell equal an empty or any other one)."""
    frame = pd.DataFrame({name: pd.Series([row[i] for row in rows], dtype="str") for i, name in enumerate("abc")})
    hashes = validate._row_hashes(frame, frozenset({"a"} if first_few else ()))
    for i, left in enumerate(rows):
        for j, right in enumerate(rows):
            assert (hashes[i] == hashes[j]) == (left == right), (left, right)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=12))
def test_seen_keys_find_exactly_the_keys_added_before_with_their_line_and_content(chunks):
    """The runs of ``_SeenKeys`` (merged as chunks come) answer as one dictionary of every key added so far."""
    seen, reference = validate._SeenKeys(), {}
    line = 0
    for chunk in chunks:
        keys = np.array(sorted(set(chunk), key=lambda k: (k * 7919) % 41), dtype=np.uint64)  # unsorted, unique
        h1, h2 = keys * np.uint64(2654435761) % np.uint64(97), keys  # h1 collides often: h2 tells them apart
        found, lines, contents = seen.lookup(h1, h2)
        for key, was_found, was_line, was_content in zip(keys.tolist(), found, lines, contents):
            assert was_found == (key in reference)
            if was_found:
                assert (was_line, was_content) == reference[key]
        new = ~found
        lines_of = np.arange(line, line + len(keys))
        seen.add(h1[new], h2[new], keys[new] + np.uint64(1000), lines_of[new])
        for key, at in zip(keys[new].tolist(), lines_of[new].tolist()):
            reference[key] = (at, key + 1000)
        line += len(keys)


_BOOL_CELLS = st.one_of(st.none(), st.sampled_from(["true", "FALSE", "1", "0", "是", "否", "有", "无", "yes", "No",
                                                    "ｔｒｕｅ", " true ", "maybe", "", "真"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(_BOOL_CELLS, max_size=12))
def test_flags_are_read_word_by_word_as_the_contract_defines_them(values):
    cells = pd.Series(values, dtype="str")
    parsed = validate._parse_bool(cells, validate.TRUTH_TABLE.column("suspended"))
    for value, got, bad in zip(values, parsed.values, parsed.bad):
        meaning = None if value is None else validate.BOOL_WORDS.get(
            value.lower(), validate.BOOL_WORDS.get(validate.normalise_name(value.lower())))
        assert bad == (value is not None and meaning is None)
        assert (pd.isna(got) and meaning is None) or got == meaning
