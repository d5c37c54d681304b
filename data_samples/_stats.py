"""Realism figures of a synthetic world, and the oracle: what the truth says about the future.

Pure functions of the generated frames (contract tables plus ``truth``), so they work on a world read back
from CSV as well as on one fresh from :func:`data_samples.world.generate_world`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd

from data_samples._params import HIGH_RISK_SECTORS, ROUTINE_VISIT_KINDS
from features.labels import oracle_risk  # noqa: F401  (re-exported: the oracle of a generated world)

# Ranges the default world must land in (DESIGN.md §9); world_stats() reports these names.
REALISM_RANGES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "inspections_per_year_high_risk": (2.0, 8.0),
        "inspections_per_year_other": (0.3, 2.0),
        "hazards_per_inspection": (2.0, 8.0),
        "major_share_of_found_hazards": (0.005, 0.03),
        "hazards_on_time_share": (0.75, 0.95),
        "hazards_late_share": (0.05, 0.15),
        "accident_rate_per_year": (0.002, 0.02),
        "general_share_of_accidents": (0.8, 0.98),
        "fatal_share_of_accidents": (0.05, 0.5),
        "penalized_rate_per_year": (0.05, 0.20),
        "blacklisted_max_share": (0.0, 0.01),
        "standardization_share": (0.2, 0.6),
        "within_sector_targeting": (-0.05, 0.3),
        "inspector_top_to_bottom_tenth": (3.0, 12.0),
    }
)
INSPECTOR_MIN_VISITS = 20  # inspectors with fewer visits are left out of the inspector spread (too noisy)


def world_stats(tables: Mapping[str, pd.DataFrame], truth: pd.DataFrame) -> dict[str, float]:
    """Realism figures of a world, yearly rates per enterprise-year of operation (see :data:`REALISM_RANGES`).

    Enterprise-years come from the truth (months operated / 12). Late hazards are inspection-found hazards
    whose deadline has passed by the end and that were rectified after it or not at all. Shares "held"
    (blacklist, standardization, insurance, commitment) are taken on the first day of every month.
    ``within_sector_targeting`` is the Spearman correlation, within sectors (weighted by size), between an
    enterprise's routine visits per year and its mean true ``adverse_prob``: today's weak targeting.
    """
    ent = tables["enterprises"]
    ids = pd.Index(ent["enterprise_id"])
    high = ent["sector"].isin(HIGH_RISK_SECTORS).to_numpy()
    n = len(ids)

    def position(frame: pd.DataFrame) -> np.ndarray:
        return ids.get_indexer(frame["enterprise_id"])

    truth_pos = position(truth)
    months_operated = np.bincount(truth_pos, minlength=n)
    years_operated = months_operated / 12
    enterprise_years = years_operated.sum()
    end = truth["month"].max() + pd.offsets.MonthEnd(0)
    stats: dict[str, float] = {
        "enterprises": float(n),
        "enterprise_years": float(enterprise_years),
    }

    ins = tables["inspections"]
    ins_pos = position(ins)
    visits = np.bincount(ins_pos, minlength=n)
    stats["inspections_per_year_high_risk"] = visits[high].sum() / max(years_operated[high].sum(), 1e-9)
    stats["inspections_per_year_other"] = visits[~high].sum() / max(years_operated[~high].sum(), 1e-9)
    stats["inspections_per_year"] = len(ins) / enterprise_years

    hz = tables["hazards"]
    at_visit = hz["inspection_id"].notna().to_numpy()
    major = (hz["level"] == "major").to_numpy()
    stats["hazards_per_inspection"] = at_visit.sum() / max(len(ins), 1)
    stats["major_share_of_found_hazards"] = (major & at_visit).sum() / max(at_visit.sum(), 1)
    stats["self_reported_share_of_hazards"] = (~at_visit).sum() / max(len(hz), 1)
    due = at_visit & (hz["rectify_by"] <= end).to_numpy()
    on_time = (hz["rectified_on"] <= hz["rectify_by"]).fillna(False).to_numpy(dtype=bool)
    stats["hazards_on_time_share"] = (due & on_time).sum() / max(due.sum(), 1)
    stats["hazards_late_share"] = (due & ~on_time).sum() / max(due.sum(), 1)
    stats["hazards_never_rectified_share"] = (due & hz["rectified_on"].isna().to_numpy()).sum() / max(due.sum(), 1)

    vi = tables["violations"]
    stats["violations_per_inspection"] = len(vi) / max(len(ins), 1)
    stats["exam_pass_rate"] = ins["exam_passed"].sum() / max(ins["exam_takers"].sum(), 1)

    def enterprise_year_rate(frame: pd.DataFrame, date_column: str) -> float:
        if frame.empty:
            return 0.0
        pairs = pd.DataFrame({"e": frame["enterprise_id"], "y": frame[date_column].dt.year}).drop_duplicates()
        return len(pairs) / enterprise_years

    acc = tables["accidents"]
    stats["accidents"] = float(len(acc))
    stats["accident_rate_per_year"] = enterprise_year_rate(acc, "occurred_on")
    stats["general_share_of_accidents"] = (acc["grade"] == "general").mean() if len(acc) else float("nan")
    stats["larger_or_worse_share_of_accidents"] = (acc["grade"] != "general").mean() if len(acc) else float("nan")
    fatal = acc[acc["deaths"] > 0]
    stats["fatal_share_of_accidents"] = len(fatal) / len(acc) if len(acc) else float("nan")
    stats["fatal_accident_rate_per_year"] = enterprise_year_rate(fatal, "occurred_on")
    stats["deaths_per_1000_enterprise_years"] = 1000 * acc["deaths"].sum() / enterprise_years
    stats["road_traffic_share_of_accidents"] = acc["road_traffic"].mean() if len(acc) else float("nan")
    stats["concealed_share_of_accidents"] = acc["concealed"].mean() if len(acc) else float("nan")

    pen = tables["penalties"]
    stats["penalized_rate_per_year"] = enterprise_year_rate(pen, "decided_on")
    stats["suspension_rate_per_year"] = enterprise_year_rate(pen[pen["suspension"].fillna(False)], "decided_on")

    # Shares held, on the first day of each month, among enterprises operating that month.
    months = np.sort(truth["month"].unique())
    operating = truth.groupby("month").size().reindex(months).to_numpy()
    credit = tables["credit_records"]

    def held_share(kind: str) -> np.ndarray:
        rows = credit[credit["kind"] == kind]
        who = position(rows)
        start = rows["valid_from"].to_numpy()
        stop = rows["valid_to"].fillna(pd.Timestamp.max).to_numpy()
        shares = []
        for m, count in zip(months, operating, strict=True):
            valid = (start <= m) & (stop >= m)
            shares.append(np.unique(who[valid]).size / count)
        return np.asarray(shares)

    blacklisted = held_share("blacklist")
    stats["blacklisted_max_share"] = float(blacklisted.max()) if len(blacklisted) else 0.0
    stats["blacklisted_mean_share"] = float(blacklisted.mean()) if len(blacklisted) else 0.0
    for kind in ("standardization", "insurance", "commitment", "redlist"):
        shares = held_share(kind)
        stats[f"{kind}_share"] = float(shares.mean()) if len(shares) else 0.0

    com = tables["complaints"]
    stats["complaints_per_100_enterprise_years"] = 100 * len(com) / enterprise_years
    stats["substantiated_share_of_complaints"] = com["substantiated"].mean() if len(com) else float("nan")
    stats["closures_per_year"] = ent["closed_on"].notna().sum() / enterprise_years

    # Targeting of today's practice: routine visits against true risk, within sectors.
    routine = ins["kind"].isin(ROUTINE_VISIT_KINDS).to_numpy()
    routine_rate = np.bincount(ins_pos[routine], minlength=n) / np.maximum(years_operated, 1e-9)
    mean_adverse = (np.bincount(truth_pos, weights=truth["adverse_prob"].to_numpy(), minlength=n)
                    / np.maximum(months_operated, 1))
    frame = pd.DataFrame({"sector": ent["sector"].to_numpy(), "visits": routine_rate, "risk": mean_adverse,
                          "years": years_operated})
    frame = frame[frame["years"] >= 0.5]
    correlations, weights = [], []
    for _, group in frame.groupby("sector"):
        if len(group) >= 20 and group["visits"].nunique() > 1:
            correlations.append(group["visits"].rank().corr(group["risk"].rank()))
            weights.append(len(group))
    stats["within_sector_targeting"] = float(np.average(correlations, weights=weights)) if weights else float("nan")
    stats["overall_targeting"] = float(frame["visits"].rank().corr(frame["risk"].rank()))

    # How well the truth itself separates the enterprises that had an accident (the ceiling for any model).
    had_accident = np.bincount(position(acc), minlength=n) > 0
    mean_accident = (np.bincount(truth_pos, weights=truth["accident_prob"].to_numpy(), minlength=n)
                     / np.maximum(months_operated, 1))
    stats["oracle_accident_auc"] = _auc(mean_accident[months_operated > 0], had_accident[months_operated > 0])
    stats["inspector_top_to_bottom_tenth"] = inspector_spread(tables, truth)
    return {name: float(value) for name, value in stats.items()}


def inspector_spread(tables: Mapping[str, pd.DataFrame], truth: pd.DataFrame) -> float:
    """How much more the strictest tenth of inspectors find per visit than the most lenient tenth, at equal
    latent hazards: per inspector, hazards found on their visits ÷ the latent hazards the enterprises visited
    held (truth, start of the visit's month); the mean of that ratio over the top tenth ÷ over the bottom tenth
    (inspectors with at least :data:`INSPECTOR_MIN_VISITS` visits). NaN without records of who inspected."""
    teams = tables.get("inspection_inspectors")
    if teams is None or not len(teams):
        return float("nan")
    ins = tables["inspections"]
    found = tables["hazards"]["inspection_id"].dropna().value_counts()
    visits = pd.DataFrame({"inspection_id": ins["inspection_id"], "enterprise_id": ins["enterprise_id"],
                           "month": ins["inspected_on"].dt.to_period("M").dt.start_time.astype("datetime64[ns]")})
    latent = truth[["enterprise_id", "month", "latent_hazards"]]
    visits = visits.merge(latent, on=["enterprise_id", "month"], how="inner")
    visits["found"] = visits["inspection_id"].map(found).fillna(0).to_numpy()
    made = teams[["inspection_id", "inspector_id"]].merge(visits[["inspection_id", "found", "latent_hazards"]],
                                                          on="inspection_id")
    per = made.groupby("inspector_id").agg(visits=("found", "size"), found=("found", "sum"),
                                           latent=("latent_hazards", "sum"))
    per = per[(per["visits"] >= INSPECTOR_MIN_VISITS) & (per["latent"] > 0)]
    if len(per) < 10:
        return float("nan")
    ratio = np.sort((per["found"] / per["latent"]).to_numpy())
    tenth = len(ratio) // 10
    return float(ratio[-tenth:].mean() / max(ratio[:tenth].mean(), 1e-12))


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank().to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def format_stats(stats: Mapping[str, float]) -> str:
    """The realism figures as aligned text lines, with the target range where there is one."""
    lines = []
    if stats.get("enterprise_years", float("inf")) < 5_000:
        lines.append("(a small world: rare-event figures are noisy; the ranges are meant for ~3000 × 3 years)")
    for name, value in stats.items():
        target = REALISM_RANGES.get(name)
        mark = ""
        if target is not None:
            inside = target[0] <= value <= target[1]
            mark = f"   target {target[0]:g}–{target[1]:g} {'ok' if inside else 'OUT OF RANGE'}"
        lines.append(f"{name:38s} {value:12.4f}{mark}")
    return "\n".join(lines)
