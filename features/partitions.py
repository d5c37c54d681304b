"""Enterprise-keyed tables split by ranges of ``enterprise_key`` (DESIGN.md §11): the data of a partitioned build.

Every table of an enterprise's rows carries ``enterprise_key`` (:data:`features.contract.ENTERPRISE_KEY`), so one
list of key ranges splits all of them the same way (co-partitioned): partition ``i`` holds the enterprises whose
key is in ``[bounds[i], bounds[i + 1])`` and every event of those enterprises, and nothing else — an event is never
moved to another partition (no shuffle). The inspection–inspector links go with their inspection
(:attr:`features.contract.TableSpec.belongs_to`); only the inspectors' roster is read whole by every partition. The ranges (:class:`KeyRanges`) are cut where each partition gets about as
many enterprises.

Two sources read one partition at a time (both picklable, so that a Dask worker reads its own partitions):

- :class:`DatabaseSource`: the database by URL, one ``SELECT ... WHERE enterprise_key >= low AND enterprise_key
  < high`` per table, the links through their inspections (:func:`features.store.load_tables` with ``key_range``);
- :class:`ParquetSource`: a Parquet dataset written by :func:`export_parquet` (``riskgrade export-parquet DIR``),
  one directory per table, files sorted by ``enterprise_key``, read with the range as a filter (row groups outside
  it are skipped).

A partition's frames are those :func:`features.store.load_tables` gives for the same rows: canonical, sorted by
the table's key (so an enterprise's records keep their order), every table of the dataset present even where
the partition has no row of it (an empty partition of a present table means zero events, not missing data), and
the enterprises' ``x_*`` extras typed as over the whole dataset (:func:`combine_extras`).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from features.catalog import EXTRA_PREFIX, Feature, extra_feature
from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME, TABLES
from features.errors import DataError, MissingInputError
from features.frames import canonical_frame
from features.validate import key_columns

__all__ = [
    "DatabaseSource",
    "ExtraProfile",
    "KeyRanges",
    "ParquetSource",
    "combine_extras",
    "engine_for",
    "export_parquet",
    "extras_profile",
]

MANIFEST = "_riskgrade.json"
"""The file naming a Parquet dataset's tables and extras (written last: a dataset without it is incomplete)."""

_FORMAT = 2
"""2: the inspection–inspector links carry their inspection's ``enterprise_key`` and are split by it (1: whole)."""


# ---------------------------------------------------------------------------------------------
# Key ranges
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRanges:
    """Increasing bounds ``b0 < b1 < … < bn``: partition ``i`` holds the keys in ``[b_i, b_{i+1})``."""

    bounds: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.bounds) < 2 or any(b >= c for b, c in zip(self.bounds, self.bounds[1:])):
            raise ValueError(f"key range bounds must be at least two increasing integers, got {self.bounds}")

    @classmethod
    def of_keys(cls, keys: np.ndarray, n_partitions: int) -> KeyRanges:
        """``n_partitions`` ranges holding about as many of ``keys`` each (fewer if there are fewer keys)."""
        if n_partitions < 1:
            raise ValueError(f"n_partitions must be at least 1, got {n_partitions}")
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        if not len(keys):
            raise DataError("no enterprises to partition: the enterprises table is empty")
        starts = [int(part[0]) for part in np.array_split(keys, min(n_partitions, len(keys)))]
        return cls((*starts, int(keys[-1]) + 1))

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self.bounds[:-1], self.bounds[1:], strict=True))

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self.bounds[index], self.bounds[index + 1]


def rebased(tables: Mapping[str, pd.DataFrame], low: int) -> dict[str, pd.DataFrame]:
    """The partition's frames with ``enterprise_key - low`` as keys: the feature build then finds each event's
    enterprise in an array as long as the partition (instead of hashing ids, when the keys start far above 0)."""
    out = {}
    for name, frame in tables.items():
        if ENTERPRISE_KEY in frame.columns and len(frame) and frame[ENTERPRISE_KEY].notna().all():
            frame = frame.assign(**{ENTERPRISE_KEY: (frame[ENTERPRISE_KEY] - low).astype(frame[ENTERPRISE_KEY].dtype)})
        out[name] = frame
    return out


# ---------------------------------------------------------------------------------------------
# The enterprises' x_* extras: typed, and their levels, over the whole dataset
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraProfile:
    """What one ``x_*`` column holds: any value at all, only numbers, and its distinct text values."""

    has_values: bool
    numeric: bool
    levels: frozenset[str] = field(default=frozenset())

    def __or__(self, other: ExtraProfile) -> ExtraProfile:
        return ExtraProfile(self.has_values or other.has_values, self.numeric and other.numeric,
                            self.levels | other.levels)

    @property
    def kind(self) -> str:
        """``numeric`` when every value is a number (and there is one), else ``text`` (the store's rule)."""
        return "numeric" if self.has_values and self.numeric else "text"


