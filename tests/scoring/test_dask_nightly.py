"""Scoring, tiers and the nightly batch on Dask (scoring.results.partitioned): equal to the single machine.

One small world (the batch tests' 240 enterprises, 3 years) and one local cluster of 2 worker processes for the
whole module. From a Parquet export: scores, tiers (quota cut-offs with ties, vetoes including the sector
cluster, hysteresis, manual overrides), limits and the ranked list equal ``compute_nightly`` for 1, 3 and 7
partitions, and so do the expected finds for a typical team of an expected-finds champion (issue 16, item 4).
On PostgreSQL: ``run_nightly_dask`` stores the same rows as ``run_nightly`` (expected finds included); a worker
killed while staging leaves the previous results and marks the run failed; a re-run succeeds.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features.build import build_features
from features.db import connect
from features.partitions import DatabaseSource, KeyRanges, ParquetSource, export_parquet
from features.store import load_tables
from scoring.results.batch import FindsModel, compute_nightly, expert_card_model, run_nightly
from scoring.results.tables import add_override, batch_runs, runs_frame, scores_frame, tier_changes

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

distributed = pytest.importorskip("distributed")

EARLIER = AS_OF - timedelta(days=30)  # the previous run: hysteresis (90 days' hold) and tier changes compare with it
PARTITIONS = (1, 3, 7)


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client  # tests/conftest.py: one cluster for the session, failed tasks not retried


@pytest.fixture(scope="module")
def tight_policy():
    """The shipped policy with a sector cluster of 1 accident in 3 years bureau-wide (so that the small world,
    with its few accidents, has cluster vetoes: counts that only add up across partitions)."""
    from scoring.domain.policy import load_policy

    policy = load_policy()
    cluster = dataclasses.replace(policy.overrides.sector_cluster, count=1, days=1095, scope="jurisdiction")
    return dataclasses.replace(policy, overrides=dataclasses.replace(policy.overrides, sector_cluster=cluster))


@pytest.fixture(scope="module")
def sqlite_url(world_csv, tmp_path_factory):  # noqa: F811
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'riskgrade.db'}"
    import_world(url, world_csv).dispose()
    return url


@pytest.fixture(scope="module")
def parquet_dir(sqlite_url, tmp_path_factory):
    directory = tmp_path_factory.mktemp("export") / "dataset"
    export_parquet(sqlite_url, directory, enterprises_per_file=100)
    return directory


def _manual(ids: list[str]) -> pd.DataFrame:
    """Manual overrides active at AS_OF (the frame overrides_active_at gives): one up, one down, one twice."""
    created = pd.Timestamp("2024-12-01")
    rows = [(1, ids[0], "high", "夜间违规生产"), (2, ids[1], "low", "整改到位"), (3, ids[2], "general", "first"),
            (4, ids[2], "high", "the latest wins")]
    return pd.DataFrame({
        "override_id": pd.array([r[0] for r in rows], dtype="Int64"),
        "enterprise_id": [r[1] for r in rows], "tier": [r[2] for r in rows], "reason": [r[3] for r in rows],
        "created_by": "王科长", "created_at": [created + pd.Timedelta(hours=r[0]) for r in rows],
        "valid_from": pd.Timestamp("2024-12-01"), "valid_until": pd.Timestamp("2025-02-01"),
    }).astype({"enterprise_id": "str", "tier": "str", "reason": "str", "created_by": "str"})


@pytest.fixture(scope="module")
def finds(sqlite_url):
    """An expected-finds model (hazards and major hazards) trained on the world, as the registry would hand it."""
    from threadpoolctl import threadpool_limits

    from features.contract import TABLES
    from models.expected_finds import train_expected_finds
    from models.registry import FINDS_MODEL_NAME

    tables = load_tables(connect(sqlite_url), [t.name for t in TABLES])
    with threadpool_limits(1):
        model = train_expected_finds(tables, pd.Timestamp(AS_OF), months=12, test_months=3,
                                     params={"max_iter": 20}, register=False, with_major=True).model
    return FindsModel(model, FINDS_MODEL_NAME, "4")


@pytest.fixture(scope="module")
def finds_uri(finds, tmp_path_factory):
    """A tracking store whose registry has no risk champion (the expert card scores) and ``finds`` as the
    expected-finds champion, for the whole module (MLflow itself: tests/models/test_expected_finds.py)."""
    from features.errors import NoChampionError
    from models import registry

    store = tmp_path_factory.mktemp("finds-mlflow") / "mlflow.db"
    store.touch()

    def load_champion(uri=None, *, model_name=registry.MODEL_NAME):
        if model_name == registry.FINDS_MODEL_NAME:
            return registry.ChampionModel(model=finds.model, name=model_name, version=finds.version, run_id="r",
                                          kind="expected_finds", as_of=None)
        raise NoChampionError(f"no model {model_name!r} carries the alias 'champion'")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "load_champion", load_champion)
        yield f"sqlite:///{store}"


@pytest.fixture(scope="module")
def single_machine(sqlite_url, tight_policy, finds):
    """compute_nightly as of EARLIER (the previous run) and as of AS_OF with it, the manual overrides and the
    expected-finds model."""
    tables = load_tables(connect(sqlite_url))
    features = build_features(tables, [pd.Timestamp(EARLIER)])
    model = expert_card_model(tight_policy.expert_card, features)
    earlier = compute_nightly(features, model, tables, as_of=EARLIER, policy=tight_policy)
    previous = earlier.scores[["enterprise_id", "as_of", "model_tier", "final_tier", "last_model_high_on"]]
    vetoed = earlier.scores.loc[earlier.scores["veto"], "enterprise_id"].tolist()  # lowering a veto is ignored
    assert vetoed, "the test world should have a vetoed enterprise"
    manual = _manual([earlier.scores["enterprise_id"].iloc[-1], vetoed[0], earlier.scores["enterprise_id"].iloc[-2]])
    features = build_features(tables, [pd.Timestamp(AS_OF)])
    result = compute_nightly(features, model, tables, as_of=AS_OF, policy=tight_policy, previous=previous,
                             manual=manual, finds=finds)
    assert result.scores["expected_hazards"].notna().all()
    return model, previous, manual, result


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal rows in the same (rank) order; probabilities and points to rounding (the sector means behind some
    features are sums added in another order), everything else exactly."""
    assert list(got.columns) == list(expected.columns)
    assert got["enterprise_id"].tolist() == expected["enterprise_id"].tolist()
    floats = ["probability", "points", "expected_hazards", "expected_major_hazards"]
    np.testing.assert_allclose(got[floats].to_numpy(float), expected[floats].to_numpy(float), rtol=1e-9, atol=0,
                               equal_nan=True)
    others = [c for c in expected.columns if c not in floats and c != "reasons"]
    pd.testing.assert_frame_equal(got[others].reset_index(drop=True), expected[others].reset_index(drop=True),
                                  check_dtype=False)
    for mine, theirs in zip(got["reasons"], expected["reasons"], strict=True):
        assert [r["feature"] for r in mine] == [r["feature"] for r in theirs]
        np.testing.assert_allclose([r["contribution"] for r in mine], [r["contribution"] for r in theirs],
                                   rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The computation from a Parquet export equals compute_nightly
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", PARTITIONS)
def test_scores_tiers_limits_and_ranked_list_equal_the_single_machine(client, parquet_dir, tight_policy,
                                                                     single_machine, finds, n):
    from features.dask_build import build_features_dask
    from scoring.results.partitioned import compute_nightly_dask

    model, previous, manual, expected = single_machine
    built = build_features_dask(client, ParquetSource(str(parquet_dir)), [AS_OF], partitions=n)

    got = compute_nightly_dask(client, built, model, as_of=AS_OF, policy=tight_policy, previous=previous,
                               manual=manual, finds=finds)

    assert len(got.rows) == n
    assert_same_rows(got.scores(), expected.scores)
    pd.testing.assert_frame_equal(got.changes(), expected.changes.sort_values("enterprise_id", kind="stable")
                                  .reset_index(drop=True), check_dtype=False)
    assert got.counts == expected.counts
    pd.testing.assert_frame_equal(got.cutoffs, expected.cutoffs)
    # The case is a real one: tied scores (sharing a score rank), every kind of decision.
    codes = ",".join(expected.scores["override_codes"])
    assert all(code in codes for code in ("sector_cluster", "hold", "manual", "manual_ignored"))
    assert expected.scores["score_rank"].duplicated().any()


def test_the_global_step_cuts_through_a_tied_block_split_across_partitions(policy):
    """20 scores, a block of 6 equal ones across the top-10 % cut, spread over three partitions: the same
    cut-offs and ranks as over all of them at once (the block goes whole to the side nearer the quota)."""
    from scoring.domain.tiers import model_cutoffs, score_ranks
    from scoring.results.partitioned import _global_score_ranks

    every = np.array([0.9] + [0.5] * 6 + list(np.linspace(0.4, 0.01, 13)))
    parts = [every[[3, 0, 10]], every[[1, 2, 11, 12, 13]], every[[4, 5, 6, 7, 8, 9, 14, 15, 16, 17, 18, 19]]]
    order = [3, 0, 10, 1, 2, 11, 12, 13, 4, 5, 6, 7, 8, 9, 14, 15, 16, 17, 18, 19]

    cutoffs, ranks = _global_score_ranks(policy.tiers, parts)

    assert cutoffs == model_cutoffs(every, policy.tiers) and cutoffs.high == 0.9  # 7 high would be 3.5 × quota
    np.testing.assert_array_equal(np.concatenate(ranks), score_ranks(every)[order])
    assert [len(r) for r in ranks] == [3, 5, 12] and np.concatenate(ranks)[[0, 1, 3]].tolist() == [2, 1, 2]


def test_uneven_partitions_and_an_empty_one_change_nothing(client, parquet_dir, tight_policy, single_machine,
                                                           finds):
    from features.dask_build import build_features_dask
    from scoring.results.partitioned import compute_nightly_dask

    model, previous, manual, expected = single_machine
    keys = np.sort(ParquetSource(str(parquet_dir)).keys())
    ranges = KeyRanges((int(keys[0]) - 5, int(keys[0]), int(keys[3]), int(keys[200]), int(keys[-1]) + 1))

    built = build_features_dask(client, ParquetSource(str(parquet_dir)), [AS_OF], partitions=ranges)
    got = compute_nightly_dask(client, built, model, as_of=AS_OF, policy=tight_policy, previous=previous,
                               manual=manual, finds=finds)

    assert_same_rows(got.scores(), expected.scores)
    assert got.counts == expected.counts


# ---------------------------------------------------------------------------------------------
# The nightly on PostgreSQL
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url(world_csv, module_pg_url):  # noqa: F811
    import_world(module_pg_url, world_csv).dispose()
    return module_pg_url


@pytest.fixture(scope="module")
def pg(pg_url, tight_policy, finds_uri):
    """The single-machine nightly as of EARLIER and AS_OF (with a manual override and the expected-finds
    champion), and its stored rows."""
    engine = connect(pg_url)
    uri = finds_uri
    run_nightly(engine, EARLIER, policy=tight_policy, tracking_uri=uri)
    target = scores_frame(engine, EARLIER).query("final_tier == 'general'")["enterprise_id"].iloc[0]
    add_override(engine, enterprise_id=target, tier="high", reason="夜间违规生产", by="王科长",
                 valid_from=AS_OF - timedelta(days=5), valid_until=AS_OF + timedelta(days=30),
                 policy=tight_policy.overrides.manual, now=datetime(2024, 12, 20))
    run = run_nightly(engine, AS_OF, policy=tight_policy, tracking_uri=uri)
    yield engine, uri, run, _stored(engine)
    engine.dispose()


def _stored(engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    scores = scores_frame(engine, AS_OF).drop(columns="run_id")
    scores = scores.sort_values(["rank", "enterprise_id"], kind="stable").reset_index(drop=True)
    with engine.connect() as conn:
        changes = pd.DataFrame(conn.execute(sa.select(tier_changes).where(tier_changes.c.as_of == AS_OF)).all())
    return scores, changes.drop(columns="run_id").sort_values("enterprise_id").reset_index(drop=True)


def _run_row(engine, run_id: int) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(batch_runs).where(batch_runs.c.run_id == run_id)).mappings().one())


