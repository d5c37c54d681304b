"""Closed-loop check of the planner on a synthetic world (DESIGN.md §9): does risk-based planning find more?

:func:`closed_loop` builds one synthetic world (:class:`data_samples.world.WorldSimulator`) per allocation
rule from the same seed, runs ``history_months`` of today's practice (``default_inspection_policy``) — identical
in every arm — trains the risk model on that history, then lets each rule choose the visits month after month
for ``months`` months and counts what the visits find and the accidents that happen:

- ``risk_based`` — the planner as it ships, each month on the arm's own world: features → the nightly run's pure
  middle (:func:`scoring.results.batch.compute_nightly`: the calibrated probability of the models engineer's
  estimator, ``models.train.make_model``; the expected finds of a typical team from the production expected-finds
  model, ``models.expected_finds``, trained on the same history; tiers with the arm's previous run as hysteresis;
  the supervision limits; the rows a run stores) → the limits a plan reads back from those rows
  (:func:`scoring.results.tables.limits_from_rows`) → the plan (:func:`scoring.results.plans.plan_from_limits`:
  ranked by the stored expected finds, inspectors drawn with 回避, workload and certification, the finds recomputed
  for the teams drawn). No simulation-only model;
- ``oracle`` — the same path, caps, capacity, quiet periods and 回避, ranking by each enterprise's true hazards
  present and staffing focused visits with the most stringent eligible inspectors by their true stringency (the
  policy's ``staff_focused_by = "expected_finds"``; random-stage visits stay drawn at random, as the law has it):
  the ceiling of what these rules allow;
- ``random`` — the same capacity per department spent on enterprises drawn uniformly among those the caps,
  spacing and quiet period allow a counted visit (the same limits as the risk-based arm's), inspectors drawn as
  the plan draws them;
- ``equal_frequency`` — the same capacity, same limits and draw, on the enterprises visited longest ago (never
  first);
- ``current_practice`` — today's practice continued (for reference: it also answers complaints and accidents,
  its effort is not capped to the same capacity, and its inspectors are today's territorial squads).

Fairness: every arm's counted visits are ordered with the same kind (``visit_kind``, "routine") and the
planner's number of inspectors, so detection differs only through whom is visited and who goes; the capacity per
department is today's average monthly number of counted visits (last 12 months of history) split by lead
department. The planner's follow-up visits (exempt) are counted in its capacity and its visits. A planned visit
that no eligible inspector may make is not made (``unstaffed_visits`` per month).

Hazards found per visit use every hazard found by the arm's inspections in the evaluation months (raw records
of the simulator, so late recording does not hide any); accidents are all accidents (road traffic excluded)
in those months. Published anchor: constrained risk-based targeting found ≈2× the violations per inspection
of random targeting (Hino, Benami & Brooks, Nature Sustainability 2018).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from scoring.domain.planning import capacity_frame, counted_visit_windows, parse_period

__all__ = ["ARMS", "SimulationResult", "across_seeds", "closed_loop", "hazards_per_visit_targets"]

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# The expected-hazards regressor (simulation helper; a production one would live in models/)
# ---------------------------------------------------------------------------------------------


def hazards_per_visit_targets(tables: Mapping[str, pd.DataFrame], index: pd.MultiIndex, *,
                              horizon_days: int, known_before: pd.Timestamp) -> pd.DataFrame:
    """Per ``(enterprise_id, as_of)``: inspections in ``[as_of, as_of + horizon_days)`` and the hazards they
    found (recorded before ``known_before``); rows without an inspection have ``inspections == 0``."""
    inspections = tables["inspections"]
    inspections = inspections.loc[inspections["recorded_on"] < known_before, ["inspection_id", "enterprise_id",
                                                                              "inspected_on"]]
    hazards = tables["hazards"]
    found = hazards.loc[hazards["inspection_id"].notna() & (hazards["recorded_on"] < known_before)]
    per_inspection = found.groupby("inspection_id").size()
    inspections = inspections.assign(found=inspections["inspection_id"].map(per_inspection).fillna(0))
    keys = index.to_frame(index=False)
    rows = keys.merge(inspections, on="enterprise_id", how="left")
    inside = (rows["inspected_on"] >= rows["as_of"]) & (
        rows["inspected_on"] < rows["as_of"] + pd.Timedelta(days=horizon_days))
    rows = rows.assign(visit=inside.astype(int), found=rows["found"].where(inside, 0))
    totals = rows.groupby(["enterprise_id", "as_of"])[["visit", "found"]].sum()
    totals = totals.reindex(pd.MultiIndex.from_frame(keys), fill_value=0)
    return totals.rename(columns={"visit": "inspections", "found": "hazards"})


# ---------------------------------------------------------------------------------------------
# Arms: each turns this month's limits into visits (a registry)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Month:
    """What every allocation rule gets for one month."""

    limits: pd.DataFrame
    capacity: pd.DataFrame
    period: str
    seed: int
    rng: np.random.Generator
    policy: Any  # scoring.domain.policy.Policy
    sources: Any  # scoring.results.plans.PlanSources
    finds: Any = None  # scoring.results.batch.FindsModel: the expected-finds model the shipped planner uses
    typical: pd.Series | None = None  # the oracle's ranking: the true hazards present
    inspectors: tuple | None = None  # (roster, history, conflicts) for the inspector draw


def _visits_of(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "enterprise_id": items["enterprise_id"].astype("str"),
        "department": items["departments"].str.split(";").str[0],
        "counted": items["counts_toward_cap"].astype(bool),
        "n_inspectors": items["n_inspectors"],
        "window_start": items["window_start"],
        "window_end": items["window_end"],
        "inspectors": items["inspectors"] if "inspectors" in items else "",
    })


def _risk_based(month: _Month) -> pd.DataFrame:
    """The planner as it ships (:func:`scoring.results.plans.plan_from_limits`): ranked by the expected finds the
    nightly stored with the limits, inspectors drawn, finds recomputed for the teams drawn."""
    from scoring.results.plans import plan_from_limits

    capacity = dict(zip(month.capacity["department"], month.capacity["visits"].astype(int), strict=True))
    plan = plan_from_limits(month.limits, capacity, month.period, policy=month.policy, seed=month.seed,
                            finds=month.finds, inspectors=month.inspectors, sources=month.sources,
                            typical=month.typical)
    return _visits_of(plan.items)


def _open_for_a_counted_visit(month: _Month) -> pd.DataFrame:
    start, end = parse_period(month.period)
    frame = month.limits.set_index(month.limits["enterprise_id"].astype("str"), drop=False)
    frame.index.name = None
    windows = counted_visit_windows(frame, start, end, month.policy.supervision)
    planning = month.policy.planning
    department = frame["sector"].map(lambda s: planning.sector_department.get(s, planning.default_department))
    open_ = frame.assign(department=department, window_start=windows["_start"], window_end=end)
    return open_.loc[open_["window_start"].notna()]


def _by_department(month: _Month, order: Callable[[pd.DataFrame, np.random.Generator], pd.DataFrame]):
    """The department's capacity spent on the open enterprises in ``order``, each visit's inspectors drawn from
    the roster as the shipped plan draws them (:func:`~scoring.domain.planning.draw_inspectors`: 回避, workload,
    certification)."""
    from scoring.domain.planning import draw_inspectors

    open_ = _open_for_a_counted_visit(month)
    capacity = dict(zip(month.capacity["department"], month.capacity["visits"], strict=True))
    chosen = []
    for department, group in open_.groupby("department", sort=True):
        chosen.append(order(group.sort_index(), month.rng).head(int(capacity.get(department, 0))))
    chosen = pd.concat(chosen) if chosen else open_.iloc[:0]
    visits = pd.DataFrame({
        "enterprise_id": chosen["enterprise_id"].astype("str").to_numpy(),
        "department": chosen["department"].to_numpy(),
        "counted": True,
        "n_inspectors": month.policy.supervision.inspectors.min,
        "window_start": chosen["window_start"].to_numpy(),
        "window_end": chosen["window_end"].to_numpy(),
        "inspectors": "",
    })
    if month.inspectors is not None and len(visits):
        roster, history, conflicts = month.inspectors
        items = visits.assign(priority=np.arange(1, len(visits) + 1), departments=visits["department"],
                              kind="routine")
        teams = draw_inspectors(items, roster, period=month.period, seed=month.seed,
                                policy=month.policy.planning.inspectors, history=history, conflicts=conflicts).teams
        visits["inspectors"] = teams.set_index("priority")["inspectors"].reindex(items["priority"]).to_numpy()
    return visits


def _random(month: _Month) -> pd.DataFrame:
    return _by_department(month, lambda group, rng: group.iloc[rng.permutation(len(group))])


def _equal_frequency(month: _Month) -> pd.DataFrame:
    def oldest_first(group: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        shuffled = group.iloc[rng.permutation(len(group))]  # random among equals
        return shuffled.sort_values("last_visit_on", na_position="first", kind="stable")
    return _by_department(month, oldest_first)


ARMS: Mapping[str, Callable[[_Month], pd.DataFrame]] = {
    "risk_based": _risk_based,
    "random": _random,
    "equal_frequency": _equal_frequency,
    "oracle": _risk_based,  # the same planner, ranking by the true hazards present (see _arm_orders)
}
CURRENT_PRACTICE = "current_practice"


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """Per arm and month: visits, hazards found, accidents; :meth:`summary` and :meth:`to_json`."""

    monthly: pd.DataFrame
    settings: dict[str, Any]
    capacity: pd.DataFrame
    model: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        columns = ["visits", "hazards_found", "major_hazards_found", "accidents", "deaths"]
        columns += [c for c in ("unstaffed_visits", "expected_accidents", "latent_at_visits", "team_multiplier_sum")
                    if c in self.monthly]
        totals = self.monthly.groupby("arm", sort=False)[columns].sum()
        totals["hazards_per_visit"] = totals["hazards_found"] / totals["visits"].where(totals["visits"] > 0)
        if "latent_at_visits" in totals:
            totals["latent_per_visit"] = totals["latent_at_visits"] / totals["visits"].where(totals["visits"] > 0)
            totals["team_multiplier"] = totals["team_multiplier_sum"] / totals["visits"].where(totals["visits"] > 0)
        if "unstaffed_visits" in totals:
            planned = totals["visits"] + totals["unstaffed_visits"]
            totals["unstaffed_share"] = totals["unstaffed_visits"] / planned.where(planned > 0)
        totals["major_per_100_visits"] = 100 * totals["major_hazards_found"] / totals["visits"].where(
            totals["visits"] > 0)
        base = totals["hazards_per_visit"]
        totals["ratio_vs_random"] = base / base.get("random", np.nan)
        totals["ratio_vs_equal_frequency"] = base / base.get("equal_frequency", np.nan)
        gain = base.get("oracle", np.nan) - base.get("random", np.nan)
        totals["share_of_oracle_gain"] = (base - base.get("random", np.nan)) / (gain if gain else np.nan)
        return totals

    def to_json(self) -> dict[str, Any]:
        summary = self.summary()

        def number(value):
            return None if pd.isna(value) else round(float(value), 4)

        arms = {arm: {"visits": int(row["visits"]), "hazards_found": int(row["hazards_found"]),
                      "hazards_per_visit": number(row["hazards_per_visit"]),
                      "major_per_100_visits": number(row["major_per_100_visits"]),
                      "accidents": int(row["accidents"]), "deaths": int(row["deaths"]),
                      "expected_accidents": number(row.get("expected_accidents", np.nan)),
                      "unstaffed_visits": int(row.get("unstaffed_visits", 0)),
                      "latent_per_visit": number(row.get("latent_per_visit", np.nan)),
                      "team_multiplier": number(row.get("team_multiplier", np.nan)),
                      "share_of_oracle_gain": number(row["share_of_oracle_gain"])}
                for arm, row in summary.iterrows()}
        risk = summary.loc["risk_based"] if "risk_based" in summary.index else None
        return {
            "settings": self.settings,
            "policies": arms,
            "ratio_vs_random": None if risk is None else number(risk["ratio_vs_random"]),
            "ratio_vs_equal_frequency": None if risk is None else number(risk["ratio_vs_equal_frequency"]),
            "model": self.model,
            "anchor": "≈2× violations found per inspection for constrained risk-based targeting "
                      "(Hino, Benami & Brooks, Nature Sustainability 2018)",
        }


def closed_loop(
    policy,
    *,
    enterprises: int = 1500,
    history_months: int = 36,
    months: int = 12,
    seed: int = 1,
    start: date = date(2021, 1, 1),
    model_kind: str = "boosting",
    training=None,
    visit_kind: str = "routine",
    arms: tuple[str, ...] = (*ARMS, CURRENT_PRACTICE),
    progress: Progress | None = None,
) -> SimulationResult:
    """Run the closed-loop comparison (see the module docstring); ``policy`` is a :class:`scoring.domain.policy.Policy`,
    ``training`` a ``models.config.TrainingConfig`` (default: its defaults)."""
    from data_samples.world import WorldSimulator, default_inspection_policy
    from features import build_features, build_labels
    from models.config import TrainingConfig
    from models.train import make_model

    say = progress or (lambda message: None)
    unknown = [a for a in arms if a not in ARMS and a != CURRENT_PRACTICE]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r} (known: {', '.join([*ARMS, CURRENT_PRACTICE])})")
    if history_months < 24:
        raise ValueError(f"history_months must be at least 24 (a year of warm-up and a year of outcomes), "
                         f"got {history_months}")
    training = training or TrainingConfig()
    years = (history_months + months) / 12

    def world():
        sim = WorldSimulator(enterprises, start, seed, years=years)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(100,)))
        for _ in range(history_months):
            sim.step(default_inspection_policy(sim, rng))
        return sim, rng

    say(f"simulating {history_months} months of today's practice for {enterprises:,} enterprises")
    reference, practice_rng = world()
    as_of = pd.Timestamp(reference.month)
    tables = reference.tables()

    say(f"training the {model_kind} risk model and the hazards-per-visit regressor as of {as_of.date()}")
    horizon = int(policy.labels.get("horizon_days", 365))
    dates = _training_dates(tables, as_of, horizon, training)
    features = build_features(tables, dates)
    labels = build_labels(tables, dates, horizon_days=horizon, known_before=as_of,
                          target=str(policy.labels.get("target", "accident+major_hazard+suspension")),
                          exclude_road_traffic=bool(policy.labels.get("exclude_road_traffic", True)))
    known = labels["label_known"].to_numpy(dtype=bool)
    # sklearn 1.9's histogram gradient boosting cannot bin an all-missing column (small worlds have some):
    # train and predict on the columns that hold at least one value.
    columns = [c for c in features.columns if features[c].notna().any()]
    from sklearn.base import clone

    risk_model = clone(make_model(model_kind, training)).set_params(calibration_as_of=dates[-1]).fit(
        features.loc[known, columns], labels["label"][known].astype(int).to_numpy())
    # The production expected-finds model (models.expected_finds), as the nightly's plan uses it: trained on the
    # visits of the history, predicting for a typical team; no simulation-only model.
    from models.expected_finds import train_expected_finds

    finds = train_expected_finds(tables, as_of, months=12, test_months=3, register=False,
                                 params={"max_iter": min(200, training.boosting.max_iter)})
    from scoring.results.batch import FindsModel, ScoringModel

    models = _Models(
        risk=ScoringModel(_OnColumns(risk_model, columns), name="simulation", version=str(as_of.date()),
                          kind=model_kind, source="champion"),
        finds=FindsModel(finds.model, name="simulation-expected-finds", version=str(as_of.date())))

    capacity = _capacity_like_today(tables, as_of, policy)
    say(f"capacity per month (today's counted visits): {dict(zip(capacity['department'], capacity['visits']))}")

    monthly = []
    for arm_index, arm in enumerate(arms):
        say(f"arm {arm}: {months} months")
        sim, rng = (reference, practice_rng) if arm_index == 0 else world()
        previous: pd.DataFrame | None = None  # the arm's last nightly run (hysteresis, as in production)
        for m in range(months):
            period_start = pd.Timestamp(sim.month)
            unstaffed = 0
            if arm == CURRENT_PRACTICE:
                orders = default_inspection_policy(sim, rng)
            else:
                orders, previous, unstaffed = _arm_orders(
                    arm, sim, policy, models, capacity, previous, visit_kind,
                    seed=seed * 1000 + m, rng=np.random.default_rng([seed, arm_index, m]))
            present = sim.latent_hazards().to_numpy()  # before the visits: what each visit could find
            records = sim.step(orders)
            monthly.append({**_month_figures(arm, period_start, records), "unstaffed_visits": unstaffed,
                            "expected_accidents": sim.last_expected_accidents(),
                            **_who_and_whom(sim, records, present)})
    return SimulationResult(
        monthly=pd.DataFrame(monthly),
        settings={"enterprises": enterprises, "history_months": history_months, "months": months, "seed": seed,
                  "start": str(start), "evaluation_from": str(as_of.date()), "model": model_kind,
                  "visit_kind": visit_kind, "monthly_capacity": int(capacity["visits"].sum())},
        capacity=capacity,
        model={"training_dates": [str(d.date()) for d in dates], "training_rows": int(known.sum()),
               "expected_finds_training_visits": int(finds.report["n_visits"]),
               "expected_finds_backtest": finds.report["backtest"]},
    )


def _training_dates(tables, as_of: pd.Timestamp, horizon: int, training) -> list[pd.Timestamp]:
    """As-of dates of the training matrix: the models' rule (every ``step_days`` back from the last date whose
    outcomes are complete, after a warm-up from the first inspection), but with at most 180 warm-up days and
    without the backtest's minimum number of dates (no backtest here). The model needs two dates (one to fit,
    the latest to calibrate)."""
    latest = as_of - pd.Timedelta(days=horizon + 1)
    first = tables["inspections"]["inspected_on"].min()
    earliest = first + pd.Timedelta(days=min(training.warmup_days, 180))
    dates = sorted(latest - pd.Timedelta(days=training.step_days * k) for k in range(training.max_as_of_dates))
    dates = [d for d in dates if d >= earliest]
    if len(dates) < 2:
        raise ValueError(f"the history before {as_of.date()} is too short to train on (as-of dates every "
                         f"{training.step_days} days between {earliest.date()} and {latest.date()}: {len(dates)}); "
                         f"simulate more history months")
    return dates


def _capacity_like_today(tables, as_of: pd.Timestamp, policy) -> pd.DataFrame:
    """Counted visits per month over the last 12 months (one per enterprise and day), split by the planner's
    lead department of the enterprises active now (largest remainders)."""
    inspections = tables["inspections"]
    recent = inspections.loc[(inspections["inspected_on"] >= as_of - pd.DateOffset(years=1))
                             & ~inspections["kind"].isin(policy.supervision.exempt_kinds)]
    per_month = len(recent.drop_duplicates(["enterprise_id", "inspected_on"])) / 12
    enterprises = tables["enterprises"]
    active = enterprises.loc[enterprises["closed_on"].isna() | (enterprises["closed_on"] >= as_of)]
    planning = policy.planning
    lead = active["sector"].map(lambda s: planning.sector_department.get(s, planning.default_department))
    share = lead.value_counts(normalize=True).sort_index()
    exact = share * per_month
    visits = np.floor(exact).astype(int)
    rest = int(round(per_month)) - int(visits.sum())
    for department in (exact - visits).sort_values(ascending=False).index[:max(rest, 0)]:
        visits[department] += 1
    return capacity_frame(pd.DataFrame({"department": visits.index, "visits": visits.to_numpy()}))


@dataclass(frozen=True)
class _Models:
    risk: Any  # scoring.results.batch.ScoringModel
    finds: Any  # scoring.results.batch.FindsModel


class _OnColumns:
    """The simulation's risk model as a nightly run calls it: on every feature column, predicting from those it
    was fitted on (no points or reasons: nothing the plan reads)."""

    def __init__(self, model, columns: list[str]):
        self.model, self.columns = model, columns

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(features[self.columns])


def _arm_orders(arm, sim, policy, models: _Models, capacity, previous, visit_kind, *, seed, rng):
    """``(orders, this month's nightly rows, visits left unstaffed)`` of an arm for the world's current month,
    through the path a bureau runs: the nightly's pure middle (:func:`scoring.results.batch.compute_nightly`:
    scores, expected finds of a typical team, tiers with the arm's own previous run, limits, the rows it stores),
    the limits a plan reads back from those rows (:func:`scoring.results.tables.limits_from_rows`), then the
    arm's rule; the plan's and the rules' inspector draws name who goes. A visit nobody may be sent on (回避,
    workload, certification) is not made."""
    import dataclasses

    from features import build_features
    from scoring.results.batch import compute_nightly
    from scoring.results.plans import PlanSources, inspector_inputs_from
    from scoring.results.tables import limits_from_rows

    as_of = pd.Timestamp(sim.month)
    tables = sim.tables()
    features = build_features(tables, [as_of])
    plannable = set(sim.enterprise_ids[sim.plannable])
    features = features.loc[features.index.get_level_values("enterprise_id").isin(plannable)]
    nightly = compute_nightly(features, models.risk, tables, as_of=as_of, policy=policy, previous=previous,
                              n_reasons=0, finds=models.finds)
    limits = limits_from_rows(nightly.scores, policy, run_id=None)
    ids = limits["enterprise_id"].astype("str")
    month_policy, typical, stringency = policy, None, None
    if arm == "oracle":  # the ceiling: the true hazards present and each inspector's true stringency
        typical = pd.Series(sim.latent_hazards().reindex(ids).fillna(0.0).to_numpy(), index=ids.to_numpy())
        truth = sim.inspector_truth()
        stringency = dict(zip(truth["inspector_id"].astype(str), truth["stringency"].astype(float)))
        month_policy = dataclasses.replace(policy, planning=dataclasses.replace(
            policy.planning, inspectors=dataclasses.replace(policy.planning.inspectors,
                                                            staff_focused_by="expected_finds")))
    sources = PlanSources(as_of, lambda: tables, features=features, stringency=stringency)
    month = _Month(limits=limits, capacity=capacity, period=as_of.strftime("%Y-%m"), seed=seed, rng=rng,
                   policy=month_policy, sources=sources, finds=None if arm == "oracle" else models.finds,
                   typical=typical, inspectors=inspector_inputs_from(tables))
    visits = ARMS[arm](month)
    staffed = visits["inspectors"].fillna("").astype(str).str.len().gt(0) | (month.inspectors is None)
    unstaffed = int((~staffed).sum())
    visits = visits.loc[staffed]
    span = (visits["window_end"] - visits["window_start"]).dt.days.to_numpy()
    day = visits["window_start"].dt.day.to_numpy() + (rng.random(len(visits)) * (span + 1)).astype(int)
    orders = pd.DataFrame({
        "enterprise_id": visits["enterprise_id"].to_numpy(),
        "kind": np.where(visits["counted"].to_numpy(), visit_kind, "follow_up"),
        "department": visits["department"].to_numpy(),
        "n_inspectors": visits["n_inspectors"].to_numpy(dtype=np.int64),
        "day": day,
    })
    if month.inspectors is not None:
        orders["inspectors"] = visits["inspectors"].astype(str).to_numpy()
    return orders, nightly.scores, unstaffed


def _who_and_whom(sim, records: Mapping[str, pd.DataFrame], present: np.ndarray) -> dict[str, float]:
    """The two halves of what a month's visits find, from the world's truth: the hazards present at the visited
    enterprises when the month began (whom: ``latent_at_visits``, summed over visits) and the visits' team
    detection multipliers (who: ``team_multiplier_sum``, 1 for an average team). Hazards found per visit are about
    their product times the visit kind's detection rate, so the two per-visit means say which half an arm gains or
    loses on."""
    inspections = records["inspections"]
    if not len(inspections):
        return {"latent_at_visits": 0.0, "team_multiplier_sum": 0.0}
    return {"latent_at_visits": float(present[inspections["enterprise"].to_numpy(dtype=np.int64)].sum()),
            "team_multiplier_sum": float(sim.team_multipliers(records).sum())}


def _month_figures(arm: str, month: pd.Timestamp, records: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    inspections = records["inspections"]
    hazards = records["hazards"]
    accidents = records["accidents"]
    found = hazards.loc[hazards["inspection"] >= 0] if len(hazards) else hazards
    if len(accidents) and "road_traffic" in accidents:
        accidents = accidents.loc[~accidents["road_traffic"].astype(bool)]
    return {
        "arm": arm,
        "month": month,
        "visits": int(len(inspections)),
        "hazards_found": int(len(found)),
        "major_hazards_found": int((found["level"].astype(str) == "major").sum()) if len(found) else 0,
        "accidents": int(len(accidents)),
        "deaths": int(accidents["deaths"].sum()) if len(accidents) else 0,
    }


def across_seeds(results: Mapping[int, SimulationResult]) -> dict[str, Any]:
    """Several seeds' closed loops summed up: per arm the mean, min and max over seeds of hazards per visit, major
    hazards per 100 visits, expected accidents, the ratio to random, the share of the oracle's gain over
    random, and what the visits found it with (:func:`_who_and_whom`: hazards present per visit, the teams'
    detection multiplier; the share of planned visits nobody could be sent on); and the issue's targets for the
    shipped planner (``risk_based``), each with the figure and whether it holds on the mean: ≥ 80 % of the
    oracle's gain, ≥ 2× random when the oracle reaches 2×, fewer expected accidents than random and than current
    practice."""
    metrics = ("hazards_per_visit", "major_per_100_visits", "expected_accidents", "ratio_vs_random",
               "share_of_oracle_gain", "latent_per_visit", "team_multiplier", "unstaffed_share")
    frames = {seed: result.summary() for seed, result in results.items()}
    arms: dict[str, Any] = {}
    for arm in dict.fromkeys(a for frame in frames.values() for a in frame.index):
        arms[arm] = {}
        for metric in metrics:
            values = [float(f.loc[arm, metric]) for f in frames.values() if arm in f.index and metric in f]
            values = [v for v in values if v == v]
            arms[arm][metric] = (None if not values else
                                 {"mean": round(float(np.mean(values)), 4), "min": round(min(values), 4),
                                  "max": round(max(values), 4)})

    def mean(arm: str, metric: str) -> float | None:
        entry = arms.get(arm, {}).get(metric)
        return None if entry is None else entry["mean"]

    share, ratio, oracle_ratio = (mean("risk_based", "share_of_oracle_gain"), mean("risk_based", "ratio_vs_random"),
                                  mean("oracle", "ratio_vs_random"))
    accidents = {arm: mean(arm, "expected_accidents") for arm in ("risk_based", "random", CURRENT_PRACTICE)}
    targets = {
        "share_of_oracle_gain >= 0.8": {"value": share, "met": None if share is None else share >= 0.8},
        "ratio_vs_random >= 2 (if the oracle reaches 2)": {
            "value": ratio, "oracle": oracle_ratio,
            "met": None if ratio is None or oracle_ratio is None else (ratio >= 2 if oracle_ratio >= 2 else
                                                                        "not applicable: the oracle stays below 2")},
        "expected accidents below random and current practice": {
            "value": accidents,
            "met": None if None in accidents.values() else (accidents["risk_based"] < accidents["random"]
                                                             and accidents["risk_based"]
                                                             < accidents[CURRENT_PRACTICE])},
    }
    return {"seeds": list(results), "arms": arms, "targets": targets,
            "runs": {str(seed): result.to_json() for seed, result in results.items()}}
