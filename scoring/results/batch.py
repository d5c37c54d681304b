"""The nightly batch (DESIGN.md §10): score every enterprise as of a date and store the decisions, all or nothing.

``riskgrade nightly [--as-of DATE]`` calls :func:`run_nightly`, which goes through :data:`STAGES`:

``lock``      take the database's batch lock (:mod:`scoring.results.lock`); a second run at once is refused
              (:class:`~features.errors.BatchLockedError`, exit code 6) — then a ``running`` row is written to
              ``batch_runs`` **in its own transaction**, so that a crash leaves a trace.
``load``      the contract tables (:func:`features.store.load_tables`) and the data watermark (rows and latest
              ``recorded_on`` per table).
``features``  point-in-time features as of the date (:func:`features.build_features`).
``model``     the MLflow ``champion`` (:func:`models.registry.load_champion`); without one, the policy file's
              expert card, with a warning stored on the run and shown by the CLI. Also the expected-finds champion
              (``riskgrade-expected-finds``, :func:`load_finds_model`) when one is registered; without one the run
              succeeds, its expected-finds columns stay NULL and a warning says so.
``score``     calibrated probability, points and the top 3 reasons (:func:`models.explain.score_frame`); with an
              expected-finds champion, each enterprise's expected finds for a typical team
              (:func:`typical_team_finds`).
``tiers``     tiers with hysteresis from the stored previous run and the manual overrides active at the date
              (:func:`scoring.domain.tiers.assign_tiers`; overrides past their expiry are first marked expired in the
              audit trail — its own small transaction, idempotent).
``limits``    supervision limits (:func:`scoring.domain.supervision.supervision_limits`), the ranked list, tier changes.
``write``     **one transaction**: check we still own the lock, delete the date's previous rows, insert
              ``scores_history`` and ``tier_changes``, mark the date's older run ``superseded`` and this one
              ``succeeded`` with its counts. Any failure before the commit rolls everything back.

Guarantees:

- **All or nothing, re-runnable**: the results of one as-of date are replaced inside one transaction
  (primary key ``(as_of, enterprise_id)``: no duplicates). The same inputs (data, model, policy, manual
  overrides, previous run) give the same rows; only ``run_id`` differs.
- **History**: hysteresis and tier changes compare with the latest stored run dated before the as-of date (each
  row carries the last date its model tier was high, so that one previous run is the whole history needed).
  Re-running an old date does not re-run the later dates that were computed from it.
- **Crash-safe**: a run killed at any point leaves the previous results untouched; its ``batch_runs`` row stays
  ``running`` until it is marked ``failed`` — at once on an exception (the error text is stored), or by the next run
  that finds the dead run's lock (``abandoned``).
- **Pure middle**: :func:`compute_nightly` (features + model → scores → tiers → limits → output rows) does no I/O;
  :func:`run_nightly` only loads, times, and writes.

Exit codes of ``riskgrade nightly`` (as every command, see :mod:`scoring.cli`): 0 success · 1 unexpected failure
(run marked failed) · 2 usage error · 3 bad input data · 4 bad policy file · 6 another run holds the lock.
(5, no champion model, does not occur: the batch falls back to the expert card.)
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.db import write_transaction
from features.errors import DataError
from scoring.results.lock import DEFAULT_STALE_AFTER, BatchLock
from scoring.results.tables import (
    batch_runs,
    create_scoring_tables,
    expire_overrides,
    overrides_active_at,
    previous_tiers,
    refresh_statistics,
    scores_history,
    tier_changes,
)
from scoring.domain.tiers import TIERS

__all__ = [
    "FINDS_COLUMNS",
    "STAGES",
    "TYPICAL_KIND",
    "FindsModel",
    "NightlyResult",
    "NightlyRun",
    "RunContext",
    "ScoringModel",
    "compute_nightly",
    "data_watermark",
    "expert_card_model",
    "hysteresis_history",
    "list_rank",
    "load_finds_model",
    "load_policy_and_hash",
    "load_scoring_model",
    "mark_succeeded",
    "output_rows",
    "policy_fingerprint",
    "run_batch",
    "run_nightly",
    "score_enterprises",
    "tier_change_rows",
    "tier_enterprises",
    "typical_team_finds",
]

STAGES: tuple[str, ...] = ("lock", "load", "features", "model", "score", "tiers", "limits", "write")

#: ``progress(stage, event, message)``: ``event`` is ``"start"``, ``"done"`` or ``"warning"``.
Progress = Callable[[str, str, str], None]
#: Test hook ``checkpoint(point, done, total)``, called at named points of the write transaction
#: (``"deleted"``, ``"scores"`` after each chunk, ``"changes"``, ``"before_commit"``); raising there simulates a crash.
Checkpoint = Callable[[str, int, int], None]

SCORE_COLUMNS: tuple[str, ...] = tuple(c.name for c in scores_history.columns)
CHANGE_COLUMNS: tuple[str, ...] = tuple(c.name for c in tier_changes.columns)
_TIER_ORDER = {tier: i for i, tier in enumerate(TIERS)}  # low 0, general 1, high 2


# ---------------------------------------------------------------------------------------------
# The model to score with
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringModel:
    """The model a run scores with and where it came from (``source``: ``champion`` or ``expert_card``)."""

    model: Any
    name: str
    version: str
    kind: str
    source: str
    warning: str | None = None

    @property
    def label(self) -> str:
        """What every stored row records as its model version (at most 64 characters)."""
        if self.source == "champion":
            return f"{self.name} v{self.version} ({self.kind})"[:64]
        return f"expert card (policy {self.version})"[:64]


def expert_card_model(expert_card: Mapping[str, Any], features: pd.DataFrame, *, warning: str | None = None,
                      where: str = "policy: expert_card") -> ScoringModel:
    """The policy's expert card, fitted on ``features`` (it learns no outcome: it only records the columns)."""
    from models.expert import ExpertCard, ExpertCardRules
    from scoring.domain.policy import build_section, policy_hash

    rules = build_section(ExpertCardRules, expert_card, where)
    card = ExpertCard(rules=rules).fit(features)
    return ScoringModel(model=card, name="expert_card", version=policy_hash(_plain(expert_card)), kind="expert",
                        source="expert_card", warning=warning)


