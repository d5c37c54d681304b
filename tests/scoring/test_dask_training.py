"""Training at scale: a stratified sample of the enterprises drawn partition by partition (models.train)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.contract import ENTERPRISE_KEY
from features.db import connect
from features.partitions import DatabaseSource, ParquetSource, export_parquet
from features.store import load_tables
from models.train import sample_training_tables, stratified_sample, train_and_evaluate

from batch_world import AS_OF, import_world, world_csv  # noqa: F401  (world_csv is a fixture)


@pytest.fixture(scope="module")
def sqlite_url(world_csv, tmp_path_factory):  # noqa: F811
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'riskgrade.db'}"
    import_world(url, world_csv).dispose()
    return url


def test_the_sample_keeps_each_sector_share_and_is_reproducible():
    enterprises = pd.DataFrame({ENTERPRISE_KEY: np.arange(1000) + 7,
                                "sector": ["gas"] * 600 + ["coal_mine"] * 300 + ["hazchem"] * 97 + ["mining"] * 3})

    sample = stratified_sample(enterprises, 100, seed=4)

    assert len(sample) == 100 and len(np.unique(sample)) == 100 and np.all(np.diff(sample) > 0)
    sectors = enterprises.set_index(ENTERPRISE_KEY).loc[sample, "sector"].value_counts().to_dict()
    assert sectors == {"gas": 60, "coal_mine": 30, "hazchem": 10}  # 9.7 and 0.3: the larger remainder wins
    np.testing.assert_array_equal(stratified_sample(enterprises, 100, seed=4), sample)
    assert not np.array_equal(stratified_sample(enterprises, 100, seed=5), sample)
    np.testing.assert_array_equal(stratified_sample(enterprises, 5000, seed=4), enterprises[ENTERPRISE_KEY])


@pytest.mark.parametrize("kind", ["database", "parquet"])
def test_sampled_tables_hold_every_record_of_the_sampled_enterprises_and_nothing_else(sqlite_url, tmp_path, kind):
    if kind == "parquet":
        export_parquet(sqlite_url, tmp_path / "dataset", enterprises_per_file=70)
        source = ParquetSource(str(tmp_path / "dataset"))
    else:
        source = DatabaseSource(sqlite_url)
    whole = load_tables(connect(sqlite_url))

    tables, sample = sample_training_tables(source, 90, seed=0, enterprises_per_read=50)  # 5 reads

    assert sample["enterprises"] == 90 and sample["of"] == 240 and "sample of 90 of the 240" in sample["note"]
    chosen = set(tables["enterprises"]["enterprise_id"])
    assert len(chosen) == 90
    for name, frame in whole.items():
        if "enterprise_id" not in frame.columns:  # the inspectors' roster and links: not per enterprise
            continue
        expected = frame.loc[frame["enterprise_id"].isin(chosen)].reset_index(drop=True)
        pd.testing.assert_frame_equal(tables[name][expected.columns], expected, check_dtype=False)
    if "inspection_inspectors" in whole:  # the roster whole, the links of the sampled enterprises' visits only
        assert len(tables["inspectors"]) == len(whole["inspectors"])
        visits = set(tables["inspections"]["inspection_id"])
        links = whole["inspection_inspectors"]
        assert len(tables["inspection_inspectors"]) == int(links["inspection_id"].isin(visits).sum()) > 0
    everything, none = sample_training_tables(source, 0, seed=0)
    assert none is None and len(everything["enterprises"]) == 240


def test_training_on_a_sample_says_so_in_its_report(sqlite_url, policy):
    from models.config import TrainingConfig
    from models.expert import ExpertCardRules
    from scoring.domain.policy import build_section

    tables, sample = sample_training_tables(DatabaseSource(sqlite_url), 150, seed=0)
    config = dataclasses.replace(TrainingConfig(), sample_enterprises=150, warmup_days=180, max_as_of_dates=5)

    rules = build_section(ExpertCardRules, policy.expert_card, "policy: expert_card")
    result = train_and_evaluate(tables, AS_OF, ("expert",), expert_rules=rules, config=config, horizon_days=180,
                                log=False, sample=sample)  # the 3-year world is short for the default one-year horizon

    assert result.report["sample"]["enterprises"] == 150 and result.report["notes"][0] == sample["note"]
    assert result.features.index.get_level_values("enterprise_id").nunique() <= 150
