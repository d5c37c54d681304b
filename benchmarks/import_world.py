"""Benchmark: generate the province-scale synthetic world, write it as CSV, import it; rows/s and peak memory.

    .venv/bin/python benchmarks/import_world.py [--enterprises 200000] [--years 5] [--seed 1]
        [--dir DIR] [--db URL] [--keep]

Each stage runs in its own process so that its peak memory (maximum resident set size) is its own. The import
is timed twice: the first load into an empty database, then a re-import of the same files (which must change
nothing). Not a test: run by hand; quote medians of a few runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _generate(args, out: Path, queue) -> None:
    from data_samples.world import generate_world, write_world

    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
    simulated = time.perf_counter()
    write_world(tables, out)
    rows = {name: len(frame) for name, frame in tables.items()}
    queue.put({"simulate_s": simulated - began, "write_s": time.perf_counter() - simulated, "rows": rows,
               "peak_mb": _peak_mb()})


def _import(url: str, directory: Path, today: date, queue) -> None:
    from features.db import connect
    from features.importer import import_directory

    engine = connect(url)
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        summary = import_directory(engine, directory, today=today)
        read = sum(item.rows_read for item in summary.tables)
        timings.append((time.perf_counter() - began, read, summary.quarantined))
    queue.put({"runs": timings, "peak_mb": _peak_mb()})


def _in_child(target, *args) -> dict:
    queue = mp.get_context("fork").Queue()
    process = mp.get_context("fork").Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--dir", type=Path, default=None, help="world directory (generated unless it exists)")
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and database")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="riskgrade-bench-"))
    directory = args.dir or scratch / "world"
    url = args.db or f"sqlite:///{scratch / 'riskgrade.db'}"
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
        done = _in_child(_import, url, directory, today)
        for label, (seconds, rows, quarantined) in zip(("first import", "re-import"), done["runs"]):
            print(f"{label}: {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s "
                  f"({quarantined:,} quarantined)")
        print(f"import peak memory {done['peak_mb']:,.0f} MB on {url.split(':')[0]}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