@pytest.mark.parametrize("n", PARTITIONS)
def test_the_nightly_on_dask_stores_what_the_single_machine_stores(client, pg, pg_url, tight_policy, n):
    from scoring.results.partitioned import run_nightly_dask

    engine, uri, single, (scores, changes) = pg
    run = run_nightly_dask(engine, client, AS_OF, url=pg_url, policy=tight_policy, tracking_uri=uri, partitions=n)

    got_scores, got_changes = _stored(engine)
    assert_same_rows(got_scores, scores)
    assert got_scores["expected_hazards"].notna().all() and got_scores["expected_major_hazards"].notna().all()
    assert set(got_scores["finds_model_version"]) == {"riskgrade-expected-finds v4"}
    pd.testing.assert_frame_equal(got_changes, changes)
    assert "manual" in ",".join(got_scores["override_codes"].fillna("")) and len(changes) > 0
    assert run.counts == single.counts and run.previous_as_of == EARLIER
    row, before = _run_row(engine, run.run_id), _run_row(engine, single.run_id)
    assert row["status"] == "succeeded" and row["n_scored"] == len(scores)
    assert row["data_watermark"] == before["data_watermark"]
    assert set(row["timings"]) == {"lock", "load", "model", "features", "tiers", "write"}
    with engine.connect() as conn:  # the staging tables went with the commit
        assert not [t for t in sa.inspect(conn).get_table_names() if t.startswith("nightly_staging_")]


