"""The nightly batch on SQLite and PostgreSQL: idempotent re-runs, the lock, crashes, hysteresis, model fallback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from features.errors import BatchLockedError, DataError, NoChampionError
from scoring.results.batch import (
    hysteresis_history,
    list_rank,
    run_nightly,
    tier_change_rows,
)
from scoring.results.lock import BatchLock
from scoring.results.tables import (
    add_override,
    batch_lock,
    batch_runs,
    current_limits,
    latest_run,
    runs_frame,
    scores_frame,
    tier_changes,
)
from scoring.domain.tiers import assign_tiers

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)
from scoring_frames import enterprises

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def engine(db_url, world_csv):
    engine = import_world(db_url, world_csv)
    yield engine
    engine.dispose()


@pytest.fixture
def uri(tmp_path):
    return no_mlflow(tmp_path)


def _rows(engine, day=AS_OF) -> pd.DataFrame:
    frame = scores_frame(engine, day).sort_values("enterprise_id").reset_index(drop=True)
    frame["reasons"] = frame["reasons"].map(lambda r: json.dumps(r, ensure_ascii=False, sort_keys=True))
    return frame


def _changes(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tier_changes).order_by(tier_changes.c.as_of, tier_changes.c.enterprise_id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in tier_changes.columns])


def _lock_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(batch_lock)).scalar()


# ---------------------------------------------------------------------------------------------
# Idempotence, the run record, the fallback model
# ---------------------------------------------------------------------------------------------


def test_rerun_of_a_date_gives_the_same_rows_without_duplicates(engine, uri, policy):
    first = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    rows = _rows(engine)
    assert len(rows) == first.counts["n_scored"] > 200 and rows["enterprise_id"].is_unique
    assert set(rows["run_id"]) == {first.run_id}
    assert rows["rank"].min() == 1 and (rows.sort_values("rank")["final_tier"].iloc[0] == "high")
    assert first.counts["n_high"] == int((rows["final_tier"] == "high").sum()) > 0

    second = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    again = _rows(engine)
    assert second.run_id != first.run_id and set(again["run_id"]) == {second.run_id}
    pd.testing.assert_frame_equal(rows.drop(columns="run_id"), again.drop(columns="run_id"))

    runs = runs_frame(engine).set_index("run_id")
    assert runs.at[first.run_id, "status"] == "superseded" and runs.at[first.run_id, "superseded_by"] == second.run_id
    record = runs.loc[second.run_id]
    assert record["status"] == "succeeded" and record["error"] is None
    assert record["policy_hash"] == second.policy_hash and len(record["policy_hash"]) == 16
    assert record["n_scored"] == len(rows) and record["n_high"] + record["n_general"] + record["n_low"] == len(rows)
    assert record["data_watermark"]["enterprises"]["rows"] > 200
    assert record["data_watermark"]["inspections"]["max_recorded_on"] < "2025-02-01"
    assert set(record["timings"]) >= {"load", "features", "score", "tiers", "limits", "write"}
    assert _lock_rows(engine) == 0  # released


def test_without_a_champion_the_expert_card_scores_and_the_run_says_so(engine, uri, policy):
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert run.model_source == "expert_card" and run.model.startswith("expert card (policy ")
    assert len(run.warnings) == 2 and "no MLflow store at" in run.warnings[0]
    assert "scored with the expert card" in run.warnings[0] and "riskgrade train" in run.warnings[0]
    assert "expected finds per enterprise not stored" in run.warnings[1]  # nor an expected-finds model
    stored = latest_run(engine, AS_OF)
    assert stored["model_source"] == "expert_card" and "expert card" in stored["warning"]
    rows = _rows(engine)
    assert set(rows["model_version"]) == {run.model}
    top = rows.sort_values("rank").iloc[0]
    reasons = json.loads(top["reasons"])
    assert 1 <= len(reasons) <= 3 and {"feature", "text_zh", "text_en", "value", "contribution"} <= set(reasons[0])


def test_the_champion_is_used_when_there_is_one(engine, tmp_path, policy, monkeypatch):
    import models.registry
    from models.expert import ExpertCard, ExpertCardRules
    from models.registry import ChampionModel
    from scoring.domain.policy import build_section

    store = tmp_path / "mlflow.db"
    store.touch()  # the store exists; the registry call itself is replaced
    rules = build_section(ExpertCardRules, policy.expert_card, "policy: expert_card")

    seen = {}

    def load_champion(uri=None, *, model_name=models.registry.MODEL_NAME):
        if model_name == models.registry.FINDS_MODEL_NAME:
            raise NoChampionError("no expected-finds champion")
        seen["uri"] = uri
        card = ExpertCard(rules=rules).fit(pd.DataFrame({f: [0.0] for f in rules.features}))  # columns by name
        return ChampionModel(model=card, name="riskgrade", version="7", run_id="r", kind="expert", as_of="2024-06-01")

    monkeypatch.setattr(models.registry, "load_champion", load_champion)
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=f"sqlite:///{store}")
    assert seen["uri"] == f"sqlite:///{store}"
    assert (run.model_source, run.model) == ("champion", "riskgrade v7 (expert)")
    assert len(run.warnings) == 1 and "'riskgrade-expected-finds' carries" in run.warnings[0]
    assert latest_run(engine)["model_version"] == "7"


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------


def test_a_second_run_at_the_same_time_is_refused(engine, db_url, uri, policy):
    from features.db import connect

    started, release = threading.Event(), threading.Event()
    outcome = {}

    def hold(stage, event, message):  # the first run pauses mid-way, holding the lock
        if stage == "score" and event == "start":
            started.set()
            release.wait(30)

    def first():
        other = connect(db_url)  # its own engine, like another process
        try:
            outcome["run"] = run_nightly(other, AS_OF, policy=policy, tracking_uri=uri, progress=hold)
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc
        finally:
            other.dispose()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert started.wait(60), outcome
        with pytest.raises(BatchLockedError, match=r"another nightly run holds the batch lock of this database: "
                                                   r".*pid " + str(os.getpid())):
            run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    finally:
        release.set()
        thread.join(60)
    assert "error" not in outcome and outcome["run"].status == "succeeded"
    runs = runs_frame(engine)
    assert list(runs["status"]) == ["succeeded"]  # the refused run wrote nothing, not even a run row
    assert _lock_rows(engine) == 0

    # Through the real command (scoring.cli.main maps the error to its exit code): 6, and the holder named.
    with BatchLock(engine):
        result = _cli(["nightly", "--as-of", str(AS_OF), "--db", db_url, "--mlflow-uri", uri])
    assert result.returncode == 6, result.stderr
    assert "another nightly run holds the batch lock" in result.stderr


def _cli(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "scoring.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_stale_locks_are_taken_over_and_fresh_ones_respected(engine, uri, policy):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = BatchLock(engine)
    now = datetime.utcnow()
    stale_owner = f"{lock.host}:{dead.pid}:deadbeef"
    with engine.begin() as conn:
        conn.execute(batch_lock.insert().values(name="nightly", owner=stale_owner, host=lock.host, pid=dead.pid,
                                                acquired_at=now, heartbeat_at=now))
        conn.execute(batch_runs.insert().values(as_of=AS_OF, status="running", started_at=now, owner=stale_owner))
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert run.took_over_from == stale_owner and "took over a stale batch lock" in run.warnings[0]
    runs = runs_frame(engine).set_index("run_id")
    abandoned = runs.loc[runs["owner"] == stale_owner].iloc[0]
    assert abandoned["status"] == "failed" and abandoned["error"].startswith("abandoned: its process")

    # Another host: alive unless its heartbeat is older than stale_after.
    with engine.begin() as conn:
        conn.execute(batch_lock.insert().values(name="nightly", owner="elsewhere:1:x", host="elsewhere", pid=1,
                                                acquired_at=now, heartbeat_at=now - timedelta(minutes=10)))
    with pytest.raises(BatchLockedError, match=r"elsewhere:1:x \(host elsewhere, pid 1\)"):
        run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    again = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri, stale_after=timedelta(minutes=5))
    assert again.took_over_from == "elsewhere:1:x"


def test_a_run_that_lost_its_lock_writes_nothing(engine, uri, policy):
    before = None

    def steal(stage, event, message):
        nonlocal before
        if stage == "write" and event == "start":  # someone took the lock over while this run was paused
            with engine.begin() as conn:
                conn.execute(batch_lock.update().values(owner="thief:1:x", host="thief", pid=1))
            before = True

    with pytest.raises(BatchLockedError, match="this run lost the batch lock"):
        run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri, progress=steal)
    assert before and scores_frame(engine, AS_OF).empty
    assert runs_frame(engine)["status"].tolist() == ["failed"]


# ---------------------------------------------------------------------------------------------
# Crashes
# ---------------------------------------------------------------------------------------------


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("point", ["scores", "before_commit"])
def test_a_crash_in_the_middle_of_the_writes_leaves_the_previous_run_intact(engine, uri, policy, point):
    first = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    rows = _rows(engine)
    limits = current_limits(engine, AS_OF, policy)
    # Something that would change the results: a manual override.
    target = rows.loc[rows["final_tier"] == "general", "enterprise_id"].iloc[0]
    add_override(engine, enterprise_id=target, tier="high", reason="夜间违规生产", by="王科长",
                 valid_from=AS_OF - timedelta(days=5), valid_until=AS_OF + timedelta(days=30),
                 policy=policy.overrides.manual, now=datetime(2024, 12, 20))
    written = []

    def crash(where, done, total):
        if where == point and done >= total / 2:
            written.append(done)
            raise Crash(f"injected failure at {where} after {done} of {total} rows")

    with pytest.raises(Crash):
        run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri, checkpoint=crash, chunk_rows=50)
    assert written and written[0] < len(rows) or point == "before_commit"
    pd.testing.assert_frame_equal(_rows(engine), rows)  # untouched, still the first run's
    runs = runs_frame(engine).set_index("run_id")
    failed = runs.loc[runs.index != first.run_id].iloc[0]
    assert failed["status"] == "failed" and "Crash: injected failure" in failed["error"]
    assert runs.at[first.run_id, "status"] == "succeeded" and latest_run(engine)["run_id"] == first.run_id
    after = current_limits(engine, AS_OF, policy)
    assert set(after["run_id"]) == {first.run_id}
    pd.testing.assert_frame_equal(after, limits)  # the current tiers did not move
    assert _lock_rows(engine) == 0

    # A crash on a new date leaves no rows for it.
    with pytest.raises(Crash):
        run_nightly(engine, AS_OF + timedelta(days=1), policy=policy, tracking_uri=uri, checkpoint=crash,
                    chunk_rows=50)
    assert scores_frame(engine, AS_OF + timedelta(days=1)).empty

    # Once the failure is gone, the override is applied.
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    assert _rows(engine).set_index("enterprise_id").at[target, "final_tier"] == "high"


def test_a_killed_process_leaves_the_previous_results_and_its_lock_is_taken_over(engine, db_url, uri, policy):
    first = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    rows = _rows(engine)
    script = textwrap.dedent(f"""
        import sys, time
        from features.db import connect
        from scoring.results.batch import run_nightly

        def stall(where, done, total):
            if where == "scores" and done > 0:
                print("IN_WRITE", flush=True)
                time.sleep(120)

        run_nightly(connect({db_url!r}), {str(AS_OF)!r}, tracking_uri={uri!r}, checkpoint=stall, chunk_rows=50)
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "IN_WRITE", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)  # in the middle of its write transaction
    finally:
        child.wait(30)
    pd.testing.assert_frame_equal(_rows(engine), rows)
    runs = runs_frame(engine).set_index("run_id")
    assert runs.loc[runs.index != first.run_id, "status"].tolist() == ["running"]  # never committed
    assert _lock_rows(engine) == 1

    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)  # the dead process's lock is taken over
    assert run.took_over_from and f":{child.pid}:" in run.took_over_from
    runs = runs_frame(engine).set_index("run_id")
    assert runs["status"].value_counts().to_dict() == {"superseded": 1, "failed": 1, "succeeded": 1}
    pd.testing.assert_frame_equal(_rows(engine).drop(columns="run_id"), rows.drop(columns="run_id"))


