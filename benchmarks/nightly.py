"""Benchmark: the whole nightly batch at province scale (DESIGN.md §10–§11).

    .venv/bin/python benchmarks/nightly.py                          # 200k enterprises × 5 years, expert card
    .venv/bin/python benchmarks/nightly.py --reuse                  # keep the imported database of a previous run
    .venv/bin/python benchmarks/nightly.py --model boosting         # a trained, promoted champion (see below)
    .venv/bin/python benchmarks/nightly.py --source frames          # skip the database read (see below)
    .venv/bin/python benchmarks/nightly.py --enterprises 20000 --repeat 1

Setup (timed, not part of the nightly figures):

1. ``data_samples.world.generate_world(N, years, seed)`` → contract CSV files → ``riskgrade import`` into a fresh
   SQLite database ``<workdir>/bench.db`` (``--reuse`` keeps it between invocations: the import of 200k
   enterprises takes minutes).
2. The model: ``--model expert`` (default) registers nothing, so the batch falls back to the policy's expert card;
   ``--model boosting|scorecard`` trains that kind with ``models.train.train_and_evaluate`` on a separate world of
   ``--train-enterprises`` (default 20 000; same generator, seed + 1, same years) and promotes it in a local MLflow
   store, so the batch loads a real champion by alias.
3. One nightly run as of the day before, so that the timed runs have a previous run (hysteresis, tier changes).

Measured: ``--repeat`` runs (default 3) of ``scoring.results.batch.run_nightly`` as of the day after the world's last month,
each in a fresh process (spawned, so that its peak memory — ``ru_maxrss`` — is the run's own), re-running the same
date (the realistic case: results replaced in one transaction). Stages: ``load`` (contract tables from the database;
with ``--source frames`` the canonical frames are unpickled from a file instead and handed to the batch — no
database read), ``features``, ``score`` (model loading + probability, points and reasons), ``tiers/limits`` (tiers,
vetoes, hysteresis, overrides, supervision limits, ranked list, tier changes) and ``write`` (lock + the results
transaction). Printed: each run, then the medians.

Measured on the 2-core development machine (200 000 enterprises × 5 years, seed 1: 1.24M inspections, 6.67M
hazards, 2.18M credit records; 188 522 enterprises active on 2026-01-01), medians of 3 re-runs of the same date:

    source  model              load  features  score  tiers/limits  write  total   peak
    db      expert card        35.9       1.7    2.1          10.6    6.9   58.0 s  2.5 GB
    frames  expert card         0.6       1.9    2.0           9.6    6.6   21.4 s  2.6 GB
    db      boosting champion  36.1       1.9   10.1          10.0    7.9   66.8 s  2.8 GB

Setup: world generated in 15.5 s, CSV written in 2.4 s, imported in 68 s (1.35 GB SQLite file); boosting
trained on a 20 000-enterprise world in 16 s. ``load`` is ``features.store.load_tables`` reading SQLite
(``sqlite3`` builds one Python object per cell, then pandas converts them to Arrow strings); ``tiers/limits`` is
mostly ``scoring.domain.tiers.assign_tiers`` (4.5 s) and ``scoring.domain.supervision.supervision_limits`` (3.2 s); ``score`` with
the boosting champion is MLflow loading (2 s) plus ``decision_function`` computed twice (probability and points).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pickle
import resource
import shutil
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = {
    "load": ("load",),
    "features": ("features",),
    "score": ("model", "score"),
    "tiers/limits": ("tiers", "limits"),
    "write": ("lock", "write"),
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------


def _prepare_database(args, workdir: Path, db_path: Path) -> None:
    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory

    if args.reuse and db_path.exists():
        _say(f"reusing {db_path} ({db_path.stat().st_size / 2**20:,.0f} MB)")
        return
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
    generated = time.perf_counter()
    world_dir = workdir / "world"
    shutil.rmtree(world_dir, ignore_errors=True)
    write_world({k: v for k, v in tables.items() if k != "truth"}, world_dir)
    sizes = ", ".join(f"{k} {len(v):,}" for k, v in tables.items() if k != "truth")
    del tables
    written = time.perf_counter()
    _say(f"world: {args.enterprises:,} enterprises × {args.years} years, seed {args.seed}: {sizes}")
    _say(f"  generated in {generated - began:.1f} s, CSV written in {written - generated:.1f} s")
    engine = connect(f"sqlite:///{db_path}")
    import_directory(engine, world_dir, today=_as_of(args))
    engine.dispose()
    _say(f"  imported into {db_path} in {time.perf_counter() - written:.1f} s "
         f"({db_path.stat().st_size / 2**20:,.0f} MB)")
    shutil.rmtree(world_dir, ignore_errors=True)


def _snapshot_frames(db_url: str, path: Path) -> None:
    """The canonical frames the batch would load, pickled once (``--source frames``)."""
    from features.db import connect
    from features.store import load_tables

    if path.exists():
        return
    began = time.perf_counter()
    tables = load_tables(connect(db_url))
    with path.open("wb") as handle:
        pickle.dump(tables, handle, protocol=5)
    _say(f"frames snapshot {path} written in {time.perf_counter() - began:.1f} s")


def _train(args, workdir: Path) -> str | None:
    if args.model == "expert":
        _say("model: none registered → the batch falls back to the expert card of the policy file")
        return f"sqlite:///{workdir / 'no-mlflow.db'}"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from data_samples.world import generate_world
    from models.config import TrainingConfig
    from models.expert import ExpertCardRules
    from models.train import train_and_evaluate
    from scoring.domain.policy import build_section, read_policy_mapping

    uri = f"sqlite:///{workdir / f'mlflow-{args.model}-{args.train_enterprises}.db'}"
    if args.reuse and Path(uri.removeprefix("sqlite:///")).exists():
        _say(f"model: reusing the champion in {uri}")
        return uri
    mapping, source = read_policy_mapping(None)
    began = time.perf_counter()
    world = generate_world(args.train_enterprises, args.years, args.seed + 1, start=args.start)
    result = train_and_evaluate(
        world, _as_of(args), (args.model,),
        expert_rules=build_section(ExpertCardRules, mapping["expert_card"], f"{source}: expert_card"),
        config=build_section(TrainingConfig, mapping["training"], f"{source}: training"),
        horizon_days=int(mapping["labels"]["horizon_days"]), target=str(mapping["labels"]["target"]),
        tracking_uri=uri, promote=True,
    )
    _say(f"model: {args.model} trained on {args.train_enterprises:,} enterprises in "
         f"{time.perf_counter() - began:.1f} s (ROC-AUC {result.report['models'][args.model]['roc_auc']:.3f}), "
         f"promoted: {result.promotion.promoted}")
    return uri


def _as_of(args) -> date:
    return args.start.replace(year=args.start.year + args.years)


# ---------------------------------------------------------------------------------------------
# One measured run (in a spawned child)
# ---------------------------------------------------------------------------------------------


def _child(db_url: str, as_of: str, uri: str, frames: str | None, queue) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import warnings

    warnings.filterwarnings("ignore")
    from features.db import connect
    from scoring.results.batch import run_nightly

    tables = None
    unpickled = 0.0
    began = time.perf_counter()
    if frames:
        with open(frames, "rb") as handle:
            tables = pickle.load(handle)
        unpickled = time.perf_counter() - began
    run = run_nightly(connect(db_url), as_of, tracking_uri=uri, tables=tables)
    timings = dict(run.timings)
    timings["load"] = timings.get("load", 0.0) + unpickled
    queue.put({"timings": timings, "wall": time.perf_counter() - began, "peak_mb": _peak_mb(),
               "counts": run.counts, "model": run.model, "warnings": run.warnings})


def _measure(db_url: str, as_of: date, uri: str, frames: Path | None) -> dict:
    import queue as queues

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(db_url, str(as_of), uri, str(frames) if frames else None, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not process.is_alive():
                raise SystemExit(f"the measured run failed (exit code {process.exitcode}); see its error above")
    process.join()
    return result


def _stage_seconds(timings: dict) -> dict[str, float]:
    return {stage: sum(timings.get(part, 0.0) for part in parts) for stage, parts in STAGES.items()}


def _line(label: str, result: dict) -> str:
    stages = _stage_seconds(result["timings"])
    parts = " · ".join(f"{stage} {seconds:5.1f}" for stage, seconds in stages.items())
    return f"{label:>10}: {parts} · total {result['wall']:5.1f} s · peak {result['peak_mb']:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/riskgrade-nightly-bench"))
    parser.add_argument("--reuse", action="store_true", help="keep the imported database (and model) if present")
    parser.add_argument("--source", choices=("db", "frames"), default="db",
                        help="db: the batch reads the contract tables from SQLite; frames: from a pickle snapshot")
    parser.add_argument("--model", choices=("expert", "boosting", "scorecard"), default="expert")
    parser.add_argument("--train-enterprises", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    workdir = args.workdir / f"{args.enterprises}x{args.years}-seed{args.seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "bench.db"
    db_url = f"sqlite:///{db_path}"
    _prepare_database(args, workdir, db_path)
    frames = None
    if args.source == "frames":
        frames = workdir / "frames.pkl"
        _snapshot_frames(db_url, frames)
    uri = _train(args, workdir)
    as_of = _as_of(args)
    _say(f"nightly as of {as_of} on {db_url} (source: {args.source}); {os.cpu_count()} CPUs")

    first = _measure(db_url, as_of - timedelta(days=1), uri, frames)
    _say(f"model used: {first['model']}" + (" (fallback: no champion)" if first["warnings"] else ""))
    _say(_line("previous", first) + "   (as of the day before: no previous run, sets the baseline)")
    results = []
    for i in range(args.repeat):
        result = _measure(db_url, as_of, uri, frames)
        results.append(result)
        _say(_line(f"run {i + 1}", result))
    counts = results[-1]["counts"]
    _say(f"scored {counts['n_scored']:,}: high {counts['n_high']:,} · general {counts['n_general']:,} · "
         f"low {counts['n_low']:,} · tier changes {counts['n_changes']:,}")
    medians = {
        "timings": {part: statistics.median(r["timings"].get(part, 0.0) for r in results)
                    for parts in STAGES.values() for part in parts},
        "wall": statistics.median(r["wall"] for r in results),
        "peak_mb": statistics.median(r["peak_mb"] for r in results),
    }
    _say(_line("median", medians) + f"   ({len(results)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
