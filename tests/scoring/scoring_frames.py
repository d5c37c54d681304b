"""Small hand-made canonical tables for the scoring tests (imported by the test modules of this folder)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import TABLE_BY_NAME
from features.frames import canonical_frame


def frame(table: str, **columns) -> pd.DataFrame:
    """A canonical ``table`` from column lists or scalars (absent float columns as NaN)."""
    lengths = [len(v) for v in columns.values() if isinstance(v, list | tuple)]
    n = max(lengths) if lengths else 1
    raw = pd.DataFrame({k: (list(v) if isinstance(v, list | tuple) else [v] * n) for k, v in columns.items()})
    for column in TABLE_BY_NAME[table].columns:
        if column.name not in raw.columns and column.kind == "float":
            raw[column.name] = np.nan
    return canonical_frame(table, raw)


def enterprises(ids, sectors="commerce", townships="T1", **extra) -> pd.DataFrame:
    ids = list(ids)
    sectors = [sectors] * len(ids) if isinstance(sectors, str) else list(sectors)
    townships = [townships] * len(ids) if isinstance(townships, str) else list(townships)
    return frame("enterprises", enterprise_id=ids, sector=sectors, township=townships, **extra)
