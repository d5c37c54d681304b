"""Columnar record store of the synthetic world, and its conversion to contract frames and CSV files.

The simulator appends one chunk of numpy columns per table and month (integer keys, enterprise positions,
dates as day numbers, text as small integer codes). Nothing is formatted while simulating: ids, dates and
labels are turned into contract columns once, when asked for, with pyarrow compute (fast on tens of millions
of rows). Each chunk also remembers the range of its knowledge dates, so "what was recorded last month" — what
a policy may react to — is found without scanning the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from features.contract import TABLE_BY_NAME
from features.frames import canonical_dtype, canonical_frame, spec_for

# Day numbers count days since 1970-01-01 (numpy's datetime64[D] epoch). NO_DAY marks "never" (a hazard
# never rectified, a credit record without an end): larger than any real day, so "<= horizon" tests treat
# it as "not (yet) happened" without a special case.
NO_DAY = np.int32(np.iinfo(np.int32).max)
_NS_PER_DAY = np.int64(86_400_000_000_000)


def day_number(d) -> int:
    """Day number of a date-like value."""
    return int(np.datetime64(d, "D").astype(np.int64))


def days_to_datetime(days: np.ndarray) -> np.ndarray:
    """Day numbers -> ``datetime64[ns]`` with NaT for :data:`NO_DAY`."""
    days = np.asarray(days)
    out = days.astype(np.int64) * _NS_PER_DAY
    out[days == NO_DAY] = np.iinfo(np.int64).min  # numpy's NaT
    return out.view("datetime64[ns]")


def format_ids(prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``prefix`` + zero-padded ``numbers`` as an Arrow string array (null where ``valid`` is False)."""
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, padding="0")
    ids = pc.binary_join_element_wise(prefix, text, "")
    if valid is not None:
        ids = pc.if_else(pa.array(np.asarray(valid, dtype=bool)), ids, pa.scalar(None, pa.string()))
    return ids