def extras_profile(enterprises: pd.DataFrame) -> dict[str, ExtraProfile]:
    """The profile of each ``x_*`` column of one partition's enterprises (text columns are tested for numbers)."""
    out = {}
    for column in (c for c in enterprises.columns if c.startswith(EXTRA_PREFIX)):
        values = enterprises[column]
        present = values.dropna()
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            out[column] = ExtraProfile(bool(len(present)), True)
            continue
        text = present.astype("str")
        numeric = bool(pd.to_numeric(text.astype(object), errors="coerce").notna().all())
        out[column] = ExtraProfile(bool(len(text)), numeric, frozenset(text))
    return out


def combine_extras(profiles: Sequence[Mapping[str, ExtraProfile]]) -> dict[str, ExtraProfile]:
    """The profiles of all partitions combined, by column name (sorted, as the store orders the extras)."""
    combined: dict[str, ExtraProfile] = {}
    for profile in profiles:
        for column, part in profile.items():
            combined[column] = combined[column] | part if column in combined else part
    return dict(sorted(combined.items()))


def extra_kinds(profile: Mapping[str, ExtraProfile]) -> dict[str, str]:
    return {column: p.kind for column, p in profile.items()}


def extra_catalog(profile: Mapping[str, ExtraProfile]) -> tuple[Feature, ...]:
    """The features of the extras over the whole dataset (:func:`features.catalog.extra_features` of all of it)."""
    return tuple(extra_feature(column, categorical=p.kind == "text", levels=sorted(p.levels) if p.kind == "text"
                               else ()) for column, p in profile.items())


