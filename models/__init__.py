"""models: expert card, scorecard, gradient boosting, calibration, backtest, reason codes, MLflow registry.

Layering: ``models`` knows ``features`` (the catalog, features, labels), never ``scoring``. Policy sections the
models need (``[expert_card]``, ``[training]``) are typed here (:class:`ExpertCardRules`,
:class:`TrainingConfig`) and loaded by ``scoring.domain.policy.build_section``.

Heavy imports (MLflow, optbinning, matplotlib) happen only inside the functions that need them.
"""

from models.backtest import BacktestResult, temporal_backtest, training_dates
from models.boosting import BoostingClassifier
from models.calibrate import TimeSliceCalibrated
from models.config import BoostingSettings, PointsScaling, PromotionGate, ScorecardSettings, TrainingConfig
from models.expert import CardRule, ExpertCard, ExpertCardRules
from models.explain import reason_codes, reasons_wide, score_frame, top_reasons
from models.metrics import calibration_table, grouped_summary, lift_table, summary, top_k_bounds
from models.registry import (
    ChampionModel,
    PromotionDecision,
    RegisteredVersion,
    decide_promotion,
    load_champion,
    log_model_run,
    promote,
    tracking_uri,
)
from models.scorecard import ScorecardClassifier
from models.train import (
    MODEL_KINDS,
    TrainingResult,
    comparison_table,
    evaluate_backtest,
    make_model,
    train_and_evaluate,
    training_as_of_dates,
)

__all__ = [
    "MODEL_KINDS",
    "BacktestResult",
    "BoostingClassifier",
    "BoostingSettings",
    "CardRule",
    "ChampionModel",
    "ExpertCard",
    "ExpertCardRules",
    "PointsScaling",
    "PromotionDecision",
    "PromotionGate",
    "RegisteredVersion",
    "ScorecardClassifier",
    "ScorecardSettings",
    "TimeSliceCalibrated",
    "TrainingConfig",
    "TrainingResult",
    "calibration_table",
    "comparison_table",
    "decide_promotion",
    "evaluate_backtest",
    "grouped_summary",
    "lift_table",
    "load_champion",
    "log_model_run",
    "make_model",
    "promote",
    "reason_codes",
    "reasons_wide",
    "score_frame",
    "summary",
    "temporal_backtest",
    "top_k_bounds",
    "top_reasons",
    "tracking_uri",
    "train_and_evaluate",
    "training_as_of_dates",
    "training_dates",
]
