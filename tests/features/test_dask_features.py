"""The feature build on Dask (features.partitions, features.dask_build): equal to the single-machine build.

One small world (300 enterprises, 3 years), imported into SQLite (and PostgreSQL when RISKGRADE_TEST_PG_URL is
set) and exported to Parquet; one local cluster of 2 worker processes for the whole module.
"""

from __future__ import annotations

import textwrap
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import AGGREGATIONS, GroupTotals, TotalKey, build_features, cross_enterprise_totals
from features.catalog import CATALOG, Quantity
from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME
from features.db import connect
from features.errors import DataError, MissingInputError
from features.importer import import_directory
from features.partitions import DatabaseSource, KeyRanges, ParquetSource, export_parquet
from features.store import load_tables
from features.validate import key_columns

distributed = pytest.importorskip("distributed")

TODAY = date(2025, 1, 1)
DATES = [pd.Timestamp("2024-07-01"), pd.Timestamp("2025-01-01")]
PARTITIONS = (1, 3, 7)


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client  # tests/conftest.py: one cluster for the session


@pytest.fixture(scope="module")
def world_csv(tmp_path_factory):
    from data_samples.world import generate_world, write_world

    tables = generate_world(300, 3, 5, start=date(2022, 1, 1))
    directory = tmp_path_factory.mktemp("world")
    write_world({name: frame for name, frame in tables.items() if name != "truth"}, directory)
    return directory


@pytest.fixture(scope="module")
def sqlite_url(world_csv, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'riskgrade.db'}"
    import_directory(connect(url), world_csv, today=TODAY)
    return url


@pytest.fixture(scope="module")
def pg_url(world_csv, module_pg_url):
    engine = connect(module_pg_url)
    import_directory(engine, world_csv, today=TODAY)
    engine.dispose()
    return module_pg_url


@pytest.fixture(scope="module")
def parquet_dir(sqlite_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("export") / "dataset"
    export_parquet(sqlite_url, directory, enterprises_per_file=120)  # 3 files per table: reads cross files
    return directory


@pytest.fixture(scope="module")
def expected(sqlite_url):
    return build_features(load_tables(connect(sqlite_url)), DATES)


@pytest.fixture(scope="module")
def expected_pg(pg_url):
    return build_features(load_tables(connect(pg_url)), DATES)


def _float_sums(frame: pd.DataFrame) -> list[str]:
    """Columns that rest on sums of non-integer weights across enterprises (recency-weighted sector means): the
    only ones whose partitioned sums can differ by rounding; every other column must be equal exactly."""
    by_name = {f.name: f for f in CATALOG}
    return [c for c in frame.columns if c in by_name and by_name[c].half_life_days is not None
            and AGGREGATIONS[by_name[c].aggregation].stage == "cross_enterprise"]


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    floats = _float_sums(expected)
    exact = [c for c in expected.columns if c not in floats]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    pd.testing.assert_frame_equal(got[floats], expected[floats], check_exact=False, rtol=1e-9, atol=0)
    assert list(got.columns) == list(expected.columns)


# ---------------------------------------------------------------------------------------------
# The build on the cluster equals the single-machine build
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", PARTITIONS)
def test_features_from_parquet_equal_the_single_machine_build(client, parquet_dir, expected, n):
    from features.dask_build import build_features_dask

    built = build_features_dask(client, ParquetSource(str(parquet_dir)), DATES, partitions=n)

    assert len(built.frames) == n
    assert_same_features(built.gather(), expected)


@pytest.mark.parametrize("n", PARTITIONS)
def test_features_from_postgresql_equal_the_single_machine_build(client, pg_url, expected_pg, expected, n):
    from features.dask_build import build_features_dask

    built = build_features_dask(client, DatabaseSource(pg_url), DATES, partitions=n)

    assert_same_features(built.gather(), expected_pg)
    assert_same_features(expected_pg, expected)  # the same world in either database


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(2, 299), min_size=1, max_size=5, unique=True))
def test_the_partitioning_never_changes_the_features(client, parquet_dir, expected, cuts):
    from features.dask_build import build_features_dask

    source = ParquetSource(str(parquet_dir))
    keys = np.sort(source.keys())
    ranges = KeyRanges((int(keys[0]), *sorted(int(keys[0]) + c for c in cuts), int(keys[-1]) + 1))

    assert_same_features(build_features_dask(client, source, DATES, partitions=ranges).gather(), expected)


