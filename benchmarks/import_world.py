"""Benchmark: generate the province-scale synthetic world, write it as CSV, import it into SQLite and PostgreSQL.

    .venv/bin/python benchmarks/import_world.py [--enterprises 200000] [--years 5] [--seed 1]
        [--dir DIR] [--pg-url URL | --no-pg] [--repeat N] [--keep]

For each database it times the first import into an empty database, then a re-import of the same files (which
must change nothing: the benchmark checks that every table's row count and content checksum is unchanged; files
unchanged since their last import are recognised by their digest and not read again, see
:class:`features.importer._ImportLedger`, so the re-import measures that check: digests, counts, the record), and
prints rows/s, CPU seconds (of the importing process, and on PostgreSQL of its server process) and peak memory
(the maximum resident set size of the importing process). Every import runs in a process of its own, so that its
peak is its own. ``--repeat N`` repeats the whole measurement N times (a fresh database each time) and prints the
median of each figure; the CPU seconds are the steadier figure on a busy machine.

``--dir DIR``: the world's CSV files (generated there unless ``DIR/enterprises.csv`` exists; reuse it, generating
200k enterprises takes minutes). PostgreSQL: ``--pg-url`` or ``$RISKGRADE_TEST_PG_URL`` names a server database the
benchmark can ``CREATE DATABASE`` from; it imports into a throw-away database, dropped afterwards. Not a test: run
by hand.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

_RUNS = ("first import", "re-import")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _generate(args, out: Path, queue) -> None:
    from data_samples.world import generate_world, write_world

    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
    simulated = time.perf_counter()
    write_world(tables, out)
    rows = {name: len(frame) for name, frame in tables.items()}
    queue.put({"simulate_s": simulated - began, "write_s": time.perf_counter() - simulated, "rows": rows,
               "peak_mb": _peak_mb()})


def _server_cpu_seconds(engine) -> float:
    """CPU seconds used so far by the PostgreSQL server processes serving ``engine``'s database (same machine
    only; 0 on SQLite or when the server's processes cannot be read)."""
    import sqlalchemy as sa

    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        pids = list(pids)
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _import(url: str, directory: Path, today: date, queue) -> None:
    from features.db import connect
    from features.importer import import_directory

    engine = connect(url)
    server_before = _server_cpu_seconds(engine)
    cpu_before = _cpu_seconds()
    began = time.perf_counter()
    summary = import_directory(engine, directory, today=today)
    seconds = time.perf_counter() - began
    queue.put({"seconds": seconds, "rows": sum(item.rows_read for item in summary.tables),
               "quarantined": summary.quarantined, "cpu_s": _cpu_seconds() - cpu_before,
               "server_cpu_s": _server_cpu_seconds(engine) - server_before, "peak_mb": _peak_mb()})
    engine.dispose()


def _fingerprint(url: str, queue) -> None:
    """Row count and an order-independent checksum of every contract table (to check a re-import changed
    nothing)."""
    import pandas as pd

    from features.db import connect
    from features.store import load_tables

    engine = connect(url)
    tables = load_tables(engine, [*_contract_names(), "truth"])
    queue.put({name: (len(frame), int(pd.util.hash_pandas_object(frame, index=False).sum()))
               for name, frame in tables.items()})
    engine.dispose()


def _contract_names() -> list[str]:
    from features.contract import TABLES

    return [spec.name for spec in TABLES]


def _in_child(target, *args):
    context = mp.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