def test_the_nightly_on_dask_needs_postgresql(client, sqlite_url, tight_policy):
    from features.errors import UsageError
    from scoring.results.partitioned import run_nightly_dask

    with pytest.raises(UsageError, match=r"nightly --dask needs a PostgreSQL database the workers can reach"):
        run_nightly_dask(connect(sqlite_url), client, AS_OF, policy=tight_policy)
    assert DatabaseSource(sqlite_url).keys().size  # nothing was written or locked on the way


# ---------------------------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------------------------


def test_nightly_dask_command_runs_on_the_scheduler_it_is_given(client, pg, pg_url, tmp_path):
    from typer.testing import CliRunner

    from scoring.cli import app

    engine, uri, _, (scores, _) = pg
    result = CliRunner().invoke(app, ["nightly", "--as-of", str(AS_OF), "--db", pg_url, "--mlflow-uri", uri,
                                      "--dask", client.scheduler.address, "--partitions", "2"])

    assert result.exit_code == 0, result.output
    assert f"{len(scores):,} enterprises scored" in " ".join(result.output.split())
    assert "nightly load: 2 partitions on 2 workers" in result.output
    assert runs_frame(engine).sort_values("run_id").iloc[-1]["status"] == "succeeded"


def riskgrade(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """``riskgrade ARGS`` through the console entry point: (exit code, stdout, stderr)."""
    from scoring.cli import main

    monkeypatch.setattr(sys, "argv", ["riskgrade", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    out, err = capsys.readouterr()
    return (stopped.value.code if isinstance(stopped.value.code, int) else int(bool(stopped.value.code))), out, err


@pytest.mark.parametrize(("args", "message"), [
    (["--dask", "local"], "error: nightly --dask needs a PostgreSQL database the workers can reach, got sqlite"),
    (["--partitions", "3"], "error: --partitions needs --dask"),
])
def test_nightly_dask_is_refused_on_sqlite_and_partitions_need_it(capsys, monkeypatch, sqlite_url, args, message):
    code, out, err = riskgrade(capsys, monkeypatch, "nightly", "--db", sqlite_url, "--as-of", str(AS_OF), *args)

    assert code == 2 and err.startswith(message) and "Traceback" not in out + err, err


def test_export_parquet_command_writes_what_the_partitioned_build_reads(capsys, monkeypatch, sqlite_url,
                                                                        tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    code, _, err = riskgrade(capsys, monkeypatch, "export-parquet", str(tmp_path / "full"), "--db", sqlite_url)
    assert code == 2 and "full: exists and is not an empty directory" in err

    code, out, err = riskgrade(capsys, monkeypatch, "export-parquet", str(tmp_path / "dataset"), "--db", sqlite_url,
                               "--enterprises-per-file", "100")

    assert code == 0, err
    assert "exported to" in out and "enterprises 240" in out and "partition 3/3" in err
    source = ParquetSource(str(tmp_path / "dataset"))
    assert len(source.keys()) == 240 and len(list((tmp_path / "dataset" / "enterprises").iterdir())) == 3


# ---------------------------------------------------------------------------------------------
# A worker killed mid-run (last: the cluster has one worker less while the nanny restarts it)
# ---------------------------------------------------------------------------------------------


class KillWorkerWhileStaging:
    """Test hook on the workers: the process staging partition ``partition`` dies on its first staged chunk."""

    def __init__(self, partition: int):
        self.partition = partition

    def __call__(self, kind: str, partition: int, done: int) -> None:
        if kind == "scores" and partition == self.partition and done > 0:
            os._exit(1)


def test_a_worker_killed_mid_run_leaves_the_previous_results_and_a_rerun_succeeds(client, pg, pg_url,
                                                                                 tight_policy):
    import cloudpickle

    from scoring.results.partitioned import run_nightly_dask

    engine, uri, _, (scores, _) = pg
    current = scores_frame(engine, AS_OF)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the hook travels by value to the workers
    try:
        with pytest.raises(distributed.scheduler.KilledWorker):
            run_nightly_dask(engine, client, AS_OF, url=pg_url, policy=tight_policy, tracking_uri=uri,
                             partitions=2, checkpoint=KillWorkerWhileStaging(1), chunk_rows=20)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])

    pd.testing.assert_frame_equal(scores_frame(engine, AS_OF), current)  # untouched, run ids included
    failed = runs_frame(engine).sort_values("run_id").iloc[-1]
    assert failed["status"] == "failed" and "KilledWorker" in failed["error"]
    with engine.connect() as conn:
        assert not [t for t in sa.inspect(conn).get_table_names() if t.startswith("nightly_staging_")]

    run = run_nightly_dask(engine, client, AS_OF, url=pg_url, policy=tight_policy, tracking_uri=uri, partitions=2)  # while the dead worker restarts
    assert _run_row(engine, run.run_id)["status"] == "succeeded"
    assert_same_rows(_stored(engine)[0], scores)


# ---------------------------------------------------------------------------------------------
# The passes of the nightly on Dask: a partition taken up again after each global step
# ---------------------------------------------------------------------------------------------


def _kept_on_a_worker(plan, key_range):
    """On a worker: keep a partition's frames, read them back, say where they were."""
    from distributed import get_worker

    from scoring.results.partitioned import _worker_folder

    parts = plan.read(key_range)
    plan.keep(key_range, "tables", parts)
    back = plan.kept(key_range, "tables")
    folder = _worker_folder(plan.token)
    inside = folder is not None and str(folder).startswith(get_worker().local_directory)
    return len(back["enterprises"]) == len(parts["enterprises"]), inside, sorted(p.name for p in folder.iterdir())


def test_a_partition_is_kept_on_the_workers_disk_between_passes_and_dropped_after(client, sqlite_url):
    from scoring.results.partitioned import _drop_worker_folder, _rebuild_plan

    source = DatabaseSource(sqlite_url)
    ranges = KeyRanges.of_keys(source.keys(), 2)
    plan = _rebuild_plan(client, source, pd.Timestamp(AS_OF), ranges, token="test-kept")
    key_range = list(ranges)[0]

    (worker,) = list(client.scheduler_info()["workers"])[:1]
    same, inside, files = client.submit(_kept_on_a_worker, plan, key_range, workers=[worker], pure=False).result()

    assert same and inside and files == [f"tables-{key_range[0]}-{key_range[1]}.pickle"]
    client.run(_drop_worker_folder, "test-kept")
    assert client.submit(plan.kept, key_range, "tables", workers=[worker], pure=False).result() is None


def test_a_partition_read_again_must_not_have_changed_since_the_first_pass(client, sqlite_url):
    from features.errors import DataError
    from scoring.results.batch import data_watermark
    from scoring.results.partitioned import _rebuild_plan, _Summary

    source = DatabaseSource(sqlite_url)
    ranges = KeyRanges.of_keys(source.keys(), 2)
    plan = _rebuild_plan(client, source, pd.Timestamp(AS_OF), ranges, token="test-changed")
    key_range = list(ranges)[1]
    watermark = data_watermark(plan.read(key_range))

    # Here (not on a worker) nothing is kept: the partition is read again, and compared with the first pass.
    again = plan.tables_of(key_range, _Summary(None, None, watermark))
    assert len(again["enterprises"]) == watermark["enterprises"]["rows"]
    changed = {**watermark, "inspections": {**watermark["inspections"], "rows": watermark["inspections"]["rows"] - 1}}
    with pytest.raises(DataError, match=r"changed during the run \(an import\?\): run the nightly again"):
        plan.tables_of(key_range, _Summary(None, None, changed))


def test_the_local_cluster_does_not_steal_work_and_a_pass_hands_its_memory_back(client):
    """What keeps a worker's peak that of one partition however many it takes (benchmarks/dask_scale.py): no later
    pass moved to a worker without the partition's local copy (work stealing off at the scheduler riskgrade starts;
    a scheduler that steals gets a warning on the run), and each pass returning the memory it freed."""
    from scoring.results.partitioned import _freeing, _steals

    assert not _steals(client)
    doubled = _freeing(lambda values: [2 * v for v in values])
    assert client.submit(doubled, list(range(5)), pure=False).result() == [0, 2, 4, 6, 8]


def test_a_scheduler_that_steals_work_is_told_apart():
    from types import SimpleNamespace

    from scoring.results.partitioned import _scheduler_steals

    assert _scheduler_steals(SimpleNamespace(extensions={"stealing": object(), "shuffle": object()}))
    assert not _scheduler_steals(SimpleNamespace(extensions={"shuffle": object()}))
