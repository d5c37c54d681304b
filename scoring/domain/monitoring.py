"""Monitoring computations for the leaders' report: stability (PSI), tier mix and migration, capture, fairness.

Pure functions — DataFrames in, DataFrames out, nothing read or written. :mod:`scoring.report` loads the data,
calls these, stores the results (:mod:`scoring.results.monitoring_tables`) and renders the HTML.

Population stability index (PSI)
---------------------------------
The *reference* is the champion model's training population: every active enterprise at each of its training
as-of dates, with its features and the champion's probability (:func:`training_reference`). Each variable is
binned once, on the reference (:class:`VariableBins`):

- numeric: right-closed intervals ``(-inf, e1], (e1, e2], …, (ek, +inf)`` whose edges are the reference's
  quantiles at ``1/bins … (bins-1)/bins`` taken as observed values (so a count that is mostly 0 gets a bin of
  its own instead of ten equal edges), plus one bin for missing values;
- categorical: one bin per reference level, one for levels never seen in the reference, one for missing.

``PSI = Σ (a_i − e_i) · ln(a_i / e_i)`` over the bins, with ``e_i`` the reference share and ``a_i`` the current
share, each computed with ``pseudo_count`` (0.5) added to every bin so that an empty bin gives a finite, small
term instead of infinity. Bands (the credit-scoring convention, e.g. Siddiqi, *Credit Risk Scorecards*, 2006):
below 0.10 stable (稳定), 0.10–0.25 moderate shift (需关注), 0.25 and above significant shift (显著漂移).

PSI is computed overall and per segment (default: per sector) when a segment has enough rows on both sides:
a drift confined to one sector is diluted in the whole population but obvious within the sector. Features that
describe the enterprise's group rather than the enterprise (peer accidents in its sector or township, one value
for the whole group) are *context*: their PSI is shown but never banded as drift, since a single accident in a
sector moves the value of every enterprise in it.

Fairness
--------
For every group (township, sector, enterprise size band): the share of the current run tiered high and low,
and — on an earlier run whose outcome window has (at least partly) passed — the realised event rate, the miss
rate (adverse outcomes at enterprises *not* tiered high, among those with an adverse outcome) and the false-alarm
rate (enterprises tiered high with no adverse outcome, among those known to have none). A group is flagged when
its high-tier rate is at least ``tier_rate_ratio`` times the overall rate (or at most its inverse), or when an
error rate differs from the overall one by at least ``error_rate_gap``; groups smaller than ``min_group_rows``
(or with fewer than ``min_group_positives`` outcomes, for the miss rate) are shown but never flagged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from scoring.domain.tiers import TIER_LABELS_ZH, TIERS

__all__ = [
    "BAND_LABELS_ZH",
    "BANDS",
    "SCORE_VARIABLE",
    "MonitoringSettings",
    "Reference",
    "VariableBins",
    "capture_table",
    "distribution_table",
    "fairness_table",
    "migration_matrix",
    "migration_summary",
    "psi",
    "psi_band",
    "reference_from_frame",
    "segment_stability",
    "size_band",
    "stability_table",
    "tier_counts",
    "training_reference",
]

SCORE_VARIABLE = "probability"
"""The name of the model's score (calibrated probability) among the reference's variables."""

BANDS: tuple[str, ...] = ("stable", "moderate", "significant")
BAND_LABELS_ZH: Mapping[str, str] = {
    "stable": "稳定", "moderate": "需关注", "significant": "显著漂移", "n/a": "无法计算",
    "context": "背景特征（不评级）",
}

MISSING_LABEL = "缺失 missing"
OTHER_LABEL = "新类别 unseen"


@dataclass(frozen=True)
class MonitoringSettings:
    """Thresholds of the monitoring report, with their defaults and where they come from.

    ``psi_moderate`` / ``psi_significant``: the 0.10 / 0.25 bands of credit-scoring practice.
    ``size_band_edges``: head-count bounds of the size bands (国家统计局《统计上大中小微型企业划分办法（2017）》,
    industry: micro < 20, small < 300, medium < 1 000, large otherwise); ``size_band_labels`` name them.
    The remaining numbers are riskgrade defaults.
    """

    psi_bins: int = 10
    psi_moderate: float = 0.10
    psi_significant: float = 0.25
    pseudo_count: float = 0.5
    # Segment PSI: per value of these enterprise columns, when both sides have enough rows. Two samples of n
    # rows from one distribution already differ by a PSI of about (bins − 1) / n: ≈ 0.09 at 100 rows, so that
    # chance alone rarely reaches 0.25; at 50 rows it often does.
    segment_by: tuple[str, ...] = ("sector",)
    min_segment_rows: int = 100
    # Fairness.
    size_band_edges: tuple[float, ...] = (20.0, 300.0, 1000.0)
    size_band_labels: tuple[str, ...] = ("微型 <20", "小型 20–299", "中型 300–999", "大型 ≥1000")
    min_group_rows: int = 30
    min_group_positives: int = 10
    tier_rate_ratio: float = 2.0
    error_rate_gap: float = 0.15
    # An earlier run is used for realised outcomes once at least this many days of its window have passed.
    min_outcome_days: int = 30
    # Inspector consistency (执法质量评查): each inspector's finding rate shrunk with this strength — the feature
    # engine's (features.build.DEFAULT_SHRINKAGE_STRENGTH), so that the rate shown is the stringency the features
    # use — and flagged lenient / strict when its interval at this level excludes 1.
    inspector_shrinkage_strength: float = 5.0
    inspector_level: float = 0.95

    def __post_init__(self) -> None:
        if self.psi_bins < 2:
            raise ValueError(("psi_bins", f"expected at least 2, got {self.psi_bins}"))
        if not 0 < self.psi_moderate < self.psi_significant:
            raise ValueError(("psi_significant", "expected 0 < psi_moderate < psi_significant"))
        if self.pseudo_count <= 0:
            raise ValueError(("pseudo_count", f"expected a positive number, got {self.pseudo_count}"))
        if len(self.size_band_labels) != len(self.size_band_edges) + 1:
            raise ValueError(("size_band_labels", "expected one label more than size_band_edges"))
        if list(self.size_band_edges) != sorted(self.size_band_edges):
            raise ValueError(("size_band_edges", "expected increasing bounds"))
        if self.tier_rate_ratio <= 1:
            raise ValueError(("tier_rate_ratio", f"expected a ratio above 1, got {self.tier_rate_ratio}"))
        if self.inspector_shrinkage_strength < 0:
            raise ValueError(("inspector_shrinkage_strength",
                              f"expected a number >= 0, got {self.inspector_shrinkage_strength}"))
        if not 0 < self.inspector_level < 1:
            raise ValueError(("inspector_level", f"expected a level between 0 and 1, got {self.inspector_level}"))


# ---------------------------------------------------------------------------------------------
# Binning and the reference distribution
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariableBins:
    """How one variable is binned (fixed on the reference). See the module docstring."""

    name: str
    kind: Literal["numeric", "categorical"]
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()

    @property
    def n_bins(self) -> int:
        return len(self.edges) + 2 if self.kind == "numeric" else len(self.levels) + 2

    def labels(self) -> list[str]:
        """A short label per bin, in bin order (the last bin is always the missing values)."""
        if self.kind == "categorical":
            return [*self.levels, OTHER_LABEL, MISSING_LABEL]
        if not self.edges:
            return ["全部 all", MISSING_LABEL]
        edges = [_short(e) for e in self.edges]
        labels = [f"≤{edges[0]}"]
        labels += [f"({a}, {b}]" for a, b in zip(edges[:-1], edges[1:], strict=True)]
        labels.append(f">{edges[-1]}")
        return [*labels, MISSING_LABEL]

    def indices(self, values) -> np.ndarray:
        """The bin of every value (``int64``; the last bin, ``n_bins - 1``, holds the missing values)."""
        if self.kind == "categorical":
            series = pd.Series(values, dtype="object")
            missing = series.isna().to_numpy()
            index = {level: i for i, level in enumerate(self.levels)}
            positions = np.full(len(series), self.n_bins - 1, dtype=np.int64)
            positions[~missing] = series[~missing].astype(str).map(index).fillna(len(self.levels)).to_numpy(
                dtype=np.int64)
            return positions
        numbers = _as_float(values)
        missing = np.isnan(numbers)
        positions = np.searchsorted(np.asarray(self.edges, dtype=float), numbers, side="left").astype(np.int64)
        positions[missing] = self.n_bins - 1
        return positions

    def counts(self, values) -> np.ndarray:
        """Rows per bin (``float64``, length :attr:`n_bins`)."""
        return np.bincount(self.indices(values), minlength=self.n_bins).astype(float)

    def grouped_counts(self, values, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Rows per (group, bin): an ``n_groups × n_bins`` array; ``codes`` gives each row's group (-1: none)."""
        positions = self.indices(values)
        keep = codes >= 0
        flat = np.bincount(codes[keep] * self.n_bins + positions[keep], minlength=n_groups * self.n_bins)
        return flat.reshape(n_groups, self.n_bins).astype(float)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "edges": list(self.edges), "levels": list(self.levels)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariableBins:
        return cls(str(data["name"]), data["kind"], tuple(float(e) for e in data.get("edges", ())),
                   tuple(str(v) for v in data.get("levels", ())))


