"""Benchmark: point-in-time features at province scale (DESIGN.md §11).

Builds (or generates) a province-scale event set — by default 200k enterprises, 4M inspections, 12M
hazards and smaller tables, as the canonical frames ``features.store.load_tables`` returns, each row with
its enterprise's integer ``enterprise_key`` — then times ``build_features`` for one as-of date and for
12 monthly as-of dates, and compares with the floor: a single numpy pass summing one column by enterprise
over the same events (``np.bincount`` on the stored enterprise keys). The same one-date build is also timed on
frames without keys (as read from files, or made by the world simulator), where each event's enterprise is
found by hashing its ``enterprise_id``.

Each measured build runs in a forked child process so that its peak memory can be read
(``ru_maxrss`` of the child minus the resident size inherited from the parent: the memory the build
adds on top of the input tables). Times are medians over ``--repeat`` runs
(at least 15 for the floor, which takes a tenth of a second).

Wall time is printed with its split into user and system CPU time. On the development VM the system time of
the same build varies from 0.1 s to over 1 s from run to run: it is the kernel (and the hypervisor behind it)
handing over fresh memory pages, not the build's own work (the floor allocates almost nothing). So the ratio to
the floor is given both by wall time and by user CPU time, each against the floor's own.

    .venv/bin/python benchmarks/features.py                  # synthetic events of the default sizes
    .venv/bin/python benchmarks/features.py --world          # data_samples.world.generate_world
    .venv/bin/python benchmarks/features.py --enterprises 20000 --inspections 400000 --hazards 1200000
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.build import _codes, build_features  # noqa: E402
from features.contract import (  # noqa: E402
    CREDIT_GRADES,
    ENTERPRISE_KEY,
    INSPECTION_KINDS,
    SECTOR_CODES,
    VIOLATION_KINDS,
)

START = np.datetime64("2019-01-01")
END = np.datetime64("2025-01-01")


# ---------------------------------------------------------------------------------------------
# A simple synthetic event set (until/unless the world generator is used)
# ---------------------------------------------------------------------------------------------


def _ids(prefix: str, n: int) -> pd.Series:
    numbers = pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string())
    return pd.Series(pc.binary_join_element_wise(prefix, numbers, ""), dtype="str")


def _dates(days: np.ndarray) -> pd.Series:
    return pd.Series((START + days.astype("timedelta64[D]")).astype("datetime64[ns]"))


def _late(rng: np.random.Generator, event_days: np.ndarray, share_late: float, max_lag: int) -> np.ndarray:
    """Knowledge days: most records entered the same day, ``share_late`` of them 1..max_lag days later."""
    lag = np.where(rng.random(len(event_days)) < share_late, rng.integers(1, max_lag + 1, len(event_days)), 0)
    return event_days + lag


def synthetic_tables(n_enterprises: int, n_inspections: int, n_hazards: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Random canonical frames of the requested sizes (not a realistic world: sizes and dtypes only)."""
    rng = np.random.default_rng(seed)
    span = int((END - START).astype(int))
    enterprise_ids = _ids("E", n_enterprises)
    founded = rng.integers(-20 * 365, span, n_enterprises)
    closed = np.where(rng.random(n_enterprises) < 0.03, founded + rng.integers(30, 5000, n_enterprises), -1)
    enterprises = pd.DataFrame({
        "enterprise_id": enterprise_ids,
        "name": enterprise_ids,
        "uscc": pd.Series(pd.NA, index=range(n_enterprises), dtype="str"),
        "sector": pd.Series(rng.choice(np.array(SECTOR_CODES), n_enterprises), dtype="str"),
        "township": pd.Series(rng.choice(np.array([f"T{i:03d}" for i in range(200)]), n_enterprises), dtype="str"),
        "employees": pd.array(rng.integers(1, 2000, n_enterprises), dtype="Int64"),
        "founded_on": _dates(founded),
        "closed_on": _dates(closed).where(closed >= 0),
        **{flag: pd.array(rng.random(n_enterprises) < 0.1, dtype="boolean")
           for flag in ("major_hazard_source", "dust_explosion", "ammonia_refrigeration", "confined_space")},
        "x_capital_wan": rng.lognormal(5, 1, n_enterprises),
    })

    def events(prefix: str, n: int, *, share_late: float = 0.3, max_lag: int = 30):
        """(frame with id and enterprise_id, event days, knowledge days) of ``n`` random events."""
        owner = rng.integers(0, n_enterprises, n)
        day = rng.integers(0, span, n)
        frame = pd.DataFrame({
            f"{prefix}_id": _ids(prefix[0].upper(), n),
            "enterprise_id": pd.Series(pa.array(enterprise_ids).take(pa.array(owner)), dtype="str"),
        })
        return frame, day, _late(rng, day, share_late, max_lag)

    inspections, day, known = events("inspection", n_inspections)
    takers = rng.integers(0, 6, n_inspections)
    inspections = inspections.assign(
        inspected_on=_dates(day),
        department=pd.Series(rng.choice(np.array(["应急", "住建", "交通", "消防"]), n_inspections), dtype="str"),
        kind=pd.Series(rng.choice(np.array(INSPECTION_KINDS), n_inspections), dtype="str"),
        n_inspectors=pd.array(rng.integers(2, 4, n_inspections), dtype="Int64"),
        exam_takers=pd.array(takers, dtype="Int64"),
        exam_passed=pd.array(rng.binomial(takers, 0.8), dtype="Int64"),
        recorded_on=_dates(known),
    )

    # Hazards are found by inspections: same enterprise and date as a random inspection.
    source = rng.integers(0, n_inspections, n_hazards)
    found = day[source]
    major = rng.random(n_hazards) < 0.015
    deadline = found + np.where(major, 60, 15)
    rectified = deadline + rng.integers(-14, 10, n_hazards)
    rectified = np.where((rectified > span) | (rng.random(n_hazards) < 0.02), -1, np.maximum(rectified, found))
    hazards = pd.DataFrame({
        "hazard_id": _ids("H", n_hazards),
        "enterprise_id": inspections["enterprise_id"].take(source).reset_index(drop=True),
        "inspection_id": inspections["inspection_id"].take(source).reset_index(drop=True),
        "found_on": _dates(found),
        "level": pd.Series(np.where(major, "major", "general"), dtype="str"),
        "category": pd.Series(pd.NA, index=range(n_hazards), dtype="str"),
        "rectify_by": _dates(deadline),
        "rectified_on": _dates(rectified).where(rectified >= 0),
        "recorded_on": _dates(_late(rng, found, 0.3, 30)),
    })

    def small(prefix: str, n: int, date_column: str, **columns: Callable[[int], object]) -> pd.DataFrame:
        frame, day, known = events(prefix, n, share_late=0.2, max_lag=90)
        frame[date_column] = _dates(day)
        for name, make in columns.items():
            frame[name] = make(n)
        frame["recorded_on"] = _dates(known)
        return frame

    boolean = lambda p: lambda n: pd.array(rng.random(n) < p, dtype="boolean")  # noqa: E731
    violations = small("violation", n_hazards // 12, "found_on",
                       inspection_id=lambda n: pd.Series(pd.NA, index=range(n), dtype="str"),
                       kind=lambda n: pd.Series(rng.choice(np.array(VIOLATION_KINDS), n), dtype="str"))
    accidents = small("accident", n_enterprises // 10, "occurred_on",
                      grade=lambda n: pd.Series(rng.choice(np.array(["general", "larger"]), n, p=[0.97, 0.03]), dtype="str"),
                      deaths=lambda n: pd.array(rng.binomial(1, 0.05, n), dtype="Int64"),
                      serious_injuries=lambda n: pd.array(np.zeros(n, dtype=int), dtype="Int64"),
                      direct_loss_yuan=lambda n: rng.lognormal(10, 1, n),
                      road_traffic=boolean(0.2), concealed=boolean(0.02))
    penalties = small("penalty", n_enterprises // 2, "decided_on",
                      amount_yuan=lambda n: rng.lognormal(9, 1, n),
                      person_penalized=boolean(0.3), suspension=boolean(0.05))
    kinds = np.array(["standardization", "blacklist", "redlist", "credit_grade", "insurance", "commitment"])
    credit_kind = rng.choice(kinds, 2 * n_enterprises)
    credit_value = np.where(credit_kind == "standardization", rng.choice(np.array(["1", "2", "3"]), len(credit_kind)),
                            np.where(credit_kind == "credit_grade", rng.choice(np.array(CREDIT_GRADES), len(credit_kind)), "true"))
    credit_records = small("record", 2 * n_enterprises, "valid_from",
                           kind=lambda n: pd.Series(credit_kind, dtype="str"),
                           value=lambda n: pd.Series(credit_value, dtype="str"))
    credit_records["valid_to"] = credit_records["valid_from"] + pd.to_timedelta(rng.integers(180, 1100, len(credit_kind)), unit="D")
    complaints = small("complaint", n_enterprises // 2, "received_on", substantiated=boolean(0.4))
    return {
        "enterprises": enterprises, "inspections": inspections, "hazards": hazards, "violations": violations,
        "accidents": accidents, "penalties": penalties, "credit_records": credit_records, "complaints": complaints,
    }


def world_tables(n_enterprises: int, years: int, seed: int) -> dict[str, pd.DataFrame]:
    from data_samples.world import generate_world  # only --world needs the simulator

    tables = generate_world(n_enterprises, years, seed)
    return {name: frame for name, frame in tables.items() if name != "truth"}


def with_enterprise_keys(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with the ``enterprise_key`` column the importer stores and ``load_tables`` returns (int32,
    enterprises numbered from 1 in id order, as a first import of the files numbers them)."""
    ids = pd.Index(tables["enterprises"]["enterprise_id"]).sort_values()
    key_of = np.arange(1, len(ids) + 1, dtype=np.int32)
    return {name: frame.assign(**{ENTERPRISE_KEY: key_of[_codes(frame["enterprise_id"], ids)]})
            for name, frame in tables.items()}


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Median wall, user CPU and system CPU seconds and page faults, and the largest extra peak memory (MB), of
    forked runs."""

    wall: float
    user: float
    system: float
    page_faults: float
    peak_mb: float

    def __str__(self) -> str:
        return (f"{self.wall:.2f} s wall (user {self.user:.2f} s, system {self.system:.2f} s; "
                f"{self.page_faults / 1000:,.0f}k page faults)")


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _cpu_seconds_and_faults() -> tuple[float, float, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def _child(task: Callable[[], object], queue: multiprocessing.Queue) -> None:
    inherited = _rss_mb()
    started, (user_started, system_started, faults_started) = time.perf_counter(), _cpu_seconds_and_faults()
    task()
    elapsed, (user, system, faults) = time.perf_counter() - started, _cpu_seconds_and_faults()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(Measured(elapsed, user - user_started, system - system_started, faults - faults_started,
                       peak - inherited))


def measure(task: Callable[[], object], repeat: int) -> Measured:
    """``task`` run ``repeat`` times, each in a forked child; the medians (and the largest peak)."""
    context = multiprocessing.get_context("fork")
    runs = []
    for _ in range(repeat):
        queue = context.Queue()
        process = context.Process(target=_child, args=(task, queue))
        process.start()
        runs.append(queue.get())
        process.join()
    return Measured(statistics.median(r.wall for r in runs), statistics.median(r.user for r in runs),
                    statistics.median(r.system for r in runs), statistics.median(r.page_faults for r in runs),
                    max(r.peak_mb for r in runs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", action="store_true", help="use data_samples.world.generate_world")
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--inspections", type=int, default=4_000_000)
    parser.add_argument("--hazards", type=int, default=12_000_000)
    parser.add_argument("--years", type=int, default=6, help="years of history (--world)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.world:
        tables = world_tables(args.enterprises, args.years, args.seed)
    else:
        tables = synthetic_tables(args.enterprises, args.inspections, args.hazards, args.seed)
    print(f"data: {time.perf_counter() - started:.1f} s to make; "
          + ", ".join(f"{name} {len(frame):,}" for name, frame in tables.items()))
    print(f"input tables resident: {_rss_mb():,.0f} MB")

    last_event = max(frame[c].max() for frame in tables.values() for c in frame.columns
                     if c.endswith("_on") and c not in ("founded_on", "closed_on", "recorded_on", "rectified_on"))
    last = (pd.Timestamp(last_event) + pd.Timedelta(days=1)).normalize()
    one_date = [last]
    monthly = list(pd.date_range(end=last, periods=12, freq="MS")) if last.day == 1 else \
        [last - pd.DateOffset(months=i) for i in range(11, -1, -1)]

    by_id = tables
    tables = with_enterprise_keys(by_id)
    event_tables = {name: frame for name, frame in tables.items() if name != "enterprises"}
    n_enterprises = int(tables["enterprises"][ENTERPRISE_KEY].max()) + 1
    # The floor sums a column that already exists by the keys stored with the events: nothing made in the pass.
    keys = {name: frame[ENTERPRISE_KEY].to_numpy() for name, frame in event_tables.items()}
    columns = {name: np.ones(len(key)) for name, key in keys.items()}
    ids = pd.Index(tables["enterprises"]["enterprise_id"].sort_values())

    def floor_all() -> None:
        for name, key in keys.items():
            np.bincount(key, weights=columns[name], minlength=n_enterprises)

    def floor_hazards_only() -> None:
        np.bincount(keys["hazards"], weights=columns["hazards"], minlength=n_enterprises)

    def id_mapping() -> None:
        for frame in event_tables.values():
            _codes(frame["enterprise_id"], ids)

    # The floor takes a tenth of a second: more runs, so that its median is as steady as the builds' medians.
    floor_runs = max(args.repeat, 15)
    floor_hazards = measure(floor_hazards_only, floor_runs)
    floor_events = measure(floor_all, floor_runs)
    one = measure(lambda: build_features(tables, one_date), args.repeat)
    twelve = measure(lambda: build_features(tables, monthly), args.repeat)
    one_by_id = measure(lambda: build_features(by_id, one_date), args.repeat)
    mapping = measure(id_mapping, args.repeat)

    n_events = sum(len(frame) for frame in event_tables.values())
    print(f"load average at the end: {open('/proc/loadavg').read().split()[0]} (2 cores: more than 2 means contention)")
    print(f"floor: np.bincount over hazards ({len(keys['hazards']):,} rows): {floor_hazards.wall * 1000:.0f} ms; "
          f"over all {n_events:,} event rows: {floor_events.wall * 1000:.0f} ms wall "
          f"(user {floor_events.user * 1000:.0f} ms)")
    print(f"1 as-of date ({one_date[0].date()}), frames with enterprise keys (as load_tables returns them): {one}, "
          f"peak +{one.peak_mb:,.0f} MB")
    print(f"  ratio to the all-events floor: {_times(one.wall, floor_events.wall)} by wall time, "
          f"{_times(one.user, floor_events.user)} by user CPU time; "
          f"{_times(one.wall, floor_hazards.wall)} the hazards-only floor by wall time")
    print(f"12 monthly dates ({monthly[0].date()} .. {monthly[-1].date()}): {twelve}, peak +{twelve.peak_mb:,.0f} MB; "
          f"{_times(twelve.wall, one.wall)} one date")
    print(f"1 as-of date, frames without keys (from files or the simulator: enterprises found by their string ids): "
          f"{one_by_id}, peak +{one_by_id.peak_mb:,.0f} MB; {_times(one_by_id.wall, floor_events.wall)} the floor "
          f"by wall time, {_times(one_by_id.user, floor_events.user)} by user CPU time")
    print(f"  of which mapping the event tables' string ids to enterprise codes: {mapping}")


def _times(seconds: float, floor_seconds: float) -> str:
    """``seconds`` as a multiple of ``floor_seconds``; CPU clocks tick in milliseconds, so toy floors can read 0."""
    return f"{seconds / floor_seconds:.1f}x" if floor_seconds > 0 else "n/a (floor below the clock's resolution)"


if __name__ == "__main__":
    main()