def load_scoring_model(tracking_uri: str | None, expert_card: Mapping[str, Any], features: pd.DataFrame) -> ScoringModel:
    """The MLflow champion; without one (or without any MLflow store), the expert card and a warning saying so.

    A champion that exists but cannot be loaded is an error, not a reason to fall back: the run fails and says why.
    An SQLite tracking store that does not exist is not created (no MLflow import, no empty ``mlflow.db``).
    """
    from models.registry import registered_champion

    champion, reason = registered_champion(tracking_uri)
    if champion is not None:
        return ScoringModel(model=champion.model, name=champion.name, version=str(champion.version),
                            kind=champion.kind or type(champion.model).__name__, source="champion")
    warning = (f"{reason}: scored with the expert card of the policy file (points-based, uncalibrated prior "
               f"probability) instead of a trained champion. Train and promote one: riskgrade train --as-of DATE "
               f"--promote")
    return expert_card_model(expert_card, features, warning=warning)


@dataclass(frozen=True)
class FindsModel:
    """The expected-finds champion (:mod:`models.expected_finds`) a run stores each enterprise's expected finds
    with, and where it came from."""

    model: Any
    name: str
    version: str

    @property
    def label(self) -> str:
        """What every stored row records as ``finds_model_version`` (at most 64 characters)."""
        return f"{self.name} v{self.version}"[:64]


def load_finds_model(tracking_uri: str | None) -> tuple[FindsModel | None, list[str]]:
    """``(model, warnings)``: the expected-finds champion (``riskgrade-expected-finds``) when one is registered,
    else None and a warning saying that the run stores no expected finds. A champion trained without the major
    hazards (before they were learned) is used for the total, with a warning that the major ones stay NULL.

    As for the risk model, a champion that exists but cannot be loaded is an error (the run fails and says why);
    an SQLite tracking store that does not exist is not created."""
    from models.registry import FINDS_MODEL_NAME, registered_champion

    champion, reason = registered_champion(tracking_uri, model_name=FINDS_MODEL_NAME)
    if champion is not None:
        model = FindsModel(champion.model, champion.name, str(champion.version))
        if getattr(champion.model, "predicts_major", False):
            return model, []
        return model, [f"the expected-finds champion ({model.label}) was trained without the major hazards: "
                       f"expected major hazards not stored (NULL); retrain it: riskgrade train-finds --as-of "
                       f"DATE --promote"]
    advice = "train and promote one: riskgrade train-finds --as-of DATE --promote"
    return None, [f"{reason}: expected finds per enterprise not stored (expected_hazards and "
                  f"expected_major_hazards NULL); {advice}"]


# ---------------------------------------------------------------------------------------------
# Pure steps
# ---------------------------------------------------------------------------------------------


TYPICAL_KIND = {"high": "focused"}
"""The kind of the typical visit by final tier (any other tier: ``routine``), as the plan ranks visits
(:func:`scoring.results.plans.compute_plan`)."""

FINDS_COLUMNS: tuple[str, ...] = ("routine_hazards", "routine_major_hazards", "focused_hazards",
                                  "focused_major_hazards")


