"""Benchmark: generate a province-scale synthetic world and report rows, seconds and peak memory.

    .venv/bin/python benchmarks/generate.py --enterprises 200000 --years 5 --seed 1 [--out DIR]

Not a test: run by hand when the generator changes. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from data_samples.world import format_stats, generate_world, world_stats, write_world  # noqa: E402


def _peak_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2021, 1, 1))
    parser.add_argument("--out", type=Path, default=None, help="also write the CSV files here")
    parser.add_argument("--stats", action="store_true", help="also compute and print the realism figures")
    args = parser.parse_args(argv)

    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
    generated = time.perf_counter()
    print(f"generated {args.enterprises:,} enterprises × {args.years} years in {generated - began:.1f} s "
          f"(peak {_peak_mb():,.0f} MB)")
    for name, frame in tables.items():
        print(f"  {name:16s} {len(frame):>12,d} rows")
    if args.out is not None:
        write_world(tables, args.out)
        written = time.perf_counter()
        size = sum(p.stat().st_size for p in args.out.glob("*.csv")) / 2**20
        print(f"wrote {size:,.0f} MB of CSV to {args.out} in {written - generated:.1f} s (peak {_peak_mb():,.0f} MB)")
    if args.stats:
        stats_began = time.perf_counter()
        print(format_stats(world_stats(tables, tables["truth"])))
        print(f"stats in {time.perf_counter() - stats_began:.1f} s (peak {_peak_mb():,.0f} MB)")
    print(f"total {time.perf_counter() - began:.1f} s, peak memory {_peak_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
