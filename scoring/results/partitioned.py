"""Scoring, tiers and the nightly batch on a Dask cluster (DESIGN.md §11): the single-machine code, per partition.

The enterprises are split by ranges of ``enterprise_key`` (:mod:`features.partitions`) and their features built
per partition (:mod:`features.dask_build`). From there every step runs the function the single-machine batch
runs (:mod:`scoring.results.batch`, :mod:`scoring.domain.tiers`, :mod:`scoring.domain.supervision`), once per
partition, except for the three quantities that cross enterprises, each taken from one global step:

1. **score** (per partition): the model — loaded once by the client and sent to every worker — gives the
   calibrated probability, the points and the top reasons (:func:`~scoring.results.batch.score_enterprises`);
2. **cut-offs and score ranks** (global): every partition's probabilities go to one task, which computes the
   quota cut-offs (:func:`~scoring.domain.tiers.model_cutoffs`) and the rank by probability
   (:func:`~scoring.domain.tiers.score_ranks`) over all of them — exact, ties included: the same tiers as on one
   machine whatever the partitioning (a few bytes per enterprise travel, never a feature row);
3. **cluster vetoes** (partial sums): each partition counts the recent accidents per sector cluster
   (:func:`~scoring.domain.tiers.cluster_accident_counts`); the counts are added up;
4. **tiers and limits** (per partition): eligibility, vetoes, hysteresis (the previous run's rows of the
   partition's enterprises), manual overrides and supervision limits
   (:func:`~scoring.results.batch.tier_enterprises`, :func:`~scoring.domain.supervision.supervision_limits`);
5. **ranked list** (global): every partition's final tiers and probabilities give the positions in the
   planners' list (:func:`~scoring.results.batch.list_rank`);
6. **rows** (per partition): the ``scores_history`` and ``tier_changes`` rows and the run's counts
   (:func:`~scoring.results.batch.output_rows`, :func:`~scoring.results.batch.tier_change_rows`,
   :func:`~scoring.results.batch.run_counts`).

:func:`compute_nightly_dask` runs these steps on partitions held in the workers' memory (features built by
:func:`features.dask_build.build_features_dask`): simple, but a worker then holds all its partitions across the
global steps, so its memory grows with the number of enterprises. :func:`run_nightly_dask` (``riskgrade nightly
--dask ADDRESS``) keeps no partition in memory across a global step — only a few numbers per partition, and 8
bytes per enterprise for the cut-offs — but on the worker's local disk (one pickle per partition and kind, read
back by the next pass on that worker; a task that moved to another worker reads its partition from the database
again), so that a worker's peak is that of one partition whatever the number of enterprises
(benchmarks/dask_scale.py):

a. **load** (per partition): read; the cross-enterprise sums of the features, the accidents per sector cluster
   and the data watermark — reduced to one each;
b. **features** (per partition): build the features with the reduced sums; the probabilities (all that crosses
   the global step of the cut-offs and score ranks);
c. **tiers** (per partition, after the global step): score with the reasons, tiers, limits, the output rows,
   staged by ``COPY``; the ranked-list position (the other global step) is given by SQL ``RANK()`` as the rows
   leave the staging table. A partition read again from the database must have the watermark of the first read
   (no import ran meanwhile), or the run fails and says so.

:func:`run_nightly_dask` adds the database around it, in the frame of every nightly run (:func:`~scoring.results.batch.run_batch`: the lock, the ``running`` run record, the stage timings,
the run marked failed on any error): the data watermark is added up from the partitions; every worker writes its
partitions' rows to the run's **staging tables** (PostgreSQL ``COPY``; a partition written twice — a task
retried after its worker died — replaces its own rows), and **one transaction** moves them into
``scores_history`` / ``tier_changes``, checks that every scored enterprise arrived exactly once, marks the run
succeeded and drops the staging tables. A run killed at any point before that commit leaves the previous results
untouched; its staging tables are dropped by the run's failure handler or, if the process died, by the next run
(which holds the lock, so no other run can be writing).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.errors import DataError, UsageError
from scoring.results.batch import (
    CHANGE_COLUMNS,
    SCORE_COLUMNS,
    FindsModel,
    NightlyRun,
    RunContext,
    ScoringModel,
    _TIER_ORDER,
    _bulk_insert,
    data_watermark,
    list_rank,
    load_finds_model,
    load_scoring_model,
    mark_succeeded,
    output_rows,
    run_batch,
    run_counts,
    score_enterprises,
    tier_change_rows,
    tier_enterprises,
    typical_team_finds,
)
from scoring.results.lock import DEFAULT_STALE_AFTER
from scoring.results.tables import (
    create_scoring_tables,
    expire_overrides,
    overrides_active_at,
    scores_history,
    tier_changes,
)

__all__ = [
    "ENTERPRISES_PER_PARTITION",
    "PartitionedResult",
    "StoredPrevious",
    "cluster_client",
    "combine_watermarks",
    "compute_nightly_dask",
    "run_nightly_dask",
]

ENTERPRISES_PER_PARTITION = 50_000
"""Default partition size of ``nightly --dask``: small enough that a worker builds one partition's features in well
under a GB, large enough that the per-task overhead stays small (benchmarks/dask_scale.py: 200k enterprises in 4
partitions on 2 workers peaked at 1.2 GB per worker)."""

STAGING_PREFIX = "nightly_staging_"
"""The run's staging tables are ``nightly_staging_<run_id>_scores`` and ``..._changes``."""


# ---------------------------------------------------------------------------------------------
# The previous run, per partition
# ---------------------------------------------------------------------------------------------

_PREVIOUS_COLUMNS = ["enterprise_id", "as_of", "model_tier", "final_tier", "last_model_high_on"]


