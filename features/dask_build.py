"""The point-in-time feature build on a Dask cluster (DESIGN.md §11): one task per key-range partition.

:func:`build_features_dask` runs :func:`features.build.build_features` — the same code as on one machine — once
per partition of :mod:`features.partitions`. What crosses enterprises is reduced first and handed to every
partition:

1. **extras**: each partition profiles its enterprises' ``x_*`` columns (numbers only? which text values?); the
   profiles are combined so that every partition types the extras, and orders the levels of the text ones, as
   the whole dataset does;
2. **read**: each worker reads its partitions (all their tables, by key range) and keeps them in memory;
3. **cross-enterprise sums**: each partition computes its own (:func:`features.build.cross_enterprise_totals`:
   the sector sums behind shrunk and relative rates, the peer sums by sector and township); one task adds them
   up (a few numbers per sector, township and as-of date);
4. **build**: each partition is built with the combined sums (``build_features(..., totals=...)``).

The rows of all partitions together are the rows of one build over all enterprises: counts and dates exactly,
floats to rounding (sums added in another order). Nothing moves an event from one partition to another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.build import (
    DEFAULT_SHRINKAGE_STRENGTH,
    GroupTotals,
    as_of_index,
    build_features,
    cross_enterprise_totals,
)
from features.catalog import DEFAULT_WINDOWS, Feature, catalog_for
from features.partitions import (
    ExtraProfile,
    KeyRanges,
    combine_extras,
    extra_catalog,
    extra_kinds,
    rebased,
)

__all__ = ["PartitionedFeatures", "Source", "build_features_dask"]


class Source(Protocol):
    """What a partitioned build reads (:class:`features.partitions.DatabaseSource`, ``ParquetSource``)."""

    def tables(self) -> tuple[str, ...]: ...

    def keys(self) -> np.ndarray: ...

    def profile(self, key_range: tuple[int, int]) -> dict[str, ExtraProfile]: ...

    def read(self, key_range: tuple[int, int], tables: Sequence[str],
             extra_kinds: Mapping[str, str]) -> dict[str, pd.DataFrame]: ...


@dataclass(frozen=True)
class PartitionedFeatures:
    """The features of a partitioned build: one future per key range, held by the workers.

    ``tables`` are the futures of the partitions' input frames (kept for the scoring steps that follow);
    ``catalog`` the features built (with the dataset's extras); ``totals`` the future of the combined
    cross-enterprise sums.
    """

    ranges: KeyRanges
    frames: list[Any]
    tables: list[Any]
    catalog: tuple[Feature, ...]
    totals: Any

    def gather(self) -> pd.DataFrame:
        """All partitions as one frame, in the order of :func:`features.build.build_features` (id, then date)."""
        frames = self.frames[0].client.gather(self.frames)
        return pd.concat(frames).sort_index(kind="stable") if len(frames) > 1 else frames[0]


def build_features_dask(
    client,
    source: Source,
    as_of_dates: object,
    *,
    partitions: int | KeyRanges,
    catalog: Sequence[Feature] | None = None,
    windows: Sequence[int] | None = None,
    shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
) -> PartitionedFeatures:
    """:func:`features.build.build_features` over ``source``'s enterprises split by key range, on the cluster of
    the ``distributed.Client`` ``client`` (see the module docstring). ``partitions``: how many ranges (of about
    as many enterprises each), or the ranges themselves. Same other arguments and meaning as the single-machine
    build; the extras are those of the whole dataset."""
    if catalog is not None and windows is not None:
        raise ValueError("give either catalog or windows, not both (catalog_for(windows) builds a catalog)")
    dates = as_of_index(as_of_dates)
    base = tuple(catalog) if catalog is not None else catalog_for(windows or DEFAULT_WINDOWS)
    tables = source.tables()
    ranges = partitions if isinstance(partitions, KeyRanges) else KeyRanges.of_keys(source.keys(), partitions)
    key_ranges = list(ranges)

    profile = combine_extras(client.gather(client.map(source.profile, key_ranges, pure=False)))
    kinds = extra_kinds(profile)
    named = {f.name for f in base}
    features = base + tuple(f for f in extra_catalog(profile) if f.name not in named)  # as build_features adds them
    parts = client.map(_read_partition, [source] * len(ranges), key_ranges, tables=tables, extra_kinds=kinds,
                       pure=False)
    options = {"catalog": features, "shrinkage_strength": shrinkage_strength}
    partial = client.map(cross_enterprise_totals, parts, as_of_dates=dates, **options)
    totals = client.submit(GroupTotals.combine, partial)
    frames = client.map(build_features, parts, as_of_dates=dates, totals=totals, **options)
    return PartitionedFeatures(ranges, frames, parts, features, totals)


def _read_partition(source: Source, key_range: tuple[int, int], *, tables: Sequence[str],
                    extra_kinds: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """One partition's frames, keys rebased to the range's start (see :func:`features.partitions.rebased`)."""
    return rebased(source.read(key_range, tables, extra_kinds), key_range[0])
