"""A world generated in chunks of enterprises (data_samples.chunked): keys that fit together, one chunk = the
one-process world, and a database imported chunk after chunk."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from data_samples.chunked import chunk_seed, generate_world_chunks
from data_samples.world import generate_world

START = date(2023, 1, 1)
KEYS = {"inspections": "inspection_id", "hazards": "hazard_id", "violations": "violation_id",
        "accidents": "accident_id", "penalties": "penalty_id", "credit_records": "record_id",
        "complaints": "complaint_id", "inspectors": "inspector_id"}


def _chunks(n, chunk, seed=5):
    return [tables for _, tables in generate_world_chunks(n, 1, seed, chunk_enterprises=chunk, start=START)]


def test_one_chunk_is_the_one_process_world():
    (only,) = _chunks(150, 150)
    whole = generate_world(150, 1, 5, start=START)
    assert set(only) == set(whole)
    for name in whole:
        pd.testing.assert_frame_equal(only[name], whole[name])


def test_chunks_have_their_own_draws_and_keys_that_fit_together():
    chunks = _chunks(250, 100)
    assert [len(c["truth"]["enterprise_id"].unique()) for c in chunks] == [100, 100, 50]
    enterprises = pd.concat([c["enterprises"] for c in chunks], ignore_index=True)
    numbers = enterprises["enterprise_id"].str.slice(1).astype(int)
    assert numbers.is_unique and numbers.between(1, 250).all()
    assert enterprises["uscc"].is_unique
    first = generate_world(100, 1, chunk_seed(5, 1), start=START)["enterprises"]
    assert chunk_seed(5, 1) != 5 and len(first) == len(chunks[1]["enterprises"])
    assert first["sector"].tolist() == chunks[1]["enterprises"]["sector"].tolist()  # same draws, new keys
    for table, key in KEYS.items():
        every = pd.concat([c[table][key] for c in chunks], ignore_index=True)
        assert every.is_unique, f"{table}.{key} repeats across chunks"
    for c in chunks:  # references follow their keys within a chunk
        inspections = set(c["inspections"]["inspection_id"])
        assert set(c["hazards"]["inspection_id"].dropna()) <= inspections
        assert set(c["inspection_inspectors"]["inspector_id"]) <= set(c["inspectors"]["inspector_id"])
        assert set(c["inspections"]["enterprise_id"]) <= set(c["enterprises"]["enterprise_id"])


def test_the_chunks_import_one_after_another(tmp_path):
    from data_samples.world import write_world
    from features.db import connect
    from features.importer import import_directory
    from features.store import load_tables

    engine = connect(f"sqlite:///{tmp_path / 'w.db'}")
    chunks = _chunks(160, 80)
    for i, tables in enumerate(chunks):
        write_world({k: v for k, v in tables.items() if not k.startswith("truth")}, tmp_path / f"c{i}")
        import_directory(engine, tmp_path / f"c{i}", today=date(2024, 1, 1))
    stored = load_tables(engine)
    for table in ("enterprises", "inspections", "hazards", "inspectors"):
        assert len(stored[table]) == sum(len(c[table]) for c in chunks), table


def test_a_chunk_size_below_one_is_refused():
    with pytest.raises(ValueError, match="chunk_enterprises"):
        next(generate_world_chunks(10, 1, 1, chunk_enterprises=0))
