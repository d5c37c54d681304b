"""Canonical in-memory form of the contract tables.

Every frame handed to the pure middle (features, labels, models) has the contract's columns with these
dtypes, whatever it was read from (CSV, Excel, database):

- ``id``, ``text``, ``category`` -> ``str`` (missing: NA)
- ``date`` -> ``datetime64[ns]`` (missing: NaT)
- ``int`` -> ``Int64``, ``float`` -> ``float64``, ``bool`` -> ``boolean`` (nullable)
- ``recorded_on`` is filled with the event date where it is missing (DESIGN.md §3), so the pure code
  can always filter on the knowledge date.
- enterprises' extra ``x_*`` columns are kept as ordinary columns after the contract ones.

Absent optional tables are simply missing from the mapping; absent optional columns are added as
all-missing so that downstream code never has to test for them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import TABLE_BY_NAME, TRUTH_INSPECTORS_TABLE, TRUTH_TABLE, TableSpec

Tables = Mapping[str, pd.DataFrame]

_DTYPES = {
    "id": "str",
    "text": "str",
    "category": "str",
    "date": "datetime64[ns]",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
}


def canonical_dtype(kind: str) -> str:
    return _DTYPES[kind]


_TRUTH_TABLES = {spec.name: spec for spec in (TRUTH_TABLE, TRUTH_INSPECTORS_TABLE)}


def spec_for(table: str) -> TableSpec:
    return _TRUTH_TABLES.get(table) or TABLE_BY_NAME[table]


def canonical_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the contract's columns in canonical dtypes (values assumed already valid)."""
    spec = spec_for(table)
    out = {}
    for column in spec.columns:
        if column.name in frame.columns:
            out[column.name] = _coerce(frame[column.name], column.kind)
        else:
            out[column.name] = _missing(frame.index, column.kind)
    result = pd.DataFrame(out, index=frame.index)
    if spec.extra_prefix:
        extras = [c for c in frame.columns if c.startswith(spec.extra_prefix)]
        for name in extras:
            result[name] = frame[name]
    if spec.has_recorded_on and spec.event_date:
        result["recorded_on"] = result["recorded_on"].fillna(result[spec.event_date])
    return result.reset_index(drop=True)


def _missing(index: pd.Index, kind: str) -> pd.Series:
    """An all-missing column of ``kind`` (``None`` becomes NaN, NaT or NA as the dtype wants)."""
    return pd.Series([None] * len(index), index=index, dtype=_DTYPES[kind])


def _coerce(values: pd.Series, kind: str) -> pd.Series:
    if kind == "date":
        return pd.to_datetime(values, errors="raise").astype("datetime64[ns]")
    if kind in ("id", "text", "category"):
        return values.astype("str").where(values.notna(), pd.NA)
    if kind == "bool":
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            lowered = values.astype("str").str.strip().str.lower()
            mapped = lowered.map(_BOOL_WORDS)
            return mapped.where(values.notna(), pd.NA).astype("boolean")
        return values.astype("boolean")
    return values.astype(_DTYPES[kind])


_BOOL_WORDS = {
    "true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
    "t": True, "f": False, "y": True, "n": False, "是": True, "否": False,
    "1.0": True, "0.0": False,
}


def is_in(values: pd.Series | pd.Index, allowed) -> np.ndarray:
    """``values.isin(allowed)`` as a boolean array, fast for the Arrow-backed ``str`` columns of canonical frames.

    pandas 3.1 builds the value set of a string column's ``isin`` in a Python loop (seconds for 10⁵ ids);
    ``pyarrow.compute.is_in`` hashes it natively. As with pandas, a missing value matches only when ``allowed``
    holds a missing value too. Other dtypes fall back to pandas.
    """
    allowed_values = pd.Series(list(allowed) if not isinstance(allowed, pd.Series | pd.Index) else allowed)
    if not pd.api.types.is_string_dtype(values.dtype) or len(allowed_values) == 0:
        return np.asarray(values.isin(allowed_values), dtype=bool)
    left = pa.array(values, from_pandas=True)
    right = pa.array(allowed_values.astype("str"), from_pandas=True).cast(left.type)
    found = pc.is_in(left, value_set=right, skip_nulls=False)
    return found.fill_null(False).to_numpy(zero_copy_only=False)
