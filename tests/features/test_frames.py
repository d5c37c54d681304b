"""Canonical frames: missing optional columns get their dtype; ``is_in`` agrees with pandas ``isin``."""

from __future__ import annotations

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from features.frames import canonical_frame, is_in


def test_an_absent_optional_column_is_added_all_missing_in_its_dtype():
    frame = canonical_frame("penalties", pd.DataFrame({"penalty_id": ["P1"], "enterprise_id": ["E1"],
                                                       "decided_on": ["2024-03-01"]}))
    assert frame["amount_yuan"].dtype == "float64" and frame["amount_yuan"].isna().all()
    assert str(frame["suspension"].dtype) == "boolean" and frame["suspension"].isna().all()
    assert frame.loc[0, "recorded_on"] == pd.Timestamp("2024-03-01")  # knowledge date defaults to the event date


ids = st.one_of(st.none(), st.sampled_from(["E1", "E2", "E3", "企业4", ""]))


@given(values=st.lists(ids, max_size=30), allowed=st.lists(ids, max_size=8))
def test_is_in_agrees_with_pandas_isin(values, allowed):
    series = pd.Series(values, dtype="str")
    expected = series.isin(allowed).to_numpy()
    assert (is_in(series, allowed) == expected).all()
    assert (is_in(pd.Index(series), pd.Series(allowed, dtype="str")) == expected).all()


def test_is_in_falls_back_to_pandas_for_other_dtypes():
    assert is_in(pd.Series([1, 2, 3]), [2, 5]).tolist() == [False, True, False]
