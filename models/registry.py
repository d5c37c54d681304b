"""All MLflow I/O of riskgrade: logging training runs, the ``riskgrade`` registered model, its champion.

- Tracking URI: the ``uri`` argument (``--mlflow-uri``), else ``$MLFLOW_TRACKING_URI``, else
  ``sqlite:///mlflow.db`` in the working directory (beside the embedded ``riskgrade.db``). Artifacts of a
  SQLite store go to ``mlartifacts/`` next to the database file.
- Offline by construction: telemetry is disabled and ``pip_requirements`` are explicit.
- Models are serialised with cloudpickle (they are riskgrade classes: loading needs riskgrade installed,
  which the batch has by definition).
- The nightly batch loads ``models:/riskgrade@champion`` through :func:`load_champion`; the alias moves only
  through :func:`promote`, which refuses a challenger that does not beat the champion on the same backtest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import NoChampionError

MODEL_NAME = "riskgrade"
FINDS_MODEL_NAME = "riskgrade-expected-finds"  # issue 16: hazards a visit by a given team finds (models.expected_finds)
CHAMPION_ALIAS = "champion"
EXPERIMENT = "riskgrade"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
_REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "optbinning", "cloudpickle", "scipy")


def tracking_uri(uri: str | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass(frozen=True)
class RegisteredVersion:
    """One logged and registered model version."""

    name: str
    version: str
    run_id: str
    kind: str


@dataclass(frozen=True)
class ChampionModel:
    """The model the batch scores with, and where it came from (recorded with every scored row)."""

    model: Any
    name: str
    version: str
    run_id: str
    kind: str
    as_of: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    reason: str
    metric: str
    challenger_version: str | None
    challenger_value: float | None
    champion_version: str | None
    champion_value: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _mlflow(uri: str | None):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    resolved = tracking_uri(uri)
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    return mlflow, resolved


def _experiment_id(mlflow, resolved: str) -> str:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if resolved.startswith("sqlite:///"):
        database = Path(resolved.removeprefix("sqlite:///")).resolve()
        location = (database.parent / "mlartifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=location)


def log_model_run(
    model,
    *,
    kind: str,
    as_of: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    report: Mapping[str, Any],
    input_example: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame] = (),
    figures: Mapping[str, Any] = (),
    uri: str | None = None,
    model_name: str = MODEL_NAME,
) -> RegisteredVersion:
    """Log one trained model (parameters, metrics, report, tables, plots, the model) and register it as
    ``model_name`` (the risk model, or :data:`FINDS_MODEL_NAME`: a regressor, logged with ``predict``).

    ``metrics`` is flattened to its numeric entries; ``report`` is logged whole as JSON; ``tables`` as CSV
    (the feature catalog, points table, …); ``figures`` are matplotlib figures.
    """
    mlflow, resolved = _mlflow(uri)

    example = _plain_example(input_example)
    regressor = model_name == FINDS_MODEL_NAME
    signature = _signature(example, regressor=regressor)
    experiment_id = _experiment_id(mlflow, resolved)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{kind} as of {as_of}") as run:
        mlflow.set_tags({"kind": kind, "as_of": as_of})
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in _flat_numbers(metrics).items()})
        mlflow.log_dict(_jsonable(report), "backtest/report.json")
        for name, table in dict(tables).items():
            mlflow.log_text(table.to_csv(index=False), f"tables/{name}.csv")
        for name, figure in dict(figures).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            signature=signature,
            input_example=example,
            serialization_format="cloudpickle",
            pip_requirements=_pip_requirements(),
            pyfunc_predict_fn="predict" if regressor else "predict_proba",
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in {"kind": kind, "as_of": as_of, **{k: str(v) for k, v in _flat_numbers(metrics).items()}}.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    return RegisteredVersion(model_name, version, run.info.run_id, kind)


def champion_version(uri: str | None = None, *, model_name: str = MODEL_NAME) -> RegisteredVersion | None:
    """The version of ``model_name`` carrying the ``champion`` alias, or None."""
    mlflow, _ = _mlflow(uri)
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow.MlflowClient().get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    return RegisteredVersion(model_name, str(found.version), found.run_id, found.tags.get("kind", ""))


def store_exists(uri: str | None = None) -> bool:
    """Whether the tracking store is there to read: an SQLite store's file exists (reading through MLflow would
    create an empty one); any other store is taken to exist."""
    resolved = tracking_uri(uri)
    if resolved.startswith("sqlite:///") and resolved != "sqlite:///:memory:":
        return Path(resolved.removeprefix("sqlite:///")).exists()
    return True


def registered_champion(uri: str | None = None, *, model_name: str = MODEL_NAME
                        ) -> tuple[ChampionModel | None, str]:
    """``(champion, "")``, or ``(None, why)`` when none is registered: no MLflow store at an SQLite path (which
    is then not created) or no version of ``model_name`` carrying the alias. A champion that is registered but
    cannot be loaded raises, as :func:`load_champion` does."""
    resolved = tracking_uri(uri)
    if not store_exists(resolved):
        return None, f"no MLflow store at {resolved}"
    try:
        return load_champion(resolved, model_name=model_name), ""
    except NoChampionError:
        return None, f"no model {model_name!r} carries the {CHAMPION_ALIAS!r} alias in {resolved}"


def load_champion(uri: str | None = None, *, model_name: str = MODEL_NAME) -> ChampionModel:
    """The champion of ``model_name``; :class:`~features.errors.NoChampionError` when no version carries the
    alias."""
    mlflow, resolved = _mlflow(uri)
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        found = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        command = "train-finds" if model_name == FINDS_MODEL_NAME else "train"
        raise NoChampionError(
            f"no model {model_name!r} carries the alias {CHAMPION_ALIAS!r} in {resolved}: "
            f"train one and promote it (riskgrade {command} --as-of DATE --promote)"
        ) from exc
    model = mlflow.sklearn.load_model(f"models:/{model_name}@{CHAMPION_ALIAS}")
    tags = dict(found.tags)
    return ChampionModel(
        model=model,
        name=model_name,
        version=str(found.version),
        run_id=found.run_id,
        kind=tags.get("kind", ""),
        as_of=tags.get("as_of"),
        tags=tags,
    )


def promote(
    challenger: RegisteredVersion,
    challenger_value: float | None,
    champion_value: float | None,
    *,
    metric: str,
    min_improvement: float = 0.0,
    higher_is_better: bool = True,
    uri: str | None = None,
) -> PromotionDecision:
    """Move the ``champion`` alias to ``challenger`` if it beats the champion on the same backtest.

    ``challenger_value`` and ``champion_value`` are the gate metric of both models on the *same* test
    rows (the caller re-runs the champion's configuration through the challenger's backtest). Without a
    champion the challenger is promoted. Otherwise it must improve on the champion by at least
    ``min_improvement`` (lower is better when ``higher_is_better`` is False). The decision says why.
    """
    current = champion_version(uri, model_name=challenger.name)
    decision = decide_promotion(
        challenger.version,
        challenger_value,
        None if current is None else current.version,
        champion_value,
        metric=metric,
        min_improvement=min_improvement,
        higher_is_better=higher_is_better,
    )
    if decision.promoted:
        mlflow, _ = _mlflow(uri)
        client = mlflow.MlflowClient()
        client.set_registered_model_alias(challenger.name, CHAMPION_ALIAS, challenger.version)
        client.set_model_version_tag(challenger.name, challenger.version, "promotion", decision.reason)
    return decision


def decide_promotion(
    challenger_version: str | None,
    challenger_value: float | None,
    champion_version: str | None,
    champion_value: float | None,
    *,
    metric: str,
    min_improvement: float = 0.0,
    higher_is_better: bool = True,
) -> PromotionDecision:
    """The promotion rule alone (no I/O)."""

    def decision(promoted: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(promoted, reason, metric, challenger_version, challenger_value,
                                 champion_version, champion_value)

    if challenger_value is None or np.isnan(challenger_value):
        return decision(False, f"the challenger has no {metric} on the backtest: nothing to compare")
    if champion_version is None:
        return decision(True, f"no champion yet: version {challenger_version} becomes champion "
                              f"({metric} {challenger_value:.4f})")
    if champion_version == challenger_version:
        return decision(False, f"version {challenger_version} is already the champion")
    if champion_value is None or np.isnan(champion_value):
        return decision(True, f"the champion (version {champion_version}) has no {metric} on this backtest; "
                              f"the challenger has {challenger_value:.4f}")
    gain = (challenger_value - champion_value) if higher_is_better else (champion_value - challenger_value)
    better = "higher" if higher_is_better else "lower"
    if gain > min_improvement or (min_improvement == 0.0 and gain > 0):
        return decision(True, f"{metric} {challenger_value:.4f} vs champion (version {champion_version}) "
                              f"{champion_value:.4f}: {gain:+.4f} ({better} is better) > required "
                              f"{min_improvement:+.4f}")
    return decision(False, f"not promoted: {metric} {challenger_value:.4f} vs champion (version "
                           f"{champion_version}) {champion_value:.4f} on the same backtest: improvement "
                           f"{gain:+.4f} ({better} is better) does not exceed the required {min_improvement:+.4f}")


# ------------------------------------------------------------------------------------------- helpers


def _signature(example: pd.DataFrame, *, regressor: bool = False):
    """Every feature optional (an absent table leaves its features empty), numbers as double, text as string;
    the output is the two-column probability matrix of ``predict_proba`` (a regressor: one number per row)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([
        ColSpec("double" if pd.api.types.is_float_dtype(example[name]) else "string", name, required=False)
        for name in example.columns
    ])
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1,) if regressor else (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _pip_requirements() -> list[str]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _plain_example(frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """A few rows with plain dtypes (float / str) and a plain index: what MLflow can store as an example."""
    head = frame.head(rows).reset_index(drop=True)
    out = {}
    for name in head.columns:
        column = head[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[name] = column.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        else:
            out[name] = column.astype(object).where(column.notna(), None)
    return pd.DataFrame(out)


def _param(value) -> str:
    text = value if isinstance(value, str) else json.dumps(_jsonable(value), ensure_ascii=False, default=str)
    return text[:6000]


def _flat_numbers(mapping: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in mapping.items()
        if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and not np.isnan(v)
    }


def _jsonable(value):
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return value

