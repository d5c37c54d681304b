"""Benchmark: the nightly batch on a local Dask cluster against the single process, as the world grows.

    .venv/bin/python benchmarks/dask_scale.py --enterprises 200000              # one size
    .venv/bin/python benchmarks/dask_scale.py --enterprises 200000 500000 1000000 --single-max 500000
    .venv/bin/python benchmarks/dask_scale.py --enterprises 200000 --reuse      # keep the imported database

For each size N (× ``--years`` years, seed ``--seed``):

1. **Setup** (timed, not part of the figures; skipped with ``--reuse`` when the database exists): a spawned child
   generates the world in chunks of ``--chunk-enterprises`` (``data_samples.chunked.generate_world_chunks``: one
   chunk is ``generate_world``'s world; 1M × 5 years needs about 17 GB in one piece, a 200k chunk about 3 GB),
   writes each chunk's CSV files and imports them (``features.importer.import_directory``) into a fresh
   PostgreSQL database ``<--db-prefix>_<N>`` on ``--pg`` (the child exits, so its memory is not counted below),
   then ``VACUUM ANALYZE`` (untimed: the database as autovacuum leaves it, and as a reused one is measured).
   With ``--reuse``, an existing database instead has the results earlier runs stored for the benchmark's date
   deleted and is vacuumed (untimed), so that the run writes a new date's rows as on a fresh database.
2. **Dask**: a spawned child starts a local cluster (``scoring.results.partitioned.local_cluster``, as
   ``nightly --dask local`` does) of ``--workers`` single-threaded worker processes with ``--memory-limit`` each
   and runs ``scoring.results.partitioned.run_nightly_dask`` as of the
   day after the world's last month, ``--partition-size`` enterprises per partition (so that the partition size
   stays the same as N grows). Peak memory per worker is each worker process's ``ru_maxrss`` (the workers live
   for this run only); the client's is its own; "total" adds them up (an upper bound of what was in use at once).
3. **Single process** (N ≤ ``--single-max``): ``scoring.results.batch.run_nightly`` in a spawned child, the same
   date and database (its results replace the Dask run's: the same rows), peak = the child's ``ru_maxrss``.

Printed per size: wall time per stage, peak memory per worker / client / total, then the growth from the smallest
size: time ratio against N ratio (linear: equal), peak-per-worker ratio (independent of N: 1.0).

Run it niced on a shared machine (``nice -n 10``) and note the load (``uptime``). Measured figures are in the
README ("Beyond one machine").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue as queues
import resource
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))



def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _say(message: str) -> None:
    print(message, flush=True)


def _as_of(args) -> date:
    return args.start.replace(year=args.start.year + args.years)


def _db_url(args, n: int) -> str:
    return f"{args.pg.rstrip('/')}/{args.db_prefix}_{n}"


def _exists(args, n: int) -> bool:
    import sqlalchemy as sa

    admin = sa.create_engine(f"{args.pg.rstrip('/')}/postgres")
    try:
        with admin.connect() as conn:
            return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                {"n": f"{args.db_prefix}_{n}"}).first() is not None
    finally:
        admin.dispose()


def _as_new(args, n: int) -> float:
    """Delete what earlier runs stored for the benchmark's date, then ``VACUUM ANALYZE``: a run on a reused database
    then writes a new date's rows into tables without dead ones, as the first run on a fresh database does (a
    real nightly runs on a new date; re-running a stored date also deletes its N rows)."""
    import sqlalchemy as sa

    began = time.perf_counter()
    engine = sa.create_engine(_db_url(args, n), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for table in ("scores_history", "tier_changes"):
                conn.execute(sa.text(f"DELETE FROM {table} WHERE as_of = :day"), {"day": _as_of(args)})
            conn.execute(sa.text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    return time.perf_counter() - began


# ---------------------------------------------------------------------------------------------
# Children (spawned: each measures its own peak memory, and frees it when it exits)
# ---------------------------------------------------------------------------------------------


def _setup_child(args, n: int, workdir: str, out) -> None:
    import sqlalchemy as sa

    from data_samples.chunked import generate_world_chunks
    from data_samples.world import write_world
    from features.db import connect
    from features.importer import import_directory

    name = f"{args.db_prefix}_{n}"
    admin = sa.create_engine(f"{args.pg.rstrip('/')}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    began = time.perf_counter()
    engine = connect(_db_url(args, n))
    rows: dict[str, int] = {}
    generated = written = imported = 0.0
    # One chunk of enterprises at a time (data_samples.chunked): memory of a chunk, not of the world.
    for chunk, tables in generate_world_chunks(n, args.years, args.seed, chunk_enterprises=args.chunk_enterprises,
                                               start=args.start):
        step = time.perf_counter()
        generated += step - began
        world = Path(workdir) / f"world_{n}_{chunk}"
        shutil.rmtree(world, ignore_errors=True)
        files = {k: v for k, v in tables.items() if not k.startswith("truth")}
        write_world(files, world)
        for k, v in files.items():
            rows[k] = rows.get(k, 0) + len(v)
        del tables, files
        began = time.perf_counter()
        written += began - step
        import_directory(engine, world, today=_as_of(args))
        shutil.rmtree(world, ignore_errors=True)
        imported += time.perf_counter() - began
        began = time.perf_counter()
    engine.dispose()
    out.put({"rows": rows, "generated": generated, "written": written, "imported": imported, "peak_mb": _peak_mb()})


def _dask_child(args, n: int, out) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import dask
    from distributed import Client

    from features.db import connect
    from scoring.results.partitioned import local_cluster, run_nightly_dask

    url = _db_url(args, n)
    # Spilling to disk starts at the worker's memory target (dask's default fractions of --memory-limit).
    with dask.config.set({"distributed.worker.daemon": False}), \
            local_cluster(args.workers, memory_limit=args.memory_limit, local_directory=args.workdir) as cluster, \
            Client(cluster) as client:
        client.run(__import__, "scoring.results.partitioned")
        began = time.perf_counter()
        partitions = max(1, -(-n // args.partition_size))
        with _PeakSampler(client) as sampler:
            run = run_nightly_dask(connect(url), client, _as_of(args), url=url, partitions=partitions,
                                   tracking_uri=f"sqlite:///{args.workdir}/no-mlflow.db")
        wall = time.perf_counter() - began
        workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out.put({"timings": run.timings, "wall": wall, "workers_mb": sorted(workers.values()), "client_mb": _peak_mb(),
             "partitions": partitions, "n_scored": run.counts["n_scored"], "peaks": sampler.peaks(),
             "task_peaks": sampler.task_peaks()})


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _PeakSampler:
    """Samples each worker's resident memory and the tasks it is running, every ``interval`` seconds, so that a
    worker's peak can be put down to a task (``ru_maxrss`` says how high, not when)."""

    def __init__(self, client, interval: float = 0.25):
        import threading

        self.client, self.interval = client, interval
        self.highest: dict[str, tuple[float, float, list[str]]] = {}  # worker → (MB, seconds in, tasks)
        self.by_task: dict[str, float] = {}  # kind of task → the highest MB sampled while one ran
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self.began = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                rss = self.client.run(_rss_mb)
                running = self.client.processing()
            except Exception:  # the cluster closing: the samples so far stand
                return
            for worker, mb in rss.items():
                tasks = sorted({str(key).split("-")[0].strip("('") for key in running.get(worker, ())})
                if mb > self.highest.get(worker, (0.0,))[0]:
                    self.highest[worker] = (mb, time.perf_counter() - self.began, tasks)
                for task in tasks:
                    self.by_task[task] = max(self.by_task.get(task, 0.0), mb)

    def peaks(self) -> list[str]:
        return [f"{mb:,.0f} MB at {at:.0f} s ({', '.join(tasks) or 'idle'})"
                for mb, at, tasks in sorted(self.highest.values())]

    def task_peaks(self) -> str:
        """The highest resident memory sampled on any worker while each kind of task ran, in the run's order."""
        return " · ".join(f"{task} {mb:,.0f}" for task, mb in self.by_task.items())


