"""Risk tiers: calibrated probability → low / general / high, then overrides (DESIGN.md §8).

Pure functions: DataFrames in, DataFrames out, the as-of date an explicit argument. The database side of
manual overrides lives in :mod:`scoring.results.tables`; this module only receives the overrides active at the date.

Time semantics: every event is used only if it was **known before** the as-of date, i.e. its event date
(``occurred_on``, ``found_on``, ``decided_on``, ``valid_from``) **and** its ``recorded_on`` are strictly before
``as_of``. A window of ``N`` days means event date in ``[as_of − N days, as_of)``. A credit record is *valid at
the date* when ``valid_from < as_of`` (known) and ``valid_to`` is empty or ``valid_to >= as_of`` (``valid_to`` is
the last valid day).

The steps, in order (each one visible in the output):

1. ``model_tier`` — by score only: quota (top ``high_share`` high, bottom ``low_share`` low) or fixed probability
   thresholds, see :data:`CUTOFF_METHODS`.
2. low eligibility — a model-low enterprise stays low only with a clean record (``eligibility`` says what is
   missing); otherwise it becomes general.
3. one-vote vetoes (一票否决) — :data:`VETO_RULES`: high whatever the score, with their cause; some also raise
   the special-assistance flag (专项帮扶).
4. hysteresis — an enterprise whose previous final tier was high stays high until no run has scored it high for
   ``demotion_hold_days`` (counted from the last run whose ``model_tier`` was high; vetoes and manual overrides
   have their own durations and do not extend the hold).
5. manual overrides — who / why / until when; the latest created wins; by default one cannot lift a veto.

Output of :func:`assign_tiers`: a :class:`TierResult` with ``tiers`` (one row per scored enterprise) and
``cutoffs`` (the cut-offs explained as a table).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.contract import ACCIDENT_GRADES, accident_grade
from features.errors import DataError
from features.frames import Tables, canonical_frame, is_in

TIERS: tuple[str, ...] = ("low", "general", "high")
TIER_LABELS_ZH = {"low": "低风险", "general": "一般风险", "high": "高风险"}
_TIER_RANK = {tier: rank for rank, tier in enumerate(TIERS)}

__all__ = [
    "TIERS",
    "CUTOFF_METHODS",
    "VETO_RULES",
    "LowEligibility",
    "TierPolicy",
    "OverridePolicy",
    "TierResult",
    "assign_tiers",
    "cluster_accident_counts",
    "combine_cutoff_tables",
    "low_eligibility",
    "model_cutoffs",
    "score_ranks",
    "vetoes",
    "known_before",
    "lookup",
]


# ---------------------------------------------------------------------------------------------
# Policy sections ([tiers], [overrides])
# ---------------------------------------------------------------------------------------------


def _check_share(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError((key, f"expected a number between 0 and 1, got {value!r}"))


def _check_days(value: int, key: str, minimum: int = 0) -> None:
    if value < minimum:
        raise ValueError((key, f"expected a whole number of days >= {minimum}, got {value!r}"))


@dataclass(frozen=True)
class LowEligibility:
    """``[tiers.low_eligibility]``: the clean record that low risk also needs."""

    accident_free_days: int
    major_hazard_free_days: int
    penalty_free_days: int
    require_commitment: bool
    require_not_blacklisted: bool
    exclude_road_traffic: bool

    def validate(self) -> None:
        for key in ("accident_free_days", "major_hazard_free_days", "penalty_free_days"):
            _check_days(getattr(self, key), key)


@dataclass(frozen=True)
class TierPolicy:
    """``[tiers]``: how a probability becomes a tier, and the demotion hold."""

    method: str
    high_share: float
    low_share: float
    high_probability: float
    low_probability: float
    demotion_hold_days: int
    low_eligibility: LowEligibility

    def validate(self) -> None:
        if self.method not in CUTOFF_METHODS:
            raise ValueError(("method", f"expected one of {', '.join(map(repr, CUTOFF_METHODS))}, got {self.method!r}"))
        for key in ("high_share", "low_share", "high_probability", "low_probability"):
            _check_share(getattr(self, key), key)
        if self.high_share + self.low_share > 1.0:
            raise ValueError(("low_share", f"high_share + low_share must not exceed 1, got "
                                           f"{self.high_share} + {self.low_share}"))
        if self.low_probability >= self.high_probability:
            raise ValueError(("low_probability", f"must be below high_probability ({self.high_probability}), "
                                                 f"got {self.low_probability}"))
        _check_days(self.demotion_hold_days, "demotion_hold_days")


@dataclass(frozen=True)
class BlacklistRule:
    enabled: bool


@dataclass(frozen=True)
class SeriousAccidentRule:
    enabled: bool
    min_grade: str
    days: int

    def validate(self) -> None:
        if self.min_grade not in ACCIDENT_GRADES:
            raise ValueError(("min_grade", f"expected one of {', '.join(map(repr, ACCIDENT_GRADES))}, "
                                           f"got {self.min_grade!r}"))
        _check_days(self.days, "days", 1)


@dataclass(frozen=True)
class OverdueMajorHazardRule:
    enabled: bool


@dataclass(frozen=True)
class RepeatAccidentsRule:
    enabled: bool
    count: int
    within_days: int
    lookback_days: int

    def validate(self) -> None:
        if self.count < 2:
            raise ValueError(("count", f"a repeat needs at least 2 accidents, got {self.count!r}"))
        _check_days(self.within_days, "within_days", 1)
        _check_days(self.lookback_days, "lookback_days", 1)


@dataclass(frozen=True)
class SectorClusterRule:
    enabled: bool
    count: int
    days: int
    scope: str

    def validate(self) -> None:
        if self.count < 1:
            raise ValueError(("count", f"expected a whole number >= 1, got {self.count!r}"))
        _check_days(self.days, "days", 1)
        if self.scope not in CLUSTER_SCOPES:
            raise ValueError(("scope", f"expected one of {', '.join(map(repr, CLUSTER_SCOPES))}, got {self.scope!r}"))


@dataclass(frozen=True)
class ManualOverridePolicy:
    max_days: int
    may_lower_veto: bool

    def validate(self) -> None:
        _check_days(self.max_days, "max_days", 1)


@dataclass(frozen=True)
class OverridePolicy:
    """``[overrides]``: the one-vote vetoes (一票否决) and the manual-override rules."""

    exclude_road_traffic: bool
    blacklist: BlacklistRule
    serious_accident: SeriousAccidentRule
    overdue_major_hazard: OverdueMajorHazardRule
    repeat_accidents: RepeatAccidentsRule
    sector_cluster: SectorClusterRule
    manual: ManualOverridePolicy


# ---------------------------------------------------------------------------------------------
# Event helpers
# ---------------------------------------------------------------------------------------------


def as_timestamp(value: date | str | pd.Timestamp) -> pd.Timestamp:
    """The as-of date as a midnight ``Timestamp`` (accepts ``date``, ISO text or ``Timestamp``)."""
    return pd.Timestamp(value).normalize()


def table(tables: Tables, name: str) -> pd.DataFrame:
    """The canonical table ``name``, or an empty one with the contract's columns when absent."""
    frame = tables.get(name)
    return canonical_frame(name, pd.DataFrame()) if frame is None else frame


def lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values[key]`` for each key (missing: NA), keeping ``keys``' index.

    Like ``keys.map(values)``, which pandas cannot do with an empty datetime Series.
    """
    values = values.loc[~values.index.duplicated(keep="last")]
    return values.reindex(keys.to_numpy()).set_axis(keys.index)


def known_before(frame: pd.DataFrame, date_column: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rows whose ``date_column`` and ``recorded_on`` are both strictly before ``as_of``."""
    mask = frame[date_column] < as_of
    if "recorded_on" in frame.columns:
        mask &= frame["recorded_on"].fillna(frame[date_column]) < as_of
    return frame.loc[mask.fillna(False).astype(bool)]


def in_window(frame: pd.DataFrame, date_column: str, as_of: pd.Timestamp, days: int) -> pd.DataFrame:
    """Known rows whose ``date_column`` lies in ``[as_of − days, as_of)``."""
    known = known_before(frame, date_column, as_of)
    return known.loc[known[date_column] >= as_of - pd.Timedelta(days=days)]


def valid_at(credit: pd.DataFrame, kind: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Known credit records of ``kind`` valid at ``as_of`` (``valid_to`` empty or on/after the date)."""
    known = known_before(credit.loc[credit["kind"] == kind], "valid_from", as_of)
    return known.loc[known["valid_to"].isna() | (known["valid_to"] >= as_of)]


def _accidents(tables: Tables, *, exclude_road_traffic: bool) -> pd.DataFrame:
    """Accidents with ``grade`` filled from casualties where empty, road traffic dropped on request."""
    accidents = table(tables, "accidents")
    if exclude_road_traffic:
        accidents = accidents.loc[~accidents["road_traffic"].fillna(False).astype(bool)]
    missing = accidents["grade"].isna()
    if missing.any():
        accidents = accidents.copy()
        accidents.loc[missing, "grade"] = [
            accident_grade(int(d), int(s), float(m))
            for d, s, m in zip(
                accidents.loc[missing, "deaths"].fillna(0),
                accidents.loc[missing, "serious_injuries"].fillna(0),
                accidents.loc[missing, "direct_loss_yuan"].fillna(0.0),
                strict=True,
            )
        ]
    return accidents


def _day(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


# ---------------------------------------------------------------------------------------------
# 1. model tier: cut-off methods (a registry, not an if/elif chain)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cutoffs:
    """``high`` if probability >= ``high``; ``low`` if probability <= ``low`` (and eligible)."""

    high: float
    low: float
    high_rule: str
    low_rule: str


def _quota_cutoffs(probability: np.ndarray, policy: TierPolicy) -> Cutoffs:
    """Top ``high_share`` (rounded up) high, bottom ``low_share`` (rounded down) low.

    Equal scores get equal tiers: when a block of tied scores straddles a cut, the whole block goes to the side
    that leaves the tier's size closest to its quota; at equal distance the block is high (erring on safety)
    and not low (low needs a clear margin).
    """
    n = len(probability)
    k_high = math.ceil(policy.high_share * n - 1e-9)
    k_low = math.floor(policy.low_share * n + 1e-9)
    high = _cut(-probability, k_high, include_on_equal=True)
    low = _cut(probability, k_low, include_on_equal=False)
    return Cutoffs(
        high=-high,
        low=low,
        high_rule=f"top {policy.high_share:.0%} of {n:,} scored ({k_high:,}; a tied block at the cut goes where "
                  f"the count stays closest)",
        low_rule=f"bottom {policy.low_share:.0%} of {n:,} scored ({k_low:,}; a tied block at the cut goes where "
                 f"the count stays closest), and eligible",
    )


def _cut(values: np.ndarray, k: int, *, include_on_equal: bool) -> float:
    """The largest ``c`` such that ``values <= c`` selects about the ``k`` smallest (−inf: none), tie blocks
    kept whole (see :func:`_quota_cutoffs`)."""
    if k <= 0 or len(values) == 0:
        return -math.inf
    ordered = np.sort(values)
    c = ordered[min(k, len(ordered)) - 1]
    n_le = int(np.searchsorted(ordered, c, side="right"))
    n_lt = int(np.searchsorted(ordered, c, side="left"))
    if n_le == k:
        return float(c)
    include = (n_le - k) < (k - n_lt) or ((n_le - k) == (k - n_lt) and include_on_equal)
    if include:
        return float(c)
    return float(ordered[n_lt - 1]) if n_lt > 0 else -math.inf


def _threshold_cutoffs(probability: np.ndarray, policy: TierPolicy) -> Cutoffs:
    return Cutoffs(
        high=policy.high_probability,
        low=policy.low_probability,
        high_rule=f"probability ≥ {policy.high_probability:g}",
        low_rule=f"probability ≤ {policy.low_probability:g}, and eligible",
    )


CUTOFF_METHODS: Mapping[str, Callable[[np.ndarray, TierPolicy], Cutoffs]] = {
    "quota": _quota_cutoffs,
    "threshold": _threshold_cutoffs,
}


# ---------------------------------------------------------------------------------------------
# 2. low eligibility
# ---------------------------------------------------------------------------------------------


def low_eligibility(tables: Tables, enterprise_ids: pd.Index, *, as_of, policy: LowEligibility) -> pd.Series:
    """Why each enterprise may not be low: ``""`` when eligible, else the missing conditions joined by "; ".

    Counts, known before ``as_of``: accidents in the last ``accident_free_days`` (road traffic included unless
    ``exclude_road_traffic``), major hazards found in the last ``major_hazard_free_days``, penalties decided in
    the last ``penalty_free_days``; a commitment record valid at ``as_of``; no blacklist record valid at it.
    """
    as_of = as_timestamp(as_of)
    ids = pd.Index(enterprise_ids, name="enterprise_id")
    problems: dict[str, pd.Index] = {}
    accidents = in_window(_accidents(tables, exclude_road_traffic=policy.exclude_road_traffic),
                          "occurred_on", as_of, policy.accident_free_days)
    problems[f"accident in {policy.accident_free_days} days 近期发生事故"] = pd.Index(accidents["enterprise_id"])
    hazards = table(tables, "hazards")
    majors = in_window(hazards.loc[hazards["level"] == "major"], "found_on", as_of, policy.major_hazard_free_days)
    problems[f"major hazard in {policy.major_hazard_free_days} days 近期存在重大隐患"] = pd.Index(majors["enterprise_id"])
    penalties = in_window(table(tables, "penalties"), "decided_on", as_of, policy.penalty_free_days)
    problems[f"penalty in {policy.penalty_free_days} days 近期受到行政处罚"] = pd.Index(penalties["enterprise_id"])
    credit = table(tables, "credit_records")
    if policy.require_commitment:
        signed = pd.Index(valid_at(credit, "commitment", as_of)["enterprise_id"])
        problems["no valid commitment 未签订有效承诺书"] = ids.difference(signed)
    if policy.require_not_blacklisted:
        problems["blacklisted 列入严重失信名单"] = pd.Index(valid_at(credit, "blacklist", as_of)["enterprise_id"])
    reasons = pd.Series("", index=ids, dtype="str")
    for text, offenders in problems.items():
        hit = is_in(ids, offenders)
        reasons[hit] = (reasons[hit] + "; " + text).str.removeprefix("; ")
    return reasons


# ---------------------------------------------------------------------------------------------
# 3. one-vote vetoes (一票否决): a registry of rules, each (rule policy, events, as_of) -> hits
# ---------------------------------------------------------------------------------------------

_HIT_COLUMNS = ["enterprise_id", "code", "cause", "veto", "special_assistance"]


def _hits(ids, code: str, causes, *, veto: bool = True, special_assistance: bool = False) -> pd.DataFrame:
    ids = list(ids)
    causes = list(causes) if not isinstance(causes, str) else [causes] * len(ids)
    return pd.DataFrame({
        "enterprise_id": pd.Series(ids, dtype="str"),
        "code": pd.Series([code] * len(ids), dtype="str"),
        "cause": pd.Series(causes, dtype="str"),
        "veto": pd.Series([veto] * len(ids), dtype=bool),
        "special_assistance": pd.Series([special_assistance] * len(ids), dtype=bool),
    }, columns=_HIT_COLUMNS)


@dataclass(frozen=True)
class _Events:
    enterprises: pd.DataFrame
    accidents: pd.DataFrame  # road traffic already dropped if the policy says so, grades filled
    hazards: pd.DataFrame
    credit: pd.DataFrame
    # Recent accidents per cluster over all enterprises, when these events are one partition of them
    # (None: count over these events).
    cluster_counts: pd.Series | None = None


def _blacklist(rule: BlacklistRule, events: _Events, as_of: pd.Timestamp) -> pd.DataFrame:
    active = valid_at(events.credit, "blacklist", as_of).sort_values("valid_from")
    first = active.drop_duplicates("enterprise_id")
    return _hits(first["enterprise_id"], "blacklist",
                 [f"blacklisted since {_day(d)} 列入严重失信名单" for d in first["valid_from"]])


def _serious_accident(rule: SeriousAccidentRule, events: _Events, as_of: pd.Timestamp) -> pd.DataFrame:
    worse = ACCIDENT_GRADES[ACCIDENT_GRADES.index(rule.min_grade):]
    recent = in_window(events.accidents, "occurred_on", as_of, rule.days)
    recent = recent.loc[recent["grade"].isin(worse)].sort_values("occurred_on", ascending=False)
    latest = recent.drop_duplicates("enterprise_id")
    return _hits(latest["enterprise_id"], "serious_accident",
                 [f"{g} accident on {_day(d)} 发生{_GRADE_ZH[g]}事故" for g, d in zip(latest["grade"],
                                                                             latest["occurred_on"], strict=True)])


_GRADE_ZH = {"general": "一般", "larger": "较大", "major": "重大", "especially_major": "特别重大"}


def _overdue_major_hazard(rule: OverdueMajorHazardRule, events: _Events, as_of: pd.Timestamp) -> pd.DataFrame:
    known = known_before(events.hazards.loc[events.hazards["level"] == "major"], "found_on", as_of)
    overdue = known.loc[(known["rectify_by"] < as_of)
                        & (known["rectified_on"].isna() | (known["rectified_on"] >= as_of))]
    first = overdue.sort_values("rectify_by").drop_duplicates("enterprise_id")
    return _hits(first["enterprise_id"], "overdue_major_hazard",
                 [f"major hazard {h} unrectified past {_day(d)} 重大隐患逾期未整改"
                  for h, d in zip(first["hazard_id"], first["rectify_by"], strict=True)])


def _repeat_accidents(rule: RepeatAccidentsRule, events: _Events, as_of: pd.Timestamp) -> pd.DataFrame:
    # Any window of `within_days` holding `count` accidents, whose latest accident is in the lookback.
    known = known_before(events.accidents, "occurred_on", as_of)
    span = pd.Timedelta(days=rule.lookback_days + rule.within_days)
    known = known.loc[known["occurred_on"] >= as_of - span].sort_values(["enterprise_id", "occurred_on"])
    dates = known["occurred_on"]
    earlier = known.groupby("enterprise_id")["occurred_on"].shift(rule.count - 1)
    hit = (dates - earlier <= pd.Timedelta(days=rule.within_days)) & (
        dates >= as_of - pd.Timedelta(days=rule.lookback_days))
    hits = known.loc[hit.fillna(False)].drop_duplicates("enterprise_id", keep="last")
    return _hits(hits["enterprise_id"], "repeat_accidents",
                 [f"{rule.count} accidents within {rule.within_days} days, latest {_day(d)} "
                  f"{rule.within_days}日内发生{rule.count}起事故" for d in hits["occurred_on"]],
                 special_assistance=True)


def _cluster_key_township(enterprises: pd.DataFrame) -> pd.Series:
    return enterprises["sector"].str.cat(enterprises["township"], sep=" / ")  # NA township: no cluster


def _cluster_key_jurisdiction(enterprises: pd.DataFrame) -> pd.Series:
    return enterprises["sector"].astype("str")


CLUSTER_SCOPES: Mapping[str, Callable[[pd.DataFrame], pd.Series]] = {
    "township": _cluster_key_township,
    "jurisdiction": _cluster_key_jurisdiction,
}


def _cluster_accidents(rule: SectorClusterRule, events: _Events, as_of: pd.Timestamp):
    """The events' enterprises with their cluster, and their accidents of the last ``days`` with theirs."""
    enterprises = events.enterprises.assign(cluster=CLUSTER_SCOPES[rule.scope](events.enterprises))
    enterprises = enterprises.loc[enterprises["cluster"].notna()]
    recent = in_window(events.accidents, "occurred_on", as_of, rule.days)
    return enterprises, recent.merge(enterprises[["enterprise_id", "cluster"]], on="enterprise_id")


def cluster_accident_counts(tables: Tables, *, as_of, policy: OverridePolicy) -> pd.Series:
    """Accidents of the sector-cluster rule's window per cluster, over ``tables``' enterprises (index: cluster).

    The one cross-enterprise quantity of the vetoes: on partitioned data each partition counts its own, the
    counts are added up (every accident belongs to one enterprise, so to one partition) and handed to
    :func:`vetoes` / :func:`assign_tiers` of every partition (``cluster_counts=``).
    """
    rule = policy.sector_cluster
    events = _Events(enterprises=table(tables, "enterprises"),
                     accidents=_accidents(tables, exclude_road_traffic=policy.exclude_road_traffic),
                     hazards=table(tables, "hazards"), credit=table(tables, "credit_records"))
    _, recent = _cluster_accidents(rule, events, as_timestamp(as_of))
    return recent.groupby("cluster").size().astype("int64")


def _sector_cluster(rule: SectorClusterRule, events: _Events, as_of: pd.Timestamp) -> pd.DataFrame:
    """``count`` accidents in one cluster (sector, or sector × township) in the last ``days``.

    The enterprises that had one of the accidents are forced high (veto) and flagged for special assistance;
    every other enterprise of the cluster gets the special-assistance flag only (举一反三: the whole local
    sector is helped, but only the enterprises with accidents are moved to focused supervision).
    """
    enterprises, recent = _cluster_accidents(rule, events, as_of)
    counts = recent.groupby("cluster").size() if events.cluster_counts is None else events.cluster_counts
    clusters = counts.index[counts >= rule.count]
    if len(clusters) == 0:
        return _hits([], "sector_cluster", [])
    cause = {c: f"{counts[c]} accidents in {c} within {rule.days} days 同行业{rule.days}日内发生{counts[c]}起事故"
             for c in clusters}
    struck = recent.loc[is_in(recent["cluster"], clusters)].drop_duplicates("enterprise_id")
    peers = enterprises.loc[is_in(enterprises["cluster"], clusters)
                            & ~is_in(enterprises["enterprise_id"], struck["enterprise_id"])]
    return pd.concat([
        _hits(struck["enterprise_id"], "sector_cluster", struck["cluster"].map(cause), special_assistance=True),
        _hits(peers["enterprise_id"], "sector_cluster_peer", peers["cluster"].map(cause), veto=False,
              special_assistance=True),
    ], ignore_index=True)


VETO_RULES: Mapping[str, Callable] = {
    "blacklist": _blacklist,
    "serious_accident": _serious_accident,
    "overdue_major_hazard": _overdue_major_hazard,
    "repeat_accidents": _repeat_accidents,
    "sector_cluster": _sector_cluster,
}


def vetoes(tables: Tables, *, as_of, policy: OverridePolicy, cluster_counts: pd.Series | None = None) -> pd.DataFrame:
    """Every veto hit at ``as_of``: ``enterprise_id, code, cause, veto, special_assistance`` (one row per hit).

    ``cluster_counts``: :func:`cluster_accident_counts` over all enterprises when ``tables`` hold one partition
    of them (default: counted over ``tables``)."""
    as_of = as_timestamp(as_of)
    events = _Events(
        enterprises=table(tables, "enterprises"),
        accidents=_accidents(tables, exclude_road_traffic=policy.exclude_road_traffic),
        hazards=table(tables, "hazards"),
        credit=table(tables, "credit_records"),
        cluster_counts=cluster_counts,
    )
    frames = [rule_fn(getattr(policy, name), events, as_of)
              for name, rule_fn in VETO_RULES.items() if getattr(policy, name).enabled]
    return pd.concat(frames, ignore_index=True) if frames else _hits([], "", [])


# ---------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierResult:
    """Tiers at one as-of date and the cut-offs that produced them."""

    tiers: pd.DataFrame
    cutoffs: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Counts per tier: by model, after eligibility and overrides, with special assistance."""
        frame = self.tiers
        return pd.DataFrame({
            "tier": list(TIERS),
            "label_zh": [TIER_LABELS_ZH[t] for t in TIERS],
            "model": [int((frame["model_tier"] == t).sum()) for t in TIERS],
            "final": [int((frame["final_tier"] == t).sum()) for t in TIERS],
            "special_assistance": [int((frame["special_assistance"] & (frame["final_tier"] == t)).sum())
                                   for t in TIERS],
        })


_HISTORY_COLUMNS = ("enterprise_id", "as_of", "model_tier", "final_tier")
_MANUAL_COLUMNS = ("enterprise_id", "tier", "reason", "created_by", "valid_until")


def assign_tiers(
    scores: pd.DataFrame,
    tables: Tables,
    *,
    as_of,
    tiers: TierPolicy,
    overrides: OverridePolicy,
    history: pd.DataFrame | None = None,
    manual: pd.DataFrame | None = None,
    cutoffs: Cutoffs | None = None,
    score_rank: np.ndarray | None = None,
    cluster_counts: pd.Series | None = None,
) -> TierResult:
    """Tier every scored enterprise at ``as_of``.

    ``scores``: ``enterprise_id``, ``probability`` (calibrated, 0..1), optionally ``points``.
    ``tables``: canonical contract tables (:mod:`features.frames`); absent optional tables count as empty.
    ``history``: previous runs, ``enterprise_id, as_of, model_tier, final_tier`` (runs on or after ``as_of``
    are ignored, so a re-run gives the same answer). ``manual``: the manual overrides active at ``as_of``
    (:func:`scoring.results.tables.overrides_active_at`), ``enterprise_id, tier, reason, created_by, valid_until``
    and optionally ``created_at`` / ``override_id`` to pick the latest when several are active.

    Returns ``tiers``: ``enterprise_id, as_of, probability, [points], rank, model_tier, eligibility,
    final_tier, veto, special_assistance, override_codes, override_cause`` and the ``cutoffs`` table.

    On partitioned data (``scores`` and ``tables`` one partition of the enterprises) the three quantities that
    cross enterprises come from a global step: ``cutoffs`` (:func:`model_cutoffs` of every probability),
    ``score_rank`` (:func:`score_ranks` of every probability, this partition's slice, in ``scores``' order) and
    ``cluster_counts`` (:func:`cluster_accident_counts` added up); the cut-off table then counts this partition
    only (:func:`combine_cutoff_tables` adds the partitions up). Default: all computed from ``scores``.
    """
    as_of = as_timestamp(as_of)
    frame = _checked_scores(scores)
    probability = frame["probability"].to_numpy(dtype=float)
    if cutoffs is None:
        cutoffs = model_cutoffs(probability, tiers)
    if score_rank is None:
        score_rank = score_ranks(probability)
    elif len(score_rank) != len(frame):
        raise ValueError(f"score_rank has {len(score_rank)} ranks for {len(frame)} scores")

    frame["rank"] = pd.array(np.asarray(score_rank, dtype=np.int64), dtype="Int64")
    model = np.where(probability >= cutoffs.high, "high", np.where(probability <= cutoffs.low, "low", "general"))
    frame["model_tier"] = pd.Series(model, index=frame.index, dtype="str")
    ids = pd.Index(frame["enterprise_id"])
    frame["eligibility"] = low_eligibility(tables, ids, as_of=as_of, policy=tiers.low_eligibility).to_numpy()
    rule = frame["model_tier"].where(~((frame["model_tier"] == "low") & (frame["eligibility"] != "")), "general")

    causes: dict[str, list[str]] = {eid: [] for eid in ids}
    codes: dict[str, list[str]] = {eid: [] for eid in ids}
    hits = vetoes(tables, as_of=as_of, policy=overrides, cluster_counts=cluster_counts)
    hits = hits.loc[is_in(hits["enterprise_id"], ids)]
    for hit in hits.itertuples(index=False):
        codes[hit.enterprise_id].append(hit.code)
        causes[hit.enterprise_id].append(hit.cause)
    vetoed = is_in(ids, hits.loc[hits["veto"], "enterprise_id"])
    frame["veto"] = pd.array(vetoed, dtype="boolean")
    frame["special_assistance"] = pd.array(is_in(ids, hits.loc[hits["special_assistance"], "enterprise_id"]),
                                           dtype="boolean")
    rule = rule.where(~vetoed, "high")

    held_until = _hold(frame["enterprise_id"], rule, history, as_of=as_of, hold_days=tiers.demotion_hold_days)
    for eid, until in held_until.items():
        codes[eid].append("hold")
        causes[eid].append(f"held high until {_day(until)} (score below the cut-off for less than "
                           f"{tiers.demotion_hold_days} days) 高风险降级观察期")
    rule = rule.where(~is_in(frame["enterprise_id"], held_until.index), "high")

    final = rule.copy()
    if manual is not None and len(manual):
        final = _apply_manual(frame, final, manual, codes, causes, may_lower_veto=overrides.manual.may_lower_veto)
    frame["final_tier"] = final.astype("str")
    frame["override_codes"] = pd.Series([",".join(codes[e]) for e in ids], index=frame.index, dtype="str")
    frame["override_cause"] = pd.Series(["; ".join(causes[e]) for e in ids], index=frame.index, dtype="str")
    frame["as_of"] = as_of
    columns = ["enterprise_id", "as_of", "probability"] + (["points"] if "points" in frame else []) + [
        "rank", "model_tier", "eligibility", "final_tier", "veto", "special_assistance", "override_codes",
        "override_cause"]
    result = frame[columns].reset_index(drop=True)
    return TierResult(tiers=result, cutoffs=_cutoff_table(result, cutoffs, tiers.method))


def model_cutoffs(probability: np.ndarray, policy: TierPolicy) -> Cutoffs:
    """The model-tier cut-offs of the policy's method over ``probability`` (every scored enterprise)."""
    return CUTOFF_METHODS[policy.method](np.asarray(probability, dtype=float), policy)


def score_ranks(probability: np.ndarray) -> np.ndarray:
    """Rank by probability, highest 1; equal probabilities share the best rank (pandas' ``method="min"``)."""
    return pd.Series(np.asarray(probability, dtype=float)).rank(method="min", ascending=False).to_numpy(
        dtype=np.int64)


def _checked_scores(scores: pd.DataFrame) -> pd.DataFrame:
    for column in ("enterprise_id", "probability"):
        if column not in scores.columns:
            raise DataError(f"scores: missing column {column!r}")
    frame = scores.copy()
    frame["enterprise_id"] = frame["enterprise_id"].astype("str")
    duplicated = frame["enterprise_id"].duplicated()
    if duplicated.any():
        raise DataError(f"scores: enterprise_id {frame.loc[duplicated, 'enterprise_id'].iloc[0]!r} appears twice")
    frame["probability"] = pd.to_numeric(frame["probability"], errors="coerce").astype(float)
    bad = frame["probability"].isna() | (frame["probability"] < 0) | (frame["probability"] > 1)
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise DataError(f"scores: enterprise {row['enterprise_id']!r}: probability must be between 0 and 1, "
                        f"got {scores.loc[row.name, 'probability']}")
    return frame


def _hold(ids: pd.Series, rule: pd.Series, history: pd.DataFrame | None, *, as_of: pd.Timestamp,
          hold_days: int) -> pd.Series:
    """``held_until`` date for enterprises kept high by hysteresis (index: enterprise_id)."""
    empty = pd.Series(dtype="datetime64[ns]", index=pd.Index([], dtype="str", name="enterprise_id"))
    if history is None or len(history) == 0 or hold_days == 0:
        return empty
    missing = [c for c in _HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise DataError(f"tier history: missing column {missing[0]!r}")
    past = history.loc[pd.to_datetime(history["as_of"]) < as_of].assign(as_of=lambda f: pd.to_datetime(f["as_of"]))
    if past.empty:
        return empty
    past = past.assign(enterprise_id=past["enterprise_id"].astype("str"))
    previous = past.sort_values("as_of").drop_duplicates("enterprise_id", keep="last").set_index("enterprise_id")
    last_high = past.loc[past["model_tier"] == "high"].groupby("enterprise_id")["as_of"].max()
    candidates = pd.DataFrame({"enterprise_id": ids.to_numpy(), "rule": rule.to_numpy()})
    candidates = candidates.loc[candidates["rule"] != "high"]
    candidates = candidates.loc[lookup(candidates["enterprise_id"], previous["final_tier"]).eq("high").fillna(False)]
    until = lookup(candidates["enterprise_id"], last_high) + pd.Timedelta(days=hold_days)
    keep = until.notna() & (until > as_of)
    return pd.Series(until[keep].to_numpy(), index=pd.Index(candidates.loc[keep, "enterprise_id"],
                                                            name="enterprise_id"))


def _apply_manual(frame: pd.DataFrame, final: pd.Series, manual: pd.DataFrame, codes, causes, *,
                  may_lower_veto: bool) -> pd.Series:
    missing = [c for c in _MANUAL_COLUMNS if c not in manual.columns]
    if missing:
        raise DataError(f"manual overrides: missing column {missing[0]!r}")
    bad = ~manual["tier"].isin(TIERS)
    if bad.any():
        raise DataError(f"manual overrides: tier must be one of {', '.join(TIERS)}, got {manual.loc[bad, 'tier'].iloc[0]!r}")
    order = [c for c in ("created_at", "override_id") if c in manual.columns]
    latest = (manual.sort_values(order) if order else manual).drop_duplicates("enterprise_id", keep="last")
    latest = latest.assign(enterprise_id=latest["enterprise_id"].astype("str")).set_index("enterprise_id")
    position = pd.Series(frame.index, index=frame["enterprise_id"])
    final = final.copy()
    for eid, row in latest.loc[is_in(latest.index, position.index)].iterrows():
        until = _day(pd.Timestamp(row["valid_until"]))
        vetoed = bool(frame.at[position[eid], "veto"])
        if vetoed and not may_lower_veto and _TIER_RANK[row["tier"]] < _TIER_RANK["high"]:
            codes[eid].append("manual_ignored")
            causes[eid].append(f"manual override to {row['tier']} by {row['created_by']} not applied: a one-vote "
                               f"veto holds 一票否决不可人工下调")
            continue
        final[position[eid]] = row["tier"]
        codes[eid].append("manual")
        causes[eid].append(f"manual override to {row['tier']} by {row['created_by']} until {until}: "
                           f"{row['reason']} 人工调整")
    return final


def combine_cutoff_tables(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """The cut-off tables of the partitions of one run (same cut-offs, each counting its own enterprises) as the
    table of the whole run: counts added up, shares of the total."""
    first = tables[0].copy()
    for column in ("model_count", "final_count"):
        first[column] = np.sum([t[column].to_numpy(dtype=np.int64) for t in tables], axis=0)
    first["final_share"] = first["final_count"] / max(int(first["final_count"].sum()), 1)
    return first


def _cutoff_table(tiers: pd.DataFrame, cutoffs: Cutoffs, method: str) -> pd.DataFrame:
    """One row per tier: the rule in words, the probability bounds it covers and the counts."""
    def count(column: str, tier: str) -> int:
        return int((tiers[column] == tier).sum())

    def bound(value: float) -> float:
        return value if math.isfinite(value) else math.nan

    high, low = bound(cutoffs.high), bound(cutoffs.low)
    rows = [
        ("high", cutoffs.high_rule, f"probability ≥ {high:.6g}" if math.isfinite(cutoffs.high) else "nobody",
         high, 1.0 if math.isfinite(cutoffs.high) else math.nan),
        ("general", "neither high nor low (incl. model-low but not eligible)",
         f"{low:.6g} < probability < {high:.6g}", low, high),
        ("low", cutoffs.low_rule, f"probability ≤ {low:.6g}" if math.isfinite(cutoffs.low) else "nobody",
         0.0 if math.isfinite(cutoffs.low) else math.nan, low),
    ]
    total = max(len(tiers), 1)
    return pd.DataFrame({
        "tier": [r[0] for r in rows],
        "label_zh": [TIER_LABELS_ZH[r[0]] for r in rows],
        "method": method,
        "rule": [r[1] for r in rows],
        "bounds": [r[2] for r in rows],
        "probability_from": [r[3] for r in rows],
        "probability_to": [r[4] for r in rows],
        "model_count": [count("model_tier", r[0]) for r in rows],
        "final_count": [count("final_tier", r[0]) for r in rows],
        "final_share": [count("final_tier", r[0]) / total for r in rows],
    })
