"""The ranked list's queries at province scale: one page of ``list_page`` on a synthetic ``scores_history``.

Builds a database with ``--enterprises`` rows per run for ``--runs`` nightly runs (synthetic rows: names,
townships, sectors, tiers, probabilities, overrides; about 5 % of enterprises change tier per run), then times one
page (50 rows + the count of matching rows) for the query shapes the workbench sends — default order, a deep
page, each sort key both ways, township / sector / tier filters, a name search, "changed", "has an override" and a
township-scoped account — and prints, in milliseconds, the first call (nothing kept yet for that filter: the count
and, for narrow filters, the sorted ids are kept per run), the median of ``--repeat`` calls and the worst later
call.

    .venv/bin/python benchmarks/ranked_list.py --enterprises 200000 --db sqlite:////tmp/ranked.db
    .venv/bin/python benchmarks/ranked_list.py --db postgresql+psycopg://postgres@127.0.0.1:5432/bench

Target (issue 14): well under 50 ms per page on SQLite, so that 20 concurrent clients stay within p95 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.db import connect  # noqa: E402

TOWNSHIPS = [f"{name}镇" for name in ("城关", "东坝", "西河", "南山", "北岭", "柳林", "石桥", "白沙", "青龙", "黄土",
                                       "新庄", "古城", "杨湾", "马坊", "龙泉", "凤凰", "高桥", "双井", "红星", "梨园")]
SECTORS = ["coal_mine", "noncoal_mine", "hazchem", "fireworks", "metallurgy", "machinery", "light_industry",
           "commerce", "construction", "gas", "road_transport", "crowded_place", "other"]


def build(url: str, n: int, runs: int, seed: int) -> date:
    """Fill ``url`` with ``runs`` synthetic nightly runs of ``n`` enterprises; the latest as-of date."""

    from features.schema import CONTRACT_TABLES
    from scoring.results.tables import batch_runs, create_scoring_tables, scores_history, tier_changes

    engine = connect(url)
    create_scoring_tables(engine)
    rng = np.random.default_rng(seed)
    ids = [f"E{i:07d}" for i in range(n)]
    names = [f"{TOWNSHIPS[i % 20][:2]}{['安泰', '宏达', '鑫源', '华兴', '永盛'][i % 5]}实业有限公司{i}" for i in range(n)]
    township = rng.integers(0, len(TOWNSHIPS), n)
    sector = rng.integers(0, len(SECTORS), n)
    with engine.begin() as conn:
        conn.execute(CONTRACT_TABLES["enterprises"].insert(), [
            {"enterprise_id": e, "name": names[i], "township": TOWNSHIPS[township[i]], "sector": SECTORS[sector[i]],
             "enterprise_key": i + 1} for i, e in enumerate(ids)])
    first = date(2025, 1, 1)
    tiers = None
    for r in range(runs):
        day = first + timedelta(days=r)
        # day to day, scores drift a little (a few % of enterprises change tier, as in the nightly runs)
        probability = rng.beta(1, 12, n) if tiers is None else np.clip(probability * np.exp(rng.normal(0, 0.05, n)),
                                                                       1e-6, 1)
        new_tiers = np.where(probability > np.quantile(probability, 0.9), "high",
                             np.where(probability < np.quantile(probability, 0.3), "low", "general"))
        veto = rng.random(n) < 0.01
        new_tiers[veto] = "high"
        order = np.lexsort((probability * -1, np.select([new_tiers == "high", new_tiers == "general"], [0, 1], 2)))
        rank = np.empty(n, dtype=int)
        rank[order] = np.arange(1, n + 1)
        codes = np.where(veto, "blacklist", np.where(rng.random(n) < 0.005, "manual",
                                                     np.where(rng.random(n) < 0.01, "hold", "")))
        with engine.begin() as conn:
            run_id = conn.execute(batch_runs.insert().values(
                status="succeeded", as_of=day, started_at=datetime(2025, 1, 1), finished_at=datetime(2025, 1, 1),
                model_name="bench", model_version="1", policy_hash="bench", n_scored=n)).inserted_primary_key[0]
            rows = [{
                "as_of": day, "enterprise_id": ids[i], "run_id": run_id, "model_version": "1", "name": names[i],
                "sector": SECTORS[sector[i]], "township": TOWNSHIPS[township[i]],
                "probability": float(probability[i]), "points": float(600 - 400 * probability[i]),
                "score_rank": int(rank[i]), "rank": int(rank[i]), "model_tier": str(new_tiers[i]),
                "final_tier": str(new_tiers[i]), "veto": bool(veto[i]), "special_assistance": False,
                "override_codes": str(codes[i]), "override_cause": str(codes[i]) or None,
                "reasons": [{"feature": "major_hazards_365d", "text_zh": "近一年重大隐患数", "text_en":
                             "major hazards, last 365 days", "value": 1, "contribution": 0.1}],
                "mode": "focused" if new_tiers[i] == "high" else "routine", "yearly_cap": 4,
                "visits_used": int(i % 5), "visits_left": 4 - int(i % 5), "next_allowed_visit": day,
            } for i in range(n)]
            for start in range(0, n, 20_000):
                conn.execute(scores_history.insert(), rows[start:start + 20_000])
            if tiers is not None:
                changed = np.flatnonzero(tiers != new_tiers)
                if len(changed):
                    conn.execute(tier_changes.insert(), [
                        {"as_of": day, "enterprise_id": ids[i], "run_id": run_id, "previous_as_of": day - timedelta(1),
                         "from_tier": str(tiers[i]), "to_tier": str(new_tiers[i]), "cause": "score"}
                        for i in changed])
        tiers = new_tiers
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:  # what autovacuum does after a bulk insert: statistics, and the visibility map index-only scans need
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("scores_history", "tier_changes", "enterprises"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    engine.dispose()
    return first + timedelta(days=runs - 1)


def cases():
    from scoring.results.ranking import ListFilter

    yield "default order, page 1", ListFilter(), {}
    yield "default order, page 2000", ListFilter(), {"page": 2000}
    yield "last page", ListFilter(), {"page": 4000}
    for key in ("probability", "points", "name", "township", "sector", "visits"):
        yield f"sort {key} asc", ListFilter(), {"sort": key}
        yield f"sort {key} desc, page 100", ListFilter(), {"sort": key, "descending": True, "page": 100}
    yield "township filter", ListFilter(township=TOWNSHIPS[3]), {}
    yield "township filter, sort name", ListFilter(township=TOWNSHIPS[3]), {"sort": "name"}
    yield "sector + tier high", ListFilter(sector="hazchem", tier="high"), {"sort": "probability", "descending": True}
    yield "tier general, page 500", ListFilter(tier="general"), {"page": 500}
    yield "search name part", ListFilter(search="鑫源实业有限公司1234"), {}
    yield "search id", ListFilter(search="E0123456"), {}
    yield "changed since previous run", ListFilter(changed=True), {}
    yield "override any", ListFilter(override="any"), {}
    yield "override manual", ListFilter(override="manual"), {"sort": "name"}
    yield "scoped to 2 townships", ListFilter(), {"townships": TOWNSHIPS[:2]}
    yield "scoped, sort points desc", ListFilter(), {"townships": TOWNSHIPS[:2], "sort": "points",
                                                    "descending": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite:////tmp/riskgrade-ranked-list.db")
    parser.add_argument("--enterprises", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="Time an existing benchmark database.")
    args = parser.parse_args()
    from scoring.results.ranking import list_page

    if args.db.startswith("sqlite:///") and not args.reuse:
        Path(args.db.removeprefix("sqlite:///")).unlink(missing_ok=True)
    if not args.reuse:
        began = time.perf_counter()
        build(args.db, args.enterprises, args.runs, args.seed)
        print(f"built {args.runs} runs × {args.enterprises:,} enterprises in {time.perf_counter() - began:.0f} s")
    engine = connect(args.db)
    print(f"{'query':38} {'rows':>8} {'first ms':>9} {'median ms':>10} {'max later':>10}")
    medians = []
    for label, filters, options in cases():
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            page = list_page(engine, filters, **options)
            times.append((time.perf_counter() - began) * 1000)
        medians.append(statistics.median(times))
        print(f"{label:38} {page.total:>8,} {times[0]:>9.1f} {statistics.median(times):>10.1f} "
              f"{max(times[1:]):>10.1f}")
    print(f"worst median {max(medians):.1f} ms, median of medians {statistics.median(medians):.1f} ms "
          f"({engine.dialect.name})")


if __name__ == "__main__":
    main()