# ---------------------------------------------------------------------------------------------
# History: hysteresis and tier changes
# ---------------------------------------------------------------------------------------------


def test_next_run_compares_with_the_previous_one(engine, uri, policy):
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    rows = _rows(engine).set_index("enterprise_id")
    target = rows.index[rows["final_tier"] == "general"][0]
    later = AS_OF + timedelta(days=7)
    add_override(engine, enterprise_id=target, tier="high", reason="群众举报", by="王科长", valid_from=later,
                 valid_until=later + timedelta(days=30), policy=policy.overrides.manual, now=datetime(2025, 1, 6))
    second = run_nightly(engine, later, policy=policy, tracking_uri=uri)
    assert second.previous_as_of == AS_OF
    changes = _changes(engine).set_index("enterprise_id")
    assert target in changes.index and len(changes) == second.counts["n_changes"]
    change = changes.loc[target]
    assert (change["from_tier"], change["to_tier"]) == ("general", "high")
    assert pd.Timestamp(change["previous_as_of"]) == pd.Timestamp(AS_OF) and "manual override" in change["cause"]
    later_rows = _rows(engine, later).set_index("enterprise_id")
    high_before = rows.index[rows["model_tier"] == "high"]
    assert (later_rows.loc[later_rows.index.intersection(high_before), "last_model_high_on"].notna()).all()
    assert run_nightly(engine, later, policy=policy, tracking_uri=uri).counts["n_changes"] == len(changes)
    assert len(_changes(engine)) == len(changes)  # replaced, not duplicated


