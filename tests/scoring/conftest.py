"""Fixtures for the scoring tests: the shipped policy (helpers for frames live in scoring_frames.py)."""

from __future__ import annotations

import pytest

from scoring.domain.policy import Policy, load_policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy()