def typical_team_finds(finds: FindsModel, features: pd.DataFrame, *, team_size: int) -> pd.DataFrame:
    """Expected finds of one visit at each enterprise of ``features`` (one as-of date) by a **typical team**:
    ``team_size`` inspectors (the policy's ``[supervision.inspectors] min``, as the plan staffs a visit) of mean
    stringency 1. Stringency is each inspector's finding rate relative to what the enterprises visited would yield,
    shrunk to 1 (:func:`features.build.inspector_stringency`), so 1 is the average inspector of the bureau: the same
    typical team for every department (a department whose inspectors are all strict or all lenient is not told
    apart here; the plan recomputes the finds for the team actually drawn).

    One row per enterprise: ``enterprise_id`` and :data:`FINDS_COLUMNS`, hazards of every level and the major ones
    among them, for a routine and for a focused visit (the final tier, known later, picks one:
    :data:`TYPICAL_KIND`). The major count is capped at the total (two boosters, fitted apart); NaN when the model
    was fitted without the major hazards."""
    ids = features.index.get_level_values("enterprise_id").astype("str")
    out = {"enterprise_id": np.asarray(ids, dtype=object)}
    major = bool(getattr(finds.model, "predicts_major", False))
    # one copy of the features for the four predictions (models.expected_finds.expected_finds makes one each)
    visit = features.assign(kind="routine", team_size=float(team_size), team_stringency=1.0)
    for kind in ("routine", "focused"):
        visit["kind"] = kind
        total = np.asarray(finds.model.predict(visit), dtype=float) if len(visit) else np.zeros(0)
        out[f"{kind}_hazards"] = total
        out[f"{kind}_major_hazards"] = (np.minimum(np.asarray(finds.model.predict_major(visit), dtype=float), total)
                                        if major and len(visit) else np.full(len(total), np.nan))
    return pd.DataFrame(out).astype({"enterprise_id": "str"})


def score_enterprises(model, features: pd.DataFrame, n_reasons: int = 3) -> pd.DataFrame:
    """One row per enterprise of ``features`` (one as-of date): ``enterprise_id, probability, points, reasons``.

    ``reasons`` is the list of the top ``n_reasons`` risk-raising features, strongest first, each a dict
    ``feature, text_zh, text_en, value, contribution`` — what :func:`models.explain.score_frame` gives, built
    straight from :func:`models.explain.reason_codes` (3× faster at 200k rows than going through its wide
    frame). A model without ``points`` or ``contributions`` gets NaN points and no reasons.
    """
    ids = features.index.get_level_values("enterprise_id").astype("str")
    if ids.duplicated().any():
        raise DataError("scoring needs features of a single as-of date (one row per enterprise)")
    probability = np.asarray(model.predict_proba(features))[:, 1].astype(float)
    if hasattr(model, "contributions") and hasattr(model, "points"):
        from models.explain import reason_codes

        points = np.asarray(model.points(features), dtype=float)
        reasons = _reason_lists(reason_codes(model, features, n=n_reasons), features.index)
    else:
        points = np.full(len(features), np.nan)
        reasons = [[] for _ in range(len(features))]
    return pd.DataFrame({"enterprise_id": np.asarray(ids, dtype=object), "probability": probability,
                         "points": points, "reasons": reasons}).astype({"enterprise_id": "str"})


def _reason_lists(long: pd.DataFrame, index: pd.Index) -> list[list[dict]]:
    """The long reason table of :func:`models.explain.reason_codes` as one list of dicts per row of ``index``
    (the shape :func:`models.explain.reasons_wide` gives, without building a wide frame first)."""
    out: list[list[dict]] = [[] for _ in range(len(index))]
    if long.empty:
        return out
    long = long.sort_values("rank", kind="stable")
    positions = index.get_indexer(long.index)
    contributions = np.round(long["contribution"].to_numpy(dtype=float), 6).tolist()
    columns = zip(positions.tolist(), long["feature"].tolist(), long["text_zh"].tolist(), long["text_en"].tolist(),
                  long["value"].tolist(), contributions, strict=True)
    for position, feature, text_zh, text_en, value, contribution in columns:
        out[position].append({"feature": feature, "text_zh": text_zh, "text_en": text_en, "value": value,
                              "contribution": contribution})
    return out


def hysteresis_history(previous: pd.DataFrame) -> pd.DataFrame:
    """The tier history :func:`scoring.domain.tiers.assign_tiers` needs, from the previous run's stored rows alone.

    Hysteresis asks two things: the previous final tier, and the last date the model scored the enterprise high.
    Every stored row carries the latter (``last_model_high_on``), so the previous run's rows plus one row per
    enterprise at its ``last_model_high_on`` (model tier high) are an exact, small stand-in for the whole history.
    """
    columns = ["enterprise_id", "as_of", "model_tier", "final_tier"]
    if previous is None or previous.empty:
        return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "as_of" else "str") for c in columns})
    latest = previous[columns]
    earlier = previous.loc[previous["last_model_high_on"].notna() & (previous["last_model_high_on"] < previous["as_of"])]
    highs = pd.DataFrame({"enterprise_id": earlier["enterprise_id"], "as_of": earlier["last_model_high_on"],
                          "model_tier": "high", "final_tier": "high"})
    return pd.concat([highs, latest], ignore_index=True)