def test_hysteresis_history_stands_in_for_the_whole_history(policy):
    ids = [f"E{i}" for i in range(20)]
    tables = {"enterprises": enterprises(ids)}
    previous = pd.DataFrame({
        "enterprise_id": ids, "as_of": pd.Timestamp("2025-03-01"),
        "model_tier": ["general"] * 20, "final_tier": ["high", "high"] + ["general"] * 18,
        "last_model_high_on": [pd.Timestamp("2025-01-15"), pd.Timestamp("2024-10-01")] + [pd.NaT] * 18,
    })
    scores = pd.DataFrame({"enterprise_id": ids, "probability": [0.01, 0.01] + [0.02] * 17 + [0.9]})
    result = assign_tiers(scores, tables, as_of="2025-03-02", tiers=policy.tiers, overrides=policy.overrides,
                          history=hysteresis_history(previous)).tiers.set_index("enterprise_id")
    assert result.at["E0", "final_tier"] == "high" and "held high until 2025-04-15" in result.at["E0", "override_cause"]
    assert result.at["E1", "final_tier"] != "high"  # its last model-high is more than 90 days ago
    assert hysteresis_history(pd.DataFrame()).empty


def test_list_rank_puts_tiers_first_and_ties_share_a_rank():
    tiers = pd.Series(["general", "high", "high", "low", "general", "general"])
    probability = pd.Series([0.5, 0.01, 0.2, 0.9, 0.5, 0.3])
    assert list(list_rank(tiers, probability)) == [3, 2, 1, 6, 3, 5]


