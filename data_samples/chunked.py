"""A large world in chunks of enterprises, each generated and written on its own (bounded memory).

:func:`data_samples.world.generate_world` holds the whole world in one process: about 17 GB for 1M enterprises ×
5 years. :func:`generate_world_chunks` yields the same kind of world one chunk of ``chunk_enterprises`` at a time
(a few GB each): every chunk is a world of its own — its own county bureau, inspectors and townships —, made
by ``generate_world`` with a seed of its own, and its keys renumbered so that the chunks fit together:

- enterprises are numbered ``1..N`` across the chunks (chunk ``c`` holds ``c × chunk_enterprises + 1 …``), their
  USCCs recomputed from the global position (distinct and valid, :func:`data_samples._population.uscc_codes`);
- every other key (inspections, hazards, violations, accidents, penalties, credit records, complaints,
  inspectors) is shifted past the largest of the chunks before it; references follow their key.

Chunk 0 has the seed ``seed`` itself, so a world of one chunk is ``generate_world(n, years, seed)`` exactly; the
other chunks' seeds derive from ``seed`` and the chunk number (same arguments, same world). Importing the chunks
one after another (:func:`features.importer.import_directory` upserts by key) gives the database of the world.
What crosses chunks in a real province does not here: no inspector works in two chunks, and township names may
repeat from one chunk to the next (peer groups by sector and township then span those chunks).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd

__all__ = ["chunk_seed", "generate_world_chunks", "renumber_chunk"]

_KEYS = {"enterprise_id": "enterprises", "inspector_id": "inspectors", "inspection_id": "inspections",
         "hazard_id": "hazards", "violation_id": "violations", "accident_id": "accidents",
         "penalty_id": "penalties", "record_id": "credit_records", "complaint_id": "complaints"}
"""Key column -> the ID format it is written with (data_samples._store.ID_FORMATS, the inspectors' J-numbers)."""


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` (chunk 0: ``seed``)."""
    if chunk == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), 17, int(chunk)]).generate_state(1, dtype=np.uint32)[0])


def _numbers(ids: pd.Series, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """The integer part of keys written ``prefix`` + digits, and where there is a key."""
    present = ids.notna().to_numpy()
    numbers = np.zeros(len(ids), dtype=np.int64)
    if present.any():
        text = ids[present].astype(str)
        if not text.str.startswith(prefix).all():
            raise ValueError(f"keys not written {prefix}<digits>: {text[~text.str.startswith(prefix)].iloc[0]!r}")
        numbers[present] = text.str.slice(len(prefix)).astype(np.int64).to_numpy()
    return numbers, present


def renumber_chunk(tables: dict[str, pd.DataFrame], *, enterprise_offset: int, offsets: dict[str, int],
                   county_code: str | None = None, rewrite: bool = True) -> dict[str, int]:
    """Shift the keys of one chunk's ``tables`` in place (see the module docstring): enterprises by
    ``enterprise_offset``, the other keys by ``offsets[format]`` (missing: 0). Returns the largest number of each
    key format in the chunk after the shift (the offsets of the next chunk). ``rewrite=False``: only those
    numbers, the tables untouched."""
    from data_samples._inspectors import INSPECTOR_IDS
    from data_samples._population import uscc_codes
    from data_samples._store import ID_FORMATS
    from data_samples.world import WorldParams

    largest: dict[str, int] = {}
    for name, frame in tables.items():
        for column, kind in _KEYS.items():
            if column not in frame.columns:
                continue
            shift = enterprise_offset if kind == "enterprises" else offsets.get(kind, 0)
            fmt = INSPECTOR_IDS if kind == "inspectors" else ID_FORMATS[kind]
            numbers, present = _numbers(frame[column], fmt.prefix)
            numbers = numbers + shift
            if present.any():
                largest[kind] = max(largest.get(kind, 0), int(numbers[present].max()))
            if not rewrite:
                continue
            written = pd.Series(fmt(numbers, present).to_pylist(), index=frame.index, dtype=frame[column].dtype)
            frame[column] = written
    enterprises = tables.get("enterprises")
    if rewrite and enterprises is not None and len(enterprises) and "uscc" in enterprises.columns:
        position = _numbers(enterprises["enterprise_id"], ID_FORMATS["enterprises"].prefix)[0] - 1
        founded = pd.to_datetime(enterprises["founded_on"]).dt.year.to_numpy()
        county = county_code or WorldParams().population.county_code
        enterprises["uscc"] = pd.Series(uscc_codes(position, founded, county), index=enterprises.index,
                                        dtype=enterprises["uscc"].dtype)
    return largest


def generate_world_chunks(n_enterprises: int, years: int, seed: int, *, chunk_enterprises: int,
                          start: date = date(2021, 1, 1), **options) -> Iterator[tuple[int, dict[str, pd.DataFrame]]]:
    """``(chunk, tables)`` for chunks of ``chunk_enterprises`` enterprises (the last one smaller), each a
    :func:`~data_samples.world.generate_world` of its own with keys renumbered (module docstring). ``options``:
    more arguments of ``generate_world`` (``params``, ``policy``)."""
    from data_samples.world import generate_world

    if chunk_enterprises < 1:
        raise ValueError(f"chunk_enterprises must be at least 1, got {chunk_enterprises}")
    offsets: dict[str, int] = {}
    for chunk, first in enumerate(range(0, int(n_enterprises), int(chunk_enterprises))):
        size = min(int(chunk_enterprises), int(n_enterprises) - first)
        tables = generate_world(size, years, chunk_seed(seed, chunk), start=start, **options)
        largest = renumber_chunk(tables, enterprise_offset=first, offsets=offsets,
                                 county_code=(options.get("params") or _default_params()).population.county_code,
                                 rewrite=chunk > 0)  # chunk 0 stays generate_world's, string for string
        for kind, number in largest.items():
            if kind != "enterprises":
                offsets[kind] = max(offsets.get(kind, 0), number)
        yield chunk, tables


def _default_params():
    from data_samples.world import WorldParams

    return WorldParams()