def list_rank(final_tier: pd.Series, probability: pd.Series) -> np.ndarray:
    """Position in the planners' ranked list: final tier first (high, general, low), then probability, highest
    first; equal (tier, probability) share the best position (1 = riskiest)."""
    tier = final_tier.map(_TIER_ORDER).to_numpy(dtype=np.int64)
    p = probability.to_numpy(dtype=float)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((-p, -tier))
    t_sorted, p_sorted = tier[order], p[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (t_sorted[1:] != t_sorted[:-1]) | (p_sorted[1:] != p_sorted[:-1])
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = start + 1
    return rank


def tier_change_rows(output: pd.DataFrame, previous: pd.DataFrame, *, previous_as_of=None) -> pd.DataFrame:
    """Enterprises whose final tier differs from the previous run's, with the cause (model score, eligibility,
    overrides). No previous run at all: no changes (the first run sets the baseline). An enterprise the previous
    run did not score gets ``from_tier`` NULL.

    ``previous_as_of``: the previous run's date when ``previous`` holds only some of its rows (one partition's
    enterprises, possibly none of them); default: the date of ``previous``' rows."""
    empty = pd.DataFrame({c: pd.Series(dtype="object") for c in CHANGE_COLUMNS if c != "run_id"})
    if previous_as_of is None:
        if previous is None or previous.empty:
            return empty
        previous_as_of = previous["as_of"].max()
    before = previous.set_index("enterprise_id")["final_tier"]
    from_tier = before.reindex(output["enterprise_id"].to_numpy())
    changed = (from_tier.to_numpy(dtype=object) != output["final_tier"].to_numpy(dtype=object))
    rows = output.loc[changed]
    if rows.empty:
        return empty
    model = ("model tier " + rows["model_tier"].astype(str) + " (probability "
             + rows["probability"].map("{:.4f}".format) + ", score rank " + rows["score_rank"].astype(str)
             + ") 模型评分")
    eligibility = rows["eligibility"].fillna("").astype(str)
    not_low = (rows["model_tier"] == "low") & (rows["final_tier"] != "low") & (eligibility != "")
    overrides = rows["override_cause"].fillna("").astype(str)
    causes = (model + np.where(not_low, "; not eligible for low: " + eligibility, "")
              + np.where(overrides != "", "; " + overrides, ""))
    return pd.DataFrame({
        "as_of": rows["as_of"].to_numpy(),
        "enterprise_id": rows["enterprise_id"].to_numpy(dtype=object),
        "previous_as_of": previous_as_of,
        "from_tier": [None if pd.isna(v) else v for v in from_tier.to_numpy(dtype=object)[changed]],
        "to_tier": rows["final_tier"].to_numpy(dtype=object),
        "cause": causes.to_numpy(dtype=object),
    })


@dataclass(frozen=True)
class NightlyResult:
    """What one run decided (before it is written): ``scores`` (the ``scores_history`` rows without ``run_id``),
    ``changes`` (``tier_changes`` rows without ``run_id``), the tier ``cutoffs`` and the ``counts``."""

    scores: pd.DataFrame
    changes: pd.DataFrame
    cutoffs: pd.DataFrame
    counts: dict[str, int]


def tier_enterprises(scores: pd.DataFrame, tables: Mapping[str, pd.DataFrame], *, as_of, policy,
                     previous: pd.DataFrame | None, manual: pd.DataFrame | None, **across):
    """:func:`scoring.domain.tiers.assign_tiers` with the hysteresis history taken from the previous run's rows.

    ``across``: the global ``cutoffs``, ``score_rank`` and ``cluster_counts`` when ``scores`` are one partition
    (see :func:`~scoring.domain.tiers.assign_tiers`)."""
    from scoring.domain.tiers import assign_tiers

    return assign_tiers(scores[["enterprise_id", "probability", "points"]], tables,
                        as_of=pd.Timestamp(as_of).normalize(), tiers=policy.tiers, overrides=policy.overrides,
                        history=hysteresis_history(previous), manual=manual, **across)


def output_rows(scores: pd.DataFrame, limits: pd.DataFrame, tables: Mapping[str, pd.DataFrame], *, as_of,
                previous: pd.DataFrame, model_label: str, rank: np.ndarray | None = None,
                finds: pd.DataFrame | None = None, finds_label: str | None = None) -> pd.DataFrame:
    """The ``scores_history`` rows of one run (without ``run_id``), ordered by rank.

    ``rank``: the ranked-list positions in ``limits``' row order when ``limits`` are one partition (from
    :func:`list_rank` over every enterprise); default: :func:`list_rank` of ``limits``. ``finds``: the enterprises'
    :func:`typical_team_finds` (from the model ``finds_label``), of which each row keeps the visit its final tier
    calls for (:data:`TYPICAL_KIND`); None: the expected-finds columns are NULL."""
    day = pd.Timestamp(as_of).normalize()
    frame = limits.copy()
    reasons = scores.set_index("enterprise_id")["reasons"]
    frame["reasons"] = reasons.reindex(frame["enterprise_id"].to_numpy()).to_numpy()
    names = tables["enterprises"].drop_duplicates("enterprise_id").set_index("enterprise_id")["name"]
    frame["name"] = names.reindex(frame["enterprise_id"].to_numpy()).to_numpy()
    frame["score_rank"] = frame["rank"]
    frame["rank"] = list_rank(frame["final_tier"], frame["probability"]) if rank is None else rank
    frame["next_allowed_visit"] = frame["next_routine_on"]
    carried = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    if previous is not None and not previous.empty:
        before = previous.set_index("enterprise_id")["last_model_high_on"]
        carried = pd.Series(before.reindex(frame["enterprise_id"].to_numpy()).to_numpy(), index=frame.index,
                            dtype="datetime64[ns]")
    frame["last_model_high_on"] = carried.where(frame["model_tier"] != "high", day)
    frame["as_of"] = day
    frame["model_version"] = model_label
    frame["expected_hazards"] = frame["expected_major_hazards"] = np.nan
    frame["finds_model_version"] = None
    if finds is not None:
        typical = finds.set_index("enterprise_id").reindex(frame["enterprise_id"].astype(str).to_numpy())
        kind = frame["final_tier"].map(TYPICAL_KIND).fillna("routine").to_numpy()
        for column, suffix in (("expected_hazards", "hazards"), ("expected_major_hazards", "major_hazards")):
            frame[column] = np.where(kind == "focused", typical[f"focused_{suffix}"].to_numpy(dtype=float),
                                     typical[f"routine_{suffix}"].to_numpy(dtype=float))
        frame["finds_model_version"] = np.where(np.isnan(frame["expected_hazards"].to_numpy()), None, finds_label)
    if "points" not in frame:
        frame["points"] = np.nan
    out = frame[[c for c in SCORE_COLUMNS if c != "run_id"]]
    return out.sort_values(["rank", "enterprise_id"], kind="stable").reset_index(drop=True)


def run_counts(scores: pd.DataFrame, changes: pd.DataFrame) -> dict[str, int]:
    counts = {f"n_{tier}": int((scores["final_tier"] == tier).sum()) for tier in TIERS}
    codes = scores["override_codes"].fillna("")
    counts.update({
        "n_scored": len(scores),
        "n_vetoes": int(scores["veto"].fillna(False).astype(bool).sum()),
        "n_special_assistance": int(scores["special_assistance"].fillna(False).astype(bool).sum()),
        "n_manual": int(codes.str.split(",").map(lambda c: "manual" in c).sum()),
        "n_changes": len(changes),
    })
    return counts


def compute_nightly(features: pd.DataFrame, model: ScoringModel, tables: Mapping[str, pd.DataFrame], *, as_of,
                    policy, previous: pd.DataFrame | None = None, manual: pd.DataFrame | None = None,
                    n_reasons: int = 3, finds: FindsModel | None = None) -> NightlyResult:
    """The whole pure middle of a run: features → scores and reasons (and, with ``finds``, expected finds for a
    typical team) → tiers → limits → output rows and changes."""
    from scoring.domain.supervision import supervision_limits

    previous = previous if previous is not None else pd.DataFrame()
    scores = score_enterprises(model.model, features, n_reasons)
    typical = None if finds is None else typical_team_finds(finds, features,
                                                            team_size=policy.supervision.inspectors.min)
    tiers = tier_enterprises(scores, tables, as_of=as_of, policy=policy, previous=previous, manual=manual)
    limits = supervision_limits(tiers.tiers, tables, as_of=pd.Timestamp(as_of).normalize(), policy=policy.supervision)
    output = output_rows(scores, limits, tables, as_of=as_of, previous=previous, model_label=model.label,
                         finds=typical, finds_label=None if finds is None else finds.label)
    changes = tier_change_rows(output, previous)
    return NightlyResult(output, changes, tiers.cutoffs, run_counts(output, changes))


def data_watermark(tables: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """Per loaded table: its rows and latest ``recorded_on`` (what the run saw; recorded with the run)."""
    out: dict[str, dict[str, Any]] = {}
    for name, frame in tables.items():
        entry: dict[str, Any] = {"rows": int(len(frame))}
        if "recorded_on" in frame.columns and len(frame):
            latest = frame["recorded_on"].max()
            entry["max_recorded_on"] = None if pd.isna(latest) else pd.Timestamp(latest).strftime("%Y-%m-%d")
        out[name] = entry
    return out


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A policy value as plain dicts / lists / scalars (dataclasses and read-only mappings included)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def policy_fingerprint(policy) -> str:
    """:func:`scoring.domain.policy.policy_hash` of the effective (typed, defaults filled in) policy, without its
    ``[web]`` section (the workbench's sessions and pages decide nothing the batch writes)."""
    from scoring.domain.policy import policy_hash

    return policy_hash({k: v for k, v in _plain(policy).items() if k != "web"})


def load_policy_and_hash(path: str | Path | None = None):
    """``(Policy, hash)`` of the policy file (``path``, ``$RISKGRADE_POLICY`` or the shipped defaults)."""
    from scoring.domain.policy import load_policy

    policy = load_policy(path)
    return policy, policy_fingerprint(policy)


# ---------------------------------------------------------------------------------------------
# The run (I/O at the edges)
# ---------------------------------------------------------------------------------------------


@dataclass
class NightlyRun:
    """The outcome of :func:`run_nightly` (also in ``batch_runs``)."""

    run_id: int
    as_of: date
    status: str
    model: str
    model_source: str
    policy_hash: str
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    previous_as_of: date | None = None
    took_over_from: str | None = None
    duration_seconds: float = 0.0
    cutoffs: pd.DataFrame | None = None

    def summary(self) -> pd.DataFrame:
        """Counts per tier as a small table."""
        rows = [{"tier": tier, "enterprises": self.counts.get(f"n_{tier}", 0)} for tier in reversed(TIERS)]
        return pd.DataFrame(rows)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_nightly(
    engine: sa.Engine,
    as_of: date | str | None = None,
    *,
    policy=None,
    policy_file: str | Path | None = None,
    tracking_uri: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    chunk_rows: int = 50_000,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    n_reasons: int = 3,
) -> NightlyRun:
    """Run the nightly batch as of ``as_of`` (default: today) on ``engine``'s database (see the module docstring).

    ``policy``: a :class:`scoring.domain.policy.Policy` (else loaded from ``policy_file`` / ``$RISKGRADE_POLICY`` / the
    shipped defaults). ``tables``: canonical contract frames to use instead of reading the database (benchmarks).
    ``checkpoint``: test hook called inside the write transaction. Raises
    :class:`~features.errors.BatchLockedError` when another run holds the lock (nothing is written then).
    """
    def work(run: RunContext) -> tuple[ScoringModel, dict[str, int], pd.DataFrame, date | None]:
        result, model, previous, watermark = _compute(
            engine, run.day, run.policy, tracking_uri, tables, n_reasons, run.lock, run.timings, run.warnings,
            run.say)
        started = time.perf_counter()
        run.say("write", "start", f"writing {len(result.scores):,} scores and {len(result.changes):,} tier changes")
        _write(engine, run.lock, run.run_id, run.day, result, model, watermark, run.timings, run.warnings,
               started - run.began, checkpoint, chunk_rows)
        run.timings["write"] = time.perf_counter() - started
        return model, result.counts, result.cutoffs, None if previous.empty else previous["as_of"].max().date()

    return run_batch(engine, as_of, work, policy=policy, policy_file=policy_file, progress=progress,
                     stale_after=stale_after)


@dataclass
class RunContext:
    """What the work of one run (see :func:`run_batch`) is handed: the run's row, lock, date, policy and the
    timings and warnings to fill in; ``say`` reports progress."""

    run_id: int
    day: pd.Timestamp
    policy: Any
    lock: BatchLock
    timings: dict[str, float]
    warnings: list[str]
    say: Progress
    began: float

    def stage(self, name: str, message: str) -> _Stage:
        """A timed stage (``with run.stage("features", "building features"):``), beating the lock after it."""
        return _Stage(name, message, self.timings, self.say, self.lock)


def run_batch(engine: sa.Engine, as_of, work: Callable[[RunContext], tuple], *, policy=None, policy_file=None,
              progress: Progress | None = None, stale_after: timedelta = DEFAULT_STALE_AFTER) -> NightlyRun:
    """The frame of every nightly run, on one machine or on a cluster: take the lock, write the ``running`` row,
    call ``work`` (which computes and commits the results in one transaction, and returns ``(model, counts,
    cutoffs, previous_as_of)``), record the timings; on any failure before ``work`` returns, mark the run
    ``failed`` with the error; release the lock in every case."""
    day = pd.Timestamp(as_of if as_of is not None else date.today()).normalize()
    if policy is None:
        policy, hashed = load_policy_and_hash(policy_file)
    else:
        hashed = policy_fingerprint(policy)
    say = progress or (lambda stage, event, message: None)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    began = time.perf_counter()

    say("lock", "start", "taking the batch lock")
    lock = BatchLock(engine, stale_after=stale_after).acquire()
    try:
        if lock.took_over_from:
            warnings.append(f"took over a stale batch lock from {lock.took_over_from} (its run was marked failed)")
            say("lock", "warning", warnings[-1])
        run_id = _start_run(engine, day, lock.owner, hashed)
        timings["lock"] = time.perf_counter() - began
        say("lock", "done", f"run {run_id} as of {day.date()}")
        committed = False
        try:
            model, counts, cutoffs, previous_as_of = work(
                RunContext(run_id, day, policy, lock, timings, warnings, say, began))
            committed = True
            started = time.perf_counter()
            try:
                refresh_statistics(engine, [scores_history, tier_changes])
            except sa.exc.SQLAlchemyError as exc:  # the run is committed: slower pages, not a failed run
                warnings.append(f"could not refresh the query planner's statistics: {exc.__class__.__name__}")
                say("write", "warning", warnings[-1])
            timings["write"] = timings.get("write", 0.0) + time.perf_counter() - started
            total = time.perf_counter() - began
            _record_timings(engine, run_id, timings, total)
            say("write", "done", f"run {run_id} committed")
        except BaseException as exc:  # KeyboardInterrupt and SIGTERM (SystemExit) too
            if not committed:
                _fail_run(engine, run_id, exc, time.perf_counter() - began, timings)
            raise
    finally:
        lock.release()
    return NightlyRun(
        run_id=run_id, as_of=day.date(), status="succeeded", model=model.label, model_source=model.source,
        policy_hash=hashed, counts=counts, timings={k: round(v, 3) for k, v in timings.items()},
        warnings=warnings, previous_as_of=previous_as_of, took_over_from=lock.took_over_from,
        duration_seconds=round(total, 3), cutoffs=cutoffs,
    )


def _compute(engine, day, policy, tracking_uri, tables, n_reasons, lock, timings, warnings, say):
    from features import build_features

    def stage(name: str, message: str):
        return _Stage(name, message, timings, say, lock)

    with stage("load", "loading the contract tables") as s:
        if tables is None:
            from features.store import load_tables

            tables = load_tables(engine)
        enterprises = tables.get("enterprises")
        if enterprises is None or enterprises.empty:
            raise DataError("no enterprises to score: the enterprises table is empty (import data first: "
                            "riskgrade import DIR)")
        watermark = data_watermark(tables)
        s.detail = ", ".join(f"{name} {entry['rows']:,}" for name, entry in watermark.items())
    with stage("features", f"building features as of {day.date()}") as s:
        features = build_features(tables, [day])
        if features.empty:
            raise DataError(f"no enterprise is active as of {day.date()} (all founded later or closed before)")
        s.detail = f"{len(features):,} enterprises × {features.shape[1]} features"
    with stage("model", "loading the champion model") as s:
        model = load_scoring_model(tracking_uri, policy.expert_card, features)
        finds, finds_warnings = load_finds_model(tracking_uri)
        s.detail = model.label + ("" if finds is None else f"; expected finds {finds.label}")
        for warning in ([model.warning] if model.warning else []) + finds_warnings:
            warnings.append(warning)
            say("model", "warning", warning)
    with stage("score", "scoring and explaining") as s:
        scores = score_enterprises(model.model, features, n_reasons)
        typical = None if finds is None else typical_team_finds(finds, features,
                                                                team_size=policy.supervision.inspectors.min)
        s.detail = f"mean probability {scores['probability'].mean():.4f}" + (
            "" if typical is None else f", mean expected finds {typical['routine_hazards'].mean():.2f}")
    with stage("tiers", "tiers, vetoes, hysteresis and manual overrides") as s:
        previous = previous_tiers(engine, day)
        expire_overrides(engine, day.date())
        manual = overrides_active_at(engine, day.date())
        tiers = tier_enterprises(scores, tables, as_of=day, policy=policy, previous=previous, manual=manual)
        s.detail = ", ".join(f"{t} {int((tiers.tiers['final_tier'] == t).sum()):,}" for t in reversed(TIERS))
    with stage("limits", "supervision limits and the ranked list") as s:
        from scoring.domain.supervision import supervision_limits

        limits = supervision_limits(tiers.tiers, tables, as_of=day, policy=policy.supervision)
        output = output_rows(scores, limits, tables, as_of=day, previous=previous, model_label=model.label,
                             finds=typical, finds_label=None if finds is None else finds.label)
        changes = tier_change_rows(output, previous)
        s.detail = f"{len(changes):,} tier changes since the previous run" if not previous.empty else \
            "first run: no previous tiers"
    result = NightlyResult(output, changes, tiers.cutoffs, run_counts(output, changes))
    return result, model, previous, watermark


class _Stage:
    """Times a stage, reports its start and end, and beats the lock's heartbeat after it."""

    def __init__(self, name, message, timings, say, lock):
        self.name, self.message, self.timings, self.say, self.lock = name, message, timings, say, lock
        self.detail = ""

    def __enter__(self):
        self.started = time.perf_counter()
        self.say(self.name, "start", self.message)
        return self

    def __exit__(self, kind, exc, tb):
        self.timings[self.name] = time.perf_counter() - self.started
        if kind is None:
            self.lock.heartbeat()
            self.say(self.name, "done", f"{self.detail} ({self.timings[self.name]:.1f} s)".strip())
        return False


def _start_run(engine: sa.Engine, day: pd.Timestamp, owner: str, hashed: str) -> int:
    create_scoring_tables(engine)
    with write_transaction(engine, what="the nightly run") as conn:  # waits for an import that is writing
        run_id = conn.execute(batch_runs.insert().values(
            as_of=day.date(), status="running", started_at=_utcnow(), owner=owner, policy_hash=hashed,
        )).inserted_primary_key[0]
    return int(run_id)


def _fail_run(engine: sa.Engine, run_id: int, exc: BaseException, seconds: float, timings: dict) -> None:
    message = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, DataError | KeyboardInterrupt | SystemExit):
        message += "\n" + "".join(traceback.format_exception(exc))[-4000:]
    try:
        with engine.begin() as conn:
            conn.execute(batch_runs.update().where(batch_runs.c.run_id == run_id).values(
                status="failed", finished_at=_utcnow(), duration_seconds=round(seconds, 3), error=message,
                timings={k: round(v, 3) for k, v in timings.items()}))
    except Exception:  # the database itself may be what failed: the original error matters more
        pass


def _record_timings(engine: sa.Engine, run_id: int, timings: dict, seconds: float) -> None:
    """After the commit: the write stage's own time (bookkeeping only; the results are already committed)."""
    try:
        with engine.begin() as conn:
            conn.execute(batch_runs.update().where(batch_runs.c.run_id == run_id).values(
                duration_seconds=round(seconds, 3), timings={k: round(v, 3) for k, v in timings.items()}))
    except Exception:
        pass


def _write(engine, lock, run_id, day, result, model, watermark, timings, warnings, seconds, checkpoint,
           chunk_rows) -> None:
    hook = checkpoint or (lambda point, done, total: None)
    scores = result.scores.assign(run_id=run_id)
    changes = result.changes.assign(run_id=run_id)
    with write_transaction(engine, what="the nightly run") as conn:
        lock.verify(conn)
        conn.execute(scores_history.delete().where(scores_history.c.as_of == day.date()))
        conn.execute(tier_changes.delete().where(tier_changes.c.as_of == day.date()))
        hook("deleted", 0, len(scores))
        _bulk_insert(conn, scores_history, scores, chunk_rows, lambda done: hook("scores", done, len(scores)))
        _bulk_insert(conn, tier_changes, changes, chunk_rows, lambda done: hook("changes", done, len(changes)))
        mark_succeeded(conn, run_id, day, result.counts, model, watermark, timings, warnings, seconds)
        hook("before_commit", len(scores), len(scores))


def mark_succeeded(conn: sa.Connection, run_id: int, day: pd.Timestamp, counts: Mapping[str, int],
                   model: ScoringModel, watermark, timings: Mapping[str, float], warnings: list[str],
                   seconds: float) -> None:
    """Inside the write transaction: the date's older successful run ``superseded``, this one ``succeeded``."""
    conn.execute(batch_runs.update().where(batch_runs.c.as_of == day.date(), batch_runs.c.status == "succeeded",
                                           batch_runs.c.run_id != run_id)
                 .values(status="superseded", superseded_by=run_id))
    conn.execute(batch_runs.update().where(batch_runs.c.run_id == run_id).values(
        status="succeeded", finished_at=_utcnow(), duration_seconds=round(seconds, 3),
        model_name=model.name, model_version=model.version, model_kind=model.kind, model_source=model.source,
        data_watermark=watermark, timings={k: round(v, 3) for k, v in timings.items()},
        warning="\n".join(warnings) or None, **counts))


# ---------------------------------------------------------------------------------------------
# Bulk writes: driver-level executemany (SQLite) or COPY (PostgreSQL) inside the caller's transaction
# ---------------------------------------------------------------------------------------------


def _driver_columns(table: sa.Table, frame: pd.DataFrame) -> list[list]:
    """Column-wise plain Python values the drivers take as they are: ISO text for dates, 0/1 for booleans, JSON
    text, ``None`` for every missing value (and for empty text). Vectorised: no per-cell pandas calls."""
    encode = json.JSONEncoder(ensure_ascii=False, default=_json_default).encode
    out = []
    for column in table.columns:
        if column.name not in frame:
            out.append([None] * len(frame))
            continue
        values = frame[column.name]
        kind = column.type
        if isinstance(kind, sa.Date):
            days = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
            text = np.datetime_as_string(days).astype(object)
            out.append(np.where(np.isnat(days), None, text).tolist())
        elif isinstance(kind, sa.JSON):
            out.append([None if v is None else encode(v) for v in values.to_numpy(dtype=object)])
        elif isinstance(kind, sa.Boolean | sa.Integer | sa.Float):
            numbers = pd.to_numeric(values.astype(object).where(values.notna(), np.nan)).to_numpy(dtype=float)
            known = np.isfinite(numbers)
            if isinstance(kind, sa.Float):
                plain = numbers.astype(object)
            else:
                plain = np.where(known, numbers, 0).astype(np.int64).astype(object)
            out.append(np.where(known, plain, None).tolist())
        else:
            objects = values.to_numpy(dtype=object)
            missing = pd.isna(values).to_numpy() | (objects == "")
            out.append(np.where(missing, None, objects).tolist())
    return out


def _json_default(value):
    from scoring.exports import json_value

    return json_value(value)


def _bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame, chunk_rows: int,
                 done: Callable[[int], None]) -> None:
    if frame.empty:
        done(0)
        return
    columns = _driver_columns(table, frame)
    names = [c.name for c in table.columns]
    quote = conn.dialect.identifier_preparer.quote
    dialect = conn.dialect.name
    n = len(frame)
    for start in range(0, n, chunk_rows):
        rows = list(zip(*(values[start:start + chunk_rows] for values in columns), strict=True))
        if dialect == "postgresql":
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in names)}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
            finally:
                cursor.close()
        elif dialect == "sqlite":
            marks = ", ".join("?" for _ in names)
            conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "
                                 f"VALUES ({marks})", rows)
        else:
            conn.execute(table.insert(), [_sa_values(table, dict(zip(names, row, strict=True))) for row in rows])
        done(min(start + chunk_rows, n))


def _sa_values(table: sa.Table, row: dict) -> dict:
    out = {}
    for column in table.columns:
        value = row[column.name]
        if value is not None and isinstance(column.type, sa.Date):
            value = date.fromisoformat(value)
        elif value is not None and isinstance(column.type, sa.JSON):
            value = json.loads(value)
        elif value is not None and isinstance(column.type, sa.Boolean):
            value = bool(value)
        out[column.name] = value
    return out