def labels(vocabulary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Text labels for integer ``codes`` into ``vocabulary``; code -1 (or an empty label) becomes null."""
    codes = np.asarray(codes)
    vocab = pa.array([v if v != "" else None for v in vocabulary], pa.string())
    mask = codes < 0
    taken = vocab.take(pa.array(np.where(mask, 0, codes).astype(np.int64)))
    if mask.any():
        taken = pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), taken)
    return taken


def string_series(array: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas ``str`` Series (the canonical dtype) without a Python round trip."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pd.Series(pd.arrays.ArrowStringArray(array.cast(pa.large_string()))).astype("str")


@dataclass(frozen=True)
class IdFormat:
    """How a table's integer keys are written: ``prefix`` + at least ``width`` digits."""

    prefix: str
    width: int

    def __call__(self, numbers: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
        numbers = np.asarray(numbers, dtype=np.int64)
        width = max(self.width, len(str(int(numbers.max())))) if len(numbers) else self.width
        return format_ids(self.prefix, numbers, width, valid)


# Record keys as they appear in the files. Widths fit a province-scale world; larger numbers just get longer.
ID_FORMATS: dict[str, IdFormat] = {
    "enterprises": IdFormat("E", 6),
    "inspections": IdFormat("I", 8),
    "hazards": IdFormat("H", 9),
    "violations": IdFormat("V", 8),
    "accidents": IdFormat("A", 6),
    "penalties": IdFormat("P", 7),
    "credit_records": IdFormat("R", 8),
    "complaints": IdFormat("C", 7),
}


class RecordStore:
    """Month-by-month chunks of raw columns for each event table.

    Every chunk holds the same raw columns for its table: ``id`` (int64, unique and increasing), ``enterprise``
    (position in the enterprise arrays), day numbers for dates, small integer codes for text, and ``recorded``
    (the knowledge day). Ids are handed out in append order, so they are unique by construction.
    """

    def __init__(self, tables: Sequence[str]):
        self._chunks: dict[str, list[dict[str, np.ndarray]]] = {t: [] for t in tables}
        self._next_id: dict[str, int] = {t: 1 for t in tables}
        # (min, max) recorded day per chunk: lets recorded_between() skip chunks without scanning them.
        self._recorded_range: dict[str, list[tuple[int, int]]] = {t: [] for t in tables}

    def append(self, table: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Store one chunk; returns the ids given to its rows."""
        n = len(columns["enterprise"])
        ids = np.arange(self._next_id[table], self._next_id[table] + n, dtype=np.int64)
        if n == 0:
            return ids
        self._next_id[table] += n
        chunk = {"id": ids, **{k: np.asarray(v) for k, v in columns.items()}}
        self._chunks[table].append(chunk)
        recorded = chunk["recorded"]
        self._recorded_range[table].append((int(recorded.min()), int(recorded.max())))
        return ids

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self._chunks)

    def chunk_count(self, table: str) -> int:
        return len(self._chunks[table])

    def chunks_from(self, table: str, first: int) -> list[dict[str, np.ndarray]]:
        """The chunks of ``table`` appended since it held ``first`` chunks."""
        return self._chunks[table][first:]

    def columns(self, table: str, *, consume: bool = False) -> dict[str, np.ndarray] | None:
        """All chunks of ``table`` concatenated (None when nothing was stored).

        ``consume=True`` frees each chunk column as soon as it is copied, so that converting a large world
        needs little more memory than the result; the table is empty afterwards.
        """
        chunks = self._chunks[table]
        if not chunks:
            return None
        return concatenate_chunks(chunks, consume=consume)

    def recorded_between(self, table: str, first_day: int, end_day: int) -> dict[str, np.ndarray] | None:
        """Rows whose knowledge day lies in ``[first_day, end_day)``."""
        parts = []
        for chunk, (lo, hi) in zip(self._chunks[table], self._recorded_range[table], strict=True):
            if hi < first_day or lo >= end_day:
                continue
            keep = (chunk["recorded"] >= first_day) & (chunk["recorded"] < end_day)
            if keep.any():
                parts.append({name: values[keep] for name, values in chunk.items()})
        if not parts:
            return None
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def concatenate_chunks(chunks: list[dict[str, np.ndarray]], *, consume: bool = False) -> dict[str, np.ndarray]:
    """Column-wise concatenation of chunks; with ``consume`` the chunks are emptied column by column."""
    out = {}
    for name in list(chunks[0]):
        out[name] = np.concatenate([c[name] for c in chunks])
        if consume:
            for c in chunks:
                del c[name]
    if consume:
        chunks.clear()
    return out


def ints(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Integers in the canonical nullable ``Int64`` dtype."""
    return pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")


def bools(values: np.ndarray) -> pd.arrays.BooleanArray:
    """Booleans in the canonical nullable ``boolean`` dtype."""
    return pd.array(np.asarray(values, dtype=bool), dtype="boolean")


def as_canonical(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` itself if it is already in canonical form, else :func:`features.frames.canonical_frame` of it.

    The generator builds its frames directly in the canonical dtypes; handing them to ``canonical_frame``
    would only copy them (gigabytes at province scale). This checks instead, and coerces when in doubt.
    """
    spec = spec_for(table)
    names = list(spec.column_names)
    already = (
        list(frame.columns[: len(names)]) == names
        and isinstance(frame.index, pd.RangeIndex)
        and all(frame[c.name].dtype == canonical_dtype(c.kind) for c in spec.columns)
        and not (spec.has_recorded_on and spec.event_date and frame["recorded_on"].isna().any())
        and all(spec.extra_prefix and c.startswith(spec.extra_prefix) for c in frame.columns[len(names):])
    )
    return frame if already else canonical_frame(table, frame)


def empty_contract_frame(table: str) -> pd.DataFrame:
    """A zero-row frame with the contract's columns in canonical dtypes."""
    spec = spec_for(table)
    return canonical_frame(table, pd.DataFrame({c.name: pd.Series([], dtype=object) for c in spec.columns}))


def write_csv(frame: pd.DataFrame, path: Path, *, float32_columns: Sequence[str] = ()) -> None:
    """Write a canonical frame as UTF-8 CSV: ISO dates, ``true``/``false``, empty cells for missing values.

    ``float32_columns`` are written with float32 precision (about 7 significant digits), which keeps large
    files of probabilities readable and a third smaller.
    """
    arrays, names = [], []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            array = pa.array(values.to_numpy(dtype="datetime64[D]", na_value=np.datetime64("NaT")), pa.date32())
        elif name in float32_columns:
            array = pa.array(values.to_numpy(dtype=np.float32))
        else:
            array = pa.array(values)  # zero-copy for Arrow-backed strings; keeps nullable ints and bools
        arrays.append(array)
        names.append(name)
    table = pa.Table.from_arrays(arrays, names=names)
    try:
        # Unquoted is smaller and friendlier to spreadsheet users; our values never need quotes...
        pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="none"))
    except pa.ArrowInvalid:
        # ...unless some text holds a comma, quote or line break: then quote what needs it.
        pa_csv.write_csv(table, path, write_options=pa_csv.WriteOptions(quoting_style="needed"))


def contract_tables() -> tuple[str, ...]:
    """Tables the simulation records month by month, in contract order: the event tables and who made each
    inspection (enterprises and the inspectors' roster are handled separately; no conflicts are declared)."""
    return tuple(name for name, spec in TABLE_BY_NAME.items()
                 if spec.event_date is not None or name == "inspection_inspectors")
