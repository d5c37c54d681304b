"""A seeded synthetic world of supervised enterprises, simulated month by month (DESIGN.md §9).

Why a simulation, not a table generator: what a bureau *observes* depends on whom it inspects. A model trained
on records learns the bureau's habits as much as the enterprises' risk, and a planner can only be judged by
letting it choose the visits and watching what they find. So the world keeps a hidden state, the inspection
policy is a pluggable function, and every record comes out of the interaction of the two.

The model, per enterprise and month (all vectorised over enterprises with numpy):

* **Management quality** ``m`` (hidden, ~N(0, 1)) drifts around the firm's own long-run level (AR(1)); a
  change of owner or manager (a few % a year) redraws that level. Parks, accidents (lessons learned) and visits
  nudge it.
* **Hazard intensity** ``λ`` (expected new hazards that month) = sector base × size^0.3 × hidden firm factor ×
  exp(−0.5·m) × season × sector-year shock × special-risk flags. New hazards arrive as Poisson(λ); a
  sector-dependent share (0.5–1 %, more under poor management) are **major** (重大隐患).
* Hazards stay **latent** until found. Each month the enterprise fixes a share of its latent hazards on its own
  (more with good management and during campaigns); a visit finds each latent hazard with a **detection
  probability** depending on the kind of visit, the number of inspectors and the visit's luck. Hence observed
  hazard counts scale with inspection exposure: a never-inspected enterprise has no inspection-found hazards,
  whatever its true rate. Some firms also self-report part of what they fix (rows with empty ``inspection_id``).
* Found hazards get a ``rectify_by`` deadline; most are rectified on time, ~10 % late, ~1 % never.
* **Accidents**: probability ``1 − exp(−μ)`` with μ = sector base × size^0.4 × (hidden risk)^0.8 ×
  (1 + 0.8 × unrectified major hazards, latent or found) × season × campaign. Grades follow Decree 493 from
  sampled deaths, serious injuries and loss (``features.contract.accident_grade``); road transport has
  road-traffic accidents; a few general accidents are concealed (瞒报) and surface months later.
* **The bureau** penalises findings (major hazards, 三违, overdue major hazards, accidents), sometimes the
  principal too (一案双罚) and sometimes with suspension (责令停产停业, which idles the firm for a month or two);
  blacklists after larger accidents, fatal ones now and then, and concealment (3 years, some removed after one);
  keeps standardization certificates (3 years, renewed without a gap), liability insurance and commitments
  (a year from signing, each firm on its own cycle, renewed a little before or after expiry or lapsing for a
  while, so the share holding one is the same all year), credit grades (each March from last year's records,
  valid until the next) and a red list. Complaints come more often, and are more often
  substantiated, at riskier firms.
* **Reporting lag**: every record carries ``recorded_on`` ≥ its event date (same day to weeks later; months for
  concealed accidents). :meth:`WorldSimulator.tables` shows only what was recorded by the horizon.

The truth (``WorldSimulator.truth``) holds, per active enterprise and month, the exact probabilities the
simulation drew from, so tests can compare a model with the oracle. Risk drifts and is only partly revealed
(detection is partial, exposure is uneven, the firm factor is never observed), so no model can reach it.

Randomness comes from ``numpy.random.default_rng(seed)`` split into independent streams (population, nature,
visits, accidents, bureau, reporting), so the same seed gives the same world, and swapping the inspection
policy leaves the population untouched.

Using it::

    tables = generate_world(3000, years=3, seed=1)           # contract frames + "truth", today's practice
    write_world(tables, "out/")                              # <table>.csv, truth.csv
    print(format_stats(world_stats(tables, tables["truth"])))

    sim = WorldSimulator(3000, start=date(2024, 1, 1), seed=1)   # closed loop: a planner chooses the visits
    for _ in range(24):
        orders = my_planner(sim.tables(), sim.enterprises, sim.month)   # enterprise_id, kind, department, ...
        sim.step(orders)
    risk = oracle_risk(sim.truth(), as_of="2025-01-01")

Layout: parameters and today's practice in ``_params``, the population (names, USCCs) in ``_population``, the
columnar record store and CSV writer in ``_store``, realism figures and the oracle in ``_stats``; all public
names are re-exported here.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa

from data_samples._params import (
    COMMON_CATEGORIES,
    DEPARTMENTS,
    HAZARD_CATEGORIES,
    HIGH_RISK_SECTORS,
    LEAD_DEPARTMENT,
    ROUTINE_PRACTICE,
    ROUTINE_VISIT_KINDS,
    SECTOR_CATEGORIES,
    AccidentParams,
    BureauParams,
    HazardParams,
    InspectionParams,
    PopulationParams,
    RoutinePractice,
    WorldParams,
)
from data_samples._inspectors import InspectorRoster, staffing_rates
from data_samples._population import SPECIAL_FLAGS, enterprise_names, township_layout, township_short, uscc_codes
from data_samples._stats import REALISM_RANGES, format_stats, oracle_risk, world_stats
from data_samples._store import (
    ID_FORMATS,
    NO_DAY,
    RecordStore,
    as_canonical,
    bools,
    concatenate_chunks,
    contract_tables,
    day_number,
    days_to_datetime,
    empty_contract_frame,
    ints,
    labels,
    string_series,
    write_csv,
)
from features.contract import (
    ACCIDENT_GRADES,
    CREDIT_GRADES,
    CREDIT_KINDS,
    HAZARD_LEVELS,
    INSPECTION_KINDS,
    SECTOR_CODES,
    VIOLATION_KINDS,
)
from features.errors import DataError

__all__ = [
    "AccidentParams",
    "BureauParams",
    "HIGH_RISK_SECTORS",
    "HazardParams",
    "InspectionParams",
    "PopulationParams",
    "REALISM_RANGES",
    "ROUTINE_PRACTICE",
    "RoutinePractice",
    "WorldParams",
    "WorldSimulator",
    "accident_grades",
    "default_inspection_policy",
    "format_stats",
    "generate_world",
    "oracle_risk",
    "world_stats",
    "write_world",
]


# =============================================================================================
# The simulator
# =============================================================================================

_RAW_TEXT = {  # raw integer-coded columns -> vocabulary (for the raw frames handed to policies)
    "inspections": {"kind": INSPECTION_KINDS},
    "hazards": {"level": HAZARD_LEVELS, "category": HAZARD_CATEGORIES},
    "violations": {"kind": VIOLATION_KINDS},
    "accidents": {"grade": ACCIDENT_GRADES},
    "credit_records": {"kind": CREDIT_KINDS},
}
# Credit record values, coded: standardization levels, credit grades; -1 = empty.
CREDIT_VALUES = ("1", "2", "3") + CREDIT_GRADES
_KIND = {k: i for i, k in enumerate(INSPECTION_KINDS)}
_CREDIT_KIND = {k: i for i, k in enumerate(CREDIT_KINDS)}
_N_SECTORS = len(SECTOR_CODES)


@dataclass
class _Month:
    """Calendar and activity of the month being simulated."""

    index: int
    first_day: int
    last_day: int
    n_days: int
    year: int
    calendar_month: int  # 1..12
    active: np.ndarray  # enterprise operates on at least one day of the month
    lo: np.ndarray  # first and last operating day (day numbers; meaningful where active)
    hi: np.ndarray
    campaign: bool


def _month_first_day(start: date, index: int) -> date:
    month0 = start.year * 12 + start.month - 1 + index
    return date(month0 // 12, month0 % 12 + 1, 1)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def accident_grades(deaths: np.ndarray, serious_injuries: np.ndarray, direct_loss_yuan: np.ndarray) -> np.ndarray:
    """Vectorised :func:`features.contract.accident_grade`: index into ``ACCIDENT_GRADES`` (0 = general)."""
    deaths, injuries, loss = np.asarray(deaths), np.asarray(serious_injuries), np.asarray(direct_loss_yuan)
    grade = np.zeros(len(deaths), dtype=np.int8)
    grade[(deaths >= 3) | (injuries >= 10) | (loss >= 10_000_000)] = 1
    grade[(deaths >= 10) | (injuries >= 50) | (loss >= 50_000_000)] = 2
    grade[(deaths >= 30) | (injuries >= 100) | (loss >= 100_000_000)] = 3
    return grade


class WorldSimulator:
    """The synthetic world, advanced one month per :meth:`step` by a pluggable inspection policy.

    Parameters
    ----------
    n_enterprises:
        Every enterprise that exists at some time in the planned period (a few are founded during it).
    start:
        First day of the first simulated month (any date; it is moved to the first of its month).
    seed:
        Seed of ``numpy.random.default_rng``; same seed, same world.
    params:
        The world's knobs (:class:`WorldParams`).
    years:
        Planned length, only used to spread the foundings of new enterprises over the period; stepping further
        is allowed (nobody is founded then).

    Attributes a policy may read (positions index the arrays of all ``n_enterprises`` enterprises):
    ``month`` (first day of the month the next step simulates), ``enterprise_ids`` (object array),
    ``sector_index`` (index into ``features.contract.SECTOR_CODES``), ``plannable`` (known and open at the start
    of ``month``), ``policy_state`` (a dict a policy may use to remember things between months).
    """

    def __init__(
        self,
        n_enterprises: int,
        start: date = date(2021, 1, 1),
        seed: int = 0,
        params: WorldParams | None = None,
        *,
        years: float = 5,
    ):
        if n_enterprises < 1:
            raise ValueError(f"n_enterprises must be at least 1, got {n_enterprises}")
        self.params = params if params is not None else WorldParams()
        self.seed = seed
        self.n_enterprises = n = int(n_enterprises)
        self.start = date(start.year, start.month, 1)
        self._months_done = 0
        self.policy_state: dict = {}
        root = np.random.default_rng(seed)
        # Independent streams: a different policy changes what happens at visits, not who the enterprises are.
        (self._rng_population, self._rng_nature, self._rng_visits, self._rng_accidents, self._rng_bureau,
         self._rng_reporting, self._rng_layout, self._rng_inspectors) = root.spawn(8)
        self._store = RecordStore(contract_tables())
        self._truth_chunks: list[dict[str, np.ndarray]] = []
        self._department_codes: dict[str, int] = {name: i for i, name in enumerate(DEPARTMENTS)}
        self.last_dropped_orders = 0
        self._consumed: set[str] = set()  # "records" and/or "truth", once converted with consume=True
        self._build_population(years)
        self._build_roster(years)
        self._build_environment()
        self._init_state()
        self._init_credit()
        self._enterprise_ids_arrow = ID_FORMATS["enterprises"](np.arange(1, n + 1))
        self.enterprise_ids = np.asarray(self._enterprise_ids_arrow.to_pylist(), dtype=object)
        self._id_lookup = pd.Index(self.enterprise_ids)

    # ------------------------------------------------------------------ population and environment

    def _build_population(self, years: float) -> None:
        pop, rng, n = self.params.population, self._rng_population, self.n_enterprises
        start_day = day_number(self.start)
        mix = np.array([pop.sector_mix.get(code, 0.0) for code in SECTOR_CODES], dtype=float)
        self.sector_index = rng.choice(_N_SECTORS, size=n, p=mix / mix.sum()).astype(np.int16)

        # One county's townships for small worlds; county-qualified townships, ~1 per few hundred firms, beyond.
        layout = township_layout(n, pop, self._rng_layout)
        self.township_names = layout["names"]
        weights, urban = layout["weights"].astype(float), layout["urban"]
        affinity = np.tile(weights, (_N_SECTORS, 1))
        for s, code in enumerate(SECTOR_CODES):
            if code in pop.rural_only_sectors:
                affinity[s, urban] = 0.0
            if code in pop.urban_sectors:
                affinity[s, urban] *= pop.urban_sector_boost
        cumulative = np.cumsum(affinity / affinity.sum(axis=1, keepdims=True), axis=1)
        u = rng.random(n)
        township = np.empty(n, dtype=np.int64)
        for s in range(_N_SECTORS):  # the first township whose cumulative share reaches u
            rows = np.flatnonzero(self.sector_index == s)
            township[rows] = np.searchsorted(cumulative[s], u[rows], side="left")
        self.township_index = np.minimum(township, len(self.township_names) - 1).astype(np.int32)

        median = np.array([pop.employees_median[code] for code in SECTOR_CODES])
        self.employees = np.maximum(3, np.round(median[self.sector_index]
                                                * rng.lognormal(0.0, pop.employees_sigma, n))).astype(np.int32)
        area_rate = np.array([pop.area_per_employee_m2[code] for code in SECTOR_CODES])
        self.area_m2 = np.round(self.employees * area_rate[self.sector_index] * rng.lognormal(0, 0.5, n), -1)

        # Founding: most firms predate the start; a share is founded, evenly, during the planned years.
        new_share = min(0.5, pop.founded_per_year * years)
        is_new = rng.random(n) < new_share
        age_days = (0.5 + rng.exponential(pop.mean_age_years, n)).clip(max=40) * 365.25
        founded = start_day - age_days.astype(np.int64)
        end_day = day_number(_month_first_day(self.start, int(round(12 * years))))
        founded[is_new] = start_day + (rng.random(is_new.sum()) * (end_day - start_day)).astype(np.int64)
        self.founded_day = founded.astype(np.int32)
        self.closed_day = np.full(n, NO_DAY, dtype=np.int32)

        self.flags = {}
        for flag in SPECIAL_FLAGS:
            rates = pop.special_flag_rates.get(flag, {})
            p = np.array([rates.get(code, 0.0) for code in SECTOR_CODES])[self.sector_index]
            self.flags[flag] = rng.random(n) < p

        self.park_names = tuple(layout["parks"])
        park = np.full(n, -1, dtype=np.int16)
        eligible = np.isin(self.sector_index, [SECTOR_CODES.index(c) for c in pop.park_sectors])
        joins = eligible & (rng.random(n) < pop.park_share)
        pick = rng.random(n)
        parks_of: dict[int, list[int]] = {}
        for i, name in enumerate(self.park_names):
            for township_pos in layout["parks"][name]:
                parks_of.setdefault(township_pos, []).append(i)
        for township_pos, parks_here in sorted(parks_of.items()):
            if parks_here:
                here = joins & (self.township_index == township_pos)
                park[here] = np.asarray(parks_here)[(pick[here] * len(parks_here)).astype(int)]
        self.park_index = park

        founded_year = self.founded_day.astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
        self._uscc = uscc_codes(np.arange(n), founded_year, pop.county_code)
        short = np.asarray([township_short(t) for t in self.township_names], dtype=object)
        self._names = enterprise_names(self.sector_index, short[self.township_index],
                                       layout["prefix"][self.township_index], rng)

    def _build_roster(self, years: float) -> None:
        """The departments' inspectors, staffed for today's practice (see :mod:`data_samples._inspectors`)."""
        lead, rate = staffing_rates(self.sector_index, SECTOR_CODES, ROUTINE_PRACTICE, LEAD_DEPARTMENT, DEPARTMENTS)
        end_day = day_number(_month_first_day(self.start, int(round(12 * years))))
        self._roster = InspectorRoster.build(
            DEPARTMENTS, lead, rate, self.township_index, len(self.township_names), day_number(self.start), end_day,
            self.params.inspectors, ROUTINE_PRACTICE, self._rng_inspectors)

    def _build_environment(self) -> None:
        """Draws shared by all enterprises: campaign months and sector-year shocks (for 50 years)."""
        hz, rng = self.params.hazards, self._rng_population
        years = 50
        self._campaigns = set()
        for y in range(years):
            self._campaigns.add((self.start.year + y, 6))
            others = rng.choice([m for m in range(1, 13) if m != 6], size=hz.campaign_months_per_year, replace=False)
            self._campaigns.update((self.start.year + y, int(m)) for m in others)
        self._sector_year_shock = rng.lognormal(
            -hz.sector_year_shock_sigma**2 / 2, hz.sector_year_shock_sigma, (years, _N_SECTORS))

    def _init_state(self) -> None:
        p, rng, n = self.params, self._rng_population, self.n_enterprises
        hz, acc = p.hazards, p.accidents
        sector = self.sector_index
        size = self.employees / 50.0
        flag_factor = np.ones(n)
        for flag, factor in hz.flag_risk.items():
            flag_factor[self.flags[flag]] *= factor
        base = np.array([hz.base_rate[c] for c in SECTOR_CODES])
        # Reference intensity for the sector and size (what an analyst could know): the hidden part varies around it.
        self._hazard_reference = base[sector] * size**hz.size_elasticity * flag_factor
        self._firm_factor = rng.lognormal(-hz.firm_factor_sigma**2 / 2, hz.firm_factor_sigma, n)
        self._management_level = (rng.normal(0, hz.management_level_sigma, n)
                                  + p.population.park_management_bonus * (self.park_index >= 0))
        self._management_wander = rng.normal(0, hz.management_noise_sigma, n)
        yearly = np.array([acc.yearly_rate[c] for c in SECTOR_CODES])
        # Normalise the hidden multiplier (roughly) so that the sector rate is the rate of an average firm.
        hidden_sd = math.hypot(hz.firm_factor_sigma, hz.management_effect
                               * math.hypot(hz.management_level_sigma, hz.management_noise_sigma))
        norm = math.exp((acc.hidden_risk_elasticity**2 - acc.hidden_risk_elasticity) * hidden_sd**2 / 2)
        self._accident_reference = (-np.log1p(-yearly[sector]) / 12 * size**acc.size_elasticity
                                    * flag_factor / norm)
        major = np.array([hz.major_share[c] for c in SECTOR_CODES])
        self._major_share_base = major[sector]
        winter = np.isin(sector, [SECTOR_CODES.index(c) for c in hz.winter_sectors])
        self._season_peak_month = np.where(winter, 1, 7)

        # Latent hazards at the start: roughly the steady state of arrivals against self-fixing.
        m = self.management
        lam = self._hazard_reference * self._firm_factor * np.exp(-hz.management_effect * m)
        fix_g = self._self_fix_rate(hz.self_fix_general, m)
        fix_m = self._self_fix_rate(hz.self_fix_major, m)
        share = self._major_share(m)
        self._latent_general = rng.poisson(lam * (1 - share) / fix_g).astype(np.int32)
        self._latent_major = rng.poisson(lam * share / fix_m).astype(np.int32)
        self._open_major = np.zeros(n, dtype=np.int32)  # found, not rectified
        self._overdue_major = np.zeros(n, dtype=np.int32)  # found, past deadline, not rectified
        self._major_events: dict[int, list[tuple[np.ndarray, np.ndarray, int]]] = {}
        self._suspended_months = np.zeros(n, dtype=np.int8)
        self._closure_pressure = np.zeros(n)
        self._last_accident_day = np.full(n, -(10**6), dtype=np.int64)
        self._self_report_habit = rng.random(n) < p.inspections.self_report_habit_share
        self._year_counts: dict[int, dict[str, np.ndarray]] = {}
        self._blacklisted_to = np.zeros(n, dtype=np.int64)

    @property
    def management(self) -> np.ndarray:
        """Current hidden management quality (higher is better)."""
        return self._management_level + self._management_wander

    def _self_fix_rate(self, bounds: tuple[float, float], m: np.ndarray) -> np.ndarray:
        low, high = bounds
        return low + (high - low) * _sigmoid(1.2 * m)

    def _major_share(self, m: np.ndarray) -> np.ndarray:
        return np.clip(self._major_share_base * np.exp(-self.params.hazards.major_share_management_effect * m),
                       0, 0.2)

    # ------------------------------------------------------------------ calendar

    @property
    def month(self) -> date:
        """First day of the month the next :meth:`step` simulates."""
        return _month_first_day(self.start, self._months_done)

    @property
    def months_done(self) -> int:
        return self._months_done

    @property
    def horizon(self) -> date:
        """Last simulated day (the day before :attr:`month`)."""
        return self.month - timedelta(days=1)

    @property
    def plannable(self) -> np.ndarray:
        """Enterprises a planner can visit this month: founded before it, not known to have closed."""
        first = day_number(self.month)
        return (self.founded_day < first) & (self.closed_day >= first)

    # ------------------------------------------------------------------ credit records before the start

    def _init_credit(self) -> None:
        """Standardization certificates and insurance policies already running at the start."""
        bureau, rng, n = self.params.bureau, self._rng_population, self.n_enterprises
        start_day = day_number(self.start)
        existing = self.founded_day < start_day
        share = np.array([bureau.standardization_share[c] for c in SECTOR_CODES])[self.sector_index]
        # Better-run firms are likelier to hold a certificate (odds × e^{0.8 m}).
        odds = share / (1 - share + 1e-9) * np.exp(0.8 * self.management)
        holds = existing & (rng.random(n) < odds / (1 + odds))
        self._std_level = np.zeros(n, dtype=np.int8)
        self._std_to = np.zeros(n, dtype=np.int64)
        issued = start_day - (rng.random(n) * 3 * 365).astype(np.int64) - 1
        issued = np.maximum(issued, self.founded_day + 30)
        holds &= issued < start_day
        self._issue_standardization(np.flatnonzero(holds), issued[holds], rng)

        # Yearly records on each firm's own cycle (insurance policies, commitments): the day of the next
        # signing (NO_DAY: none planned). Firms founded during the world sign a few weeks after founding;
        # those running at the start are drawn in the first month (see _rolling_yearly).
        b = self.params.bureau
        self._next_signing = {}
        for kind in ("insurance", "commitment"):
            after = self.founded_day.astype(np.int64) + 1 + rng.geometric(1 / b.new_firm_signing_days, n)
            self._next_signing[kind] = np.where(existing, NO_DAY, after).astype(np.int64)

    def _insurance_probability(self) -> np.ndarray:
        share = np.array([self.params.bureau.insurance_share[c] for c in SECTOR_CODES])[self.sector_index]
        odds = share / (1 - share + 1e-9) * np.exp(0.5 * self.management)
        return odds / (1 + odds)

    @staticmethod
    def _plus_years(days: np.ndarray, years: int) -> np.ndarray:
        return np.asarray(days, dtype=np.int64) + int(round(365.25 * years))

    def _issue_standardization(self, who: np.ndarray, valid_from: np.ndarray, rng: np.random.Generator) -> None:
        """Certificates: the level follows management (一级 for the best-run few)."""
        if len(who) == 0:
            return
        share_1, share_2, _ = self.params.bureau.standardization_level_shares
        hz = self.params.hazards
        noise_sd = 0.6
        score = self.management[who] + rng.normal(0, noise_sd, len(who))
        # Cut-offs on the population distribution of the score, so the level shares hold on average.
        score_sd = math.hypot(hz.management_level_sigma, hz.management_noise_sigma, noise_sd)
        cut_1 = NormalDist(0, score_sd).inv_cdf(1 - share_1)
        cut_2 = NormalDist(0, score_sd).inv_cdf(1 - share_1 - share_2)
        level = np.where(score > cut_1, 1, np.where(score > cut_2, 2, 3)).astype(np.int8)
        valid_to = self._plus_years(valid_from, 3) - 1
        self._std_level[who] = level
        self._std_to[who] = valid_to
        # Credit value codes index CREDIT_VALUES, which starts with the levels "1", "2", "3".
        self._append_credit("standardization", who, valid_from, valid_to, level - 1, rng)

    def _append_credit(self, kind: str, who, valid_from, valid_to, values, rng) -> None:
        who = np.asarray(who)
        if len(who) == 0:
            return
        recorded = np.asarray(valid_from, dtype=np.int64) + self._lags("credit_records", len(who))
        self._store.append(
            "credit_records",
            {
                "enterprise": who.astype(np.int32),
                "kind": np.full(len(who), _CREDIT_KIND[kind], dtype=np.int8),
                "value": np.asarray(values, dtype=np.int8),
                "valid_from": np.asarray(valid_from, dtype=np.int32),
                "valid_to": np.asarray(valid_to, dtype=np.int32),
                "recorded": recorded.astype(np.int32),
            },
        )

    def _lags(self, source: str, size: int) -> np.ndarray:
        """Reporting lags in days: a share the same day, the rest 1 + geometric."""
        b, rng = self.params.bureau, self._rng_reporting
        mean = b.lag_mean_days[source]
        lag = rng.geometric(1.0 / mean, size)
        return np.where(rng.random(size) < b.same_day_share, 0, lag).astype(np.int64)

    # ------------------------------------------------------------------ one month

    def step(self, orders: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
        """Simulate :attr:`month` with the visits in ``orders``; returns this month's new records (raw form).

        ``orders`` has one row per visit: ``enterprise_id``, ``kind`` (an inspection kind of the contract),
        ``department``, and optionally ``n_inspectors`` (default 2) and ``day`` (day of the month; default a
        random operating day), and ``inspectors`` (``;``-joined ids of the roster: a planner's inspector draw; the
        visit's detection then follows their stringency; default: a team from the squad of the enterprise's
        township, today's practice). Visits to enterprises not operating that month are dropped (their count is in
        ``last_dropped_orders``); a day outside the operating days is moved to the nearest one.

        The returned frames have integer keys, ``enterprise`` positions and datetime columns (the records
        as created, including those recorded after the month ends); :meth:`tables` has the contract form.
        Inspections carry ``order_row``, the position of the order that produced them.
        """
        if self._consumed:
            raise RuntimeError(f"cannot step: {' and '.join(sorted(self._consumed))} already consumed (consume=True)")
        before = {t: self._store.chunk_count(t) for t in self._store.tables}
        month = self._begin_month()
        intensity = self._intensities(month)
        self._record_truth(month, intensity)
        self._arrivals(month, intensity)
        visits = self._visits(month, orders)
        accidents = self._accidents(month, intensity)
        self._self_fixing(month)
        self._complaints(month, intensity)
        self._penalties(month, visits, accidents)
        self._credit(month, intensity)
        self._end_month(month)
        return {t: self._raw_frame(t, self._store.chunks_from(t, before[t])) for t in before}

    def _begin_month(self) -> _Month:
        hz, rng, n = self.params.hazards, self._rng_nature, self.n_enterprises
        first = self.month
        index = self._months_done
        first_day = day_number(first)
        next_first = day_number(_month_first_day(self.start, index + 1))
        last_day = next_first - 1

        # Major hazards rectified (or falling overdue) last month change the counts from this month on.
        for who, delta, kind in self._major_events.pop(index, []):
            target = self._open_major if kind == 0 else self._overdue_major
            np.add.at(target, who, delta)

        # Management wanders around each firm's level; an owner or manager change redraws the level.
        rho = hz.management_persistence
        self._management_wander = (rho * self._management_wander
                                   + math.sqrt(1 - rho**2) * hz.management_noise_sigma * rng.normal(0, 1, n))
        changed = rng.random(n) < hz.management_changes_per_year / 12
        new_level = (rng.normal(0, hz.management_level_sigma, n)
                     + self.params.population.park_management_bonus * (self.park_index >= 0))
        self._management_level = np.where(changed, new_level, self._management_level)

        # Closures, decided at the start of the month (no record may follow the closing day).
        open_before = (self.founded_day < first_day) & (self.closed_day == NO_DAY)
        p_close = (self.params.population.closures_per_year / 12 * np.exp(-0.4 * self.management)
                   + self._closure_pressure)
        closing = open_before & (rng.random(n) < p_close)
        close_day = first_day + rng.integers(0, last_day - first_day + 1, n)
        self.closed_day = np.where(closing, close_day, self.closed_day).astype(np.int32)

        active = (self.founded_day <= last_day) & (self.closed_day >= first_day)
        lo = np.maximum(first_day, self.founded_day)
        hi = np.minimum(last_day, self.closed_day)
        return _Month(index, first_day, last_day, last_day - first_day + 1, first.year, first.month,
                      active, lo, hi, (first.year, first.month) in self._campaigns)

    def _intensities(self, month: _Month) -> dict[str, np.ndarray]:
        """This month's hidden intensities, from the state at the start of the month."""
        hz, acc = self.params.hazards, self.params.accidents
        m = self.management
        season = 1 + hz.seasonal_amplitude * np.cos(2 * np.pi * (month.calendar_month - self._season_peak_month) / 12)
        shock = self._sector_year_shock[(month.year - self.start.year) % len(self._sector_year_shock)][
            self.sector_index]
        suspended = self._suspended_months > 0
        operating_share = np.where(month.active, (month.hi - month.lo + 1) / month.n_days, 0.0)
        hidden = self._firm_factor * np.exp(-hz.management_effect * m) * shock
        hazard_rate = (self._hazard_reference * hidden * season * operating_share
                       * np.where(suspended, hz.suspension_activity, 1.0))
        unrectified_major = self._latent_major + self._open_major
        campaign = hz.campaign_accident_factor if month.campaign else 1.0
        accident_intensity = (self._accident_reference * hidden**acc.hidden_risk_elasticity
                              * (1 + acc.per_unrectified_major * unrectified_major)
                              * season * campaign * operating_share
                              * np.where(suspended, hz.suspension_accident_factor, 1.0))
        accident_prob = -np.expm1(-accident_intensity)
        major_share = self._major_share(m)
        adverse_prob = 1 - (1 - accident_prob) * np.exp(-hazard_rate * major_share)
        return {
            "hazard_rate": hazard_rate,
            "major_share": major_share,
            "accident_prob": accident_prob,
            "adverse_prob": adverse_prob,
            "unrectified_major": unrectified_major,
        }

    def _record_truth(self, month: _Month, intensity: dict[str, np.ndarray]) -> None:
        who = np.flatnonzero(month.active)
        self._truth_chunks.append(
            {
                "enterprise": who.astype(np.int32),
                "month": np.full(len(who), month.first_day, dtype=np.int32),
                "accident_prob": intensity["accident_prob"][who].astype(np.float64),
                "hazard_rate": intensity["hazard_rate"][who].astype(np.float32),
                "major_share": intensity["major_share"][who].astype(np.float32),
                "adverse_prob": intensity["adverse_prob"][who].astype(np.float64),
                "management": self.management[who].astype(np.float32),
                "latent_hazards": (self._latent_general + self._latent_major)[who].astype(np.int32),
                "unrectified_major": intensity["unrectified_major"][who].astype(np.int32),
                "suspended": self._suspended_months[who] > 0,
            }
        )

    def _arrivals(self, month: _Month, intensity: dict[str, np.ndarray]) -> None:
        rng = self._rng_nature
        new = rng.poisson(intensity["hazard_rate"])
        major = rng.binomial(new, intensity["major_share"])
        self._latent_general += (new - major).astype(np.int32)
        self._latent_major += major.astype(np.int32)

    # ------------------------------------------------------------------ visits

    def _parse_orders(self, month: _Month, orders: pd.DataFrame | None) -> dict[str, np.ndarray]:
        self.last_dropped_orders = 0
        if orders is None or len(orders) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return {"enterprise": empty, "kind": empty, "department": empty, "n_inspectors": empty, "day": empty,
                    "order_row": empty, "team": np.full((0, 1), -1, dtype=np.int64)}
        for column in ("enterprise_id", "kind", "department"):
            if column not in orders.columns:
                raise DataError(f"orders: missing column {column!r} (have {list(orders.columns)})")
        position = self._id_lookup.get_indexer(orders["enterprise_id"].astype(str))
        if (position < 0).any():
            bad = orders["enterprise_id"][position < 0].iloc[0]
            raise DataError(f"orders: unknown enterprise_id {bad!r} ({(position < 0).sum()} rows)")
        kind = pd.Index(INSPECTION_KINDS).get_indexer(orders["kind"].astype(str))
        if (kind < 0).any():
            bad = orders["kind"][kind < 0].iloc[0]
            raise DataError(f"orders: kind {bad!r} is not one of {INSPECTION_KINDS}")
        department = orders["department"].astype(str).to_numpy()
        for name in pd.unique(department):
            if name not in self._department_codes:
                self._department_codes[name] = len(self._department_codes)
        department_code = pd.Series(department).map(self._department_codes).to_numpy()
        team = np.full((len(orders), 1), -1, dtype=np.int64)
        if "inspectors" in orders.columns:  # a planner's inspector draw: these inspectors make the visit
            try:
                team = self._roster.named(orders["inspectors"].to_numpy(dtype=object))
            except KeyError as exc:
                raise DataError(f"orders: inspector {exc.args[0]!r} is not on any department's roster") from None
        named_size = (team >= 0).sum(axis=1)
        n_inspectors = (pd.to_numeric(orders["n_inspectors"]).fillna(2).to_numpy(dtype=np.int64)
                        if "n_inspectors" in orders.columns else np.full(len(orders), 2))
        n_inspectors = np.where(named_size > 0, named_size, n_inspectors)
        if (n_inspectors < 1).any():
            raise DataError("orders: n_inspectors must be at least 1")
        active = month.active[position]
        lo, hi = month.lo[position], month.hi[position]
        random_day = lo + (self._rng_visits.random(len(orders)) * (hi - lo + 1)).astype(np.int64)
        if "day" in orders.columns:
            day_of_month = pd.to_numeric(orders["day"]).to_numpy(dtype=float, na_value=np.nan)
            given = ~np.isnan(day_of_month)
            if ((day_of_month[given] < 1) | (day_of_month[given] > 31)).any():
                raise DataError("orders: day must be a day of the month (1-31)")
            wanted = month.first_day + np.nan_to_num(day_of_month, nan=1).astype(np.int64) - 1
            day = np.where(given, np.clip(wanted, lo, hi), random_day)
        else:
            day = random_day
        self.last_dropped_orders = int((~active).sum())
        keep = np.flatnonzero(active)
        return {"enterprise": position[keep], "kind": kind[keep].astype(np.int64),
                "department": department_code[keep], "n_inspectors": n_inspectors[keep], "day": day[keep],
                "order_row": keep, "team": team[keep]}

    def _visits(self, month: _Month, orders: pd.DataFrame | None) -> dict[str, np.ndarray]:
        ins, rng = self.params.inspections, self._rng_visits
        v = self._parse_orders(month, orders)
        order = np.lexsort((v["day"], v["enterprise"]))
        v = {k: a[order] for k, a in v.items()}
        n_visits = len(v["enterprise"])
        ent = v["enterprise"]
        found_general = np.zeros(n_visits, dtype=np.int64)
        found_major = np.zeros(n_visits, dtype=np.int64)
        detect_table = np.array([ins.detection_prob[k] for k in INSPECTION_KINDS])
        luck = rng.lognormal(-ins.visit_luck_sigma**2 / 2, ins.visit_luck_sigma, n_visits)
        team, stringency = self._roster.teams(v["department"], self.township_index[ent], v["day"],
                                              v["n_inspectors"], self._rng_inspectors)
        named = (v["team"] >= 0).any(axis=1)
        if named.any():  # the orders named their inspectors (a planner's draw): theirs, not today's squads
            width = max(team.shape[1], v["team"].shape[1])
            team = np.pad(team, ((0, 0), (0, width - team.shape[1])), constant_values=-1)
            given = np.pad(v["team"], ((0, 0), (0, width - v["team"].shape[1])), constant_values=-1)
            team[named] = given[named]
            stringency[named] = self._roster.multiplier(given[named])
        p_general = np.clip(detect_table[v["kind"]] * (1 + ins.detection_per_extra_inspector
                                                       * (v["n_inspectors"] - 2)) * luck * stringency, 0.02, 0.95)
        p_major = np.minimum(p_general * ins.detection_major_boost, 0.98)
        # Rounds: the k-th visit of each enterprise this month sees what the earlier ones left.
        if n_visits:
            new_enterprise = np.r_[True, ent[1:] != ent[:-1]]
            group_start = np.maximum.accumulate(np.where(new_enterprise, np.arange(n_visits), 0))
            rank = np.arange(n_visits) - group_start
            for r in range(int(rank.max()) + 1):
                idx = np.flatnonzero(rank == r)
                e = ent[idx]
                found_general[idx] = rng.binomial(self._latent_general[e], p_general[idx])
                found_major[idx] = rng.binomial(self._latent_major[e], p_major[idx])
                self._latent_general[e] -= found_general[idx].astype(np.int32)
                self._latent_major[e] -= found_major[idx].astype(np.int32)
        np.add.at(self._open_major, ent, found_major.astype(np.int32))
        np.add.at(self._management_wander, ent, self.params.hazards.management_boost_per_visit)

        m = self.management[ent]
        violations = rng.poisson(ins.violations_per_visit * np.exp(-0.5 * m) * p_general / 0.55)
        takers = np.where(rng.random(n_visits) < ins.exam_skip_share, 0,
                          np.minimum(self.employees[ent], 1 + rng.poisson(ins.exam_takers_mean - 1, n_visits)))
        a, b = ins.exam_pass_logit
        passed = rng.binomial(takers, _sigmoid(a + b * m))
        recorded = v["day"] + self._lags("inspections", n_visits)
        ids = self._store.append(
            "inspections",
            {"enterprise": ent.astype(np.int32), "inspected": v["day"].astype(np.int32),
             "department": v["department"].astype(np.int16), "kind": v["kind"].astype(np.int8),
             "n_inspectors": v["n_inspectors"].astype(np.int16), "exam_takers": takers.astype(np.int32),
             "exam_passed": passed.astype(np.int32), "recorded": recorded.astype(np.int32),
             "order_row": v["order_row"].astype(np.int64)},
        )
        member_visit, member = np.nonzero(team >= 0)
        self._store.append(
            "inspection_inspectors",
            {"enterprise": ent[member_visit].astype(np.int32), "inspection": ids[member_visit],
             "inspector": team[member_visit, member], "inspected": v["day"][member_visit].astype(np.int32),
             "recorded": recorded[member_visit].astype(np.int32)},
        )
        overdue_at_visit = self._overdue_major[ent] > 0
        self._found_hazards(month, ids, ent, v["day"], recorded, found_general, found_major)
        self._found_violations(ids, ent, v["day"], recorded, violations)
        counts = self._counts(month.year)
        np.add.at(counts["inspections"], ent, 1)
        np.add.at(counts["hazards"], ent, found_general + found_major)
        np.add.at(counts["majors"], ent, found_major)
        np.add.at(counts["violations"], ent, violations)
        return {"enterprise": ent, "day": v["day"], "kind": v["kind"], "found_general": found_general,
                "found_major": found_major, "violations": violations, "overdue": overdue_at_visit}

    def _counts(self, year: int) -> dict[str, np.ndarray]:
        """Per-enterprise tallies of a calendar year's records (for the March credit grade)."""
        if year not in self._year_counts:
            self._year_counts[year] = {name: np.zeros(self.n_enterprises) for name in
                                       ("inspections", "hazards", "majors", "violations", "penalties",
                                        "accidents", "severe_accidents")}
        return self._year_counts[year]

    def _found_hazards(self, month, inspection_ids, ent, day, recorded, n_general, n_major) -> None:
        ins, rng = self.params.inspections, self._rng_visits
        total = n_general + n_major
        rows = np.repeat(np.arange(len(ent)), total)
        if len(rows) == 0:
            return
        # Within a visit's block of rows, the first n_major are major.
        offset = np.arange(len(rows)) - np.repeat(np.cumsum(total) - total, total)
        level = (offset < np.repeat(n_major, total)).astype(np.int8)  # 1 = major
        e = ent[rows]
        found = day[rows]
        rectify_by, rectified = self._rectification(found, level, e, rng)
        self._store.append(
            "hazards",
            {"enterprise": e.astype(np.int32), "inspection": inspection_ids[rows], "found": found.astype(np.int32),
             "level": level, "category": self._categories(e, rng), "rectify_by": rectify_by.astype(np.int32),
             "rectified": rectified.astype(np.int32), "recorded": recorded[rows].astype(np.int32)},
        )
        is_major = level == 1
        self._schedule_major_events(e[is_major], rectify_by[is_major], rectified[is_major])

    def _rectification(self, found, level, e, rng) -> tuple[np.ndarray, np.ndarray]:
        """Deadlines and the day each hazard will be rectified (NO_DAY: never)."""
        ins = self.params.inspections
        n = len(found)
        general_deadline = np.asarray(ins.deadline_days_general)[rng.integers(0, len(ins.deadline_days_general), n)]
        major_deadline = np.asarray(ins.deadline_days_major)[rng.integers(0, len(ins.deadline_days_major), n)]
        deadline = np.where(level == 1, major_deadline, general_deadline)
        rectify_by = found + deadline
        m = self.management[e]
        u = rng.random(n)
        p_never = np.clip(ins.never_share * np.exp(-0.7 * m) / math.exp(0.245), 0, 0.5)
        p_late = np.clip(ins.late_share * np.exp(-0.5 * m) / math.exp(0.125), 0, 0.6)
        on_time_day = found + np.ceil(rng.uniform(0.05, 1.0, n) * deadline).astype(np.int64)
        late_day = rectify_by + rng.geometric(1 / ins.late_delay_mean_days, n)
        rectified = np.where(u < p_never, NO_DAY, np.where(u < p_never + p_late, late_day, on_time_day))
        return rectify_by, rectified

    def _categories(self, e, rng) -> np.ndarray:
        if not hasattr(self, "_category_matrix"):
            lists = [[HAZARD_CATEGORIES.index(c) for c in COMMON_CATEGORIES + SECTOR_CATEGORIES.get(code, ())]
                     for code in SECTOR_CODES]
            width = max(len(x) for x in lists)
            self._category_matrix = np.array([x + [x[0]] * (width - len(x)) for x in lists], dtype=np.int8)
            self._category_count = np.array([len(x) for x in lists])
        s = self.sector_index[e]
        # Sector-specific categories are listed last; drawing uniformly gives them a fair share.
        pick = (rng.random(len(e)) * self._category_count[s]).astype(np.int64)
        return self._category_matrix[s, pick]

    def _schedule_major_events(self, e, rectify_by, rectified) -> None:
        """Found major hazards leave the open count the month after rectification; late ones count as overdue."""
        if len(e) == 0:
            return
        rectified_month = self._month_index(rectified)
        done = rectified != NO_DAY
        self._add_event(rectified_month[done] + 1, e[done], -1, kind=0)
        late = rectified > rectify_by
        overdue_from = self._month_index(rectify_by + 1)
        self._add_event(overdue_from[late] + 1, e[late], +1, kind=1)
        late_done = late & done
        self._add_event(rectified_month[late_done] + 1, e[late_done], -1, kind=1)

    def _add_event(self, month_index, who, delta, kind) -> None:
        for mi in np.unique(month_index):
            self._major_events.setdefault(int(mi), []).append((who[month_index == mi], delta, kind))

    def _month_index(self, days) -> np.ndarray:
        months = np.asarray(days, dtype=np.int64).clip(max=day_number(date(2200, 1, 1)))
        months = months.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return months - (self.start.year - 1970) * 12 - (self.start.month - 1)

    def _found_violations(self, inspection_ids, ent, day, recorded, counts) -> None:
        rows = np.repeat(np.arange(len(ent)), counts)
        if len(rows) == 0:
            return
        kind = self._rng_visits.choice(len(VIOLATION_KINDS), len(rows), p=[0.15, 0.55, 0.30])
        self._store.append(
            "violations",
            {"enterprise": ent[rows].astype(np.int32), "inspection": inspection_ids[rows],
             "found": day[rows].astype(np.int32), "kind": kind.astype(np.int8),
             "recorded": recorded[rows].astype(np.int32)},
        )

    # ------------------------------------------------------------------ accidents, self-fixing, complaints

    def _accidents(self, month: _Month, intensity: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        acc, rng = self.params.accidents, self._rng_accidents
        n = self.n_enterprises
        happens = month.active & (rng.random(n) < intensity["accident_prob"])
        e = np.flatnonzero(happens)
        k = len(e)
        day = month.lo[e] + (rng.random(k) * (month.hi[e] - month.lo[e] + 1)).astype(np.int64)
        sector = self.sector_index[e]
        severity = np.array([acc.severity_factor[c] for c in SECTOR_CODES])[sector] * np.where(
            self.flags["major_hazard_source"][e], 1.5, 1.0)
        shares = np.array([acc.grade_shares[g] for g in ACCIDENT_GRADES[1:]])
        upper = np.clip(severity[:, None] * shares[None, :], 0, 0.3)
        u = rng.random(k)
        # target grade: 3 if u < p3, 2 if u < p3 + p2, 1 if u < p3 + p2 + p1, else 0
        cum = np.cumsum(upper[:, ::-1], axis=1)
        target = np.where(u < cum[:, 0], 3, np.where(u < cum[:, 1], 2, np.where(u < cum[:, 2], 1, 0)))
        deaths, injuries, loss = self._casualties(target, sector, rng)
        grade = accident_grades(deaths, injuries, loss)
        road = rng.random(k) < np.array([acc.road_traffic_share[c] for c in SECTOR_CODES])[sector]
        m = self.management[e]
        concealed = (grade == 0) & (rng.random(k) < acc.concealed_share * np.exp(-0.8 * m) / math.exp(0.32))
        low, high = acc.concealment_discovery_days
        recorded = np.where(concealed, day + rng.integers(low, high + 1, k), day + self._lags("accidents", k))
        ids = self._store.append(
            "accidents",
            {"enterprise": e.astype(np.int32), "occurred": day.astype(np.int32), "grade": grade,
             "deaths": deaths.astype(np.int32), "serious_injuries": injuries.astype(np.int32),
             "loss": loss, "road_traffic": road, "concealed": concealed, "recorded": recorded.astype(np.int32)},
        )
        del ids
        severe = grade >= 1
        self._last_accident_day[e] = day
        self._management_wander[e] += self.params.hazards.management_boost_after_accident
        # A severe accident may end the firm over the following months.
        self._closure_pressure[e[severe]] += acc.closure_after_severe / 6
        counts = self._counts(month.year)
        np.add.at(counts["accidents"], e, 1)
        np.add.at(counts["severe_accidents"], e, severe)
        return {"enterprise": e, "day": day, "grade": grade, "deaths": deaths, "concealed": concealed,
                "recorded": recorded}

    def _casualties(self, target: np.ndarray, sector: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Deaths, serious injuries and loss consistent with the target grade (Decree 493 bands)."""
        k = len(target)
        fatal_share = np.array([self.params.accidents.fatal_share_general[c] for c in SECTOR_CODES])
        # General-band values for every accident; the trigger of a higher grade then overrides one of them.
        fatal = rng.random(k) < fatal_share[sector]
        deaths = np.where(fatal, 1 + (rng.random(k) < 0.15), 0)
        injuries = np.minimum(9, rng.poisson(np.where(fatal, 0.6, 1.1), k))
        loss = np.minimum(9_900_000, np.round(rng.lognormal(np.log(120_000), 1.1, k), -2))
        trigger = rng.choice(3, k, p=[0.6, 0.25, 0.15])  # deaths, injuries or loss decide a higher grade
        bands = {  # grade -> (deaths range, injuries range, loss range), upper bounds exclusive
            1: ((3, 10), (10, 50), (10_000_000, 50_000_000)),
            2: ((10, 30), (50, 100), (50_000_000, 100_000_000)),
            3: ((30, 60), (100, 160), (100_000_000, 300_000_000)),
        }
        for grade, (d_band, i_band, l_band) in bands.items():
            hit = target == grade
            deaths = np.where(hit & (trigger == 0), rng.integers(*d_band, k), deaths)
            injuries = np.where(hit & (trigger == 1), rng.integers(*i_band, k), injuries)
            loss = np.where(hit & (trigger == 2), np.round(rng.uniform(*l_band, k), -4), loss)
            # Severe accidents also cost more, whatever decided their grade (still below the next band).
            loss = np.where(hit & (trigger != 2), np.maximum(loss, 2_000_000 * grade), loss)
        return deaths, injuries, loss.astype(np.float64)

    def _self_fixing(self, month: _Month) -> None:
        hz, ins, rng = self.params.hazards, self.params.inspections, self._rng_nature
        m = self.management
        boost = (hz.campaign_self_fix_boost if month.campaign else 1.0) * np.where(self._suspended_months > 0, 2, 1)
        p_general = np.minimum(self._self_fix_rate(hz.self_fix_general, m) * boost, 0.95)
        p_major = np.minimum(self._self_fix_rate(hz.self_fix_major, m) * boost, 0.95)
        fixed_general = rng.binomial(self._latent_general, p_general)
        fixed_major = rng.binomial(self._latent_major, p_major)
        self._latent_general -= fixed_general.astype(np.int32)
        self._latent_major -= fixed_major.astype(np.int32)
        # Firms using the self-report system record part of what they fix (hazards without inspection_id).
        reporting = month.active & self._self_report_habit
        report_general = np.where(reporting, rng.binomial(fixed_general, ins.self_report_share), 0)
        report_major = np.where(reporting, rng.binomial(fixed_major, ins.self_report_share), 0)
        total = report_general + report_major
        rows = np.repeat(np.arange(self.n_enterprises), total)
        if len(rows) == 0:
            return
        offset = np.arange(len(rows)) - np.repeat(np.cumsum(total) - total, total)
        level = (offset < np.repeat(report_major, total)).astype(np.int8)
        found = month.lo[rows] + (rng.random(len(rows)) * (month.hi[rows] - month.lo[rows] + 1)).astype(np.int64)
        deadline = np.where(level == 1, 30, 15)
        rectified = np.minimum(found + rng.integers(0, 15, len(rows)), month.hi[rows])
        recorded = found + self._lags("self_reports", len(rows))
        self._store.append(
            "hazards",
            {"enterprise": rows.astype(np.int32), "inspection": np.full(len(rows), -1, dtype=np.int64),
             "found": found.astype(np.int32), "level": level, "category": self._categories(rows, rng),
             "rectify_by": (found + deadline).astype(np.int32), "rectified": rectified.astype(np.int32),
             "recorded": recorded.astype(np.int32)},
        )

    def _complaints(self, month: _Month, intensity: dict[str, np.ndarray]) -> None:
        b, rng, n = self.params.bureau, self._rng_nature, self.n_enterprises
        relative_risk = np.where(month.active, intensity["hazard_rate"] / self._hazard_reference, 0.0)
        unrectified = intensity["unrectified_major"]
        rate = (b.complaints_per_year / 12 * (self.employees / 50.0) ** 0.3 * relative_risk**0.7
                * (1 + 0.5 * unrectified))
        count = rng.poisson(rate)
        rows = np.repeat(np.arange(n), count)
        k = len(rows)
        if k == 0:
            return
        p_true = _sigmoid(-0.6 + 1.0 * np.log(np.maximum(relative_risk[rows], 1e-3)) + 0.8 * (unrectified[rows] > 0))
        received = month.lo[rows] + (rng.random(k) * (month.hi[rows] - month.lo[rows] + 1)).astype(np.int64)
        self._store.append(
            "complaints",
            {"enterprise": rows.astype(np.int32), "received": received.astype(np.int32),
             "substantiated": rng.random(k) < p_true,
             "recorded": (received + self._lags("complaints", k)).astype(np.int32)},
        )

    # ------------------------------------------------------------------ the bureau

    def _penalties(self, month: _Month, visits: dict[str, np.ndarray], accidents: dict[str, np.ndarray]) -> None:
        b, rng = self.params.bureau, self._rng_bureau
        # Findings at visits: the case is decided a few weeks later.
        fm, viol, many = visits["found_major"], visits["violations"], visits["found_general"] >= b.many_hazards
        overdue = visits["overdue"] & (visits["kind"] == _KIND["follow_up"])
        p = 1 - ((1 - b.penalty_per_major_hazard) ** fm * (1 - b.penalty_per_violation) ** viol
                 * (1 - b.penalty_many_hazards * many) * (1 - b.penalty_overdue_major * overdue))
        hit = rng.random(len(p)) < p
        e = visits["enterprise"][hit]
        k = len(e)
        serious = (fm[hit] > 0) | overdue[hit]
        amount = (rng.uniform(30_000, 100_000, k) * np.maximum(fm[hit], overdue[hit])
                  + rng.uniform(5_000, 30_000, k) * viol[hit] + rng.uniform(10_000, 30_000, k) * many[hit])
        p_suspend = np.where(overdue[hit], b.suspension_share[1], np.where(fm[hit] > 0, b.suspension_share[0], 0.01))
        self._decide_penalties(
            month, e, visits["day"][hit] + rng.integers(5, 46, k), np.round(np.maximum(amount, 5_000), -2),
            rng.random(k) < np.where(serious, b.person_penalized_share[0], 0.05), rng.random(k) < p_suspend)

        # Accidents: decided after the investigation; concealed ones once discovered, and harder.
        grade, deaths, concealed = accidents["grade"], accidents["deaths"], accidents["concealed"]
        grave = (grade >= 1) | (deaths > 0) | concealed
        hit = rng.random(len(grade)) < np.where(grave, b.penalty_after_fatal_accident, b.penalty_after_accident)
        e, k = accidents["enterprise"][hit], int(hit.sum())
        base_amount = np.array([300_000, 1_000_000, 2_000_000, 10_000_000])[grade[hit]]
        amount = base_amount * rng.uniform(1.0, 2.0, k) * np.where(concealed[hit], 2.0, 1.0)
        decided = np.where(concealed[hit], accidents["recorded"][hit] + rng.integers(15, 61, k),
                           accidents["day"][hit] + rng.integers(30, 121, k))
        self._decide_penalties(
            month, e, decided, np.round(amount, -3),
            rng.random(k) < np.where(grave[hit], b.person_penalized_share[1], 0.2),
            rng.random(k) < np.where(grave[hit] & ~concealed[hit], b.suspension_share[2], 0.03))

        # Blacklist (严重失信): larger accidents, some fatal ones, concealment.
        p_black = np.where(grade >= 1, b.blacklist_after_severe,
                           np.where(concealed, b.blacklist_after_concealment,
                                    np.where(deaths > 0, b.blacklist_after_fatal, 0.0)))
        listed = rng.random(len(grade)) < p_black
        e = accidents["enterprise"][listed]
        k = len(e)
        valid_from = np.where(concealed[listed], accidents["recorded"][listed] + rng.integers(20, 61, k),
                              accidents["day"][listed] + rng.integers(40, 131, k))
        full = self._plus_years(valid_from, b.blacklist_years) - 1
        early = valid_from + rng.integers(365, 731, k)
        valid_to = np.where(rng.random(k) < b.blacklist_early_removal, early, full)
        np.maximum.at(self._blacklisted_to, e, valid_to)
        self._append_credit("blacklist", e, valid_from, valid_to, np.full(k, -1), rng)

    def _decide_penalties(self, month, e, decided, amount, person, suspension) -> None:
        if len(e) == 0:
            return
        self._store.append(
            "penalties",
            {"enterprise": e.astype(np.int32), "decided": decided.astype(np.int32), "amount": amount.astype(float),
             "person_penalized": person, "suspension": suspension,
             "recorded": (decided + self._lags("penalties", len(e))).astype(np.int32)},
        )
        # Suspension idles the firm for one or two months from next month (approximation of the decision date).
        months = np.where(self._rng_bureau.random(len(e)) < 0.5, 1, 2).astype(np.int8)
        self._suspended_months[e[suspension]] = np.maximum(self._suspended_months[e[suspension]],
                                                           months[suspension] + 1)
        np.add.at(self._counts(month.year)["penalties"], e, 1)

    def _credit(self, month: _Month, intensity: dict[str, np.ndarray]) -> None:
        b, rng, n = self.params.bureau, self._rng_bureau, self.n_enterprises
        active = month.active
        # Standardization: renew (from the day after expiry, no gap) or lapse; some firms certify for the first time.
        renewal_day = self._std_to + 1
        expiring = active & (self._std_level > 0) & (renewal_day >= month.first_day) & (renewal_day <= month.last_day)
        renew = expiring & (rng.random(n) < b.standardization_renewal * _sigmoid(1.5 + self.management) / 0.82)
        self._std_level[expiring & ~renew] = 0
        who = np.flatnonzero(renew & (renewal_day <= month.hi))
        self._issue_standardization(who, renewal_day[who], rng)
        lapsed = (self._std_level > 0) & (self._std_to < month.first_day)
        self._std_level[lapsed] = 0
        share = np.array([b.standardization_share[c] for c in SECTOR_CODES])[self.sector_index]
        p_new = b.standardization_new_per_year / 12 * share / 0.4 * np.exp(0.5 * self.management)
        new = active & (self._std_level == 0) & (self.founded_day < month.first_day - 180) & (rng.random(n) < p_new)
        who = np.flatnonzero(new)
        self._issue_standardization(who, self._random_day(month, who, rng), rng)

        # Liability insurance (安责险): a policy runs a year from purchase, on the firm's own cycle.
        self._rolling_yearly("insurance", month, self._insurance_probability(), rng)

        # Commitments (承诺书): valid a year from signing, on the firm's own cycle; most low-risk firms
        # keep one, fewer high-risk ones (linear in this month's risk rank among operating firms).
        who = np.flatnonzero(active)
        risk = intensity["accident_prob"][who] + 0.3 * intensity["adverse_prob"][who]
        rank = np.empty(len(who))
        rank[risk.argsort()] = np.arange(len(who)) / max(1, len(who) - 1)
        low, high = b.commitment_share
        share = np.zeros(n)
        share[who] = low + (high - low) * rank
        self._rolling_yearly("commitment", month, share, rng)

        # Credit grades each March from last year's records, and the red list for the best.
        if month.calendar_month == 3 and (month.year - 1) in self._year_counts:
            self._grade_credit(month, rng)

    def _grade_credit(self, month: _Month, rng) -> None:
        b = self.params.bureau
        c = self._year_counts.pop(month.year - 1)
        eligible = month.active & (self.founded_day < day_number(date(month.year - 1, 7, 1)))
        who = np.flatnonzero(eligible)
        points = (100 - 8 * c["majors"] - 1.5 * c["violations"] - 4 * c["penalties"] - 15 * c["accidents"]
                  - 25 * c["severe_accidents"] - 0.3 * np.maximum(0, c["hazards"] - 4 * c["inspections"])
                  + 3 * np.isin(self._std_level, (1, 2)) + rng.normal(0, 2.5, self.n_enterprises))[who]
        blacklisted = self._blacklisted_to[who] >= month.first_day
        thresholds = np.array([60, 70, 75, 80, 85, 90, 95])  # D < 60 <= C < 70 <= B3 ... A1 >= 95
        grade_index = len(CREDIT_GRADES) - 1 - np.searchsorted(thresholds, points, side="right")
        grade_index = np.where(blacklisted, len(CREDIT_GRADES) - 1, grade_index)
        start = self._random_day(month, who, rng)
        values = CREDIT_VALUES.index(CREDIT_GRADES[0]) + grade_index
        # Valid until replaced by next March's grade (through April, so the next one is recorded by then).
        until_next = np.full(len(who), day_number(date(month.year + 1, 4, 30)))
        self._append_credit("credit_grade", who, start, until_next, values, rng)
        clean = self._last_accident_day[who] < month.first_day - 3 * 365
        red = ((grade_index == 0) & np.isin(self._std_level[who], (1, 2)) & clean & ~blacklisted
               & (rng.random(len(who)) < b.redlist_share))
        red_who, red_from = who[red], start[red] + rng.integers(5, 30, red.sum())
        # Listed until next year's list is out (by the end of April).
        listed_until = np.full(len(red_who), day_number(date(month.year + 1, 4, 30)))
        self._append_credit("redlist", red_who, red_from, listed_until, np.full(len(red_who), -1), rng)

    def _rolling_yearly(self, kind: str, month: _Month, share: np.ndarray, rng) -> None:
        """A yearly record (insurance policy, commitment) valid one year from signing, renewed on its own cycle.

        ``share`` is each firm's long-run probability of holding one. In the first month, existing firms hold
        one with that probability, signed on a uniform day of the past year (the steady state). A renewal is
        planned at expiry — most a little before it (overlapping), the rest a few weeks after (a gap) — and
        goes ahead with probability ``share``; a firm without a record signs again with monthly probability
        ``share`` / 12. Holding spells then last 1 / (1 − share) years and gaps 12 / share months, so that the
        share holding one stays at ``share`` (a little below, for the late renewals) on every day of the year.
        """
        n = self.n_enterprises
        planned = self._next_signing[kind]
        if month.index == 0:
            existing = month.active & (self.founded_day < month.first_day)
            who = np.flatnonzero(existing & (rng.random(n) < share))
            span = np.minimum(365, month.first_day - self.founded_day[who].astype(np.int64))
            self._sign_yearly(kind, who, month.first_day - 1 - (rng.random(len(who)) * span).astype(np.int64), rng)
        due = month.active & (planned <= month.hi)
        who = np.flatnonzero(due)
        goes_ahead = rng.random(len(who)) < share[who]
        planned[who[~goes_ahead]] = NO_DAY
        who = who[goes_ahead]
        self._sign_yearly(kind, who, np.clip(planned[who], month.lo[who], month.hi[who]), rng)
        # Firms without a record (lapsed, or never had one) sign again now and then.
        lapsed = np.flatnonzero(month.active & ~due & (planned == NO_DAY))
        who = lapsed[rng.random(len(lapsed)) < share[lapsed] / 12]
        self._sign_yearly(kind, who, self._random_day(month, who, rng), rng)

    def _sign_yearly(self, kind: str, who: np.ndarray, signed: np.ndarray, rng) -> None:
        b = self.params.bureau
        valid_to = self._plus_years(signed, 1) - 1
        self._append_credit(kind, who, signed, valid_to, np.full(len(who), -1), rng)
        early = rng.random(len(who)) < b.renewal_early_share
        offset = np.where(early, -rng.integers(0, b.renewal_early_days + 1, len(who)),
                          rng.geometric(1 / b.renewal_late_mean_days, len(who)))
        self._next_signing[kind][who] = valid_to + 1 + offset

    @staticmethod
    def _random_day(month: _Month, who: np.ndarray, rng) -> np.ndarray:
        lo, hi = month.lo[who], month.hi[who]
        return lo + (rng.random(len(who)) * (hi - lo + 1)).astype(np.int64)

    def _end_month(self, month: _Month) -> None:
        self._suspended_months = np.maximum(self._suspended_months - 1, 0).astype(np.int8)
        self._closure_pressure *= 0.8
        self._months_done += 1

    # ------------------------------------------------------------------ what the bureau knows

    def recorded_between(self, table: str, first: date, end: date) -> pd.DataFrame:
        """Records of ``table`` with ``recorded_on`` in ``[first, end)``, in raw form (see :meth:`step`)."""
        columns = self._store.recorded_between(table, day_number(first), day_number(end))
        return self._raw_frame(table, [columns] if columns is not None else [])

    def _raw_frame(self, table: str, chunks) -> pd.DataFrame:
        if not chunks:
            return pd.DataFrame()
        data = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
        out = {}
        for name, values in data.items():
            if name in _RAW_DATE_COLUMNS:
                out[name] = days_to_datetime(values)
            elif name in _RAW_TEXT.get(table, {}):
                out[name] = pd.Categorical.from_codes(values, categories=_RAW_TEXT[table][name])
            else:
                out[name] = values
        return pd.DataFrame(out)

    @property
    def enterprises(self) -> pd.DataFrame:
        """Enterprises known at the start of :attr:`month` (canonical contract frame, extras ``x_*`` included)."""
        return self._enterprise_frame(day_number(self.month) - 1, founded_before=day_number(self.month))

    def _enterprise_frame(self, horizon: int, founded_before: int) -> pd.DataFrame:
        known = np.flatnonzero(self.founded_day < founded_before)
        closed = np.where(self.closed_day <= horizon, self.closed_day, NO_DAY)[known]
        take = pa.array(known)
        frame = pd.DataFrame(
            {
                "enterprise_id": string_series(self._enterprise_ids_arrow.take(take)),
                "name": string_series(self._names.take(take)),
                "uscc": string_series(pa.array(self._uscc[known])),
                "sector": string_series(labels(SECTOR_CODES, self.sector_index[known])),
                "township": string_series(labels(self.township_names, self.township_index[known])),
                "employees": ints(self.employees[known]),
                "founded_on": days_to_datetime(self.founded_day[known]),
                "closed_on": days_to_datetime(closed),
                **{flag: bools(self.flags[flag][known]) for flag in SPECIAL_FLAGS},
                "x_area_m2": self.area_m2[known],
                "x_park": string_series(labels(self.park_names, self.park_index[known])),
            }
        )
        return as_canonical("enterprises", frame)

    def latent_hazards(self) -> pd.Series:
        """The truth an oracle would plan with: each enterprise's hazards present and not yet found now (general
        and major), indexed by ``enterprise_id`` (``simulate``'s oracle arm; never a feature)."""
        return pd.Series((self._latent_general + self._latent_major).astype(np.float64),
                         index=pd.Index(self.enterprise_ids, name="enterprise_id"), name="latent_hazards")

    def last_expected_accidents(self) -> float:
        """Expected accidents (road traffic included) of the month last stepped, from the true accident
        probabilities (noise-free: the sum of each operating enterprise's probability); NaN before any step."""
        if not self._truth_chunks:
            return float("nan")
        return float(self._truth_chunks[-1]["accident_prob"].sum())

    def tables(self, *, consume: bool = False) -> dict[str, pd.DataFrame]:
        """Everything recorded by the bureau up to :attr:`horizon`, as canonical contract frames.

        A record appears once both its event date and its ``recorded_on`` are on or before the horizon;
        ``rectified_on`` later than the horizon shows as empty (not rectified yet). Deadlines (``rectify_by``)
        and validity ends (``valid_to``) are announced dates and may lie after the horizon.

        ``consume=True`` frees the raw records while converting them (for one-shot generation of big worlds):
        the simulator must not be stepped or asked for records afterwards.
        """
        if "records" in self._consumed:
            raise RuntimeError("this simulator's records were consumed by tables(consume=True)")
        horizon = day_number(self.horizon)
        out = {"enterprises": self._enterprise_frame(horizon, founded_before=horizon + 1)}
        out["inspectors"] = self._roster.frame(horizon)
        for table in contract_tables():
            out[table] = self._contract_frame(table, horizon, consume)
        if consume:
            self._consumed.add("records")
        return out

    def inspector_truth(self) -> pd.DataFrame:
        """Each inspector on the roster (as of :attr:`horizon`) with their hidden stringency: the multiplier of
        the detection probability of the visits they make (a team detects with its members' geometric mean)."""
        return as_canonical("truth_inspectors", self._roster.truth(day_number(self.horizon)))

    def team_multipliers(self, records: Mapping[str, pd.DataFrame]) -> pd.Series:
        """The hidden detection multiplier of each inspection in ``records`` (:meth:`step`'s return): its team's
        geometric mean stringency (1 for a visit without a recorded team), indexed by inspection id; for
        ``simulate``'s account of who went, never a feature."""
        inspections, links = records["inspections"], records["inspection_inspectors"]
        logs = pd.Series(np.log(self._roster.stringency[links["inspector"].to_numpy(dtype=np.int64)]),
                         index=links["inspection"].to_numpy())
        mean_log = logs.groupby(level=0).mean() if len(logs) else logs
        return pd.Series(np.exp(mean_log.reindex(inspections["id"].to_numpy()).fillna(0.0).to_numpy()),
                         index=inspections["id"].to_numpy(), name="team_multiplier")

    def _contract_frame(self, table: str, horizon: int, consume: bool) -> pd.DataFrame:
        raw = self._store.columns(table, consume=consume)
        if raw is None:
            return empty_contract_frame(table)
        event = raw[_EVENT_COLUMN[table]]
        ent = raw["enterprise"]
        keep = ((event <= horizon) & (raw["recorded"] <= horizon) & (event >= self.founded_day[ent])
                & (event <= self.closed_day[ent]))
        for name in list(raw):  # one column at a time, so only one unfiltered copy is alive
            raw[name] = raw[name][keep]
        frame = _CONTRACT_BUILDERS[table](self, raw, horizon)
        if table in TABLE_KEY:
            ids = ID_FORMATS[table](raw["id"])
            enterprise_ids = self._enterprise_ids_arrow.take(pa.array(raw["enterprise"]))
            frame.insert(0, "enterprise_id", string_series(enterprise_ids))
            frame.insert(0, TABLE_KEY[table], string_series(ids))
        return as_canonical(table, frame)

    def truth(self, *, consume: bool = False) -> pd.DataFrame:
        """The hidden truth so far: one row per enterprise and month it operated in.

        Columns (probabilities and intensities are exactly those the simulation drew from):

        - ``accident_prob``: probability of at least one accident (any grade, road traffic included) that month;
        - ``hazard_rate``: expected number of new hazards arising that month (found or not);
        - ``major_share``: share of those new hazards that are major;
        - ``adverse_prob``: probability that month of an accident **or** of at least one new major hazard
          arising, ``1 − (1 − accident_prob) · exp(−hazard_rate · major_share)``. This is the enterprise-side
          part of the default adverse outcome (DESIGN.md §6): whether a major hazard is then *found* depends on
          inspections, and suspensions are the bureau's reaction to those findings and accidents, so neither
          is in the truth;
        - hidden state at the start of the month: ``management`` (quality, higher is better),
          ``latent_hazards`` (not yet found), ``unrectified_major`` (major hazards latent or found and not yet
          rectified — each raises accident risk), ``suspended``.

        ``consume=True`` frees the simulator's copy while converting (see :meth:`tables`).
        """
        if "truth" in self._consumed:
            raise RuntimeError("this simulator's truth was consumed by truth(consume=True)")
        if not self._truth_chunks:
            return empty_contract_frame("truth")
        data = concatenate_chunks(self._truth_chunks, consume=consume)
        if consume:
            self._consumed.add("truth")
        frame = pd.DataFrame(
            {
                "enterprise_id": string_series(self._enterprise_ids_arrow.take(pa.array(data["enterprise"]))),
                "month": days_to_datetime(data["month"]),
                "accident_prob": data["accident_prob"].astype(np.float64),
                "hazard_rate": data["hazard_rate"].astype(np.float64),
                "major_share": data["major_share"].astype(np.float64),
                "adverse_prob": data["adverse_prob"].astype(np.float64),
                "management": data["management"].astype(np.float64),
                "latent_hazards": data["latent_hazards"],
                "unrectified_major": data["unrectified_major"],
                "suspended": data["suspended"],
            },
            copy=False,
        )
        return as_canonical("truth", frame)


_RAW_DATE_COLUMNS = {"inspected", "found", "rectify_by", "rectified", "recorded", "occurred", "decided",
                     "valid_from", "valid_to", "received"}
_EVENT_COLUMN = {"inspections": "inspected", "hazards": "found", "violations": "found", "accidents": "occurred",
                 "penalties": "decided", "credit_records": "valid_from", "complaints": "received",
                 "inspection_inspectors": "inspected"}
TABLE_KEY = {"inspections": "inspection_id", "hazards": "hazard_id", "violations": "violation_id",
             "accidents": "accident_id", "penalties": "penalty_id", "credit_records": "record_id",
             "complaints": "complaint_id"}


def _dates(days) -> np.ndarray:
    return days_to_datetime(days)


def _inspections_frame(sim: WorldSimulator, raw, horizon) -> pd.DataFrame:
    departments = sorted(sim._department_codes, key=sim._department_codes.get)
    return pd.DataFrame({
        "inspected_on": _dates(raw["inspected"]),
        "department": string_series(labels(departments, raw["department"])),
        "kind": string_series(labels(INSPECTION_KINDS, raw["kind"])),
        "n_inspectors": ints(raw["n_inspectors"]), "exam_takers": ints(raw["exam_takers"]),
        "exam_passed": ints(raw["exam_passed"]),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _hazards_frame(sim: WorldSimulator, raw, horizon) -> pd.DataFrame:
    ent = raw["enterprise"]
    # Not rectified by the horizon (or by closing) means not rectified yet.
    rectified = np.where(raw["rectified"] <= np.minimum(horizon, sim.closed_day[ent]), raw["rectified"], NO_DAY)
    has_inspection = raw["inspection"] >= 0
    return pd.DataFrame({
        "inspection_id": string_series(ID_FORMATS["inspections"](np.maximum(raw["inspection"], 0), has_inspection)),
        "found_on": _dates(raw["found"]),
        "level": string_series(labels(HAZARD_LEVELS, raw["level"])),
        "category": string_series(labels(HAZARD_CATEGORIES, raw["category"])),
        "rectify_by": _dates(raw["rectify_by"]),
        "rectified_on": _dates(rectified),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _violations_frame(sim, raw, horizon) -> pd.DataFrame:
    return pd.DataFrame({
        "inspection_id": string_series(ID_FORMATS["inspections"](raw["inspection"])),
        "found_on": _dates(raw["found"]),
        "kind": string_series(labels(VIOLATION_KINDS, raw["kind"])),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _accidents_frame(sim, raw, horizon) -> pd.DataFrame:
    return pd.DataFrame({
        "occurred_on": _dates(raw["occurred"]),
        "grade": string_series(labels(ACCIDENT_GRADES, raw["grade"])),
        "deaths": ints(raw["deaths"]), "serious_injuries": ints(raw["serious_injuries"]),
        "direct_loss_yuan": raw["loss"].astype(np.float64),
        "road_traffic": bools(raw["road_traffic"]), "concealed": bools(raw["concealed"]),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _penalties_frame(sim, raw, horizon) -> pd.DataFrame:
    return pd.DataFrame({
        "decided_on": _dates(raw["decided"]), "amount_yuan": raw["amount"].astype(np.float64),
        "person_penalized": bools(raw["person_penalized"]), "suspension": bools(raw["suspension"]),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _credit_frame(sim, raw, horizon) -> pd.DataFrame:
    return pd.DataFrame({
        "kind": string_series(labels(CREDIT_KINDS, raw["kind"])),
        "value": string_series(labels(CREDIT_VALUES, raw["value"])),
        "valid_from": _dates(raw["valid_from"]), "valid_to": _dates(raw["valid_to"]),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


def _links_frame(sim, raw, horizon) -> pd.DataFrame:
    """Who made each inspection (kept exactly when the inspection is: same dates, same enterprise)."""
    # Sorted by key on the numbers (fixed-width ids sort as their numbers do): far cheaper than sorting the text.
    order = np.lexsort((sim._roster.hire_number[raw["inspector"]], raw["inspection"]))
    return pd.DataFrame({
        "inspection_id": string_series(ID_FORMATS["inspections"](raw["inspection"][order])),
        "inspector_id": string_series(sim._roster.ids.take(pa.array(raw["inspector"][order]))),
    }, copy=False)


def _complaints_frame(sim, raw, horizon) -> pd.DataFrame:
    return pd.DataFrame({
        "received_on": _dates(raw["received"]), "substantiated": bools(raw["substantiated"]),
        "recorded_on": _dates(raw["recorded"]),
    }, copy=False)


_CONTRACT_BUILDERS = {
    "inspections": _inspections_frame,
    "hazards": _hazards_frame,
    "violations": _violations_frame,
    "accidents": _accidents_frame,
    "penalties": _penalties_frame,
    "credit_records": _credit_frame,
    "complaints": _complaints_frame,
    "inspection_inspectors": _links_frame,
}


# =============================================================================================
# Today's inspection practice (the default policy)
# =============================================================================================

def default_inspection_policy(
    sim: WorldSimulator, rng: np.random.Generator, practice: RoutinePractice = ROUTINE_PRACTICE
) -> pd.DataFrame:
    """This month's visits as a bureau plans them today: by sector, barely by record.

    Uses only what the bureau knew at the start of ``sim.month`` (records recorded last month, remembered in
    ``sim.policy_state``): routine visits at sector rates (high-risk sectors 3-5 a year, others 0.35-1.4),
    scaled by a historical focus list unrelated to risk and by at most ``targeting_strength`` for bad recent
    records; plus a visit for most complaints, an investigation after every accident, and a follow-up after
    the deadline of most major hazards.
    """
    n = sim.n_enterprises
    state = sim.policy_state.setdefault("routine_practice", {})
    if "focus" not in state:
        state["focus"] = rng.lognormal(-practice.focus_sigma**2 / 2, practice.focus_sigma, n)
        state["signal"] = np.zeros(n)
        state["follow_ups"] = {}
    month = sim.month
    index = sim.months_done
    previous = _month_first_day(month, -1)

    def known(table: str) -> pd.DataFrame:
        return sim.recorded_between(table, previous, month)

    hazards, accidents = known("hazards"), known("accidents")
    penalties, complaints, violations = known("penalties"), known("complaints"), known("violations")

    def per_enterprise(frame: pd.DataFrame, weights=None) -> np.ndarray:
        if frame.empty:
            return np.zeros(n)
        return np.bincount(frame["enterprise"], weights=weights, minlength=n)

    # Record signal with a half-life: majors, accidents and penalties weigh most.
    decay = 0.5 ** (1 / practice.signal_half_life_months)
    majors = hazards[hazards["level"] == "major"] if not hazards.empty else hazards
    state["signal"] = (state["signal"] * decay + per_enterprise(majors) + 2 * per_enterprise(accidents)
                       + per_enterprise(penalties) + 0.3 * per_enterprise(violations)
                       + 0.05 * per_enterprise(hazards))

    # Follow-ups: after the deadline of inspection-found major hazards.
    if not majors.empty:
        found_at_visit = majors[majors["inspection"] >= 0]
        chosen = found_at_visit[rng.random(len(found_at_visit)) < practice.follow_up_share]
        due_day = chosen["rectify_by"].to_numpy("datetime64[D]") + rng.integers(1, 21, len(chosen))
        due_month = due_day.astype("datetime64[M]") - np.datetime64(sim.start, "M")
        due_index = np.maximum(due_month.astype(np.int64), index)
        for due in np.unique(due_index):
            state["follow_ups"].setdefault(int(due), []).append(chosen["enterprise"].to_numpy()[due_index == due])

    plannable = sim.plannable
    sector = sim.sector_index
    rate = np.array([practice.visits_per_year[c] for c in SECTOR_CODES])[sector] / 12
    targeting = 1 + practice.targeting_strength * np.minimum(state["signal"], 2.0) / 2.0
    season = practice.month_factor[month.month - 1] / np.mean(practice.month_factor)
    routine_count = rng.poisson(rate * state["focus"] * targeting * season * plannable)
    routine = np.repeat(np.arange(n), routine_count)
    high_risk = np.isin(sector[routine], [SECTOR_CODES.index(c) for c in HIGH_RISK_SECTORS])
    kind_codes = np.empty(len(routine), dtype=np.int64)
    for is_high, shares in ((True, practice.kind_shares_high_risk), (False, practice.kind_shares_other)):
        rows = high_risk == is_high
        p = np.array([shares.get(k, 0.0) for k in ROUTINE_VISIT_KINDS])
        picked = rng.choice(len(ROUTINE_VISIT_KINDS), rows.sum(), p=p / p.sum())
        kind_codes[rows] = np.array([_KIND[k] for k in ROUTINE_VISIT_KINDS])[picked]

    lead = np.array([LEAD_DEPARTMENT[c] for c in SECTOR_CODES], dtype=object)
    other_department = np.where(rng.random(len(routine)) < 0.5, "消防", "市场监管")
    by_other = (rng.random(len(routine)) < practice.other_department_share) & (kind_codes != _KIND["joint"])
    routine_department = np.where(by_other, other_department, lead[sector[routine]])

    parts = [(routine, kind_codes, routine_department,
              2 + rng.choice(3, len(routine), p=practice.inspectors_shares))]
    if not complaints.empty:
        answered = complaints["enterprise"].to_numpy()[rng.random(len(complaints)) < practice.complaint_visit_share]
        parts.append((answered, np.full(len(answered), _KIND["complaint"]), lead[sector[answered]],
                      np.full(len(answered), 2)))
    if not accidents.empty:
        investigated = accidents["enterprise"].to_numpy()
        department = np.where(accidents["road_traffic"].to_numpy(), "交通", "应急")
        parts.append((investigated, np.full(len(investigated), _KIND["accident_investigation"]), department,
                      np.full(len(investigated), 3)))
    due = state["follow_ups"].pop(index, [])
    if due:
        followed = np.concatenate(due)
        parts.append((followed, np.full(len(followed), _KIND["follow_up"]), lead[sector[followed]],
                      np.full(len(followed), 2)))
    who = np.concatenate([p[0] for p in parts]).astype(np.int64)
    return pd.DataFrame(
        {
            "enterprise_id": sim.enterprise_ids[who],
            "kind": np.asarray(INSPECTION_KINDS, dtype=object)[np.concatenate([p[1] for p in parts]).astype(int)],
            "department": np.concatenate([np.asarray(p[2], dtype=object) for p in parts]),
            "n_inspectors": np.concatenate([p[3] for p in parts]).astype(np.int64),
        }
    )


# =============================================================================================
# Whole worlds: generate, write, describe
# =============================================================================================

Policy = Callable[[WorldSimulator, np.random.Generator], pd.DataFrame]


def generate_world(
    n_enterprises: int,
    years: int,
    seed: int,
    start: date = date(2021, 1, 1),
    params: WorldParams | None = None,
    policy: Policy = default_inspection_policy,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Simulate ``years`` × 12 months under ``policy``; all contract tables (canonical frames) plus ``truth``.

    The policy gets its own random stream (derived from ``seed``), so the world's draws do not depend on how
    many random numbers a policy consumes. ``progress(months_done, months_total)`` is called after each month.
    """
    sim = WorldSimulator(n_enterprises, start, seed, params, years=years)
    policy_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(100,)))
    months = int(round(12 * years))
    for done in range(1, months + 1):
        sim.step(policy(sim, policy_rng))
        if progress is not None:
            progress(done, months)
    truth = sim.truth(consume=True)  # the largest table first, freeing memory for the others
    inspector_truth = sim.inspector_truth()
    tables = sim.tables(consume=True)
    tables["truth"] = truth
    tables["truth_inspectors"] = inspector_truth
    return tables


def write_world(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each table as ``<out_dir>/<table>.csv`` (UTF-8, ISO dates, empty cells for missing values).

    The truth's probabilities are written with about 7 significant digits (float32), plenty for an oracle.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        float32_columns = [c for c in frame.columns if frame[c].dtype.kind == "f"] if name == "truth" else []
        write_csv(frame, path, float32_columns=float32_columns)
        written.append(path)
    return written


# =============================================================================================
# Command line: python -m data_samples.world --out data_samples/sample
# =============================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic world as contract CSV files plus truth.csv.")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--enterprises", type=int, default=300)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2022, 1, 1))
    args = parser.parse_args(argv)
    began = time.perf_counter()
    tables = generate_world(args.enterprises, args.years, args.seed, start=args.start)
    write_world(tables, args.out)
    for name, frame in tables.items():
        print(f"{name:16s} {len(frame):>10,d} rows")
    print(format_stats(world_stats(tables, tables["truth"])))
    print(f"written to {args.out} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
