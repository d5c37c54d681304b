"""Small hand-made feature matrices with real catalog names, and the policy's model sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SECTORS = ("hazchem", "machinery", "commerce", "construction")


def make_matrix(n_enterprises: int = 400, n_dates: int = 4, seed: int = 0, unknown_share: float = 0.1):
    """(features, labels, risk): a feature matrix indexed by (enterprise_id, as_of), labels with some unknown.

    Risk rises with major hazards, overdue major hazards, penalties, general hazards per inspection and the
    blacklist; falls with standardization (lower level number is better), commitment and insurance; the sector
    shifts it. The hidden ``risk`` is the true probability of the adverse outcome.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=n_dates, freq="91D")
    ids = [f"E{i:05d}" for i in range(n_enterprises)]
    index = pd.MultiIndex.from_product([ids, dates], names=["enterprise_id", "as_of"])
    n = len(index)
    quality = np.repeat(rng.normal(size=n_enterprises), n_dates)  # hidden management quality
    sector = np.repeat(rng.choice(SECTORS, n_enterprises), n_dates)
    sector_shift = pd.Series({"hazchem": 0.8, "machinery": 0.0, "commerce": -0.6, "construction": 0.4})
    inspections = rng.poisson(3, n).astype(float)
    major = rng.poisson(np.exp(-1.0 + 0.6 * quality) * inspections / 3)
    general = rng.poisson(np.exp(1.2 + 0.3 * quality) * np.maximum(inspections, 1) / 3)
    features = pd.DataFrame(
        {
            "sector": pd.Categorical(sector),
            "inspections_365d": inspections,
            "major_hazards_365d": major.astype(float),
            "overdue_major_hazards": rng.binomial(major, 0.2).astype(float),
            "general_hazards_per_inspection_365d": general / np.maximum(inspections, 1),
            "penalties_365d": rng.poisson(np.exp(-1.5 + 0.5 * quality)).astype(float),
            "blacklisted": (rng.random(n) < 0.01 * np.exp(quality)).astype(float),
            "standardization_level": rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.1, 0.2, 0.2, 0.5]),
            "commitment_signed": (rng.random(n) < 0.5).astype(float),
            "insured": (rng.random(n) < 0.6).astype(float),
            "employees": rng.integers(5, 500, n).astype(float),
        },
        index=index,
    )
    features.loc[rng.random(n) < 0.05, "general_hazards_per_inspection_365d"] = np.nan
    logit = (
        -1.6 + 1.0 * quality + 0.25 * features["major_hazards_365d"] + 0.4 * features["overdue_major_hazards"]
        + 0.2 * features["penalties_365d"] + 1.5 * features["blacklisted"]
        + 0.15 * features["standardization_level"] - 0.3 * features["commitment_signed"]
        + sector_shift.reindex(sector).to_numpy()
    )
    risk = pd.Series(1 / (1 + np.exp(-logit.to_numpy())), index=index, name="risk")
    outcome = (rng.random(n) < risk.to_numpy()).astype(int)
    known = rng.random(n) >= unknown_share
    labels = pd.DataFrame(
        {"label": pd.array(np.where(known, outcome, 0), dtype="Int64"), "label_known": known}, index=index
    )
    labels.loc[~known, "label"] = pd.NA
    return features, labels, risk


@pytest.fixture(scope="session")
def matrix_factory():
    return make_matrix


@pytest.fixture(scope="session")
def matrix():
    return make_matrix()


@pytest.fixture(scope="session")
def policy_mapping():
    from scoring.domain.policy import read_policy_mapping

    mapping, _ = read_policy_mapping()
    return mapping


@pytest.fixture(scope="session")
def expert_rules(policy_mapping):
    """The shipped [expert_card] section, typed."""
    from scoring.domain.policy import build_section

    from models.expert import ExpertCardRules

    return build_section(ExpertCardRules, policy_mapping["expert_card"], "policy.toml: expert_card")


@pytest.fixture(scope="session")
def training_config(policy_mapping):
    from scoring.domain.policy import build_section

    from models.config import TrainingConfig

    return build_section(TrainingConfig, policy_mapping["training"], "policy.toml: training")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Numeric libraries on one thread: fastest at test scale, and no oversubscription on a shared machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield
