"""Operator mistakes end in one clear line and the documented exit code, never a traceback.

Every test runs the real console entry point (``scoring.cli.main``) and asserts the exit code, that standard
error holds one ``error:`` line naming the problem, and that no traceback was printed.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from features.db import connect, serialise, write_transaction
from features.errors import DatabaseError, PolicyError
from scoring.cli import main
from scoring.domain.policy import load_policy


def riskgrade(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run ``riskgrade ARGS`` through ``main()``: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["riskgrade", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    out, err = capsys.readouterr()
    code = stopped.value.code if isinstance(stopped.value.code, int) else (0 if stopped.value.code is None else 1)
    return code, out, err


def refused(capsys, monkeypatch, code: int, pattern: str, *args: str) -> str:
    """``riskgrade ARGS`` fails with ``code`` and one ``error:`` line matching ``pattern`` (a regular expression)."""
    import re

    got, out, err = riskgrade(capsys, monkeypatch, *args)
    assert got == code, (got, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------- the database


def test_a_malformed_or_foreign_database_url_is_a_usage_error(capsys, monkeypatch):
    refused(capsys, monkeypatch, 2, r"--db: 'not a url' is not a database URL; expected sqlite:///",
            "rank", "--db", "not a url")
    refused(capsys, monkeypatch, 2, r"riskgrade works with SQLite or PostgreSQL, not 'mysql'",
            "rank", "--db", "mysql://someone:secret@db/x")
    line = refused(capsys, monkeypatch, 2, r"not 'mysql'", "rank", "--db", "mysql://someone:secret@db/x")
    assert "secret" not in line  # no password in the message


def test_an_unreachable_server_is_one_line(capsys, monkeypatch):
    line = refused(capsys, monkeypatch, 7, r"cannot open the database postgresql\+psycopg://postgres:\*\*\*@127\.0\.0"
                   r"\.1:1/nowhere: ", "rank", "--db", "postgresql://postgres:pw@127.0.0.1:1/nowhere")
    assert "pw@" not in line


@pytest.mark.parametrize("args", [
    ["rank"], ["explain", "E000001"], ["quarantine"], ["report", "--out", "r.html"],
    ["features", "--as-of", "2025-01-01", "--out", "f.csv"], ["plan", "--period", "2025-01", "--no-store"],
    ["train", "--as-of", "2025-01-01"],
])
def test_read_only_commands_do_not_create_a_missing_database(capsys, monkeypatch, tmp_path, args):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.db"
    refused(capsys, monkeypatch, 7, rf"database {missing} does not exist \(nothing was created\): import data first",
            *args, "--db", f"sqlite:///{missing}")
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []  # not even a riskgrade.db or mlflow.db beside it


def test_read_only_commands_refuse_a_database_without_riskgrade_tables(capsys, monkeypatch, tmp_path, db_url):
    if db_url.startswith("sqlite"):
        sqlite3.connect(db_url.removeprefix("sqlite:///")).execute("CREATE TABLE other (x)").connection.commit()
    refused(capsys, monkeypatch, 7, r"holds no riskgrade data \(no enterprises table; nothing was created\)",
            "rank", "--db", db_url)
    assert "enterprises" not in sa.inspect(sa.create_engine(db_url)).get_table_names()


def test_a_database_in_a_missing_folder_or_a_folder_is_refused(capsys, monkeypatch, tmp_path):
    (tmp_path / "files").mkdir()
    refused(capsys, monkeypatch, 7, rf"database {tmp_path}/nope/r.db: the folder {tmp_path}/nope does not exist",
            "import", str(tmp_path / "files"), "--db", f"sqlite:///{tmp_path}/nope/r.db")
    refused(capsys, monkeypatch, 7, r"is a folder, not an SQLite file", "rank", "--db", f"sqlite:///{tmp_path}")


# ------------------------------------------------------------------------------------------------- --out


@pytest.fixture
def live_db(tmp_path):
    path = tmp_path / "riskgrade.db"
    connect(f"sqlite:///{path}").dispose()
    return path


@pytest.mark.parametrize("command", [["rank"], ["quarantine"], ["plan", "--period", "2025-01"]])
def test_bad_out_paths_are_refused_before_any_work(capsys, monkeypatch, tmp_path, live_db, command):
    db = ["--db", f"sqlite:///{live_db}"]
    before = live_db.read_bytes()
    refused(capsys, monkeypatch, 2, rf"--out {tmp_path}: is a folder; name a file in it",
            *command, *db, "--format", "csv", "--out", str(tmp_path))
    refused(capsys, monkeypatch, 2, rf"--out {tmp_path}/gone/x.csv: the folder {tmp_path}/gone does not exist",
            *command, *db, "--format", "csv", "--out", str(tmp_path / "gone" / "x.csv"))
    refused(capsys, monkeypatch, 2, r"riskgrade\.db: is a database file; refusing to overwrite it",
            *command, *db, "--format", "csv", "--out", str(live_db))
    assert live_db.read_bytes() == before
    refused(capsys, monkeypatch, 2, r"--out .*x\.xlsx: the suffix \.xlsx says xlsx, but this writes csv; use --format "
            r"xlsx, or name it x\.csv", *command, *db, "--format", "csv", "--out", str(tmp_path / "x.xlsx"))
    refused(capsys, monkeypatch, 2, r"the suffix \.csv says csv, but this writes xlsx",
            *command, *db, "--format", "xlsx", "--out", str(tmp_path / "x.csv"))
    refused(capsys, monkeypatch, 2, r"the suffix \.xlsx says xlsx, but this writes csv",  # table + --out saves CSV
            *command, *db, "--out", str(tmp_path / "x.xlsx"))


def test_other_sqlite_files_and_reports_are_protected(capsys, monkeypatch, tmp_path, live_db):
    other = tmp_path / "mlflow.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    db = ["--db", f"sqlite:///{live_db}"]
    refused(capsys, monkeypatch, 2, r"--report .*mlflow\.db: is a database file; refusing to overwrite it",
            "train", "--as-of", "2025-01-01", *db, "--report", str(other))
    refused(capsys, monkeypatch, 2, r"--report .*r\.csv: the suffix \.csv says csv, but this writes json",
            "train", "--as-of", "2025-01-01", *db, "--report", str(tmp_path / "r.csv"))
    refused(capsys, monkeypatch, 2, rf"--out {tmp_path}/gone/r\.html: the folder {tmp_path}/gone does not exist",
            "report", *db, "--out", str(tmp_path / "gone" / "r.html"))
    refused(capsys, monkeypatch, 2, rf"--out {tmp_path}/gone/f\.csv: the folder",
            "features", "--as-of", "2025-01-01", *db, "--out", str(tmp_path / "gone" / "f.csv"))


# ---------------------------------------------------------------------------------------------- policy file


def _policy(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bureau.toml"
    path.write_bytes(data)
    return path


TEXT = "[tiers]\nhigh_share = 0.12\n"


@pytest.mark.parametrize("data, message", [
    (TEXT.encode("utf-16"), r"bureau\.toml: the file is UTF-16 text; save it as UTF-8"),
    (TEXT.encode("utf-16-le"), r"bureau\.toml: NUL byte at offset 1: looks like UTF-16 text without a byte-order mark"),
    (bytes(range(256)), r"bureau\.toml: NUL byte at offset 0: a binary file"),
    ("[tiers]\n# 高风险比例\nhigh_share = 0.12\n".encode("gbk"),
     r"bureau\.toml line 2: byte 0xb8 at offset 10 is not UTF-8"),
])
def test_policy_files_in_other_encodings_are_refused(tmp_path, data, message):
    with pytest.raises(PolicyError, match=message):
        load_policy(_policy(tmp_path, data))


def test_a_policy_file_with_a_bom_is_read(tmp_path):
    policy = load_policy(_policy(tmp_path, b"\xef\xbb\xbf" + TEXT.encode("utf-8")))
    assert policy.tiers.high_share == 0.12


def test_policy_mistakes_exit_4_on_the_command_line(capsys, monkeypatch, tmp_path):
    refused(capsys, monkeypatch, 4, rf"policy file {tmp_path} is a folder", "nightly", "--policy", str(tmp_path))
    path = _policy(tmp_path, TEXT.encode("utf-16"))
    refused(capsys, monkeypatch, 4, r"the file is UTF-16 text", "nightly", "--policy", str(path))


@pytest.mark.parametrize("labels, message", [
    ("horizon_days = 0", r"bureau\.toml: labels\.horizon_days: expected at least 1 day, got 0"),
    ("horizon_days = -30", r"labels\.horizon_days: expected at least 1 day, got -30"),
    ('target = "accident+fire"', r"labels\.target: expected outcomes joined with '\+' from accident, major_hazard, "
                                 r"suspension, got 'accident\+fire'"),
    ('target = ""', r"labels\.target: expected outcomes"),
])
def test_the_labels_section_is_checked_when_the_file_loads(capsys, monkeypatch, tmp_path, live_db, labels, message):
    path = _policy(tmp_path, f"[labels]\n{labels}\n".encode())
    with pytest.raises(PolicyError, match=message):
        load_policy(path)
    db = ["--db", f"sqlite:///{live_db}"]
    refused(capsys, monkeypatch, 4, message, "nightly", "--policy", str(path), *db)
    refused(capsys, monkeypatch, 4, message, "train", "--as-of", "2025-01-01", "--policy", str(path), *db)


def test_a_bad_target_option_is_a_usage_error(capsys, monkeypatch, live_db):
    refused(capsys, monkeypatch, 2, r"--target 'accidents': expected outcomes joined with '\+'",
            "train", "--as-of", "2025-01-01", "--target", "accidents", "--db", f"sqlite:///{live_db}")


# ------------------------------------------------------------------------------------------ nightly --as-of


def test_nightly_refuses_a_date_far_ahead_unless_allowed(capsys, monkeypatch, tmp_path):
    from scoring.cli.guards import check_future

    ahead = date.today() + timedelta(days=30)
    refused(capsys, monkeypatch, 2, rf"--as-of {ahead}: 30 days after today \({date.today()}\); a nightly run may be "
            r"dated at most 3 days ahead \(\[nightly\] max_future_days of the policy file\)\. Check the date, or pass "
            r"--allow-future", "nightly", "--as-of", str(ahead), "--db", f"sqlite:///{tmp_path / 'r.db'}")
    assert not (tmp_path / "r.db").exists()
    check_future(ahead, date.today(), 3, allow_future=True)  # said so: accepted
    check_future(date.today() + timedelta(days=3), date.today(), 3, allow_future=False)  # within the days: accepted
    path = _policy(tmp_path, b"[nightly]\nmax_future_days = 60\n")
    assert load_policy(path).nightly.max_future_days == 60
    with pytest.raises(PolicyError, match=r"nightly\.max_future_days: expected 0 or more days, got -1"):
        load_policy(_policy(tmp_path, b"[nightly]\nmax_future_days = -1\n"))


# --------------------------------------------------------------------------------------------- the import


def test_an_import_whose_every_row_was_refused_exits_3(capsys, monkeypatch, tmp_path, db_url):
    files = tmp_path / "files"
    files.mkdir()
    (files / "enterprises.csv").write_text("enterprise_id,name,sector,township\nE1,甲,no_such_sector,东城\n"
                                           "E2,乙,martian,西城\n", encoding="utf-8")
    (files / "inspections.csv").write_text("inspection_id,enterprise_id,inspected_on\nI1,E1,2024-01-05\n",
                                           encoding="utf-8")
    refused_line = None
    code, out, err = riskgrade(capsys, monkeypatch, "import", str(files), "--db", db_url, "--today", "2025-01-01")
    assert code == 3 and "Traceback" not in out + err
    refused_line = [line for line in err.splitlines() if line.startswith("error:")]
    assert refused_line == [f"error: every one of the 3 rows read from {files} was refused; nothing was loaded "
                            "(the reasons: riskgrade quarantine)"]
    assert "enterprises" in out  # the summary table is still printed


# ------------------------------------------------------------------------------------------- capacity files


@pytest.fixture
def fake_limits(monkeypatch):
    import scoring.results.tables
    from scoring.domain.supervision import supervision_limits

    from scoring_frames import enterprises

    ids = [f"E{i:02d}" for i in range(10)]
    tiers = pd.DataFrame({"enterprise_id": ids, "final_tier": ["general"] * 10,
                          "probability": [i / 100 for i in range(10)]})

    def current_limits(engine, as_of, policy_, *, tracking_uri=None):
        return supervision_limits(tiers, {"enterprises": enterprises(ids)}, as_of=as_of, policy=policy_.supervision)

    monkeypatch.setattr(scoring.results.tables, "current_limits", current_limits)


def test_capacity_files_in_gbk_are_read_and_empty_ones_refused(capsys, monkeypatch, tmp_path, fake_limits):
    import json

    db = ["--db", f"sqlite:///{tmp_path / 'x.db'}"]
    capacity = tmp_path / "capacity.csv"
    capacity.write_bytes("department,visits\n应急,3\n".encode("gbk"))
    code, out, err = riskgrade(capsys, monkeypatch, "plan", "--period", "2025-04", "--capacity", str(capacity),
                               "--format", "json", *db)
    assert code == 0, err
    assert len(json.loads(out)["items"]) == 3
    capacity.write_bytes(b"")
    refused(capsys, monkeypatch, 3, r"capacity file capacity\.csv is empty: expected a header line 'department,visits'",
            "plan", "--period", "2025-04", "--capacity", str(capacity), *db)
    capacity.write_bytes(b"department,visits\n")
    refused(capsys, monkeypatch, 3, r"capacity file capacity\.csv has a header but no department lines",
            "plan", "--period", "2025-04", "--capacity", str(capacity), *db)
    capacity.write_bytes(b"department,visits\n\xff\xff,3\n")
    refused(capsys, monkeypatch, 3, r"capacity file capacity\.csv line 2: byte 0xff at offset 18 is neither UTF-8 nor "
            r"GB18030/GBK text", "plan", "--period", "2025-04", "--capacity", str(capacity), *db)
    refused(capsys, monkeypatch, 2, rf"--capacity {tmp_path}: is a folder",
            "plan", "--period", "2025-04", "--capacity", str(tmp_path), *db)


# ---------------------------------------------------------------------------------------------- disk full


def test_disk_full_while_exporting_exits_8(capsys, monkeypatch, tmp_path, live_db):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    out = tmp_path / "q.csv"
    refused(capsys, monkeypatch, 8, rf"could not write {out}: No space left on device \(the disk is full: free some "
            r"space and run the command again\); nothing was written",
            "quarantine", "--db", f"sqlite:///{live_db}", "--format", "csv", "--out", str(out))
    assert not out.exists()


def test_disk_full_anywhere_else_is_one_line_too(capsys, monkeypatch, tmp_path, live_db):
    import pandas

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f.parquet"))

    monkeypatch.setattr(pandas.DataFrame, "to_parquet", full)
    refused(capsys, monkeypatch, 8, rf"could not write {tmp_path}/f\.parquet: No space left on device \(the disk is "
            r"full: free some space and run the command again\); nothing was written",
            "features", "--as-of", "2025-01-01", "--db", f"sqlite:///{live_db}", "--out", str(tmp_path / "f.parquet"))
    assert not [p.name for p in tmp_path.iterdir() if not p.name.startswith("riskgrade.db")]  # no partial file


def test_disk_full_outside_the_writers_is_one_line(capsys, monkeypatch, tmp_path):
    import scoring.cli

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "report.html"))

    monkeypatch.setattr(scoring.cli, "_nightly", full)
    refused(capsys, monkeypatch, 8, rf"could not write {tmp_path}/report\.html: No space left on device \(the disk "
            r"is full", "nightly", "--db", f"sqlite:///{tmp_path / 'r.db'}")


# ----------------------------------------------------------------------------------------- overlapping jobs


@pytest.fixture
def hold_sqlite(tmp_path):
    """hold(seconds): another process's write lock on a fresh SQLite database, released after ``seconds``."""
    path = tmp_path / "busy.db"
    connect(f"sqlite:///{path}").dispose()
    threads = []

    def hold(seconds: float) -> None:
        other = sqlite3.connect(path, check_same_thread=False)
        other.isolation_level = None
        other.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(seconds, lambda: (other.execute("COMMIT"), other.close()))
        timer.start()
        threads.append(timer)

    yield path, hold
    for timer in threads:
        timer.join()


def test_a_job_waits_for_another_jobs_write_with_a_message_then_proceeds(hold_sqlite):
    path, hold = hold_sqlite
    engine = connect(f"sqlite:///{path}")
    said = []
    hold(1.0)
    started = time.monotonic()
    with write_transaction(engine, say=said.append, what="this import") as conn:
        conn.execute(sa.text("CREATE TABLE waited (x INTEGER)"))
    assert time.monotonic() - started >= 0.9
    assert said == [f"database {path} is busy: another job is writing to it; this import waits for it to finish "
                    f"(up to 600 s)"]
    assert "waited" in sa.inspect(engine).get_table_names()


def test_the_nightly_lock_waits_for_an_import_that_is_writing(hold_sqlite, capsys):
    from scoring.results.lock import BatchLock

    path, hold = hold_sqlite
    engine = connect(f"sqlite:///{path}")
    from scoring.results.tables import create_scoring_tables

    create_scoring_tables(engine)
    hold(1.0)
    with BatchLock(engine) as lock:
        assert lock.held
    assert f"database {path} is busy: another job is writing to it; the nightly run waits" in capsys.readouterr().err
    engine.dispose()


def test_past_the_wait_the_job_fails_cleanly(capsys, monkeypatch, hold_sqlite, tmp_path):
    path, hold = hold_sqlite
    monkeypatch.setenv("RISKGRADE_DB_WAIT_SECONDS", "0.5")
    hold(2.5)
    files = tmp_path / "files"
    files.mkdir()
    (files / "enterprises.csv").write_text("enterprise_id,name,sector,township\nE1,甲,commerce,东城\n",
                                           encoding="utf-8")
    (files / "inspections.csv").write_text("inspection_id,enterprise_id,inspected_on\nI1,E1,2024-01-05\n",
                                           encoding="utf-8")
    code, out, err = riskgrade(capsys, monkeypatch, "import", str(files), "--db", f"sqlite:///{path}")
    assert code == 7 and "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0] == (f"database {path} is busy: another job is writing to it; this import waits for it to finish "
                        f"(up to 0.5 s)")
    assert lines[-1].startswith(f"error: database {path} is still busy after 1 s (another job is writing to it): this "
                                f"import gave up and wrote nothing; run it again when the other job has finished")
    assert pd.read_sql("SELECT count(*) AS n FROM enterprises", f"sqlite:///{path}")["n"].iloc[0] == 0


@pytest.mark.parametrize("driver_message, code, pattern", [
    ("database is locked", 7, r"the database stayed locked by another job past the wait: database is locked"),
    ("database or disk is full", 8, r"the database could not be written: database or disk is full \(the disk is "
                                    r"full: free some space"),
])
def test_database_failures_at_the_top_are_one_line(capsys, monkeypatch, tmp_path, driver_message, code, pattern):
    import scoring.cli

    def failing(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(driver_message))

    monkeypatch.setattr(scoring.cli, "_print_run", failing)
    monkeypatch.setattr(scoring.cli, "_nightly", lambda *a, **k: None)
    refused(capsys, monkeypatch, code, pattern, "nightly", "--db", f"sqlite:///{tmp_path / 'r.db'}")


def test_postgresql_jobs_take_turns_on_a_named_lock(db_url, monkeypatch):
    if not db_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's; SQLite's write transaction is tested above")
    monkeypatch.setenv("RISKGRADE_DB_WAIT_SECONDS", "0.5")
    engine = connect(db_url)
    said = []
    with engine.begin() as first:
        serialise(first, "enterprise_key")
        with engine.begin() as second, pytest.raises(DatabaseError, match=r"is still busy after 1 s"):
            serialise(second, "enterprise_key", say=said.append, what="this import")
    assert said and "another job holds its enterprise_key lock; this import waits" in said[0]
    with engine.begin() as third:  # released with the first transaction
        serialise(third, "enterprise_key")
    engine.dispose()


def _world_files(directory: Path, first: int, n: int) -> Path:
    directory.mkdir()
    ids = [f"E{i:06d}" for i in range(first, first + n)]
    pd.DataFrame({"enterprise_id": ids, "name": ids, "sector": "commerce", "township": "东城"}).to_csv(
        directory / "enterprises.csv", index=False)
    pd.DataFrame({"inspection_id": [f"I{i}" for i in ids], "enterprise_id": ids,
                  "inspected_on": "2024-01-05"}).to_csv(directory / "inspections.csv", index=False)
    return directory


def test_two_imports_at_once_do_not_collide_on_enterprise_key(db_url, tmp_path):
    from features.importer import import_directory

    connect(db_url).dispose()
    folders = [_world_files(tmp_path / f"w{k}", 1 + 500 * k, 500) for k in range(2)]
    errors, barrier = [], threading.Barrier(2)

    def run(folder):
        engine = connect(db_url)
        try:
            barrier.wait()
            import_directory(engine, folder, today=date(2025, 1, 1))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run, args=(folder,)) for folder in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = pd.read_sql("SELECT enterprise_id, enterprise_key FROM enterprises", db_url)
    assert len(keys) == 1000 and keys["enterprise_key"].is_unique and keys["enterprise_key"].notna().all()
    events = pd.read_sql("SELECT i.enterprise_key AS k, e.enterprise_key AS e FROM inspections i JOIN enterprises e "
                         "ON e.enterprise_id = i.enterprise_id", db_url)
    assert len(events) == 1000 and (events["k"] == events["e"]).all()


def test_two_commands_on_a_brand_new_database_do_not_race_creating_tables(db_url):
    from scoring.results.tables import create_scoring_tables

    errors, barrier = [], threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            engine = connect(db_url)
            create_scoring_tables(engine)
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert {"enterprises", "batch_runs", "scores_history"} <= set(sa.inspect(sa.create_engine(db_url))
                                                                   .get_table_names())