def test_first_run_records_no_changes_and_an_empty_database_is_refused(tmp_path, uri, policy):
    from features.db import connect

    assert tier_change_rows(pd.DataFrame({"enterprise_id": ["E1"]}), pd.DataFrame()).empty
    empty = connect(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(DataError, match=r"no enterprises to score: the enterprises table is empty"):
        run_nightly(empty, AS_OF, policy=policy, tracking_uri=uri)
    assert runs_frame(empty)["status"].tolist() == ["failed"] and _lock_rows(empty) == 0


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def test_nightly_command_prints_the_summary_and_the_fallback_warning(engine, db_url, uri):
    from scoring.cli import app

    result = runner.invoke(app, ["nightly", "--as-of", str(AS_OF), "--db", db_url, "--mlflow-uri", uri])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "scored with the expert card" in result.output
    assert f"nightly load:" in result.output  # plain log lines when not on a terminal
    assert f"Nightly run 1 as of {AS_OF}" in result.output and "高风险" in result.output


def test_the_pure_middle_gives_exactly_the_stored_rows(engine, uri, policy):
    """compute_nightly (no I/O) is what run_nightly writes: same rows, same changes."""
    import pandas as pd

    from features import build_features
    from features.store import load_tables
    from scoring.results.batch import compute_nightly, expert_card_model

    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=uri)
    tables = load_tables(engine)
    features = build_features(tables, [pd.Timestamp(AS_OF)])
    model = expert_card_model(policy.expert_card, features)
    result = compute_nightly(features, model, tables, as_of=AS_OF, policy=policy)
    assert result.counts == run.counts and result.changes.empty
    stored = scores_frame(engine, AS_OF).drop(columns="run_id")
    computed = result.scores[stored.columns]
    assert list(computed["enterprise_id"]) == list(stored["enterprise_id"])  # both in rank order
    for column in ("probability", "points"):
        assert (computed[column].to_numpy() == stored[column].to_numpy()).all(), column
    for column in ("rank", "score_rank", "final_tier", "model_tier", "mode", "yearly_cap", "visits_used"):
        assert computed[column].astype(str).tolist() == stored[column].astype(str).tolist(), column
    assert computed["reasons"].tolist() == stored["reasons"].tolist()
    assert (computed["next_allowed_visit"].fillna(pd.Timestamp(0)) ==
            stored["next_allowed_visit"].fillna(pd.Timestamp(0))).all()
