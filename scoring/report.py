"""The monitoring report for the bureau's leaders: one self-contained HTML file (``riskgrade report``).

:func:`generate_report` reads the latest nightly run (or the run of a date), the contract tables and the MLflow
champion, computes the figures with the pure functions of :mod:`scoring.domain.monitoring`, stores them in
``monitoring_runs`` / ``monitoring_metrics`` (:mod:`scoring.results.monitoring_tables`) and writes the HTML. Sections
(each an HTML ``<section>`` with this id):

``summary``    the run described, the model, headline figures and their change since the previous monitoring run;
``tiers``      tier counts by township (乡镇/街道) and sector;
``migration``  tier migration since the previous nightly run;
``stability``  score distribution against the champion's training distribution, PSI of the score and of every
               feature (bands 0.10 / 0.25), and the segments (sectors) where a feature drifted;
``backtest``   the champion's backtest: headline metrics, calibration and capture (lift) curves;
``capture``    accidents and major hazards after an earlier run, by the tier that run gave the enterprise;
``fairness``   tier rates and error rates by township, sector and size band, with large gaps flagged;
``inspectors`` inspector consistency (执法质量评查): each inspector's shrunk finding rate with its interval, the
               lenient and strict ones flagged (:func:`features.visits.inspector_consistency`; absent, with a line
               saying why, when the data record no inspectors);
``changes``    what moved since the previous monitoring run;
``notes``      definitions and caveats.

The champion's training distribution (:class:`scoring.domain.monitoring.Reference`) is read from its MLflow run
(artifact ``monitoring/reference.json``, written by :func:`log_reference` — the retraining notebook does it
after promoting). When the artifact is missing it is computed from the champion's training rows (the training
as-of dates recorded with the run: features rebuilt point-in-time from the database, scored with the champion)
and logged to the run, so that the next report reads it.

Charts are PNG (matplotlib, Agg) embedded as base64; their Chinese labels are set in Noto Sans CJK SC, shipped
inside the ``mplfonts`` wheel (SIL Open Font License) and registered with matplotlib's font manager at report
time — no system font and no download needed (:func:`register_cjk_font`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import importlib.util
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.errors import DataError
from scoring.domain.monitoring import (
    BAND_LABELS_ZH,
    MIGRATION_LABELS_ZH,
    SCORE_VARIABLE,
    MonitoringSettings,
    Reference,
    capture_table,
    distribution_table,
    fairness_table,
    migration_matrix,
    migration_summary,
    segment_stability,
    size_band,
    stability_table,
    tier_counts,
    training_reference,
)
from scoring.domain.tiers import TIER_LABELS_ZH, TIERS

__all__ = [
    "CJK_FONT_FAMILY",
    "REFERENCE_ARTIFACT",
    "SECTIONS",
    "MonitoringReport",
    "build_report",
    "cjk_font_path",
    "generate_report",
    "load_reference",
    "log_reference",
    "register_cjk_font",
    "render_html",
    "use_cjk_font",
]

SECTIONS: tuple[str, ...] = ("summary", "tiers", "migration", "stability", "backtest", "capture", "fairness",
                             "inspectors", "changes", "notes")
"""The ids of the report's sections, in order."""

REFERENCE_ARTIFACT = "monitoring/reference.json"
BACKTEST_ARTIFACT = "backtest/report.json"
CJK_FONT_FAMILY = "Noto Sans CJK SC"
_CJK_FONT_FILE = ("fonts", "NotoSansCJKsc-Regular.otf")
_TIER_COLOURS = {"high": "#d7301f", "general": "#fdae61", "low": "#1a9850"}
_BAND_COLOURS = {"stable": "#1a9850", "moderate": "#fdae61", "significant": "#d7301f", "n/a": "#bdbdbd",
                 "context": "#9e9e9e"}
_BACKTEST_METRICS = ("roc_auc", "pr_auc", "brier", "precision_at_10pct_worst", "recall_at_10pct_worst",
                     "high_tier_capture_worst", "event_rate", "mean_probability")


# ---------------------------------------------------------------------------------------------
# The CJK font
# ---------------------------------------------------------------------------------------------


def cjk_font_path() -> Path:
    """Noto Sans CJK SC inside the installed ``mplfonts`` package (found without importing it)."""
    spec = importlib.util.find_spec("mplfonts")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location).joinpath(*_CJK_FONT_FILE)
        if path.is_file():
            return path
    raise DataError("the Chinese font Noto Sans CJK SC was not found: the report needs the mplfonts package "
                    "(a riskgrade dependency) — reinstall riskgrade: pip install -e .")


