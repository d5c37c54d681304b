"""Benchmark: training every model kind on a bigger synthetic world (DESIGN.md §6–§7, §11).

Generates a world with :func:`data_samples.world.generate_world`, trains as of the day after its last
simulated month with :func:`models.train.train_and_evaluate` (features → labels → rolling temporal
backtest → final models, MLflow only with ``--mlflow-uri``), scores every enterprise as of the latest
training date with reasons, and prints the timings and the backtest metrics beside the oracle's (the
hidden truth's) ROC-AUC.

    .venv/bin/python benchmarks/train.py                                  # 20 000 enterprises, 5 years
    .venv/bin/python benchmarks/train.py --enterprises 2000 --seed 7      # the size the tests use
    .venv/bin/python benchmarks/train.py --enterprises 50000 --threads 0  # all cores
    .venv/bin/python benchmarks/train.py --json out.json                  # also write the whole report
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_samples.world import generate_world  # noqa: E402
from models.config import TrainingConfig  # noqa: E402
from models.expert import ExpertCardRules  # noqa: E402
from models.explain import score_frame  # noqa: E402
from models.train import MODEL_KINDS, train_and_evaluate  # noqa: E402
from scoring.domain.policy import build_section, read_policy_mapping  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2021-01-01", help="first simulated month")
    parser.add_argument("--models", default=",".join(MODEL_KINDS), help="comma-separated model kinds")
    parser.add_argument("--threads", type=int, default=None, help="numeric-library threads (0 = all cores); "
                        "default: [training] threads of the policy file")
    parser.add_argument("--policy", default=None, help="policy file (default: the shipped one)")
    parser.add_argument("--mlflow-uri", default=None, help="also log and register the models there")
    parser.add_argument("--json", default=None, help="write the whole report to this file")
    args = parser.parse_args(argv)

    mapping, source = read_policy_mapping(args.policy)
    rules = build_section(ExpertCardRules, mapping["expert_card"], f"{source}: expert_card")
    config = build_section(TrainingConfig, mapping["training"], f"{source}: training")
    if args.threads is not None:
        config = dataclasses.replace(config, threads=args.threads)
    labels = mapping["labels"]
    kinds = tuple(k.strip() for k in args.models.split(",") if k.strip())

    start = date.fromisoformat(args.start)
    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=start)
    world_seconds = time.perf_counter() - began
    as_of = pd.Timestamp(start.replace(year=start.year + args.years))
    sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in tables.items() if name != "truth")
    print(f"world: {args.enterprises:,} enterprises × {args.years} years, seed {args.seed} "
          f"({world_seconds:.1f} s): {sizes}")
    print(f"training as of {as_of.date()} · threads {config.threads or os.cpu_count()} · models {', '.join(kinds)}")

    began = time.perf_counter()
    result = train_and_evaluate(
        tables, as_of, kinds, expert_rules=rules, config=config,
        horizon_days=int(labels["horizon_days"]), target=str(labels["target"]),
        exclude_road_traffic=bool(labels["exclude_road_traffic"]),
        log=args.mlflow_uri is not None, tracking_uri=args.mlflow_uri,
        progress=lambda message: print(f"  [{time.perf_counter() - began:6.1f} s] {message}", flush=True),
    )
    total = time.perf_counter() - began

    latest = result.features.xs(result.as_of_dates[-1], level="as_of", drop_level=False)
    scoring = {}
    for kind, model in result.models.items():
        started = time.perf_counter()
        scored = score_frame(model, latest)
        scoring[kind] = time.perf_counter() - started
    report = result.report
    folds = result.backtest.folds.groupby("kind", sort=False)["seconds"].sum()

    print(f"\nrows: {report['n_rows']:,} (labelled {report['n_labelled_rows']:,}) over {len(result.as_of_dates)} "
          f"as-of dates; test dates {', '.join(report['test_dates'])}")
    print("\ntimings (seconds)")
    for step, seconds in report["seconds"].items():
        print(f"  {step:<22} {seconds:8.2f}")
    for kind in kinds:
        print(f"  backtest {kind:<13} {folds.get(kind, float('nan')):8.2f}   "
              f"score + reasons of {len(latest):,} rows {scoring[kind]:6.2f}")
    print(f"  {'train_and_evaluate':<22} {total:8.2f}")

    print("\nbacktest (pooled over the test dates)")
    print(result.comparison().round(4).to_string())
    for note in report["notes"]:
        print(f"  • {note}")
    print(f"\nexample reasons ({kinds[-1]}, riskiest enterprise):")
    top = scored.sort_values("probability", ascending=False).iloc[0]
    for column in ("reason_1", "reason_2", "reason_3"):
        if top[column]:
            reason = top[column]
            print(f"  {reason['feature']}: {reason['text_zh']} / {reason['text_en']} = {reason['value']} "
                  f"(+{reason['contribution']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        print(f"\nreport written to {args.json}")


if __name__ == "__main__":
    main()