def _single_child(args, n: int, out) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    from features.db import connect
    from scoring.results.batch import run_nightly

    began = time.perf_counter()
    run = run_nightly(connect(_db_url(args, n)), _as_of(args), tracking_uri=f"sqlite:///{args.workdir}/no-mlflow.db")
    out.put({"timings": run.timings, "wall": time.perf_counter() - began, "peak_mb": _peak_mb(),
             "n_scored": run.counts["n_scored"]})


def _spawned(target, *arguments) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=target, args=(*arguments, out))
    process.start()
    while True:
        try:
            result = out.get(timeout=1.0)
            break
        except queues.Empty:
            if not process.is_alive():
                return {"failed": f"exit code {process.exitcode}"}
    process.join()
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _stages(timings: dict) -> str:
    return " · ".join(f"{s} {seconds:.1f}" for s, seconds in timings.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, nargs="+", default=[200_000])
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    parser.add_argument("--db-prefix", default="bench_dask", help="databases <prefix>_<N> are (re)created")
    parser.add_argument("--chunk-enterprises", type=int, default=200_000,
                        help="generate and import the world in chunks of this many enterprises (data_samples.chunked;"
                             " a world of one chunk is generate_world's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GB", help="per worker (dask spills to disk before it)")
    parser.add_argument("--partition-size", type=int, default=50_000, help="enterprises per partition")
    parser.add_argument("--single-max", type=int, default=500_000,
                        help="run the single-process nightly up to this many enterprises")
    parser.add_argument("--workdir", default="/tmp/riskgrade-dask-bench")
    parser.add_argument("--reuse", action="store_true", help="keep an imported database of the same size")
    args = parser.parse_args(argv)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    _say(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; as of {_as_of(args)}; {args.workers} workers × "
         f"{args.memory_limit}, {args.partition_size:,} enterprises per partition")

    measured = []
    for n in args.enterprises:
        if args.reuse and _exists(args, n):
            _say(f"N = {n:,}: reusing {_db_url(args, n)} (the earlier runs' results of {_as_of(args)} deleted and "
                 f"the database vacuumed in {_as_new(args, n):.0f} s: the nightly of a new date, as on a fresh one)")
        else:
            setup = _spawned(_setup_child, args, n, args.workdir)
            if "failed" in setup:
                _say(f"N = {n:,}: setup failed ({setup['failed']})")
                break
            _say(f"N = {n:,}: world generated in {setup['generated']:.0f} s, CSV {setup['written']:.0f} s, imported "
                 f"in {setup['imported']:.0f} s (peak {setup['peak_mb']:,.0f} MB): "
                 + ", ".join(f"{k} {v:,}" for k, v in setup["rows"].items()))
            # as a reused database is (and as autovacuum leaves a fresh one), so that both are measured alike: a
            # fresh 200k world's first run took 89.8 s, 80.8 s once vacuumed (the same machine, session 14)
            _say(f"  vacuumed in {_as_new(args, n):.0f} s (untimed)")
        dask_run = _spawned(_dask_child, args, n)
        if "failed" in dask_run:
            _say(f"N = {n:,}: dask run failed ({dask_run['failed']})")
            break
        workers = dask_run["workers_mb"]
        total = sum(workers) + dask_run["client_mb"]
        _say(f"  dask   ({dask_run['partitions']} partitions): {_stages(dask_run['timings'])} · wall "
             f"{dask_run['wall']:.1f} s · peak per worker {', '.join(f'{w:,.0f}' for w in workers)} MB, client "
             f"{dask_run['client_mb']:,.0f} MB, total {total:,.0f} MB · load {os.getloadavg()[0]:.1f}")
        _say(f"  sampled peaks per worker: {'; '.join(dask_run['peaks'])}; by task (MB): {dask_run['task_peaks']}")
        single = None
        if n <= args.single_max:
            single = _spawned(_single_child, args, n)
            if "failed" in single:
                _say(f"  single: failed ({single['failed']})")
                single = None
            else:
                _say(f"  single: {_stages(single['timings'])} · wall {single['wall']:.1f} s · peak "
                     f"{single['peak_mb']:,.0f} MB · load {os.getloadavg()[0]:.1f}")
        measured.append((n, dask_run, single))

    if len(measured) > 1:
        n0, first, _ = measured[0]
        _say(f"growth from N = {n0:,}:")
        for n, run, single in measured[1:]:
            _say(f"  N = {n:,} ({n / n0:.1f}× N): dask wall {run['wall'] / first['wall']:.2f}×, peak per worker "
                 f"{max(run['workers_mb']) / max(first['workers_mb']):.2f}×"
                 + (f"; single peak {single['peak_mb']:,.0f} MB" if single else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