def _conform_extras(enterprises: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Every extra of ``kinds`` present (all missing where the partition has none), in its order, before the key."""
    for column, kind in kinds.items():
        if column not in enterprises.columns:
            enterprises[column] = pd.Series(np.nan if kind == "numeric" else pd.NA, index=enterprises.index,
                                            dtype="float64" if kind == "numeric" else "str")
    order = [c for c in enterprises.columns if not c.startswith(EXTRA_PREFIX) and c != ENTERPRISE_KEY]
    order += list(kinds) + ([ENTERPRISE_KEY] if ENTERPRISE_KEY in enterprises.columns else [])
    return enterprises[order]


def _empty(table: str) -> pd.DataFrame:
    frame = canonical_frame(table, pd.DataFrame())
    frame[ENTERPRISE_KEY] = np.zeros(0, dtype=np.int32)
    return frame


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


@functools.cache
def engine_for(url: str) -> sa.Engine:
    """One engine per URL and process (a worker reads and writes many partitions); the schema is the importer's
    business."""
    from features.db import database_url

    resolved = database_url(url)
    if resolved.startswith("postgresql://"):
        resolved = "postgresql+psycopg://" + resolved.removeprefix("postgresql://")
    return sa.create_engine(resolved)


@dataclass(frozen=True)
class DatabaseSource:
    """The contract tables of the database at ``url``, read one key range at a time (picklable: the URL only)."""

    url: str

    def _engine(self) -> sa.Engine:
        return engine_for(self.url)

    def tables(self) -> tuple[str, ...]:
        """The tables of the dataset: the required ones and every optional table with at least one row."""
        engine = self._engine()
        inspector = sa.inspect(engine)
        present = []
        with engine.connect() as conn:
            for spec in TABLES:
                has_rows = inspector.has_table(spec.name) and conn.execute(
                    sa.text(f'SELECT 1 FROM "{spec.name}" LIMIT 1')).first() is not None
                if spec.required_file or has_rows:
                    present.append(spec.name)
        return tuple(present)

    def keys(self) -> np.ndarray:
        """Every enterprise's ``enterprise_key``."""
        try:
            with self._engine().connect() as conn:
                keys = conn.execute(sa.text(f'SELECT "{ENTERPRISE_KEY}" FROM enterprises')).scalars().all()
        except sa.exc.SQLAlchemyError as exc:
            raise DataError(f"{self.url}: cannot read the enterprise keys ({exc.__class__.__name__}); import data "
                            "with this version first (riskgrade import DIR)") from exc
        return np.asarray(keys, dtype=np.int64)

    def profile(self, key_range: tuple[int, int]) -> dict[str, ExtraProfile]:
        """The extras profile of one partition (read as text, so that none is typed by its partition alone)."""
        from features.store import load_tables

        enterprises = load_tables(self._engine(), ["enterprises"], key_range=key_range, extra_kinds={})["enterprises"]
        return extras_profile(enterprises)

    def read(self, key_range: tuple[int, int], tables: Sequence[str],
             extra_kinds: Mapping[str, str]) -> dict[str, pd.DataFrame]:
        """One partition's frames (see the module docstring)."""
        from features.store import load_tables

        frames = load_tables(self._engine(), tables, key_range=key_range, extra_kinds=extra_kinds)
        out = {name: frames[name] if name in frames else _empty(name) for name in tables}
        out["enterprises"] = _conform_extras(out["enterprises"], extra_kinds)
        return out


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet dataset written by :func:`export_parquet`, read one key range at a time."""

    directory: str

    def _manifest(self) -> dict:
        path = Path(self.directory) / MANIFEST
        if not path.is_file():
            raise MissingInputError(f"{self.directory}: not a riskgrade Parquet dataset (no {MANIFEST}; write one "
                                    "with riskgrade export-parquet DIR)")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != _FORMAT:
            raise DataError(f"{path}: format {manifest.get('format')!r}, this version reads format {_FORMAT}")
        return manifest

    def tables(self) -> tuple[str, ...]:
        return tuple(self._manifest()["tables"])

    def keys(self) -> np.ndarray:
        column = pq.read_table(Path(self.directory) / "enterprises", columns=[ENTERPRISE_KEY]).column(0)
        return column.to_numpy().astype(np.int64)

    def profile(self, key_range: tuple[int, int]) -> dict[str, ExtraProfile]:
        return extras_profile(self._read("enterprises", key_range))

    def read(self, key_range: tuple[int, int], tables: Sequence[str],
             extra_kinds: Mapping[str, str]) -> dict[str, pd.DataFrame]:
        written = self._manifest()["extras"]
        if dict(written) != dict(extra_kinds):
            raise DataError(f"{self.directory}: the dataset's extras are {written}, the build asked for "
                            f"{dict(extra_kinds)}")
        present = set(self.tables())
        return {name: self._read(name, key_range) if name in present else _empty(name) for name in tables}

    def _read(self, table: str, key_range: tuple[int, int]) -> pd.DataFrame:
        low, high = key_range
        spec = TABLE_BY_NAME[table]
        rows = [(ENTERPRISE_KEY, ">=", low), (ENTERPRISE_KEY, "<", high)] if spec.split_by_key_range \
            else None  # the inspectors' roster: whole, in every partition
        arrow = pq.read_table(Path(self.directory) / table, filters=rows)
        frame = arrow.to_pandas()
        if not spec.per_enterprise and ENTERPRISE_KEY in frame.columns:  # the links' key, written for this read only
            frame = frame.drop(columns=ENTERPRISE_KEY)
        return frame.sort_values(list(key_columns(table)), kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def export_parquet(url: str, directory: str | Path, *, enterprises_per_file: int = 100_000,
                   progress=None) -> dict[str, int]:
    """Write the database's contract tables as a Parquet dataset (what :class:`ParquetSource` reads).

    One directory per table under ``directory``; one file per key range of ``enterprises_per_file``
    enterprises, rows sorted by ``enterprise_key`` (so a key-range read skips the other row groups). The
    extras are typed over the whole database first (one pass over the enterprises). The dataset is written in
    ``directory``'s sibling ``<name>.partial`` and renamed when complete: an interrupted export leaves no
    dataset behind. Returns the rows written per table.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise DataError(f"{target}: exists and is not an empty directory (give a new directory)")
    if enterprises_per_file < 1:
        raise ValueError(f"enterprises_per_file must be at least 1, got {enterprises_per_file}")
    say = progress or (lambda message: None)
    source = DatabaseSource(url)
    tables = source.tables()
    keys = source.keys()
    ranges = KeyRanges.of_keys(keys, max(1, -(-len(np.unique(keys)) // enterprises_per_file)))
    profile = combine_extras([source.profile(r) for r in ranges])
    kinds = extra_kinds(profile)
    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    rows = dict.fromkeys(tables, 0)
    for i, key_range in enumerate(ranges):
        frames = source.read(key_range, tables, kinds)
        for name, frame in frames.items():
            if not len(frame) and name != "enterprises":
                continue
            spec = TABLE_BY_NAME[name]
            if not spec.split_by_key_range and i > 0:  # read whole by every partition: written once
                continue
            if spec.belongs_to is not None:  # each row with its parent's key, so that a read can filter on it
                parent = frames[spec.belongs_to][[spec.key, ENTERPRISE_KEY]]
                frame = frame.merge(parent, on=spec.key, how="inner", validate="many_to_one")
            ordered = frame.sort_values(ENTERPRISE_KEY, kind="stable") if ENTERPRISE_KEY in frame.columns else frame
            folder = staging / name
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pandas(ordered, preserve_index=False), folder / f"part-{i:05d}.parquet")
            rows[name] += len(frame)
        say(f"partition {i + 1}/{len(ranges)}: keys {key_range[0]}–{key_range[1] - 1}")
    manifest = {"format": _FORMAT, "tables": list(tables), "extras": kinds, "rows": rows}
    (staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    if target.exists():
        target.rmdir()
    staging.rename(target)
    return rows