def _typed_previous(frame: pd.DataFrame) -> pd.DataFrame:
    """The previous run's rows typed as :func:`scoring.results.tables.previous_tiers` gives them."""
    frame = frame.reindex(columns=_PREVIOUS_COLUMNS)
    for column in ("as_of", "last_model_high_on"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    for column in ("enterprise_id", "model_tier", "final_tier"):
        frame[column] = frame[column].astype("str")
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class StoredPrevious:
    """The stored rows of the run dated ``as_of`` (the latest before this run's date), read one key range at a
    time by the workers (a join with the enterprises on their key; picklable: the URL and the date)."""

    url: str
    as_of: date

    def rows(self, key_range: tuple[int, int], enterprise_ids: pd.Series) -> pd.DataFrame:
        from features.partitions import engine_for
        from features.schema import CONTRACT_TABLES

        enterprises = CONTRACT_TABLES["enterprises"]
        low, high = key_range
        query = (sa.select(*(scores_history.c[c] for c in _PREVIOUS_COLUMNS))
                 .join(enterprises, enterprises.c.enterprise_id == scores_history.c.enterprise_id)
                 .where(scores_history.c.as_of == self.as_of, enterprises.c.enterprise_key >= low,
                        enterprises.c.enterprise_key < high))
        with engine_for(self.url).connect() as conn:
            rows = conn.execute(query).all()
        return _typed_previous(pd.DataFrame(rows, columns=_PREVIOUS_COLUMNS))


def _previous_rows(previous, key_range: tuple[int, int], tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The previous run's rows of one partition's enterprises (``previous``: None, a frame of the whole previous
    run, or a :class:`StoredPrevious`)."""
    ids = tables["enterprises"]["enterprise_id"]
    if previous is None:
        return _typed_previous(pd.DataFrame(columns=_PREVIOUS_COLUMNS))
    if isinstance(previous, pd.DataFrame):
        return _typed_previous(previous.loc[previous["enterprise_id"].isin(set(ids))])
    return previous.rows(key_range, ids)


def _previous_as_of(previous) -> pd.Timestamp | None:
    if previous is None:
        return None
    if isinstance(previous, pd.DataFrame):
        return None if previous.empty else pd.Timestamp(previous["as_of"].max())
    return pd.Timestamp(previous.as_of)


# ---------------------------------------------------------------------------------------------
# Per-partition steps and the global ones (module-level functions: the workers unpickle them by name)
# ---------------------------------------------------------------------------------------------


def _score(model: ScoringModel, features: pd.DataFrame, n_reasons: int) -> pd.DataFrame:
    return score_enterprises(model.model, features, n_reasons)


def _typical(finds: FindsModel | None, features: pd.DataFrame, team_size: int) -> pd.DataFrame | None:
    return None if finds is None else typical_team_finds(finds, features, team_size=team_size)


def _probabilities(scores: pd.DataFrame) -> np.ndarray:
    return scores["probability"].to_numpy(dtype=float)


def _score_summary(scores: pd.DataFrame) -> tuple[int, float]:
    return len(scores), float(scores["probability"].sum())


def _global_score_ranks(tier_policy, probabilities: Sequence[np.ndarray]) -> tuple[Any, list[np.ndarray]]:
    """The one global step of the tiers: cut-offs and score ranks over every probability, ranks split back."""
    from scoring.domain.tiers import model_cutoffs, score_ranks

    every = np.concatenate(probabilities) if probabilities else np.zeros(0)
    ranks = score_ranks(every)
    return model_cutoffs(every, tier_policy), np.split(ranks, np.cumsum([len(p) for p in probabilities])[:-1])


def _across(global_step: tuple[Any, list[np.ndarray]], index: int) -> tuple[Any, np.ndarray]:
    """One partition's share of the global step (runs where the global result is: only the slice travels)."""
    cutoffs, ranks = global_step
    return cutoffs, ranks[index]


DECISION_TABLES = ("enterprises", "inspections", "hazards", "accidents", "penalties", "credit_records")
"""What tiers, vetoes, limits and the output rows read of a partition once its features are built (of the hazards,
only the major ones: :mod:`scoring.domain.tiers` and :mod:`scoring.domain.supervision` look at no other)."""


def _decision_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The part of a partition's frames the steps after scoring need (what a worker keeps across the global
    steps: without the violations, complaints and general hazards, which weigh most and only feed features)."""
    out = {name: tables[name] for name in DECISION_TABLES if name in tables}
    if "hazards" in out:
        hazards = out["hazards"]
        out["hazards"] = hazards.loc[hazards["level"] == "major"].reset_index(drop=True)
    return out


def _cluster_counts(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, policy) -> pd.Series:
    from scoring.domain.tiers import cluster_accident_counts

    return cluster_accident_counts(tables, as_of=as_of, policy=policy.overrides)


def _add_counts(counts: Sequence[pd.Series]) -> pd.Series:
    total = pd.Series(dtype="int64")
    for part in counts:
        total = total.add(part, fill_value=0)
    return total.astype("int64").sort_index()


@dataclass(frozen=True)
class _Decided:
    """One partition's tiers, then its limits (the input of the ranked list and of the output rows)."""

    tiers: pd.DataFrame
    cutoff_table: pd.DataFrame
    previous: pd.DataFrame
    limits: pd.DataFrame | None = None


def _tier(scores: pd.DataFrame, tables: Mapping[str, pd.DataFrame], across: tuple[Any, np.ndarray],
          cluster_counts: pd.Series, *, key_range: tuple[int, int], as_of: pd.Timestamp, policy, previous,
          manual: pd.DataFrame | None) -> _Decided:
    cutoffs, score_rank = across
    mine = _previous_rows(previous, key_range, tables)
    tiers = tier_enterprises(scores, tables, as_of=as_of, policy=policy, previous=mine, manual=manual,
                             cutoffs=cutoffs, score_rank=score_rank, cluster_counts=cluster_counts)
    return _Decided(tiers.tiers, tiers.cutoffs, mine)


def _limit(decided: _Decided, tables: Mapping[str, pd.DataFrame], *, as_of: pd.Timestamp, policy) -> _Decided:
    from scoring.domain.supervision import supervision_limits

    limits = supervision_limits(decided.tiers, tables, as_of=as_of, policy=policy.supervision)
    return _Decided(decided.tiers, decided.cutoff_table, decided.previous, limits)


def _list_keys(decided: _Decided) -> tuple[pd.Series, pd.Series]:
    return decided.limits["final_tier"], decided.limits["probability"]


def _global_list_ranks(keys: Sequence[tuple[pd.Series, pd.Series]]) -> list[np.ndarray]:
    """The positions in the ranked list over every partition, split back by partition."""
    tiers = pd.concat([k[0] for k in keys], ignore_index=True)
    probability = pd.concat([k[1] for k in keys], ignore_index=True)
    ranks = list_rank(tiers, probability)
    return np.split(ranks, np.cumsum([len(k[0]) for k in keys])[:-1])


def _pick(parts: list, index: int):
    return parts[index]


@dataclass(frozen=True)
class _Rows:
    scores: pd.DataFrame
    changes: pd.DataFrame
    counts: dict[str, int]


def _rows(scores: pd.DataFrame, decided: _Decided, tables: Mapping[str, pd.DataFrame], rank: np.ndarray,
          finds: pd.DataFrame | None = None, *, as_of: pd.Timestamp, model_label: str,
          previous_as_of: pd.Timestamp | None, finds_label: str | None = None) -> _Rows:
    output = output_rows(scores, decided.limits, tables, as_of=as_of, previous=decided.previous,
                         model_label=model_label, rank=rank, finds=finds, finds_label=finds_label)
    changes = tier_change_rows(output, decided.previous, previous_as_of=previous_as_of)
    return _Rows(output, changes, run_counts(output, changes))


def _counts_of(rows: _Rows) -> dict[str, int]:
    return rows.counts


def _cutoff_table_of(decided: _Decided) -> pd.DataFrame:
    return decided.cutoff_table


def _final_counts(decided: _Decided) -> dict[str, int]:
    return {tier: int(n) for tier, n in decided.tiers["final_tier"].value_counts().items()}


def _detail(timed, text: str) -> None:
    """The stage's line in the progress report (when the stage is a timed one of the run)."""
    if hasattr(timed, "detail"):
        timed.detail = text


def _first_rows(features: pd.DataFrame) -> pd.DataFrame:
    return features.iloc[:0]


# ---------------------------------------------------------------------------------------------
# The computation on the cluster
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionedResult:
    """What a partitioned run decided: one future per partition (``rows``: the ``scores_history`` and
    ``tier_changes`` rows without ``run_id``, held by the workers), the whole run's cut-off table and counts."""

    rows: list[Any]
    cutoffs: pd.DataFrame
    counts: dict[str, int]

    def scores(self) -> pd.DataFrame:
        """Every partition's ``scores_history`` rows in one frame, ordered as one machine orders them (by rank)."""
        parts = self.rows[0].client.gather(self.rows)
        frame = pd.concat([p.scores for p in parts], ignore_index=True)
        return frame.sort_values(["rank", "enterprise_id"], kind="stable").reset_index(drop=True)

    def changes(self) -> pd.DataFrame:
        parts = self.rows[0].client.gather(self.rows)
        frame = pd.concat([p.changes for p in parts], ignore_index=True)
        return frame.sort_values("enterprise_id", kind="stable").reset_index(drop=True)


def _add_up(counts: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def compute_nightly_dask(client, built, model: ScoringModel, *, as_of, policy, previous=None,
                         manual: pd.DataFrame | None = None, n_reasons: int = 3,
                         stage: Callable[[str, str], Any] | None = None,
                         release_features: bool = False, finds: FindsModel | None = None) -> PartitionedResult:
    """The pure middle of a run (:func:`scoring.results.batch.compute_nightly`) on the partitions of ``built``
    (:func:`features.dask_build.build_features_dask` as of one date), on the cluster of ``client``.

    ``previous``: the previous run — None (first run), its whole frame of stored rows (``enterprise_id, as_of,
    model_tier, final_tier, last_model_high_on``) or a :class:`StoredPrevious` the workers read by key range.
    ``manual``: the manual overrides active at the date (sent to every worker; each partition applies its own).
    ``stage(name, message)``: a context manager timing each stage (``score``, ``tiers``, ``limits``).
    ``release_features``: free the partitions' features and input frames on the workers once scored (the caller
    needs them no more: across the global steps a worker then holds only what the decisions read,
    :func:`_decision_tables`, and the results). ``finds``: the expected-finds champion, whose typical-team finds
    each partition stores (:func:`scoring.results.batch.typical_team_finds`).
    """
    stage = stage or (lambda name, message: nullcontext())
    day = pd.Timestamp(as_of).normalize()
    previous_as_of = _previous_as_of(previous)
    n = len(built.frames)
    tables = client.map(_decision_tables, built.tables, pure=False)
    with stage("score", "scoring and explaining") as timed:
        model_future = client.scatter(model, broadcast=True, hash=False)
        scores = client.map(_score, [model_future] * n, built.frames, n_reasons=n_reasons, pure=False)
        finds_future = None if finds is None else client.scatter(finds, broadcast=True, hash=False)
        typical = client.map(_typical, [finds_future] * n, built.frames,
                             team_size=policy.supervision.inspectors.min, pure=False)
        summary = client.gather(client.map(_score_summary, scores, pure=False))
        scored = sum(s[0] for s in summary)
        _detail(timed, f"mean probability {sum(s[1] for s in summary) / max(scored, 1):.4f}")
        if release_features:  # dropping the references frees the data (the scheduler can still recompute it)
            built.frames.clear()
            built.tables.clear()
    with stage("tiers", "tiers, vetoes, hysteresis and manual overrides") as timed:
        probabilities = client.map(_probabilities, scores, pure=False)
        global_step = client.submit(_global_score_ranks, policy.tiers, probabilities, pure=False)
        across = [client.submit(_across, global_step, i, pure=False) for i in range(n)]
        counted = client.map(_cluster_counts, tables, as_of=day, policy=policy, pure=False)
        cluster_counts = client.submit(_add_counts, counted, pure=False)
        if isinstance(previous, pd.DataFrame):  # a whole previous run: sent once, each partition takes its rows
            previous = client.scatter(previous, broadcast=True, hash=False)
        tiered = [client.submit(_tier, scores[i], tables[i], across[i], cluster_counts,
                                key_range=built.ranges[i], as_of=day, policy=policy, previous=previous,
                                manual=manual, pure=False) for i in range(n)]
        finals = _add_up(client.gather(client.map(_final_counts, tiered, pure=False)))
        _detail(timed, ", ".join(f"{t} {finals.get(t, 0):,}" for t in ("high", "general", "low")))
    with stage("limits", "supervision limits and the ranked list") as timed:
        decided = client.map(_limit, tiered, tables, as_of=day, policy=policy, pure=False)
        keys = client.map(_list_keys, decided, pure=False)
        positions = client.submit(_global_list_ranks, keys, pure=False)
        ranks = [client.submit(_pick, positions, i, pure=False) for i in range(n)]
        rows = client.map(_rows, scores, decided, tables, ranks, typical, as_of=day, model_label=model.label,
                          previous_as_of=previous_as_of, finds_label=None if finds is None else finds.label,
                          pure=False)
        counts = _add_up(client.gather(client.map(_counts_of, rows, pure=False)))
        from scoring.domain.tiers import combine_cutoff_tables

        cutoffs = combine_cutoff_tables(client.gather(client.map(_cutoff_table_of, decided, pure=False)))
        _detail(timed, f"{counts.get('n_changes', 0):,} tier changes since the previous run" if previous_as_of
                is not None else "first run: no previous tiers")
    if counts.get("n_scored", 0) != scored:
        raise DataError(f"the partitions scored {scored:,} enterprises but wrote {counts.get('n_scored', 0):,} rows")
    return PartitionedResult(rows, cutoffs, counts)


# ---------------------------------------------------------------------------------------------
# The nightly's computation streamed: a partition is re-read and rebuilt after each global step
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rebuild:
    """How a worker reads one partition and builds its features (picklable: the source and the build's options).

    The nightly on the cluster keeps no partition in memory across a global step: each pass takes its partition
    up again. What a pass computed for the next is kept on the worker's local disk (``token``: the run's folder
    in the worker's ``local_directory``; one pickle per key range and kind): a pass that finds it there (the same
    worker ran the pass before) loads it, one that does not (a task moved or retried on another worker) reads the
    partition from the source again — the same rows unless an import ran meanwhile, which the watermark check
    refuses. So a worker's peak is one partition's, whatever the number of partitions (benchmarks/dask_scale.py).
    """

    source: Any
    tables: tuple[str, ...]
    kinds: Mapping[str, str]
    dates: pd.DatetimeIndex
    catalog: tuple
    shrinkage_strength: float
    token: str = ""

    def read(self, key_range: tuple[int, int]) -> dict[str, pd.DataFrame]:
        from features.dask_build import _read_partition

        return _read_partition(self.source, key_range, tables=self.tables, extra_kinds=self.kinds)

    def totals(self, parts: Mapping[str, pd.DataFrame]):
        from features.build import cross_enterprise_totals

        return cross_enterprise_totals(parts, as_of_dates=self.dates, catalog=self.catalog,
                                       shrinkage_strength=self.shrinkage_strength)

    def features(self, parts: Mapping[str, pd.DataFrame], totals) -> pd.DataFrame:
        from features.build import build_features

        return build_features(parts, as_of_dates=self.dates, catalog=self.catalog, totals=totals,
                              shrinkage_strength=self.shrinkage_strength)

    # The worker's local copies -------------------------------------------------------------------------------

    def _path(self, key_range: tuple[int, int], kind: str) -> Path | None:
        folder = _worker_folder(self.token)
        return None if folder is None else folder / f"{kind}-{key_range[0]}-{key_range[1]}.pickle"

    def keep(self, key_range: tuple[int, int], kind: str, value) -> None:
        import os
        import pickle

        path = self._path(key_range, kind)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)

    def kept(self, key_range: tuple[int, int], kind: str):
        import pickle

        path = self._path(key_range, kind)
        if path is None or not path.exists():
            return None
        with path.open("rb") as stored:
            return pickle.load(stored)

    def forget(self, key_range: tuple[int, int]) -> None:
        for kind in ("tables", "features"):
            path = self._path(key_range, kind)
            if path is not None:
                path.unlink(missing_ok=True)

    def tables_of(self, key_range: tuple[int, int], summary: _Summary) -> dict[str, pd.DataFrame]:
        """The partition's frames: the local copy of the first pass, else read again (and checked unchanged)."""
        parts = self.kept(key_range, "tables")
        if parts is None:
            parts = self.read(key_range)
            if data_watermark(parts) != summary.watermark:
                raise DataError(f"the data of key range {key_range} changed during the run (an import?): run "
                                "the nightly again once it is done")
        return parts


def _worker_folder(token: str, worker=None) -> Path | None:
    """The run's folder in the local directory of ``worker`` (default: the worker running this task; None outside
    a worker or without a token)."""
    if not token:
        return None
    worker = worker if worker is not None else _current_worker()
    if worker is None:
        return None
    return Path(worker.local_directory) / f"riskgrade-nightly-{token}"


def _drop_worker_folder(token: str, dask_worker=None) -> None:
    """On every worker at the end of a run (``client.run`` gives ``dask_worker``): its local copies of the run's
    partitions."""
    import shutil

    folder = _worker_folder(token, dask_worker)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _rebuild_plan(client, source, day: pd.Timestamp, ranges, token: str = "") -> _Rebuild:
    """The extras profiled over every partition (as :func:`features.dask_build.build_features_dask` does) and the
    catalog with them."""
    from features.build import DEFAULT_SHRINKAGE_STRENGTH, as_of_index
    from features.catalog import DEFAULT_WINDOWS, catalog_for
    from features.partitions import combine_extras, extra_catalog, extra_kinds

    profile = combine_extras(client.gather(client.map(source.profile, list(ranges), pure=False)))
    base = catalog_for(DEFAULT_WINDOWS)
    named = {f.name for f in base}
    catalog = base + tuple(f for f in extra_catalog(profile) if f.name not in named)
    return _Rebuild(source, tuple(source.tables()), extra_kinds(profile), as_of_index([day]), catalog,
                    DEFAULT_SHRINKAGE_STRENGTH, token)


@dataclass(frozen=True)
class _Summary:
    """What the first pass keeps of a partition: its cross-enterprise sums, cluster accident counts and
    watermark (a few numbers per sector, township and table)."""

    totals: Any
    clusters: pd.Series
    watermark: dict
    worker: str | None = None  # the worker that keeps the partition's tables on its local disk


def _freeing(task: Callable) -> Callable:
    """``task``, handing the memory it freed back to the system when it returns (glibc's and Arrow's allocators keep
    freed pages for reuse): between passes a worker then holds what the next pass needs, not the last one's peak."""
    import functools

    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        finally:
            _release_memory()

    return run


def _release_memory() -> None:
    """Collect garbage and return the free pages of Arrow's pool and of glibc's heap to the system."""
    import ctypes
    import gc

    gc.collect()
    try:
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator keeps its own counsel
        pass


@_freeing
def _summarise(plan: _Rebuild, key_range: tuple[int, int], *, day: pd.Timestamp, policy) -> _Summary:
    parts = plan.read(key_range)
    plan.keep(key_range, "tables", parts)
    return _Summary(plan.totals(parts), _cluster_counts(_decision_tables(parts), day, policy),
                    data_watermark(parts), _worker_address())


def _combine_totals(summaries: Sequence[_Summary]):
    from features.build import GroupTotals

    return GroupTotals.combine([s.totals for s in summaries])


def _combine_clusters(summaries: Sequence[_Summary]) -> pd.Series:
    return _add_counts([s.clusters for s in summaries])


def _placement_of(summary: _Summary) -> tuple[dict, str | None]:
    return summary.watermark, summary.worker


def _current_worker():
    """The Dask worker running this task (None outside one)."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _worker_address() -> str | None:
    worker = _current_worker()
    return None if worker is None else worker.address


def _feature_head(plan: _Rebuild, key_range: tuple[int, int], totals) -> pd.DataFrame:
    """The features' columns without rows (what the model loader fits the expert card on), built from the
    range's first enterprise only."""
    low, _ = key_range
    return plan.features(plan.read((low, low + 1)), totals).iloc[:0]


@_freeing
def _partition_probabilities(plan: _Rebuild, key_range: tuple[int, int], summary: _Summary, totals,
                             model: ScoringModel) -> np.ndarray:
    """Second pass: the partition's features (kept on the worker's disk) and calibrated probabilities (all that
    crosses the global step of the tiers)."""
    features = plan.features(plan.tables_of(key_range, summary), totals)
    if features.index.get_level_values("enterprise_id").duplicated().any():
        raise DataError("scoring needs features of a single as-of date (one row per enterprise)")
    plan.keep(key_range, "features", features)
    return np.asarray(model.model.predict_proba(features))[:, 1].astype(float)


@_freeing
def _decide_and_stage(plan: _Rebuild, key_range: tuple[int, int], partition: int, totals, model: ScoringModel,
                      across: tuple[Any, np.ndarray], cluster_counts: pd.Series, summary: _Summary, *,
                      day: pd.Timestamp, policy, previous, manual: pd.DataFrame | None, n_reasons: int,
                      previous_as_of: pd.Timestamp | None, url: str, run_id: int, chunk_rows: int,
                      checkpoint, finds: FindsModel | None = None
                      ) -> tuple[dict[str, int], pd.DataFrame, dict[str, int]]:
    """Third pass, all per partition: the frames and features again (the worker's local copies, else read and
    built again), scored with the reasons (and the typical team's expected finds), tiers, limits, the output rows —
    their ranked-list position is set when they move out of the staging table — staged by COPY."""
    parts = plan.tables_of(key_range, summary)
    features = plan.kept(key_range, "features")
    if features is None:
        features = plan.features(parts, totals)
    scores = _score(model, features, n_reasons)
    typical = _typical(finds, features, policy.supervision.inspectors.min)
    tables = _decision_tables(parts)
    del parts, features
    if len(scores) != len(across[1]):
        raise DataError(f"key range {key_range} scored {len(scores):,} enterprises, then {len(across[1]):,}")
    decided = _limit(_tier(scores, tables, across, cluster_counts, key_range=key_range, as_of=day, policy=policy,
                           previous=previous, manual=manual), tables, as_of=day, policy=policy)
    rows = _rows(scores, decided, tables, np.zeros(len(decided.limits), dtype=np.int64), typical, as_of=day,
                 model_label=model.label, previous_as_of=previous_as_of,
                 finds_label=None if finds is None else finds.label)
    _stage_partition(rows, partition, url=url, run_id=run_id, chunk_rows=chunk_rows, checkpoint=checkpoint)
    plan.forget(key_range)
    return rows.counts, decided.cutoff_table, _final_counts(decided)



def combine_watermarks(parts: Sequence[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The data watermark of the whole dataset from the partitions' (:func:`scoring.results.batch.data_watermark`):
    rows added up — but for the table every partition reads whole (the inspectors' roster), counted once —, the
    latest ``recorded_on`` of all; tables without a row anywhere left out, as the single-machine load leaves them
    out."""
    from features.contract import TABLE_BY_NAME

    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, entry in part.items():
            whole = name in TABLE_BY_NAME and not TABLE_BY_NAME[name].split_by_key_range
            total = out.setdefault(name, {"rows": 0})
            total["rows"] = int(entry["rows"]) if whole else total["rows"] + int(entry["rows"])
            latest = entry.get("max_recorded_on")
            if latest is not None and (total.get("max_recorded_on") is None or latest > total["max_recorded_on"]):
                total["max_recorded_on"] = latest
    return {name: entry for name, entry in out.items() if entry["rows"] or name == "enterprises"}


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------


SCHEDULER_CONFIG = {"distributed.scheduler.work-stealing": False}
"""The scheduler settings of the local cluster riskgrade starts (a scheduler started by hand should have them too:
README). The later passes of a partition are placed on the worker that kept its tables, but only as a preference (so
that a lost worker's partitions still run elsewhere); with work stealing on, an idle worker takes some of them and
reads and builds those partitions again, in the same task as their scoring, tiers and staging. Measured at 1M
enterprises, 2 workers (benchmarks/dask_scale.py): with stealing the peak per worker was 1,161–1,378 MB over four
runs and the wall time 5.1–6.1× the 200k run's; without it 1,081–1,108 MB over two runs, 5.3–5.55×."""


def local_cluster(n_workers: int, *, memory_limit: str = "auto", **options):
    """A ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes, its scheduler set up with
    :data:`SCHEDULER_CONFIG`."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(SCHEDULER_CONFIG):  # read by the scheduler as it starts
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                            memory_limit=memory_limit, **options)


def _scheduler_steals(dask_scheduler=None) -> bool:
    return "stealing" in dask_scheduler.extensions


def cluster_client(address: str, *, memory_limit: str | None = None):
    """A ``distributed.Client`` on the scheduler at ``address`` (``tcp://host:8786``), or on a local cluster of the
    machine's cores (one single-threaded worker process each) for ``local``."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise UsageError("--dask needs the 'distributed' package (pip install distributed)") from exc
    if address == "local":
        import os

        cluster = local_cluster(max(1, os.cpu_count() or 1), memory_limit=memory_limit or "auto")
        client = Client(cluster)
        client._riskgrade_cluster = cluster  # closed with the client (see close_cluster)
        return client
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--dask {address}: no Dask scheduler answers there ({exc}); start one with "
                         f"dask scheduler, and workers with dask worker {address}") from exc


def close_cluster(client) -> None:
    cluster = getattr(client, "_riskgrade_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


# ---------------------------------------------------------------------------------------------
# Staging tables and the one transaction
# ---------------------------------------------------------------------------------------------


def _staging_table(run_id: int, kind: str) -> sa.Table:
    """The run's staging table of ``scores`` (columns of ``scores_history``) or ``changes`` (of
    ``tier_changes``), plus the partition that wrote each row; no keys (checked when the rows move).

    UNLOGGED: its rows are written to the write-ahead log only once, when they move into ``scores_history``
    (at 1M enterprises the staged scores are 1.3 GB, logged twice before and hastening checkpoints). A crash of the
    database empties it, and the run then fails on the count check when its rows move: all or nothing still."""
    source = scores_history if kind == "scores" else tier_changes
    columns = [sa.Column(c.name, c.type, nullable=True) for c in source.columns]
    return sa.Table(f"{STAGING_PREFIX}{run_id}_{kind}", sa.MetaData(), *columns,
                    sa.Column("partition", sa.Integer, nullable=False), prefixes=["UNLOGGED"])


def _drop_staging(engine: sa.Engine, *, keep: int | None = None) -> None:
    """Drop the staging tables of every run but ``keep`` (leftovers of runs that died before cleaning up)."""
    names = [n for n in sa.inspect(engine).get_table_names() if n.startswith(STAGING_PREFIX)
             and (keep is None or not n.startswith(f"{STAGING_PREFIX}{keep}_"))]
    if names:
        quote = engine.dialect.identifier_preparer.quote
        with engine.begin() as conn:
            for name in names:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {quote(name)}"))


def _stage_partition(rows: _Rows, partition: int, *, url: str, run_id: int, chunk_rows: int,
                     checkpoint: Callable[[str, int, int], None] | None = None) -> int:
    """On a worker: one partition's rows into the run's staging tables, replacing any it wrote before (COPY)."""
    from features.partitions import engine_for

    hook = checkpoint or (lambda point, done, total: None)
    engine = engine_for(url)
    with engine.begin() as conn:
        for kind, frame in (("scores", rows.scores), ("changes", rows.changes)):
            staging = _staging_table(run_id, kind)
            conn.execute(staging.delete().where(staging.c.partition == partition))
            staged = frame.assign(run_id=run_id, partition=partition)
            _bulk_insert(conn, staging, staged, chunk_rows, lambda done, kind=kind: hook(kind, partition, done))
    return len(rows.scores)


_LIST_RANK_SQL = ("RANK() OVER (ORDER BY CASE final_tier "
                  + " ".join(f"WHEN '{tier}' THEN {order}" for tier, order in _TIER_ORDER.items())
                  + " END DESC, probability DESC)")
"""The ranked-list position over every staged row, as :func:`scoring.results.batch.list_rank` gives it (final tier
first, then probability, highest first; equal pairs share the best position: SQL's RANK), so that no partition
waits for the others' tiers."""


def _make_current(engine: sa.Engine, run: RunContext, counts: Mapping[str, int], model: ScoringModel,
                  watermark, seconds: float) -> None:
    """The one transaction: the staged rows replace the date's results; the run is marked succeeded."""
    from features.db import write_transaction

    quote = engine.dialect.identifier_preparer.quote
    with write_transaction(engine, what="the nightly run") as conn:
        run.lock.verify(conn)
        conn.execute(scores_history.delete().where(scores_history.c.as_of == run.day.date()))
        conn.execute(tier_changes.delete().where(tier_changes.c.as_of == run.day.date()))
        for kind, target, columns, expected in (
                ("scores", scores_history, SCORE_COLUMNS, counts["n_scored"]),
                ("changes", tier_changes, CHANGE_COLUMNS, counts["n_changes"])):
            names = ", ".join(quote(c) for c in columns)
            picked = ", ".join(_LIST_RANK_SQL if c == "rank" and kind == "scores" else quote(c) for c in columns)
            moved = conn.execute(sa.text(f"INSERT INTO {quote(target.name)} ({names}) SELECT {picked} FROM "
                                         f"{quote(_staging_table(run.run_id, kind).name)}")).rowcount
            if moved != expected:  # a partition lost or written twice: nothing becomes current
                raise DataError(f"the staging table of run {run.run_id} holds {moved:,} {kind} rows, the "
                                f"partitions computed {expected:,}")
        mark_succeeded(conn, run.run_id, run.day, counts, model, watermark, run.timings, run.warnings, seconds)
        for kind in ("scores", "changes"):
            conn.execute(sa.text(f"DROP TABLE {quote(_staging_table(run.run_id, kind).name)}"))


# ---------------------------------------------------------------------------------------------
# The nightly run on the cluster
# ---------------------------------------------------------------------------------------------


def run_nightly_dask(
    engine: sa.Engine,
    client,
    as_of: date | str | None = None,
    *,
    url: str | None = None,
    policy=None,
    policy_file: str | Path | None = None,
    tracking_uri: str | None = None,
    progress=None,
    partitions: int | None = None,
    enterprises_per_partition: int = ENTERPRISES_PER_PARTITION,
    checkpoint: Callable[[str, int, int], None] | None = None,
    chunk_rows: int = 50_000,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    n_reasons: int = 3,
) -> NightlyRun:
    """The nightly batch of :func:`scoring.results.batch.run_nightly` on the cluster of ``client`` (see the module
    docstring): the same lock, run record, stages, rows and guarantees. ``engine``: the PostgreSQL database,
    which the workers reach at ``url`` (default: ``engine``'s URL). ``partitions``: how many key ranges (default:
    one per ``enterprises_per_partition`` enterprises). ``checkpoint(kind, partition, rows)``: test hook called on
    the workers while they stage rows."""
    from features.partitions import DatabaseSource, KeyRanges

    if engine.dialect.name != "postgresql":
        raise UsageError(f"nightly --dask needs a PostgreSQL database the workers can reach (got "
                         f"{engine.dialect.name}): import into PostgreSQL (riskgrade import --db postgresql+psycopg://"
                         "...) and point --db at it")
    url = url or engine.url.render_as_string(hide_password=False)

    def work(run: RunContext):
        create_scoring_tables(engine)
        _drop_staging(engine)  # we hold the lock: any staging table left is a dead run's
        try:
            return _work(run)
        except BaseException:
            try:
                _drop_staging(engine)
            except Exception:  # the database itself may be what failed: the run's error matters more
                pass
            raise

    def _work(run: RunContext):
        token = f"{run.run_id}-{uuid.uuid4().hex[:8]}"  # the run's folder on the workers' local disks
        try:
            return _passes(run, token)
        finally:
            try:
                client.run(_drop_worker_folder, token)
            except Exception:  # a worker gone: its folder goes with its local directory
                pass

    def _passes(run: RunContext, token: str):
        source = DatabaseSource(url)
        with run.stage("load", "reading each partition for its cross-enterprise sums (by enterprise_key range)") as s:
            keys = source.keys()
            if not len(keys):
                raise DataError("no enterprises to score: the enterprises table is empty (import data first: "
                                "riskgrade import DIR)")
            n = partitions or max(1, math.ceil(len(keys) / enterprises_per_partition))
            ranges = KeyRanges.of_keys(keys, n)
            key_ranges = list(ranges)
            plan = client.scatter(_rebuild_plan(client, source, run.day, ranges, token), broadcast=True, hash=False)
            summaries = client.map(_summarise, [plan] * len(key_ranges), key_ranges, day=run.day,
                                   policy=run.policy, pure=False)
            totals = client.submit(_combine_totals, summaries, pure=False)
            cluster_counts = client.submit(_combine_clusters, summaries, pure=False)
            placed = client.gather(client.map(_placement_of, summaries, pure=False))
            watermark = combine_watermarks([entry for entry, _ in placed])
            # the later passes go where the first pass kept the partition's tables: the scheduler cannot see those
            # local copies and would place the tasks by the bytes of their inputs (measured at 200k: every second
            # pass ran on the other worker and read its partition from the database again). A preference only: if
            # that worker is gone, another reads the partition again.
            homes = [{"workers": [worker], "allow_other_workers": True} if worker else {} for _, worker in placed]
            if _steals(client):
                run.warnings.append(_STEALING_WARNING)
                run.say("load", "warning", _STEALING_WARNING)
            s.detail = (f"{len(ranges)} partitions on {len(client.scheduler_info()['workers'])} workers; "
                        + ", ".join(f"{name} {entry['rows']:,}" for name, entry in watermark.items()))
        with run.stage("model", "loading the champion model") as s:
            head = client.submit(_feature_head, plan, key_ranges[0], totals, pure=False).result()
            model = load_scoring_model(tracking_uri, run.policy.expert_card, head)
            finds, finds_warnings = load_finds_model(tracking_uri)
            s.detail = model.label + ("" if finds is None else f"; expected finds {finds.label}")
            for warning in ([model.warning] if model.warning else []) + finds_warnings:
                run.warnings.append(warning)
                run.say("model", "warning", warning)
        with run.stage("features", f"building features as of {run.day.date()} and scoring, per partition") as s:
            model_future = client.scatter(model, broadcast=True, hash=False)
            finds_future = None if finds is None else client.scatter(finds, broadcast=True, hash=False)
            probabilities = [client.submit(_partition_probabilities, plan, key_ranges[i], summaries[i], totals=totals,
                                           model=model_future, pure=False, **homes[i]) for i in range(n)]
            sizes = client.gather(client.map(len, probabilities, pure=False))
            scored = sum(sizes)
            if not scored:
                raise DataError(f"no enterprise is active as of {run.day.date()} (all founded later or closed "
                                "before)")
            s.detail = f"{scored:,} enterprises × {len(head.columns)} features scored"
        previous_day = _previous_day(engine, run.day)
        expire_overrides(engine, run.day.date())
        manual = overrides_active_at(engine, run.day.date())
        previous = None if previous_day is None else StoredPrevious(url, previous_day)
        with engine.begin() as conn:
            for kind in ("scores", "changes"):
                _staging_table(run.run_id, kind).create(conn)
        with run.stage("tiers", "global cut-offs; per partition again: features, reasons, tiers, vetoes, "
                                "hysteresis, overrides, limits, rows staged") as s:
            global_step = client.submit(_global_score_ranks, run.policy.tiers, probabilities, pure=False)
            across = [client.submit(_across, global_step, i, pure=False) for i in range(n)]
            manual_future = None if manual is None else client.scatter(manual, broadcast=True, hash=False)
            decided = [client.submit(_decide_and_stage, plan, key_ranges[i], i, totals, model_future, across[i],
                                     cluster_counts, summaries[i], day=run.day, policy=run.policy,
                                     previous=previous, manual=manual_future, n_reasons=n_reasons,
                                     previous_as_of=None if previous_day is None else pd.Timestamp(previous_day),
                                     url=url, run_id=run.run_id, chunk_rows=chunk_rows, checkpoint=checkpoint,
                                     finds=finds_future, pure=False, **homes[i]) for i in range(n)]
            parts = client.gather(decided)
            counts = _add_up([p[0] for p in parts])
            from scoring.domain.tiers import combine_cutoff_tables

            cutoffs = combine_cutoff_tables([p[1] for p in parts])
            finals = _add_up([p[2] for p in parts])
            s.detail = (", ".join(f"{t} {finals.get(t, 0):,}" for t in ("high", "general", "low")) + "; "
                        + (f"{counts.get('n_changes', 0):,} tier changes since the previous run"
                           if previous_day is not None else "first run: no previous tiers"))
        if counts.get("n_scored", 0) != scored:
            raise DataError(f"the partitions scored {scored:,} enterprises but staged {counts.get('n_scored', 0):,}")
        started = time.perf_counter()
        run.say("write", "start", f"making {counts['n_scored']:,} scores and {counts['n_changes']:,} tier changes "
                                  f"from {n} partitions current")
        run.lock.heartbeat()
        _make_current(engine, run, counts, model, watermark, started - run.began)
        run.timings["write"] = time.perf_counter() - started
        return model, counts, cutoffs, previous_day

    return run_batch(engine, as_of, work, policy=policy, policy_file=policy_file, progress=progress,
                     stale_after=stale_after)


_STEALING_WARNING = ("the Dask scheduler steals work: a partition's later pass moved to another worker reads and "
                     "builds that partition again (more time, a higher peak); start the scheduler with "
                     "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING=False")


def _steals(client) -> bool:
    try:
        return bool(client.run_on_scheduler(_scheduler_steals))
    except Exception:  # a scheduler that cannot say: nothing to warn about
        return False


def _previous_day(engine: sa.Engine, day: pd.Timestamp) -> date | None:
    """The date of the latest stored run before ``day`` (what :func:`scoring.results.tables.previous_tiers`
    compares with)."""
    with engine.connect() as conn:
        previous = conn.execute(sa.select(sa.func.max(scores_history.c.as_of))
                                .where(scores_history.c.as_of < day.date())).scalar()
    return None if previous is None else pd.Timestamp(previous).date()