def register_cjk_font() -> str:
    """Register the bundled CJK font with matplotlib's font manager (idempotent); returns its family name."""
    from matplotlib import font_manager

    path = str(cjk_font_path())
    if not any(entry.fname == path for entry in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def _font_rc() -> dict[str, Any]:
    family = register_cjk_font()
    return {"font.family": "sans-serif", "font.sans-serif": [family, "DejaVu Sans"], "axes.unicode_minus": False}


def use_cjk_font() -> str:
    """Make the CJK font matplotlib's default sans-serif for this process (notebooks); returns its family."""
    import matplotlib

    matplotlib.rcParams.update(_font_rc())
    return matplotlib.rcParams["font.sans-serif"][0]


@contextlib.contextmanager
def _figure(width: float = 7.0, height: float = 4.0) -> Iterator[Any]:
    """A matplotlib Figure (no pyplot state) created under the CJK font settings."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_font_rc()):
        figure = Figure(figsize=(width, height), dpi=100)
        yield figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# MLflow: the champion's run, its backtest report and its reference distribution
# ---------------------------------------------------------------------------------------------


def _client(uri: str | None):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    from models.registry import tracking_uri

    resolved = tracking_uri(uri)
    return mlflow.MlflowClient(tracking_uri=resolved, registry_uri=resolved), resolved


def _read_artifact(run_id: str, path: str, uri: str | None) -> Any | None:
    from mlflow.exceptions import MlflowException

    client, _ = _client(uri)
    with tempfile.TemporaryDirectory() as directory:
        try:
            local = client.download_artifacts(run_id, path, directory)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(local).read_text(encoding="utf-8"))


def load_reference(run_id: str, uri: str | None = None) -> Reference | None:
    """The reference distribution logged with an MLflow run, or None when it has none."""
    data = _read_artifact(run_id, REFERENCE_ARTIFACT, uri)
    return None if data is None else Reference.from_json(data)


def log_reference(reference: Reference, run_id: str, uri: str | None = None) -> None:
    """Log a reference distribution with an MLflow run (artifact ``monitoring/reference.json``)."""
    client, _ = _client(uri)
    client.log_dict(run_id, reference.to_json(), REFERENCE_ARTIFACT)


@dataclass
class _Champion:
    version: str
    run_id: str
    kind: str
    params: dict[str, str]
    backtest: dict[str, Any] | None
    uri: str | None
    _model: Any = None

    @property
    def model(self):
        if self._model is None:
            from models.registry import load_champion

            self._model = load_champion(self.uri).model
        return self._model

    @property
    def label(self) -> str:
        return f"riskgrade v{self.version} ({self.kind})"


def _champion(uri: str | None) -> _Champion | None:
    from models.registry import champion_version, store_exists

    if not store_exists(uri):
        return None

    found = champion_version(uri)
    if found is None:
        return None
    client, _ = _client(uri)
    params = dict(client.get_run(found.run_id).data.params)
    backtest = _read_artifact(found.run_id, BACKTEST_ARTIFACT, uri)
    return _Champion(found.version, found.run_id, found.kind or params.get("kind", ""), params, backtest, uri)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class MonitoringReport:
    """Everything one report shows (``tables`` and ``figures`` by name; figures as PNG bytes)."""

    as_of: date
    run: dict[str, Any]
    previous_as_of: date | None
    champion: dict[str, Any] | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    figures_meta: dict[str, str] = field(default_factory=dict)  # name -> caption
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: pd.DataFrame | None = None
    previous_monitoring: dict[str, Any] | None = None
    monitoring_run_id: int | None = None
    generated_at: datetime = field(default_factory=datetime.now)
    settings: MonitoringSettings = field(default_factory=MonitoringSettings)

    def significant_features(self) -> list[str]:
        table = self.tables.get("stability")
        if table is None or table.empty:
            return []
        return table.loc[table["band"] == "significant", "variable"].tolist()


def _sector_zh(code: Any) -> str:
    from features.contract import SECTOR_BY_CODE

    return SECTOR_BY_CODE[code].label_zh if code in SECTOR_BY_CODE else str(code)


def _context_features() -> list[str]:
    """Catalog features that describe the enterprise's group (peer accidents in its sector / township)."""
    from features.catalog import CATALOG

    return [f.name for f in CATALOG if f.group_by]


def _cross_enterprise_features() -> list[str]:
    """Catalog features computed across enterprises (peer counts, rates shrunk toward the sector mean)."""
    from features.build import AGGREGATIONS
    from features.catalog import CATALOG

    return [f.name for f in CATALOG if AGGREGATIONS[f.aggregation].stage == "cross_enterprise"]


def _descriptions() -> dict[str, str]:
    from features.catalog import CATALOG

    out = {f.name: f.description_zh for f in CATALOG}
    out[SCORE_VARIABLE] = "模型风险概率（校准后）"
    return out


def _run_before(engine: sa.Engine, day: date) -> dict | None:
    from scoring.results.tables import latest_run

    return latest_run(engine, day - timedelta(days=1), on_or_before=True)


def _evaluated_run(engine: sa.Engine, day: date, horizon: int, settings: MonitoringSettings) -> tuple[date, int] | None:
    """The earlier run whose outcomes are judged: the latest whose horizon has closed, else the earliest run
    at least ``min_outcome_days`` old; with the days of its window that had passed (at most ``horizon``)."""
    from scoring.results.tables import runs_frame

    runs = runs_frame(engine)
    runs = runs[(runs["status"] == "succeeded")]
    dates = sorted({pd.Timestamp(d).date() for d in runs["as_of"]})
    earlier = [d for d in dates if d < day]
    complete = [d for d in earlier if (day - d).days >= horizon]
    if complete:
        return complete[-1], horizon
    old_enough = [d for d in earlier if (day - d).days >= settings.min_outcome_days]
    if old_enough:
        return old_enough[0], (day - old_enough[0]).days
    return None


def _events(tables: Mapping[str, pd.DataFrame], start: date, days: int, known_before: date) -> dict[str, list[str]]:
    """Enterprise ids of the accidents and major hazards dated in ``[start, start + days)`` and recorded before
    ``known_before`` (one id per event)."""
    first, end, known = pd.Timestamp(start), pd.Timestamp(start) + pd.Timedelta(days=days), pd.Timestamp(known_before)
    out: dict[str, list[str]] = {"accidents": [], "major_hazards": []}
    accidents = tables.get("accidents")
    if accidents is not None:
        rows = accidents[(accidents["occurred_on"] >= first) & (accidents["occurred_on"] < end)
                         & (accidents["recorded_on"] < known)]
        out["accidents"] = rows["enterprise_id"].astype(str).tolist()
    hazards = tables.get("hazards")
    if hazards is not None:
        rows = hazards[(hazards["level"] == "major") & (hazards["found_on"] >= first) & (hazards["found_on"] < end)
                       & (hazards["recorded_on"] < known)]
        out["major_hazards"] = rows["enterprise_id"].astype(str).tolist()
    return out


def build_report(
    engine: sa.Engine,
    *,
    as_of: date | str | None = None,
    policy=None,
    tracking_uri: str | None = None,
    settings: MonitoringSettings | None = None,
    store: bool = True,
    report_path: str | None = None,
) -> MonitoringReport:
    """Compute (and with ``store`` record) the monitoring report of the nightly run of ``as_of`` — the latest
    succeeded run on or before that date, or the latest run when ``as_of`` is None.

    ``policy``: a :class:`scoring.domain.policy.Policy` (default: the shipped policy); its ``[labels]`` give the outcome
    horizon and target when the champion's run does not record them, its ``[monitoring]`` the thresholds
    (unless ``settings`` overrides them). Raises :class:`DataError` when the
    database holds no succeeded nightly run.
    """
    from features.store import load_tables
    from scoring.results.monitoring_tables import previous_monitoring, read_metrics, store_monitoring
    from scoring.domain.policy import load_policy
    from scoring.results.tables import latest_run, scores_frame

    policy = policy if policy is not None else load_policy()
    settings = settings if settings is not None else policy.monitoring
    run = latest_run(engine, as_of, on_or_before=True) if as_of is not None else latest_run(engine)
    if run is None:
        when = f" on or before {pd.Timestamp(as_of).date()}" if as_of is not None else ""
        raise DataError(f"no succeeded nightly run{when} in this database: run riskgrade nightly first")
    day = pd.Timestamp(run["as_of"]).date()
    report = MonitoringReport(as_of=day, run=dict(run), previous_as_of=None, champion=None, settings=settings)
    scores = scores_frame(engine, day, columns=["enterprise_id", "name", "sector", "township", "probability",
                                                "model_tier", "final_tier"])
    scores["enterprise_id"] = scores["enterprise_id"].astype(str)
    report.facts["counts"] = {t: int((scores["final_tier"] == t).sum()) for t in TIERS} | {"n": len(scores)}
    tables = load_tables(engine)

    _tiers_and_migration(report, engine, scores)
    champion = _champion(tracking_uri)
    labels = {"horizon_days": int(policy.labels.get("horizon_days", 365)),
              "target": str(policy.labels.get("target", "accident+major_hazard+suspension")),
              "exclude_road_traffic": bool(policy.labels.get("exclude_road_traffic", True))}
    if champion is None:
        report.notes.append("模型库中没有冠军模型 (no champion model in the MLflow registry): stability against the "
                            "training distribution and the backtest cannot be shown.")
    else:
        report.champion = {"version": champion.version, "run_id": champion.run_id, "kind": champion.kind,
                           "as_of": champion.params.get("as_of"), "label": champion.label}
        labels["horizon_days"] = int(champion.params.get("horizon_days", labels["horizon_days"]))
        labels["target"] = champion.params.get("target", labels["target"])
        if champion.backtest is not None:
            report.tables["backtest"] = _backtest_table(champion.backtest)
            report.facts["backtest"] = champion.backtest
        reference, report.champion["reference_source"] = _reference(champion, tables, settings, report.notes)
        if reference is not None:
            _stability(report, tables, scores, champion, reference, settings)
    if run.get("model_source") != "champion":
        report.notes.append(f"本次夜间评分未使用冠军模型 (the nightly run scored with {run.get('model_name')} "
                            f"{run.get('model_version')}, source {run.get('model_source')}).")
    evaluated = _outcomes(report, engine, tables, labels, settings)
    _fairness(report, tables, scores, evaluated, settings)
    _inspectors(report, tables, settings)

    report.metrics = report_metrics(report)
    earlier = previous_monitoring(engine, day)
    if earlier is not None:
        report.previous_monitoring = earlier
        report.changes = compare_metrics(report.metrics, read_metrics(engine, earlier["monitoring_run_id"]))
    report.facts["summary"] = _summary(report)
    if store:
        from scoring.results.batch import policy_fingerprint

        evaluated_facts = report.facts.get("evaluated") or {}
        report.monitoring_run_id = store_monitoring(engine, as_of=day, metrics=report.metrics, run={
            "nightly_run_id": int(run["run_id"]),
            "model_version": _model_label(run),
            "champion_version": None if champion is None else champion.version,
            "champion_run_id": None if champion is None else champion.run_id,
            "reference_source": (report.champion or {}).get("reference_source"),
            "previous_as_of": report.previous_as_of,
            "evaluated_as_of": evaluated_facts.get("as_of"),
            "evaluated_days": evaluated_facts.get("days"),
            "compared_with": None if earlier is None else int(earlier["monitoring_run_id"]),
            "policy_hash": policy_fingerprint(policy),
            "summary": report.facts["summary"],
            "report_path": report_path,
        })
    report.figures, report.figures_meta = _figures(report)
    return report


def _tiers_and_migration(report: MonitoringReport, engine: sa.Engine, scores: pd.DataFrame) -> None:
    """Tier counts by township and sector; the migration matrix since the previous nightly run."""
    from scoring.results.tables import scores_frame

    labelled = scores.assign(sector=scores["sector"].map(_sector_zh))
    report.tables["tiers_by_township"] = tier_counts(labelled, "township")
    report.tables["tiers_by_sector"] = tier_counts(labelled, "sector")
    previous = _run_before(engine, report.as_of)
    if previous is None:
        report.notes.append("这是第一次夜间评分，尚无等级迁移 (first nightly run: no migration yet).")
        return
    report.previous_as_of = pd.Timestamp(previous["as_of"]).date()
    before = scores_frame(engine, report.previous_as_of, columns=["enterprise_id", "final_tier"])
    before["enterprise_id"] = before["enterprise_id"].astype(str)
    report.tables["migration"] = migration_matrix(before, scores)
    report.facts["migration"] = migration_summary(report.tables["migration"])


def _stability(report: MonitoringReport, tables, scores: pd.DataFrame, champion: _Champion, reference: Reference,
               settings: MonitoringSettings) -> None:
    """PSI of the score and of every feature as of the run's date against the champion's training distribution,
    overall and per segment. The score is the run's published probability when the run used the champion."""
    from features import build_features

    features = build_features(tables, [pd.Timestamp(report.as_of)])
    ids = features.index.get_level_values("enterprise_id").astype(str)
    current = features.reset_index(level="as_of", drop=True)
    current.index = ids
    run = report.run
    if run.get("model_source") == "champion" and str(run.get("model_version")) == champion.version:
        current[SCORE_VARIABLE] = scores.set_index("enterprise_id")["probability"].reindex(ids).to_numpy()
    else:
        current[SCORE_VARIABLE] = np.asarray(champion.model.predict_proba(features))[:, 1]
        report.notes.append(f"分数稳定性按当前冠军模型 v{champion.version} 重新计算 (the score's stability uses "
                            "the current champion's probability on the run's features, not the published one).")
    context = _context_features()
    report.tables["stability"] = stability_table(reference, current, settings, describe=_descriptions(),
                                                 context=context)
    segments = current[[c for c in settings.segment_by if c in current.columns]].astype("object")
    report.tables["segment_stability"] = segment_stability(
        reference, current, segments, settings, exclude=[*context, *_cross_enterprise_features()])
    report.tables["score_distribution"] = distribution_table(reference, current, SCORE_VARIABLE)


def _outcomes(report: MonitoringReport, engine: sa.Engine, tables, labels: Mapping[str, Any],
              settings: MonitoringSettings) -> pd.DataFrame | None:
    """Events captured by the tiers of an earlier run, and that run's tiers with their realised labels
    (``enterprise_id, final_tier, label, label_known``); None without an earlier run old enough."""
    from features import build_labels
    from scoring.results.tables import scores_frame

    day, horizon = report.as_of, labels["horizon_days"]
    chosen = _evaluated_run(engine, day, horizon, settings)
    if chosen is None:
        report.notes.append(f"没有足够早的夜间评分可用于结果评估 (no nightly run at least {settings.min_outcome_days} "
                            "days before this one: captured events and error rates appear once one exists).")
        return None
    ev_day, window = chosen
    report.facts["evaluated"] = {"as_of": ev_day, "days": window, "horizon": horizon, "target": labels["target"]}
    tiers = scores_frame(engine, ev_day, columns=["enterprise_id", "final_tier"])
    tiers["enterprise_id"] = tiers["enterprise_id"].astype(str)
    report.tables["capture"] = capture_table(tiers, _events(tables, ev_day, window, day))
    outcome = build_labels(tables, [pd.Timestamp(ev_day)], horizon_days=window, target=labels["target"],
                           exclude_road_traffic=labels["exclude_road_traffic"], known_before=pd.Timestamp(day))
    outcome = outcome.reset_index(level="as_of", drop=True)
    outcome.index = outcome.index.astype(str)
    if window < horizon:
        report.notes.append(f"结果评估基于 {ev_day} 的评分及其后 {window} 天（完整期限 {horizon} 天）"
                            f"(outcomes after the run of {ev_day}: {window} of {horizon} days have passed).")
    return tiers.join(outcome[["label", "label_known"]], on="enterprise_id")


def _fairness(report: MonitoringReport, tables, scores: pd.DataFrame, evaluated: pd.DataFrame | None,
              settings: MonitoringSettings) -> None:
    """Tier and error rates by township, sector and size band (attributes from the enterprises table)."""
    enterprises = tables["enterprises"].drop_duplicates("enterprise_id").set_index("enterprise_id")
    ids = pd.Index(scores["enterprise_id"])
    if evaluated is not None:
        ids = ids.union(pd.Index(evaluated["enterprise_id"]))
    attributes = enterprises.reindex(ids)
    groups = pd.DataFrame({"enterprise_id": ids, "township": attributes["township"].to_numpy(dtype=object),
                           "sector": attributes["sector"].map(_sector_zh).to_numpy(dtype=object),
                           "size_band": size_band(attributes["employees"], settings).to_numpy(dtype=object)})
    report.tables["fairness"] = fairness_table(scores[["enterprise_id", "final_tier"]], evaluated, groups, settings)


def _inspectors(report: MonitoringReport, tables, settings: MonitoringSettings) -> None:
    """Each inspector's shrunk finding rate and its interval over the visits of the feature window before the run's
    date (:func:`features.visits.inspector_consistency`, strength and level from the policy's ``[monitoring]``);
    without any, ``facts["inspectors_absent"]`` says why."""
    from features.catalog import INSPECTOR_WINDOW_DAYS
    from features.inspectors import inspection_teams
    from features.visits import inspector_consistency

    if inspection_teams(tables) is None:
        report.facts["inspectors_absent"] = (
            "数据中没有执法人员记录 (the data record no inspectors: no inspection_inspectors table and no "
            "inspections.inspectors column), so inspector consistency cannot be shown.")
        return
    table = inspector_consistency(tables, report.as_of, window_days=INSPECTOR_WINDOW_DAYS,
                                  shrinkage_strength=settings.inspector_shrinkage_strength,
                                  level=settings.inspector_level)
    if table.empty:
        report.facts["inspectors_absent"] = (
            f"{INSPECTOR_WINDOW_DAYS} 天内没有记录检查人员的检查 (no inspection with a recorded team in the "
            f"{INSPECTOR_WINDOW_DAYS} days before {report.as_of}, or no hazards table), so inspector consistency "
            f"cannot be shown.")
        return
    report.tables["inspectors"] = table
    report.facts["inspectors"] = {"n": len(table), "lenient": int((table["flag"] == "lenient").sum()),
                                  "strict": int((table["flag"] == "strict").sum()),
                                  "window_days": INSPECTOR_WINDOW_DAYS}


def _model_label(run: Mapping[str, Any]) -> str:
    if run.get("model_source") == "champion":
        return f"{run.get('model_name')} v{run.get('model_version')} ({run.get('model_kind')})"[:64]
    return f"{run.get('model_name') or ''} {run.get('model_version') or ''}".strip()[:64]


def _reference(champion: _Champion, tables, settings: MonitoringSettings, notes: list[str]):
    """The champion's training distribution: the logged artifact, else computed from its training rows (and
    logged for next time)."""
    try:
        stored = load_reference(champion.run_id, champion.uri)
    except ValueError as exc:
        stored = None
        notes.append(f"the logged reference distribution could not be read ({exc}); recomputed")
    if stored is not None:
        return stored, f"MLflow artifact {REFERENCE_ARTIFACT}"
    from features import build_features

    dates = [d for d in champion.params.get("as_of_dates", "").split(",") if d]
    if not dates:
        notes.append("冠军模型未记录训练日期 (the champion's run records no training as-of dates): no reference "
                     "distribution, no stability section.")
        return None, None
    features = build_features(tables, [pd.Timestamp(d) for d in dates])
    reference = training_reference(features, champion.model, segment_by=settings.segment_by, bins=settings.psi_bins,
                                   meta={"model_version": champion.version, "run_id": champion.run_id,
                                         "source": "computed from the training rows at report time"})
    try:
        log_reference(reference, champion.run_id, champion.uri)
    except Exception as exc:  # caching is a convenience: the report stands without it
        notes.append(f"the reference distribution could not be logged to MLflow ({type(exc).__name__}: {exc})")
    return reference, f"computed from the training rows ({len(dates)} as-of dates) and logged to MLflow"


def _backtest_table(backtest: Mapping[str, Any]) -> pd.DataFrame:
    entry = backtest.get("model") or {}
    rows = [{"test_date": "全部 all", **{k: entry.get(k) for k in ("n", "positives", *_BACKTEST_METRICS)}}]
    for test_date, part in sorted((entry.get("by_test_date") or {}).items()):
        rows.append({"test_date": test_date, **{k: part.get(k) for k in ("n", "positives", *_BACKTEST_METRICS)}})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Metrics (what is stored) and the comparison with the previous monitoring run
# ---------------------------------------------------------------------------------------------


def _metric(section, metric, value, *, feature="", group_by="", group_value="", band="", detail=None) -> dict:
    try:
        number = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        number = math.nan
    return {"section": section, "metric": metric, "feature": feature, "group_by": group_by,
            "group_value": str(group_value), "value": number, "band": band, "detail": detail}


def report_metrics(report: MonitoringReport) -> pd.DataFrame:
    """Every figure of ``report`` as rows of :data:`scoring.results.monitoring_tables.METRIC_COLUMNS`."""
    rows: list[dict] = []
    for by in ("township", "sector"):
        table = report.tables.get(f"tiers_by_{by}")
        if table is None:
            continue
        for group, row in table.iterrows():
            key = "" if str(group).startswith("合计") else by
            value = "" if not key else group
            for tier in TIERS:
                rows.append(_metric("tiers", f"n_{tier}", row[tier], group_by=key, group_value=value))
            rows.append(_metric("tiers", "high_share", row["high_share"], group_by=key, group_value=value))
    rows = list({(r["metric"], r["group_by"], r["group_value"]): r for r in rows}.values())  # total row once
    for key, value in (report.facts.get("migration") or {}).items():
        rows.append(_metric("migration", key, value))
    stability = report.tables.get("stability")
    if stability is not None:
        for r in stability.itertuples(index=False):
            rows.append(_metric("stability", "psi", r.psi, feature=r.variable, band=r.band, detail=r.largest_shift))
    segments = report.tables.get("segment_stability")
    if segments is not None:
        for r in segments.itertuples(index=False):
            rows.append(_metric("segment_stability", "psi", r.psi, feature=r.variable, group_by=r.segment_by,
                                group_value=r.segment, band=r.band, detail=r.largest_shift))
    backtest = report.tables.get("backtest")
    if backtest is not None and len(backtest):
        overall = backtest.iloc[0]
        for name in _BACKTEST_METRICS:
            rows.append(_metric("backtest", name, overall.get(name)))
    capture = report.tables.get("capture")
    if capture is not None:
        for tier in TIERS:
            for column in [c for c in capture.columns if c != "enterprise_share"]:
                rows.append(_metric("capture", column, capture.loc[tier, column], group_by="tier", group_value=tier))
    fairness = report.tables.get("fairness")
    if fairness is not None:
        for r in fairness.itertuples(index=False):
            by = "" if r.group_by == "overall" else r.group_by
            group = "" if r.group_by == "overall" else r.group
            for name in ("n", "high_rate", "low_rate", "event_rate", "miss_rate", "false_alarm_rate"):
                rows.append(_metric("fairness", name, getattr(r, name), group_by=by, group_value=group))
            rows.append(_metric("fairness", "flagged", float(r.flagged), group_by=by, group_value=group,
                                band="flagged" if r.flagged else "", detail=r.flags or None))
    inspectors = report.tables.get("inspectors")
    if inspectors is not None:
        for key in ("n", "lenient", "strict"):
            rows.append(_metric("inspectors", f"n_{key}" if key != "n" else "n", report.facts["inspectors"][key]))
        for r in inspectors.itertuples(index=False):
            rows.append(_metric("inspectors", "stringency", r.stringency, group_by="inspector",
                                group_value=r.inspector_id, band=r.flag,
                                detail=f"{r.low:.3f}–{r.high:.3f}" if r.low == r.low else None))
    return pd.DataFrame(rows, columns=["section", "metric", "feature", "group_by", "group_value", "value", "band",
                                       "detail"])


def compare_metrics(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Current metrics joined with the previous monitoring run's: ``previous``, ``change`` and ``previous_band``."""
    key = ["section", "metric", "feature", "group_by", "group_value"]
    before = previous[key + ["value", "band"]].rename(columns={"value": "previous", "band": "previous_band"})
    merged = current.merge(before, on=key, how="left")
    merged["change"] = merged["value"] - merged["previous"]
    return merged


def _summary(report: MonitoringReport) -> dict[str, Any]:
    stability = report.tables.get("stability")
    fairness = report.tables.get("fairness")
    score = None
    if stability is not None and (stability["variable"] == SCORE_VARIABLE).any():
        score = float(stability.loc[stability["variable"] == SCORE_VARIABLE, "psi"].iloc[0])
    capture = report.tables.get("capture")
    return {
        "counts": report.facts.get("counts"),
        "score_psi": score,
        "significant_features": report.significant_features(),
        "fairness_flags": int(fairness["flagged"].sum()) if fairness is not None else 0,
        "high_tier_accident_share": None if capture is None else _clean(capture.loc["high", "accidents_share"]),
    }


def _clean(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _tier_bars(table: pd.DataFrame, title: str, limit: int = 25) -> bytes:
    body = table.drop(index=[i for i in table.index if str(i).startswith("合计")]).head(limit)
    body = body.iloc[::-1]
    with _figure(7.5, max(2.5, 0.32 * len(body) + 1.2)) as figure:
        axis = figure.subplots()
        left = np.zeros(len(body))
        for tier in reversed(TIERS):
            values = body[tier].to_numpy(dtype=float)
            axis.barh([str(i) for i in body.index], values, left=left, color=_TIER_COLOURS[tier],
                      label=TIER_LABELS_ZH[tier])
            left += values
        axis.set_xlabel("企业数")
        axis.set_title(title)
        axis.legend(loc="lower right", fontsize=8)
        return _png(figure)


def _migration_heatmap(matrix: pd.DataFrame) -> bytes:
    with _figure(5.5, 4.0) as figure:
        axis = figure.subplots()
        values = matrix.to_numpy(dtype=float)
        axis.imshow(np.log1p(values), cmap="Oranges")
        axis.set_xticks(range(matrix.shape[1]), [MIGRATION_LABELS_ZH[c] for c in matrix.columns])
        axis.set_yticks(range(matrix.shape[0]), [MIGRATION_LABELS_ZH[i] for i in matrix.index])
        dark = np.log1p(values) > 0.6 * max(float(np.log1p(values).max()), 1e-9)
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                axis.text(j, i, f"{int(values[i, j])}", ha="center", va="center", fontsize=10,
                          color="white" if dark[i, j] else "black")
        axis.set_xlabel("本次等级")
        axis.set_ylabel("上次等级")
        axis.set_title("风险等级迁移（企业数）")
        return _png(figure)


def _score_distribution(table: pd.DataFrame, value: float | None) -> bytes:
    body = table[table["bin"] != table["bin"].iloc[-1]] if table["reference"].iloc[-1] == 0 and \
        table["current"].iloc[-1] == 0 else table
    with _figure(7.5, 3.6) as figure:
        axis = figure.subplots()
        x = np.arange(len(body))
        axis.bar(x - 0.2, body["reference"], width=0.4, label="训练分布 training", color="#9ecae1")
        axis.bar(x + 0.2, body["current"], width=0.4, label="本次 current", color="#3182bd")
        axis.set_xticks(x, body["bin"], rotation=45, ha="right", fontsize=7)
        axis.set_ylabel("企业占比")
        psi_text = "" if value is None or math.isnan(value) else f"（PSI = {value:.3f}）"
        axis.set_title(f"风险概率分布：训练 vs 本次{psi_text}")
        axis.legend(fontsize=8)
        return _png(figure)


def _short_label(text: str, width: int = 24) -> str:
    """A chart label: the description without its parenthetical remarks, cut to ``width`` characters."""
    import re

    plain = re.sub(r"（[^）]*）|\([^)]*\)", "", text).strip()
    return plain if len(plain) <= width else plain[: width - 1] + "…"


def _psi_bars(table: pd.DataFrame, settings: MonitoringSettings, limit: int = 20) -> bytes:
    body = table.dropna(subset=["psi"]).head(limit).iloc[::-1]
    labels = [_short_label(d or v) for d, v in zip(body["description"], body["variable"], strict=True)]
    with _figure(7.5, max(2.5, 0.3 * len(body) + 1.2)) as figure:
        axis = figure.subplots()
        axis.barh(labels, body["psi"], color=[_BAND_COLOURS[b] for b in body["band"]])
        axis.axvline(settings.psi_moderate, color="#fdae61", linestyle="--", linewidth=1)
        axis.axvline(settings.psi_significant, color="#d7301f", linestyle="--", linewidth=1)
        axis.set_xlabel("PSI（0.10 需关注，0.25 显著漂移）")
        axis.set_title("特征稳定性：PSI 最大的特征")
        axis.tick_params(axis="y", labelsize=8)
        return _png(figure)


def _calibration(entry: Mapping[str, Any]) -> bytes | None:
    curve = pd.DataFrame(entry.get("calibration_curve") or [])
    if curve.empty:
        return None
    with _figure(4.8, 4.4) as figure:
        axis = figure.subplots()
        top = float(max(curve["mean_predicted"].max(), curve["observed_rate"].max(), 0.01))
        axis.plot([0, top], [0, top], linestyle="--", color="grey", label="完全校准")
        axis.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label="冠军模型")
        axis.set_xlabel("平均预测概率")
        axis.set_ylabel("实际不良结果发生率")
        axis.set_title("回测校准曲线")
        axis.legend(loc="upper left", fontsize=8)
        return _png(figure)


def _lift(entry: Mapping[str, Any]) -> bytes | None:
    points = [(0.0, 0.0, 0.0)]
    for key in sorted(k for k in entry if k.startswith("recall_at_") and k.endswith("pct_worst")):
        share = float(key.removeprefix("recall_at_").removesuffix("pct_worst")) / 100
        worst, best = entry.get(key), entry.get(key.replace("_worst", "_best"))
        if worst is not None:
            points.append((share, float(worst), float(best if best is not None else worst)))
    if len(points) < 2:
        return None
    points.append((1.0, 1.0, 1.0))
    frame = pd.DataFrame(points, columns=["share", "worst", "best"]).sort_values("share")
    with _figure(4.8, 4.4) as figure:
        axis = figure.subplots()
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="随机排序")
        axis.plot(frame["share"], frame["worst"], marker="o", label="冠军模型（并列取最差）")
        axis.fill_between(frame["share"], frame["worst"], frame["best"], alpha=0.2, label="并列区间")
        axis.set_xlabel("按风险排序检查的企业占比")
        axis.set_ylabel("捕获的不良结果占比")
        axis.set_title("回测捕获曲线（提升度）")
        axis.legend(loc="lower right", fontsize=8)
        return _png(figure)


def _capture_bars(table: pd.DataFrame) -> bytes:
    body = table.loc[list(reversed(TIERS))]
    kinds = [("enterprise_share", "企业占比"), ("accidents_share", "事故占比"), ("major_hazards_share", "重大隐患占比")]
    with _figure(6.5, 3.6) as figure:
        axis = figure.subplots()
        x = np.arange(len(body))
        for i, (column, label) in enumerate(kinds):
            axis.bar(x + (i - 1) * 0.26, body[column].fillna(0), width=0.26, label=label)
        axis.set_xticks(x, [TIER_LABELS_ZH[t] for t in body.index])
        axis.set_ylabel("占比")
        axis.set_title("各风险等级的企业、事故与重大隐患占比")
        axis.legend(fontsize=8)
        return _png(figure)


def _fairness_bars(table: pd.DataFrame, by: str, title: str) -> bytes | None:
    body = table[table["group_by"] == by]
    overall = table[table["group_by"] == "overall"]
    if body.empty:
        return None
    body = body.iloc[::-1]
    with _figure(7.0, max(2.5, 0.3 * len(body) + 1.2)) as figure:
        axis = figure.subplots()
        colours = ["#d7301f" if f else "#6baed6" for f in body["flagged"]]
        axis.barh(body["group"].astype(str), body["high_rate"].fillna(0), color=colours)
        if len(overall):
            axis.axvline(float(overall["high_rate"].iloc[0]), color="black", linestyle="--", linewidth=1,
                         label="整体")
            axis.legend(fontsize=8)
        axis.set_xlabel("高风险企业占比（红色：差异过大）")
        axis.set_title(title)
        return _png(figure)


def _figures(report: MonitoringReport) -> tuple[dict[str, bytes], dict[str, str]]:
    settings = report.settings
    figures: dict[str, bytes] = {}
    captions: dict[str, str] = {}

    def add(name: str, png: bytes | None, caption: str) -> None:
        if png is not None:
            figures[name], captions[name] = png, caption

    add("tiers_by_township", _tier_bars(report.tables["tiers_by_township"], "各乡镇（街道）风险等级分布"),
        "Tier counts by township")
    add("tiers_by_sector", _tier_bars(report.tables["tiers_by_sector"], "各行业风险等级分布"), "Tier counts by sector")
    if "migration" in report.tables:
        add("migration", _migration_heatmap(report.tables["migration"]), "Tier migration since the previous run")
    if "score_distribution" in report.tables:
        stability = report.tables["stability"]
        score = stability.loc[stability["variable"] == SCORE_VARIABLE, "psi"]
        add("score_distribution", _score_distribution(report.tables["score_distribution"],
                                                      float(score.iloc[0]) if len(score) else None),
            "Score distribution: training vs current")
        add("feature_psi", _psi_bars(stability[stability["variable"] != SCORE_VARIABLE], settings),
            "Features with the largest PSI")
    backtest = report.facts.get("backtest")
    if backtest:
        entry = backtest.get("model") or {}
        add("calibration", _calibration(entry), "Backtest calibration of the champion")
        add("lift", _lift(entry), "Backtest capture (lift) curve of the champion")
    if "capture" in report.tables:
        add("capture", _capture_bars(report.tables["capture"]), "Events captured by tier")
    add("fairness_township", _fairness_bars(report.tables["fairness"], "township", "各乡镇（街道）高风险占比"),
        "High-tier rate by township")
    return figures, captions


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC","Hiragino Sans GB",sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.5;padding:0 1em}
h1{font-size:1.6em;border-bottom:3px solid #3182bd;padding-bottom:.3em}h2{font-size:1.3em;margin-top:2em;
border-left:5px solid #3182bd;padding-left:.5em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f0f4f8;text-align:center}td:first-child,th:first-child,td.txt{text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;
min-width:9em}.card b{display:block;font-size:1.4em}.muted{color:#777;font-size:.85em}
.band-significant,.flagged{background:#fde0dd}.band-moderate{background:#fff3cd}.band-stable{background:#e5f5e0}
figure{margin:1em 0}figcaption{color:#555;font-size:.85em}img{max-width:100%}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "delta":
        return f"{float(value):+.3f}"
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"{int(number):,}" if number.is_integer() and abs(number) >= 1 else f"{number:.3f}"
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f"{int(value):,}"
    return str(value)


def _cell(value: Any, kind: str) -> str:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    css = "" if numeric or value is None or value is pd.NA else ' class="txt"'
    return f"<td{css}>{_e(_fmt(value, kind))}</td>"


def _table(frame: pd.DataFrame, formats: Mapping[str, str] | None = None, *, index: bool = False,
           row_class: list[str] | None = None, headers: Mapping[str, str] | None = None) -> str:
    formats = formats or {}
    headers = headers or {}
    data = frame.reset_index() if index else frame
    head = "".join(f"<th>{_e(headers.get(str(c), c))}</th>" for c in data.columns)
    body = []
    for i, row in enumerate(data.itertuples(index=False, name=None)):
        cells = "".join(_cell(v, formats.get(str(c), "num")) for c, v in zip(data.columns, row, strict=True))
        css = f' class="{_e(row_class[i])}"' if row_class and row_class[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(report: MonitoringReport, name: str) -> str:
    png = report.figures.get(name)
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    caption = report.figures_meta.get(name, name)
    return (f'<figure id="fig-{_e(name)}"><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(title)}</h2>{body}</section>'


def _previous_value(report: MonitoringReport, section: str, metric: str, **key) -> float | None:
    if report.changes is None:
        return None
    frame = report.changes
    mask = (frame["section"] == section) & (frame["metric"] == metric)
    for column in ("feature", "group_by", "group_value"):
        mask &= frame[column] == key.get(column, "")
    values = frame.loc[mask, "previous"]
    return None if values.empty or pd.isna(values.iloc[0]) else float(values.iloc[0])


def _summary_html(report: MonitoringReport) -> str:
    run, counts = report.run, report.facts.get("counts", {})
    cards = []
    for tier in reversed(TIERS):
        before = _previous_value(report, "tiers", f"n_{tier}")
        change = "" if before is None else f"<span class='muted'>较上次监测 {counts.get(tier, 0) - before:+.0f}</span>"
        cards.append(f"<div class='card'>{_e(TIER_LABELS_ZH[tier])}<b>{counts.get(tier, 0):,}</b>{change}</div>")
    stability = report.tables.get("stability")
    if stability is not None:
        score = stability.loc[stability["variable"] == SCORE_VARIABLE]
        if len(score):
            cards.append(f"<div class='card'>分数 PSI<b>{_fmt(score['psi'].iloc[0])}</b>"
                         f"{_e(BAND_LABELS_ZH[score['band'].iloc[0]])}</div>")
        cards.append(f"<div class='card'>显著漂移特征<b>{len(report.significant_features())}</b>"
                     f"PSI ≥ {report.settings.psi_significant:g}</div>")
    fairness = report.tables.get("fairness")
    if fairness is not None:
        cards.append(f"<div class='card'>公平性提示<b>{int(fairness['flagged'].sum())}</b>个分组差异过大</div>")
    backtest = report.tables.get("backtest")
    if backtest is not None and len(backtest):
        cards.append(f"<div class='card'>回测 ROC-AUC<b>{_fmt(backtest['roc_auc'].iloc[0])}</b>冠军模型</div>")
    champion = report.champion or {}
    lines = [
        f"评估日期 as of <b>{_e(report.as_of)}</b> · 夜间批处理 run {_e(run.get('run_id'))} · "
        f"评分模型 {_e(_model_label(run))} · 评分企业 {counts.get('n', 0):,} 家",
        f"冠军模型 champion: {_e(champion.get('label', '无 none'))}"
        + (f"（训练日 {_e(champion.get('as_of'))}；训练分布来源：{_e(champion.get('reference_source'))}）"
           if champion else ""),
        f"上次夜间评分 previous run: {_e(report.previous_as_of or '无 none')} · 上次监测 previous monitoring: "
        f"{_e((report.previous_monitoring or {}).get('as_of') or '无 none')} · 生成于 "
        f"{report.generated_at:%Y-%m-%d %H:%M}",
    ]
    return "".join(f"<p>{line}</p>" for line in lines) + f"<div class='cards'>{''.join(cards)}</div>"


def _tiers_html(report: MonitoringReport) -> str:
    formats = {"high": "int", "general": "int", "low": "int", "total": "int", "high_share": "pct"}
    headers = {"high": "高风险", "general": "一般风险", "low": "低风险", "total": "合计", "high_share": "高风险占比",
               "township": "乡镇（街道）", "sector": "行业", "index": ""}
    parts = []
    for by, title in (("township", "按乡镇（街道） by township"), ("sector", "按行业 by sector")):
        table = report.tables[f"tiers_by_{by}"]
        parts.append(f"<h3>{_e(title)}</h3>{_img(report, f'tiers_by_{by}')}"
                     f"{_table(table, formats, index=True, headers=headers)}")
    return "".join(parts)


def _migration_html(report: MonitoringReport) -> str:
    matrix = report.tables.get("migration")
    if matrix is None:
        return "<p>这是第一次夜间评分，尚无等级迁移。 No previous nightly run: no migration yet.</p>"
    facts = report.facts.get("migration", {})
    shown = matrix.rename(index=MIGRATION_LABELS_ZH, columns=MIGRATION_LABELS_ZH)
    shown.index.name = "上次 \\ 本次"
    text = (f"<p>与 {_e(report.previous_as_of)} 的夜间评分相比：升级 {facts.get('up', 0)} 家，降级 "
            f"{facts.get('down', 0)} 家，不变 {facts.get('same', 0)} 家，新纳入 {facts.get('new', 0)} 家，退出 "
            f"{facts.get('gone', 0)} 家。</p>")
    formats = {c: "int" for c in shown.columns}
    return text + _img(report, "migration") + _table(shown, formats, index=True)


def _stability_html(report: MonitoringReport) -> str:
    table = report.tables.get("stability")
    if table is None:
        return "<p>没有冠军模型的训练分布，无法计算稳定性。 No reference distribution (no champion).</p>"
    shown = table.copy()
    shown["previous"] = [
        _previous_value(report, "stability", "psi", feature=v) for v in shown["variable"]]
    shown["band"] = shown["band"].map(lambda b: f"{BAND_LABELS_ZH.get(b, b)} {b}")
    columns = ["variable", "description", "psi", "previous", "band", "missing_reference", "missing_current",
               "largest_shift"]
    headers = {"variable": "特征 variable", "description": "说明", "psi": "PSI", "previous": "上次 PSI",
               "band": "等级 band", "missing_reference": "训练缺失率", "missing_current": "本次缺失率",
               "largest_shift": "变化最大的区间"}
    formats = {"missing_reference": "pct", "missing_current": "pct"}
    classes = [f"band-{b}" for b in table["band"]]
    attention = shown["psi"].fillna(0) >= report.settings.psi_moderate
    parts = [_img(report, "score_distribution"), _img(report, "feature_psi"),
             f"<h3>需关注及显著漂移的变量 ({int(attention.sum())})</h3>",
             _table(shown.loc[attention, columns], formats, headers=headers,
                    row_class=[c for c, a in zip(classes, attention, strict=True) if a]),
             f"<details><summary>全部 {len(shown)} 个变量 all variables</summary>",
             _table(shown[columns], formats, headers=headers, row_class=classes), "</details>"]
    segments = report.tables.get("segment_stability")
    if segments is not None:
        drift = segments[segments["band"] == "significant"].copy()
        parts.append(f"<h3>分行业显著漂移 significant drift within a sector ({drift['segment'].nunique()} 个行业)</h3>")
        if drift.empty:
            parts.append("<p>各行业内均无显著漂移（PSI ≥ 0.25）。</p>")
        else:
            rows = []
            for sector, part in drift.groupby("segment", sort=False):
                top = part.sort_values("psi", ascending=False).head(8)
                rows.append({"segment": f"{_sector_zh(sector)} {sector}", "n_current": int(part["n_current"].max()),
                             "n_features": len(part), "max_psi": float(part["psi"].max()),
                             "features": "; ".join(f"{v} {p:.2f}" for v, p in zip(top["variable"], top["psi"],
                                                                                 strict=True))})
            summary = pd.DataFrame(rows).sort_values(["n_features", "max_psi"], ascending=False)
            headers_s = {"segment": "行业", "n_current": "本次企业数", "n_features": "显著漂移特征数",
                         "max_psi": "最大 PSI", "features": "PSI 最大的特征"}
            parts.append(_table(summary, {"n_current": "int", "n_features": "int"}, headers=headers_s))
            drift["segment"] = drift["segment"].map(lambda v: f"{_sector_zh(v)} {v}")
            headers_d = {"segment": "行业", "variable": "特征", "psi": "PSI", "n_reference": "训练行数",
                         "n_current": "本次行数", "largest_shift": "变化最大的区间"}
            parts.append(f"<details><summary>全部 {len(drift)} 项 all rows</summary>"
                         + _table(drift[["segment", "variable", "psi", "n_reference", "n_current", "largest_shift"]],
                                  {"n_reference": "int", "n_current": "int"}, headers=headers_d)
                         + "</details>")
    return "".join(parts)


def _backtest_html(report: MonitoringReport) -> str:
    table = report.tables.get("backtest")
    if table is None:
        return "<p>没有冠军模型的回测结果。 No backtest of a champion model.</p>"
    headers = {"test_date": "测试日期", "n": "样本", "positives": "不良结果", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC",
               "brier": "Brier", "precision_at_10pct_worst": "前10%精确率", "recall_at_10pct_worst": "前10%召回率",
               "high_tier_capture_worst": "高风险层捕获率", "event_rate": "发生率", "mean_probability": "平均预测概率"}
    formats = {"n": "int", "positives": "int", "precision_at_10pct_worst": "pct", "recall_at_10pct_worst": "pct",
               "high_tier_capture_worst": "pct", "event_rate": "pct", "mean_probability": "pct"}
    return (f"<p>冠军模型 {_e((report.champion or {}).get('label'))} 的时间序列回测（并列时取最差情形）。</p>"
            + _table(table, formats, headers=headers) + _img(report, "calibration") + _img(report, "lift"))


def _capture_html(report: MonitoringReport) -> str:
    table = report.tables.get("capture")
    evaluated = report.facts.get("evaluated")
    if table is None or evaluated is None:
        return "<p>尚无足够早的夜间评分可评估实际结果。 No earlier run to evaluate yet.</p>"
    shown = table.rename(index={t: TIER_LABELS_ZH[t] for t in TIERS})
    headers = {"tier": "等级", "enterprises": "企业数", "enterprise_share": "企业占比", "accidents": "事故",
               "accidents_share": "事故占比", "accidents_lift": "事故提升度", "major_hazards": "重大隐患",
               "major_hazards_share": "重大隐患占比", "major_hazards_lift": "重大隐患提升度"}
    formats = {"enterprises": "int", "enterprise_share": "pct", "accidents": "int", "accidents_share": "pct",
               "major_hazards": "int", "major_hazards_share": "pct"}
    text = (f"<p>{_e(evaluated['as_of'])} 夜间评分的等级，与其后 {evaluated['days']} 天（期限 {evaluated['horizon']} "
            f"天）内发生的事故和发现的重大隐患对照。</p>")
    return text + _table(shown, formats, index=True, headers=headers) + _img(report, "capture")


def _fairness_html(report: MonitoringReport) -> str:
    table = report.tables["fairness"]
    evaluated = report.facts.get("evaluated")
    headers = {"group": "分组", "n": "企业数", "high_rate": "高风险占比", "low_rate": "低风险占比",
               "n_evaluated": "已知结果", "positives": "不良结果", "event_rate": "发生率", "miss_rate": "漏报率",
               "false_alarm_rate": "误报率", "flags": "提示"}
    formats = {"n": "int", "n_evaluated": "int", "positives": "int", "high_rate": "pct", "low_rate": "pct",
               "event_rate": "pct", "miss_rate": "pct", "false_alarm_rate": "pct"}
    columns = ["group", "n", "high_rate", "low_rate", "n_evaluated", "positives", "event_rate", "miss_rate",
               "false_alarm_rate", "flags"]
    s = report.settings
    parts = [f"<p>高风险占比取本次评分；漏报率（有不良结果但未列为高风险）与误报率（列为高风险但无不良结果）取"
             f"{_e(evaluated['as_of']) + ' 的评分' if evaluated else '（尚无可评估的评分）'}。高风险占比达到整体的 "
             f"{s.tier_rate_ratio:g} 倍（或不足 1/{s.tier_rate_ratio:g}），或误报率/漏报率与整体相差 "
             f"{s.error_rate_gap:.0%} 以上时标红（少于 {s.min_group_rows} 家的分组不标）。</p>",
             _table(table[table["group_by"] == "overall"][columns], formats, headers=headers)]
    for by, title in (("township", "按乡镇（街道） by township"), ("sector", "按行业 by sector"),
                      ("size_band", "按企业规模 by size band")):
        part = table[table["group_by"] == by]
        parts.append(f"<h3>{_e(title)}</h3>")
        if by == "township":
            parts.append(_img(report, "fairness_township"))
        parts.append(_table(part[columns], formats, headers=headers,
                            row_class=["flagged" if f else "" for f in part["flagged"]]))
    return "".join(parts)


_FLAG_ZH = {"lenient": "偏松 lenient", "strict": "偏严 strict", "": ""}


def _inspectors_html(report: MonitoringReport) -> str:
    table = report.tables.get("inspectors")
    if table is None:
        return f"<p>{_e(report.facts.get('inspectors_absent', ''))}</p>"
    facts, s = report.facts["inspectors"], report.settings
    text = (f"<p>每名执法人员在 {report.as_of} 之前 {facts['window_days']} 天内参与的检查：发现隐患数与所查企业按行业"
            f"平均应发现数之比（发现率，1 = 平均水平），以 {s.inspector_shrinkage_strength:g} 次检查的伪计数向 1 收缩；"
            f"区间为 {s.inspector_level:.0%} 区间。区间整体低于 1 标为偏松，整体高于 1 标为偏严，供执法质量评查"
            f"（案卷评查）参考，不是对个人的结论。 Each inspector's hazards found relative to what the enterprises "
            f"visited would yield (1 = average), shrunk to 1; flagged lenient / strict when the "
            f"{s.inspector_level:.0%} interval excludes 1. {facts['n']:,} inspectors: {facts['lenient']:,} lenient, "
            f"{facts['strict']:,} strict.</p>")
    shown = table.assign(flag=table["flag"].map(_FLAG_ZH).fillna(table["flag"]))
    headers = {"inspector_id": "执法人员编号 inspector", "name": "姓名 name", "department": "部门 department",
               "visits": "检查次数 visits", "hazards_found": "发现隐患 found",
               "hazards_expected": "应发现 expected", "stringency": "收缩发现率 shrunk rate",
               "low": "区间下限 low", "high": "区间上限 high", "flag": "提示 flag"}
    formats = {"visits": "int", "hazards_found": "int", "hazards_expected": "num", "stringency": "num",
               "low": "num", "high": "num"}
    return text + _table(shown[list(headers)], formats, headers=headers,
                         row_class=["flagged" if f else "" for f in table["flag"]])


def _changes_html(report: MonitoringReport) -> str:
    if report.changes is None:
        return "<p>这是第一次监测，没有可比较的上次结果。 First monitoring run: nothing to compare with yet.</p>"
    frame = report.changes
    previous = report.previous_monitoring or {}
    parts = [f"<p>与 {_e(previous.get('as_of'))} 的监测结果（第 {_e(previous.get('monitoring_run_id'))} 次）相比。</p>"]
    psi = frame[(frame["section"] == "stability") & (frame["band"] != frame["previous_band"].fillna(frame["band"]))]
    parts.append(f"<h3>稳定性等级变化的变量 ({len(psi)})</h3>")
    if len(psi):
        shown = psi[["feature", "previous", "value", "change", "previous_band", "band"]]
        parts.append(_table(shown, {"change": "delta"}, headers={"feature": "变量", "previous": "上次 PSI",
                                                                  "value": "本次 PSI", "change": "变化",
                                                                  "previous_band": "上次等级", "band": "本次等级"}))
    flags = frame[(frame["section"] == "fairness") & (frame["metric"] == "flagged")
                  & (frame["value"] != frame["previous"].fillna(0))]
    parts.append(f"<h3>公平性提示变化 ({len(flags)})</h3>")
    if len(flags):
        shown = flags.assign(status=np.where(flags["value"] > 0, "新出现 new", "已消除 resolved"))
        headers = {"group_by": "分组方式", "group_value": "分组", "status": "状态", "detail": "说明"}
        parts.append(_table(shown[["group_by", "group_value", "status", "detail"]], headers=headers))
    key = frame[frame["section"].isin(["tiers", "backtest", "capture"]) & (frame["group_by"].isin(["", "tier"]))
                & frame["change"].fillna(0).ne(0)]
    parts.append(f"<h3>主要指标变化 ({len(key)})</h3>")
    if len(key):
        shown = key.assign(section=key["section"].map(lambda v: _SECTION_ZH.get(v, v)),
                           metric=key["metric"].map(lambda v: _METRIC_ZH.get(v, v)),
                           group_value=key["group_value"].map(lambda v: TIER_LABELS_ZH.get(v, v)))
        parts.append(_table(shown[["section", "metric", "group_value", "previous", "value", "change"]],
                            {"change": "delta"}, headers={"section": "部分", "metric": "指标", "group_value": "等级",
                                                          "previous": "上次", "value": "本次", "change": "变化"}))
    return "".join(parts)


_SECTION_ZH = {"tiers": "风险等级", "backtest": "回测", "capture": "捕获"}
_METRIC_ZH = {
    "n_high": "高风险企业数", "n_general": "一般风险企业数", "n_low": "低风险企业数", "high_share": "高风险占比",
    "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "precision_at_10pct_worst": "前10%精确率",
    "recall_at_10pct_worst": "前10%召回率", "high_tier_capture_worst": "高风险层捕获率", "event_rate": "发生率",
    "mean_probability": "平均预测概率", "enterprises": "企业数", "accidents": "事故数", "accidents_share": "事故占比",
    "accidents_lift": "事故提升度", "major_hazards": "重大隐患数", "major_hazards_share": "重大隐患占比",
    "major_hazards_lift": "重大隐患提升度",
}


def _notes_html(report: MonitoringReport) -> str:
    s = report.settings
    items = list(report.notes) + [
        f"PSI（群体稳定性指数）= Σ(本次占比 − 训练占比) × ln(本次占比 / 训练占比)，按训练分布的分位数分箱"
        f"（{s.psi_bins} 箱，缺失值单独一箱，每箱加 {s.pseudo_count:g} 个伪计数）；< {s.psi_moderate:g} 稳定，"
        f"{s.psi_moderate:g}–{s.psi_significant:g} 需关注，≥ {s.psi_significant:g} 显著漂移。",
        "训练分布：冠军模型训练日期上全部在营企业的特征与模型概率。",
        "同行业/同乡镇其他企业事故数属于背景特征：整组企业取同一数值，一起事故即可使其整体变化，故只列 PSI 不评级；"
        "分行业稳定性另不计按行业均值收缩的每次检查隐患数（行业内未被检查的企业都取该行业均值）。",
        f"分行业稳定性只计算训练与本次均不少于 {s.min_segment_rows} 家企业的行业。",
        "企业规模按从业人员数划分（国家统计局 2017 年工业企业标准）：" + "、".join(s.size_band_labels) + "。",
    ]
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def render_html(report: MonitoringReport) -> str:
    """The report as one self-contained UTF-8 HTML page (charts embedded as base64 PNG)."""
    sections = [
        _section("summary", "概况 Summary", _summary_html(report)),
        _section("tiers", "风险等级分布 Tier counts", _tiers_html(report)),
        _section("migration", "等级迁移 Tier migration", _migration_html(report)),
        _section("stability", "分数与特征稳定性 Score and feature stability (PSI)", _stability_html(report)),
        _section("backtest", "冠军模型回测 Champion backtest", _backtest_html(report)),
        _section("capture", "高风险层捕获的事故与重大隐患 Events captured by the high tier", _capture_html(report)),
        _section("fairness", "公平性检查 Fairness check", _fairness_html(report)),
        _section("inspectors", "执法人员一致性 Inspector consistency", _inspectors_html(report)),
        _section("changes", "与上次监测相比 Changes since the previous monitoring run", _changes_html(report)),
        _section("notes", "说明 Notes", _notes_html(report)),
    ]
    title = f"企业安全生产风险分级监测报告 {report.as_of}"
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{_e(title)}</title>\n"
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def generate_report(
    engine: sa.Engine,
    out: str | os.PathLike[str],
    *,
    as_of: date | str | None = None,
    policy=None,
    tracking_uri: str | None = None,
    settings: MonitoringSettings = MonitoringSettings(),
) -> MonitoringReport:
    """:func:`build_report` (stored in the database) and its HTML written to ``out`` (UTF-8)."""
    path = Path(out)
    report = build_report(engine, as_of=as_of, policy=policy, tracking_uri=tracking_uri, settings=settings,
                          store=True, report_path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return report