class _PostgresDatabase:
    """A throw-away database on the server of ``server_url`` (created on entry, dropped on exit)."""

    def __init__(self, server_url: str):
        if server_url.startswith("postgresql://"):
            server_url = "postgresql+psycopg://" + server_url.removeprefix("postgresql://")
        self.server_url = server_url
        self.name = f"riskgrade_bench_{uuid.uuid4().hex[:12]}"
        self.url = server_url.rsplit("/", 1)[0] + f"/{self.name}"

    def _admin(self, sql: str) -> None:
        import sqlalchemy as sa

        admin = sa.create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(sql))
        finally:
            admin.dispose()

    def __enter__(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self.url

    def __exit__(self, *exc_info) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _measure(url: str, directory: Path, today: date) -> dict[str, dict]:
    """First import and re-import into the (empty) database at ``url``; checks the re-import changed nothing.
    Says on stderr what each step took as soon as it is done (a 200k world takes long on a busy machine)."""
    first = _in_child(_import, url, directory, today)
    _said("first import", url, first)
    before = _in_child(_fingerprint, url)
    again = _in_child(_import, url, directory, today)
    _said("re-import", url, again)
    after = _in_child(_fingerprint, url)
    if before != after:
        changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
        raise SystemExit(f"the re-import changed the database: tables {', '.join(changed)}")
    return dict(zip(_RUNS, (first, again)))


def _said(step: str, url: str, figures: dict) -> None:
    backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    print(f"[{time.strftime('%H:%M:%S')}] {backend} {step}: {figures['rows']:,} rows in {figures['seconds']:.1f} s, "
          f"CPU {figures['cpu_s']:.1f} s, server CPU {figures['server_cpu_s']:.1f} s, peak {figures['peak_mb']:,.0f} MB",
          file=sys.stderr, flush=True)


def _print_runs(label: str, runs: list[dict[str, dict]]) -> None:
    print(f"{label} ({len(runs)} run{'s' if len(runs) > 1 else ''}{', medians' if len(runs) > 1 else ''}):")
    for name in _RUNS:
        def median(key: str, name=name) -> float:
            return statistics.median(run[name][key] for run in runs)

        rows = runs[0][name]["rows"]
        rates = sorted(run[name]["rows"] / run[name]["seconds"] for run in runs)
        spread = f" (runs {min(rates):,.0f}–{max(rates):,.0f})" if len(runs) > 1 else ""
        server = f", server CPU {median('server_cpu_s'):.1f} s" if median("server_cpu_s") else ""
        print(f"  {name:12s}: {rows:,} rows in {median('seconds'):.1f} s = {rows / median('seconds'):,.0f} rows/s"
              f"{spread}; CPU {median('cpu_s'):.1f} s = {rows / median('cpu_s'):,.0f} rows per CPU-second"
              f"{server}; peak memory {median('peak_mb'):,.0f} MB; {runs[0][name]['quarantined']:,} quarantined")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--dir", type=Path, default=None, help="world directory (generated unless it exists)")
    parser.add_argument("--pg-url", default=os.environ.get("RISKGRADE_TEST_PG_URL"),
                        help="PostgreSQL server database to create the benchmark's database from "
                             "(default: $RISKGRADE_TEST_PG_URL)")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--repeat", type=int, default=1, help="measure N times, print medians")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and the SQLite database")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="riskgrade-bench-"))
    directory = args.dir or scratch / "world"
    try:
        if not (directory / "enterprises.csv").exists():
            made = _in_child(_generate, args, directory)
            total = sum(made["rows"].values())
            print(f"generate: {args.enterprises:,} enterprises × {args.years} years, {total:,} rows "
                  f"(simulate {made['simulate_s']:.1f} s, write CSV {made['write_s']:.1f} s, "
                  f"peak {made['peak_mb']:,.0f} MB)")
            for name, count in made["rows"].items():
                print(f"  {name:16s} {count:>12,d}")
        today = args.start.replace(year=args.start.year + args.years) + timedelta(days=1)
        backends = [] if args.no_sqlite else ["SQLite"]
        if args.pg_url and not args.no_pg:
            backends.append("PostgreSQL")
        elif not args.no_pg:
            print("PostgreSQL: skipped (give --pg-url or set $RISKGRADE_TEST_PG_URL)")
        runs: dict[str, list] = {backend: [] for backend in backends}
        for repeat in range(args.repeat):
            for backend in backends:  # alternate, so that both see the same state of a busy machine
                if backend == "SQLite":
                    path = scratch / f"riskgrade-{repeat}.db"
                    runs[backend].append(_measure(f"sqlite:///{path}", directory, today))
                    if not args.keep:
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{path}{suffix}").unlink(missing_ok=True)
                else:
                    with _PostgresDatabase(args.pg_url) as url:
                        runs[backend].append(_measure(url, directory, today))
                if args.repeat > 1:  # each run as it ends (a long benchmark shows what it has so far)
                    _print_runs(f"{backend}, run {repeat + 1}", runs[backend][-1:])
                    sys.stdout.flush()
        for backend in backends:
            _print_runs(backend, runs[backend])
        print("re-import changed nothing (row counts and content checksums of every table equal)")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
