"""The ``[training]`` section of the policy file: backtest dates, calibration, model settings, promotion gate.

Frozen dataclasses with documented defaults; ``scoring.domain.policy.build_section(TrainingConfig, mapping,
"policy.toml: training")`` builds them from the TOML, and ``TrainingConfig()`` gives the same defaults
without any file (notebooks, tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

@dataclass(frozen=True)
class PointsScaling:
    """Points = ``base_points`` at odds ``base_odds``:1 (no adverse outcome : adverse); ``pdo`` doubles the odds."""

    pdo: float = 20.0
    base_points: float = 600.0
    base_odds: float = 50.0

    def __post_init__(self) -> None:
        for key in ("pdo", "base_odds"):
            if getattr(self, key) <= 0:
                raise ValueError((key, f"expected a positive number, got {getattr(self, key)}"))


@dataclass(frozen=True)
class ScorecardSettings:
    max_n_bins: int = 6
    min_bin_size: float = 0.05
    min_iv: float = 0.02
    C: float = 1.0

    def __post_init__(self) -> None:
        if self.max_n_bins < 2:
            raise ValueError(("max_n_bins", f"expected at least 2, got {self.max_n_bins}"))
        if not 0 < self.min_bin_size < 0.5:
            raise ValueError(("min_bin_size", f"expected a share between 0 and 0.5, got {self.min_bin_size}"))
        if self.C <= 0:
            raise ValueError(("C", f"expected a positive number, got {self.C}"))


@dataclass(frozen=True)
class BoostingSettings:
    learning_rate: float = 0.1
    max_iter: int = 100
    max_leaf_nodes: int = 3
    min_samples_leaf: int = 200
    l2_regularization: float = 10.0
    sector_smoothing: float = 50.0
    # Larger (max_leaf_nodes, max_iter) sizes, kept when they rank held-out enterprises better (ROC-AUC) than
    # the size above on ``size_confidence`` of bootstrap resamples (models.boosting).
    larger_sizes: tuple[tuple[int, int], ...] = ((7, 300),)
    size_confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0 < self.learning_rate <= 1:
            raise ValueError(("learning_rate", f"expected a number in (0, 1], got {self.learning_rate}"))
        for key in ("max_iter", "max_leaf_nodes", "min_samples_leaf"):
            if getattr(self, key) < (2 if key == "max_leaf_nodes" else 1):
                raise ValueError((key, f"too small: {getattr(self, key)}"))
        for size in self.larger_sizes:
            if len(size) != 2 or size[0] < 2 or size[1] < 1:
                raise ValueError(
                    ("larger_sizes", f"expected [max_leaf_nodes ≥ 2, max_iter ≥ 1] pairs, got {list(size)}"))
        if not 0.5 <= self.size_confidence <= 1:
            raise ValueError(("size_confidence", f"expected a share in [0.5, 1], got {self.size_confidence}"))


@dataclass(frozen=True)
class PromotionGate:
    """A challenger becomes champion only if ``metric`` beats the champion's by at least ``min_improvement``
    on the same backtest (for ``brier``, lower is better)."""

    metric: Literal["roc_auc", "pr_auc", "brier", "high_tier_capture_worst", "recall_at_10pct_worst"] = "roc_auc"
    min_improvement: float = 0.0

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "brier"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything ``riskgrade train`` needs besides the data, the as-of date and the label definition."""

    # As-of dates of the training matrix: every ``step_days`` back from the latest date whose labels are
    # complete, no earlier than ``warmup_days`` after the first record (features need some history).
    step_days: int = 91
    warmup_days: int = 365
    max_as_of_dates: int = 12
    # Rolling backtest: the latest ``n_test_dates`` as-of dates are test dates in turn.
    n_test_dates: int = 3
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    # Reporting.
    top_k_percents: tuple[float, ...] = (5.0, 10.0, 20.0)
    high_tier_share: float = 0.10
    calibration_bins: int = 10
    min_group_rows: int = 30
    seed: int = 0
    # Threads for the numeric libraries (OpenMP, BLAS) while training; 0 = their own default (all cores).
    # One thread is often fastest at bureau scale, and never oversubscribes a shared machine.
    threads: int = 1
    # Training at scale: when the data hold more enterprises than this, ``riskgrade train`` trains on a sample
    # of this many, stratified by sector (drawn partition by partition); 0 = always all of them.
    sample_enterprises: int = 200_000
    points: PointsScaling = field(default_factory=PointsScaling)
    scorecard: ScorecardSettings = field(default_factory=ScorecardSettings)
    boosting: BoostingSettings = field(default_factory=BoostingSettings)
    promotion: PromotionGate = field(default_factory=PromotionGate)

    def __post_init__(self) -> None:
        if self.step_days < 1:
            raise ValueError(("step_days", f"expected at least 1 day, got {self.step_days}"))
        if self.warmup_days < 0:
            raise ValueError(("warmup_days", f"expected 0 or more days, got {self.warmup_days}"))
        if self.n_test_dates < 1:
            raise ValueError(("n_test_dates", f"expected at least 1, got {self.n_test_dates}"))
        if self.max_as_of_dates < self.n_test_dates + 2:
            raise ValueError(
                ("max_as_of_dates", f"expected at least n_test_dates + 2 = {self.n_test_dates + 2}, "
                 f"got {self.max_as_of_dates}")
            )
        if not 0 < self.high_tier_share < 1:
            raise ValueError(("high_tier_share", f"expected a share between 0 and 1, got {self.high_tier_share}"))
        for k in self.top_k_percents:
            if not 0 < k <= 100:
                raise ValueError(("top_k_percents", f"expected percentages in (0, 100], got {k}"))
        if self.threads < 0:
            raise ValueError(("threads", f"expected 0 (all cores) or a positive number, got {self.threads}"))
        if self.sample_enterprises < 0:
            raise ValueError(("sample_enterprises", f"expected 0 (all) or a positive number, got "
                                                    f"{self.sample_enterprises}"))
        if self.calibration_bins < 2:
            raise ValueError(("calibration_bins", f"expected at least 2, got {self.calibration_bins}"))