def test_a_partition_without_enterprises_adds_no_rows(client, parquet_dir, expected):
    from features.dask_build import build_features_dask

    keys = np.sort(ParquetSource(str(parquet_dir)).keys())
    ranges = KeyRanges((int(keys[0]) - 10, int(keys[0]), int(keys[150]), int(keys[-1]) + 1))  # the first is empty

    built = build_features_dask(client, ParquetSource(str(parquet_dir)), DATES, partitions=ranges)
    assert [len(f) for f in client.gather(built.frames)][0] == 0
    assert_same_features(built.gather(), expected)


def test_extras_are_typed_over_the_whole_dataset(client, tmp_path):
    """``x_code`` is a number in the first partition's enterprises and text in the second's: text everywhere."""
    from features.dask_build import build_features_dask

    directory = tmp_path / "files"
    directory.mkdir()
    rows = "\n".join(f"E{i:02d},gas,{i if i < 6 else 'A' + str(i)},{i * 1.5}" for i in range(12))
    (directory / "enterprises.csv").write_text("enterprise_id,sector,x_code,x_area\n" + rows + "\n", encoding="utf-8")
    (directory / "inspections.csv").write_text(textwrap.dedent("""\
        inspection_id,enterprise_id,inspected_on
        I1,E01,2024-03-01
        I2,E09,2024-04-01
    """), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    import_directory(connect(url), directory, today=TODAY)
    expected = build_features(load_tables(connect(url)), DATES)
    assert isinstance(expected["x_code"].dtype, pd.CategoricalDtype)

    built = build_features_dask(client, DatabaseSource(url), DATES, partitions=2)

    assert_same_features(built.gather(), expected)
    assert client.gather(built.frames[0])["x_code"].cat.categories.tolist() == sorted(
        ["0", "1", "2", "3", "4", "5", *(f"A{i}" for i in range(6, 12))])


# ---------------------------------------------------------------------------------------------
# Partitioned data
# ---------------------------------------------------------------------------------------------


def test_key_ranges_hold_about_as_many_enterprises_each():
    ranges = KeyRanges.of_keys(np.array([7, 3, 4, 5, 6, 10, 11]), 3)

    assert ranges.bounds == (3, 6, 10, 12)
    assert list(ranges) == [(3, 6), (6, 10), (10, 12)] and len(ranges) == 3 and ranges[1] == (6, 10)
    assert KeyRanges.of_keys(np.array([1, 2]), 5).bounds == (1, 2, 3)  # never more partitions than keys
    with pytest.raises(ValueError, match=r"n_partitions must be at least 1, got 0"):
        KeyRanges.of_keys(np.array([1]), 0)
    with pytest.raises(DataError, match=r"no enterprises to partition"):
        KeyRanges.of_keys(np.array([], dtype=np.int64), 2)
    with pytest.raises(ValueError, match=r"at least two increasing integers, got \(3, 3\)"):
        KeyRanges((3, 3))


@pytest.mark.parametrize("kind", ["database", "parquet"])
def test_partitions_split_every_table_by_enterprise_key_and_keep_each_row_once(sqlite_url, parquet_dir, kind):
    source = DatabaseSource(sqlite_url) if kind == "database" else ParquetSource(str(parquet_dir))
    whole = load_tables(connect(sqlite_url))
    ranges = KeyRanges.of_keys(source.keys(), 4)
    kinds = {"x_area_m2": "numeric", "x_park": "text"}

    parts = [source.read(r, source.tables(), kinds) for r in ranges]

    assert set(source.tables()) == set(whole)
    for name, frame in whole.items():
        if not TABLE_BY_NAME[name].split_by_key_range:  # the inspectors' roster: whole in every partition
            for part in parts:
                pd.testing.assert_frame_equal(part[name], frame, check_exact=True)
            continue
        for (low, high), part in zip(ranges, parts, strict=True):
            if TABLE_BY_NAME[name].per_enterprise:
                assert part[name][ENTERPRISE_KEY].between(low, high - 1).all()
            else:  # the links: those of the partition's inspections
                assert part[name]["inspection_id"].isin(part["inspections"]["inspection_id"]).all()
        combined = pd.concat([part[name] for part in parts], ignore_index=True)
        combined = combined.sort_values(list(key_columns(name)), kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(combined, frame, check_exact=True)


def test_export_refuses_a_non_empty_directory_and_parquet_needs_its_manifest(sqlite_url, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "other.txt").write_text("x")
    with pytest.raises(DataError, match=r"full: exists and is not an empty directory"):
        export_parquet(sqlite_url, tmp_path / "full")
    with pytest.raises(MissingInputError, match=r"not a riskgrade Parquet dataset \(no _riskgrade\.json"):
        ParquetSource(str(tmp_path / "full")).tables()


def test_a_table_without_enterprise_keys_cannot_be_read_by_key_range(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")  # a database from before the keys
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE enterprises (enterprise_id TEXT, sector TEXT)"))
    with pytest.raises(DataError, match=r"table 'enterprises' has no enterprise_key column"):
        load_tables(engine, ["enterprises"], key_range=(0, 10))


# ---------------------------------------------------------------------------------------------
# Cross-enterprise sums
# ---------------------------------------------------------------------------------------------


def test_group_totals_add_up_by_label():
    dates = pd.DatetimeIndex(DATES)
    key = TotalKey(Quantity("accidents"), 365, 0, "sector", active_only=False)
    a = GroupTotals(dates, {key: pd.DataFrame([[1, 2], [3, 4]], index=pd.Index(["gas", "hazchem"]))})
    b = GroupTotals(dates, {key: pd.DataFrame([[10, 20]], index=pd.Index(["coal_mine"]))})
    c = GroupTotals(dates, {key: pd.DataFrame([[5, 5]], index=pd.Index(["gas"]))})

    combined = GroupTotals.combine([a, b, c])

    assert combined.sums[key].to_dict("index") == {"coal_mine": {0: 10, 1: 20}, "gas": {0: 6, 1: 7},
                                                   "hazchem": {0: 3, 1: 4}}
    assert combined.cells(key, pd.Index(["hazchem", "mining"])).tolist() == [3, 4, 0, 0]
    with pytest.raises(ValueError, match=r"different as-of dates"):
        GroupTotals.combine([a, GroupTotals(dates[:1], {})])
    other = TotalKey(Quantity("hazards"), 90, 0, "sector", active_only=True)
    with pytest.raises(ValueError, match=r"lack the sums of count of hazards over \[a - 90, a - 0\) by sector"):
        combined.cells(other, pd.Index(["gas"]))


def test_totals_of_other_dates_are_refused(sqlite_url):
    tables = load_tables(connect(sqlite_url))
    totals = cross_enterprise_totals(tables, DATES[:1])
    with pytest.raises(ValueError, match=r"group totals are as of \[.*2024, 7, 1.*\], the build as of"):
        build_features(tables, DATES, totals=totals)


def test_a_build_given_its_own_totals_is_unchanged(sqlite_url, expected):
    tables = load_tables(connect(sqlite_url))

    totals = cross_enterprise_totals(tables, DATES)

    assert {k.grouping for k in totals.sums} == {"sector", "township", "inspector", "inspector × sector"}
    pd.testing.assert_frame_equal(build_features(tables, DATES, totals=totals), expected, check_exact=True)