def _short(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3g}"


def _as_float(values) -> np.ndarray:
    series = pd.Series(values)
    if isinstance(series.dtype, pd.api.extensions.ExtensionDtype) or series.dtype == object:
        return pd.to_numeric(series.astype("Float64"), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return series.to_numpy(dtype=float)


def _is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def fit_bins(name: str, values, bins: int = 10) -> VariableBins:
    """The bins of one variable, from its reference values (see the module docstring)."""
    series = pd.Series(values)
    if _is_categorical(series):
        levels = sorted({str(v) for v in series.dropna()})
        return VariableBins(name, "categorical", levels=tuple(levels))
    numbers = _as_float(series)
    numbers = numbers[~np.isnan(numbers)]
    if len(numbers) == 0:
        return VariableBins(name, "numeric")
    quantiles = np.quantile(numbers, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = np.unique(quantiles)
    if len(edges) and edges[-1] >= numbers.max():  # no empty top bin above the maximum
        edges = edges[:-1]
    return VariableBins(name, "numeric", edges=tuple(float(e) for e in edges))


@dataclass(frozen=True)
class Reference:
    """The champion's training distribution: bins and counts per variable, overall and per segment.

    ``segments[column][value][variable]`` holds the counts of the rows whose enterprise ``column`` (e.g.
    ``sector``) equals ``value``. ``meta`` records where it came from (model version, training as-of dates…).
    Stored as JSON (:meth:`to_json`) with the model in MLflow (``monitoring/reference.json``).
    """

    bins: Mapping[str, VariableBins]
    counts: Mapping[str, np.ndarray]
    segments: Mapping[str, Mapping[str, Mapping[str, np.ndarray]]] = field(default_factory=dict)
    n_rows: int = 0
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> list[str]:
        return list(self.bins)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "riskgrade.monitoring.reference/1",
            "n_rows": int(self.n_rows),
            "meta": dict(self.meta),
            "variables": [self.bins[name].to_json() | {"counts": self.counts[name].tolist()} for name in self.bins],
            "segments": {column: {value: {name: counts.tolist() for name, counts in per.items()}
                                  for value, per in values.items()}
                         for column, values in self.segments.items()},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        if data.get("format") != "riskgrade.monitoring.reference/1":
            raise ValueError(f"not a riskgrade monitoring reference (format {data.get('format')!r})")
        bins = {v["name"]: VariableBins.from_json(v) for v in data["variables"]}
        counts = {v["name"]: np.asarray(v["counts"], dtype=float) for v in data["variables"]}
        segments = {column: {value: {name: np.asarray(c, dtype=float) for name, c in per.items()}
                             for value, per in values.items()}
                    for column, values in data.get("segments", {}).items()}
        return cls(bins=bins, counts=counts, segments=segments, n_rows=int(data["n_rows"]), meta=data.get("meta", {}))


def _segment_codes(segments: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    """Each row's segment as a code into the sorted list of segment values (-1 where missing)."""
    values = pd.Series(segments[column].to_numpy(dtype=object)).astype("object")
    codes, uniques = pd.factorize(values.where(values.notna(), None), sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def reference_from_frame(
    frame: pd.DataFrame,
    *,
    scores: Mapping[str, Any] | None = None,
    segments: pd.DataFrame | None = None,
    bins: int = 10,
    meta: Mapping[str, Any] | None = None,
) -> Reference:
    """The reference distribution of every column of ``frame`` and of every array in ``scores`` (the model's
    probability as ``probability``), aligned row for row.

    ``segments``: enterprise attributes aligned with the rows (e.g. a ``sector`` column), each of whose values
    gets its own counts. Every variable is binned once and counted with one pass over its values.
    """
    columns: dict[str, Any] = {str(name): frame[name] for name in frame.columns}
    columns.update({str(name): np.asarray(values) for name, values in (scores or {}).items()})
    fitted = {name: fit_bins(name, values, bins) for name, values in columns.items()}
    counts = {name: fitted[name].counts(columns[name]) for name in fitted}
    per_segment: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for column in (segments.columns if segments is not None else []):
        codes, values = _segment_codes(segments, column)
        grouped = {name: fitted[name].grouped_counts(columns[name], codes, len(values)) for name in fitted}
        per_segment[str(column)] = {value: {name: grouped[name][i] for name in fitted}
                                    for i, value in enumerate(values)}
    return Reference(bins=fitted, counts=counts, segments=per_segment, n_rows=len(frame), meta=dict(meta or {}))


def training_reference(
    features: pd.DataFrame,
    model,
    *,
    segment_by: Sequence[str] = ("sector",),
    bins: int = 10,
    meta: Mapping[str, Any] | None = None,
) -> Reference:
    """The reference of a trained model: its training feature matrix and its probability on those rows.

    ``features`` is the training matrix (every active enterprise at every training as-of date, as
    :func:`features.build_features` gives it); ``segment_by`` are feature columns (``sector``) to segment on.
    """
    probability = np.asarray(model.predict_proba(features))[:, 1]
    columns = [c for c in segment_by if c in features.columns]
    segments = features[columns] if columns else None
    dates = sorted({pd.Timestamp(d).date().isoformat() for d in features.index.get_level_values("as_of")}) \
        if "as_of" in (features.index.names or []) else []
    return reference_from_frame(features, scores={SCORE_VARIABLE: probability}, segments=segments, bins=bins,
                                meta={"as_of_dates": dates, **dict(meta or {})})


# ---------------------------------------------------------------------------------------------
# PSI
# ---------------------------------------------------------------------------------------------


def psi(expected_counts, actual_counts, pseudo_count: float = 0.5) -> float:
    """Population stability index between two count vectors over the same bins (see the module docstring).

    NaN when either side has no rows.
    """
    expected = np.asarray(expected_counts, dtype=float)
    actual = np.asarray(actual_counts, dtype=float)
    if expected.shape != actual.shape:
        raise ValueError(f"expected and actual counts need the same bins, got {expected.shape} and {actual.shape}")
    if expected.sum() <= 0 or actual.sum() <= 0:
        return math.nan
    e = (expected + pseudo_count) / (expected.sum() + pseudo_count * len(expected))
    a = (actual + pseudo_count) / (actual.sum() + pseudo_count * len(actual))
    return float(np.sum((a - e) * np.log(a / e)))


def psi_band(value: float, settings: MonitoringSettings = MonitoringSettings()) -> str:
    """``stable`` / ``moderate`` / ``significant`` (``n/a`` for NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value >= settings.psi_significant:
        return "significant"
    if value >= settings.psi_moderate:
        return "moderate"
    return "stable"


def _largest_shift(bins: VariableBins, expected: np.ndarray, actual: np.ndarray) -> str:
    e = expected / max(expected.sum(), 1.0)
    a = actual / max(actual.sum(), 1.0)
    i = int(np.argmax(np.abs(a - e)))
    return f"{bins.labels()[i]}: {e[i]:.1%} → {a[i]:.1%}"


def stability_table(
    reference: Reference,
    current: pd.DataFrame,
    settings: MonitoringSettings = MonitoringSettings(),
    *,
    describe: Mapping[str, str] | None = None,
    context: Iterable[str] = (),
) -> pd.DataFrame:
    """PSI of every reference variable found in ``current`` (one row per variable, largest PSI first).

    ``context``: variables that describe an enterprise's group rather than the enterprise (peer accidents in
    its sector or township: one value for the whole group, moved by any single accident there). Their PSI is
    shown with the band ``context`` and never counts as drift.

    Columns: ``variable, description, psi, band, n_reference, n_current, missing_reference, missing_current,
    largest_shift`` (the bin whose share moved most: ``label: reference share → current share``).
    A variable that is all missing on both sides (a table the bureau does not have) gets PSI NaN, band ``n/a``.
    """
    context = set(context)
    rows = []
    for name, bins in reference.bins.items():
        if name not in current.columns:
            continue
        expected = reference.counts[name]
        actual = bins.counts(current[name])
        both_missing = expected[:-1].sum() == 0 and actual[:-1].sum() == 0
        value = math.nan if both_missing else psi(expected, actual, settings.pseudo_count)
        rows.append({
            "variable": name,
            "description": (describe or {}).get(name, ""),
            "psi": value,
            "band": "context" if name in context and not both_missing else psi_band(value, settings),
            "n_reference": int(expected.sum()),
            "n_current": int(actual.sum()),
            "missing_reference": float(expected[-1] / max(expected.sum(), 1)),
            "missing_current": float(actual[-1] / max(actual.sum(), 1)),
            "largest_shift": "" if both_missing else _largest_shift(bins, expected, actual),
        })
    columns = ["variable", "description", "psi", "band", "n_reference", "n_current", "missing_reference",
               "missing_current", "largest_shift"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("psi", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def segment_stability(
    reference: Reference,
    current: pd.DataFrame,
    segments: pd.DataFrame,
    settings: MonitoringSettings = MonitoringSettings(),
    *,
    exclude: Iterable[str] = (),
) -> pd.DataFrame:
    """PSI of every variable within each segment (e.g. each sector) with at least ``min_segment_rows`` rows on
    both sides. ``segments`` holds the segment columns aligned with ``current``'s rows; the ``exclude``
    variables and the segment column itself are left out — within one sector, a feature computed from the
    sector as a whole (peer accidents, rates shrunk toward the sector's mean) moves with that one shared value.

    Columns: ``segment_by, segment, variable, psi, band, n_reference, n_current, largest_shift``; largest first.
    """
    exclude = set(exclude)
    rows = []
    for column, values in reference.segments.items():
        if column not in segments.columns:
            continue
        codes, present = _segment_codes(segments, column)
        n_current = np.bincount(codes[codes >= 0], minlength=len(present))
        position = {value: i for i, value in enumerate(present)}
        wanted = [v for v in values if v in position and n_current[position[v]] >= settings.min_segment_rows]
        if not wanted:
            continue
        for name, bins in reference.bins.items():
            if name not in current.columns or name == column or name in exclude:
                continue
            grouped = bins.grouped_counts(current[name], codes, len(present))
            for value in wanted:
                expected = values[value][name]
                actual = grouped[position[value]]
                n_ref = int(expected.sum())
                if n_ref < settings.min_segment_rows:
                    continue
                if expected[:-1].sum() == 0 and actual[:-1].sum() == 0:
                    continue
                value_psi = psi(expected, actual, settings.pseudo_count)
                rows.append({"segment_by": column, "segment": value, "variable": name, "psi": value_psi,
                             "band": psi_band(value_psi, settings), "n_reference": n_ref,
                             "n_current": int(actual.sum()), "largest_shift": _largest_shift(bins, expected, actual)})
    columns = ["segment_by", "segment", "variable", "psi", "band", "n_reference", "n_current", "largest_shift"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def distribution_table(reference: Reference, current: pd.DataFrame, variable: str) -> pd.DataFrame:
    """Reference and current share per bin of one variable (for plots): ``bin, reference, current``."""
    bins = reference.bins[variable]
    expected = reference.counts[variable]
    actual = bins.counts(current[variable])
    return pd.DataFrame({"bin": bins.labels(), "reference": expected / max(expected.sum(), 1),
                         "current": actual / max(actual.sum(), 1)})


# ---------------------------------------------------------------------------------------------
# Tiers: mix and migration
# ---------------------------------------------------------------------------------------------


def tier_counts(scores: pd.DataFrame, by: str, *, tier_column: str = "final_tier") -> pd.DataFrame:
    """Enterprises per tier for each value of ``by`` (rows, most high-tier first) with a total row (合计).

    Columns: ``high, general, low, total, high_share``.
    """
    groups = scores[by].astype("object").where(scores[by].notna(), "(未填 missing)")
    table = pd.crosstab(groups, scores[tier_column]).reindex(columns=list(reversed(TIERS)), fill_value=0)
    table.index.name = by
    table.columns.name = None
    table["total"] = table.sum(axis=1)
    table = table.sort_values(["high", "total"], ascending=False, kind="stable")
    total = table.sum(axis=0).rename("合计 total")
    table = pd.concat([table, total.to_frame().T])
    table.index.name = by
    table["high_share"] = table["high"] / table["total"].where(table["total"] > 0)
    return table.astype({c: "int64" for c in (*reversed(TIERS), "total")})


NEW_LABEL = "new"
GONE_LABEL = "gone"
MIGRATION_LABELS_ZH = {**TIER_LABELS_ZH, NEW_LABEL: "新纳入", GONE_LABEL: "退出"}


def migration_matrix(previous: pd.DataFrame, current: pd.DataFrame, *, tier_column: str = "final_tier") -> pd.DataFrame:
    """Enterprises by (previous tier → current tier); ``new`` rows were not scored before, ``gone`` columns
    are no longer scored. Both frames have ``enterprise_id`` and ``tier_column``."""
    before = previous.set_index("enterprise_id")[tier_column].astype("object")
    after = current.set_index("enterprise_id")[tier_column].astype("object")
    ids = before.index.union(after.index)
    frm = before.reindex(ids).fillna(NEW_LABEL)
    to = after.reindex(ids).fillna(GONE_LABEL)
    order_from = [*reversed(TIERS), NEW_LABEL]
    order_to = [*reversed(TIERS), GONE_LABEL]
    table = pd.crosstab(frm, to).reindex(index=order_from, columns=order_to, fill_value=0)
    table.index.name, table.columns.name = "from", "to"
    return table


def migration_summary(matrix: pd.DataFrame) -> dict[str, int]:
    """Counts of upgrades (to a riskier tier), downgrades, unchanged, new and gone enterprises."""
    rank = {tier: i for i, tier in enumerate(TIERS)}
    out = {"up": 0, "down": 0, "same": 0, "new": 0, "gone": 0}
    for frm in matrix.index:
        for to in matrix.columns:
            n = int(matrix.loc[frm, to])
            if frm == NEW_LABEL:
                out["new"] += n if to != GONE_LABEL else 0
            elif to == GONE_LABEL:
                out["gone"] += n
            elif rank[to] > rank[frm]:
                out["up"] += n
            elif rank[to] < rank[frm]:
                out["down"] += n
            else:
                out["same"] += n
    return out


# ---------------------------------------------------------------------------------------------
# Events captured by the tiers
# ---------------------------------------------------------------------------------------------


def capture_table(tiers: pd.DataFrame, events: Mapping[str, Iterable[str]], *,
                  tier_column: str = "final_tier") -> pd.DataFrame:
    """Per tier: enterprises and their share, and for every kind of event (``events[kind]``: the
    ``enterprise_id`` of each event, repeated per event) the events at that tier's enterprises and their share.

    Rows high, general, low and a total (合计); columns ``enterprises, enterprise_share`` then
    ``<kind>, <kind>_share`` per kind and ``<kind>_lift`` (event share / enterprise share). Events of
    enterprises the tiers do not cover are counted in the total only (column ``<kind>_untiered`` of the total).
    """
    events = {kind: [str(i) for i in ids] for kind, ids in events.items()}
    tier_of = tiers.set_index("enterprise_id")[tier_column].astype("object")
    order = list(reversed(TIERS))
    n = tier_of.value_counts().reindex(order, fill_value=0)
    table = pd.DataFrame({"enterprises": n.astype("int64")})
    table["enterprise_share"] = n / max(int(n.sum()), 1)
    for kind, ids in events.items():
        ids = pd.Series(list(ids), dtype="object")
        tier = tier_of.reindex(ids.to_numpy()).to_numpy(dtype=object)
        counts = pd.Series(tier).value_counts().reindex(order, fill_value=0)
        total = len(ids)
        table[kind] = counts.astype("int64")
        table[f"{kind}_share"] = counts / total if total else math.nan
        table[f"{kind}_lift"] = table[f"{kind}_share"] / table["enterprise_share"].where(table["enterprise_share"] > 0)
    total_row = {"enterprises": int(n.sum()), "enterprise_share": 1.0}
    for kind, ids in events.items():
        total_row[kind] = len(ids)
        total_row[f"{kind}_share"] = 1.0 if total_row[kind] else math.nan
        total_row[f"{kind}_lift"] = math.nan
    table = pd.concat([table, pd.DataFrame([total_row], index=["合计 total"])])
    table.index.name = "tier"
    return table


# ---------------------------------------------------------------------------------------------
# Fairness
# ---------------------------------------------------------------------------------------------


def size_band(employees, settings: MonitoringSettings = MonitoringSettings()) -> pd.Series:
    """Size band per enterprise from its head count (missing head count: ``未知 unknown``)."""
    numbers = _as_float(employees)
    positions = np.searchsorted(np.asarray(settings.size_band_edges, dtype=float), numbers, side="right")
    names = np.asarray(settings.size_band_labels, dtype=object)
    labels = names[np.minimum(positions, len(names) - 1)]
    labels = np.where(np.isnan(numbers), "未知 unknown", labels)
    index = employees.index if isinstance(employees, pd.Series) else None
    return pd.Series(labels, index=index, dtype="object", name="size_band")


def _rates(frame: pd.DataFrame) -> dict[str, float]:
    """Rates of one group: tiers of the current run; outcomes and errors of the evaluated run."""
    n = int(frame["current_tier"].notna().sum())
    out: dict[str, Any] = {
        "n": n,
        "high_rate": float((frame["current_tier"] == "high").sum() / n) if n else math.nan,
        "low_rate": float((frame["current_tier"] == "low").sum() / n) if n else math.nan,
    }
    known = frame["label_known"].fillna(False).astype(bool) & frame["evaluated_tier"].notna()
    labelled = frame[known]
    positives = labelled["label"].astype(float) == 1
    negatives = ~positives
    high = labelled["evaluated_tier"] == "high"
    out.update({
        "n_evaluated": int(known.sum()),
        "positives": int(positives.sum()),
        "event_rate": float(positives.mean()) if len(labelled) else math.nan,
        "miss_rate": float((positives & ~high).sum() / positives.sum()) if positives.sum() else math.nan,
        "false_alarm_rate": float((negatives & high).sum() / negatives.sum()) if negatives.sum() else math.nan,
    })
    return out


def fairness_table(
    current: pd.DataFrame,
    evaluated: pd.DataFrame | None,
    groups: pd.DataFrame,
    settings: MonitoringSettings = MonitoringSettings(),
) -> pd.DataFrame:
    """Tier rates and error rates by group, with the large gaps flagged (see the module docstring).

    ``current``: ``enterprise_id, final_tier`` of the current run. ``evaluated``: ``enterprise_id, final_tier,
    label, label_known`` of the earlier run whose outcomes are (partly) known, or None. ``groups``:
    ``enterprise_id`` and one column per grouping (``township``, ``sector``, ``size_band``).

    One row per (``group_by``, ``group``) plus an ``overall`` row first; columns ``n, high_rate, low_rate,
    n_evaluated, positives, event_rate, miss_rate, false_alarm_rate, flagged, flags``.
    """
    frame = groups.set_index("enterprise_id")
    frame = frame.join(current.set_index("enterprise_id")["final_tier"].rename("current_tier"), how="outer")
    if evaluated is not None and len(evaluated):
        ev = evaluated.set_index("enterprise_id")
        frame = frame.join(ev["final_tier"].rename("evaluated_tier"), how="left")
        frame = frame.join(ev[["label", "label_known"]], how="left")
    else:
        frame["evaluated_tier"] = pd.Series(pd.NA, index=frame.index, dtype="object")
        frame["label"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        frame["label_known"] = False
    overall = _rates(frame)
    rows = [{"group_by": "overall", "group": "全部 all", **overall, "flagged": False, "flags": ""}]
    for column in [c for c in groups.columns if c != "enterprise_id"]:
        keys = frame[column].astype("object").where(frame[column].notna(), "(未填 missing)")
        for value, part in frame.groupby(keys, sort=True):
            rates = _rates(part)
            flags = _flags(rates, overall, settings)
            rows.append({"group_by": column, "group": str(value), **rates, "flagged": bool(flags),
                         "flags": "; ".join(flags)})
    return pd.DataFrame(rows)


def _flags(rates: Mapping[str, Any], overall: Mapping[str, Any], s: MonitoringSettings) -> list[str]:
    flags: list[str] = []
    if rates["n"] >= s.min_group_rows and overall["high_rate"] and not math.isnan(rates["high_rate"]):
        ratio = rates["high_rate"] / overall["high_rate"]
        if ratio >= s.tier_rate_ratio or ratio <= 1 / s.tier_rate_ratio:
            flags.append(f"高风险占比 {rates['high_rate']:.0%}，整体 {overall['high_rate']:.0%} "
                         f"(high-tier rate {ratio:.1f}× overall)")
    if rates["n_evaluated"] >= s.min_group_rows:
        checks = (("false_alarm_rate", "误报率 false-alarm rate", True),
                  ("miss_rate", "漏报率 miss rate", rates["positives"] >= s.min_group_positives))
        for key, label, enough in checks:
            value, base = rates[key], overall[key]
            if enough and not (math.isnan(value) or math.isnan(base)) and abs(value - base) >= s.error_rate_gap:
                flags.append(f"{label} {value:.0%} vs {base:.0%}")
    return flags
