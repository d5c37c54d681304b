"""Backtest plots (matplotlib, Agg backend: no display needed): calibration curve and lift / capture curve."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from models import metrics as _metrics


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def calibration_plot(y, probability, bins: int = 10, title: str = ""):
    """Mean predicted probability against the observed adverse-outcome rate, per equal-count bin."""
    plt = _pyplot()
    table = _metrics.calibration_table(y, probability, bins)
    figure, axis = plt.subplots(figsize=(5, 5))
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max(), 0.01)) if len(table) else 1.0
    axis.plot([0, top], [0, top], linestyle="--", color="grey", label="perfect calibration")
    axis.plot(table["mean_predicted"], table["observed_rate"], marker="o", label="model")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed adverse-outcome rate")
    axis.set_title(f"Calibration {title}".strip())
    axis.legend(loc="upper left")
    figure.tight_layout()
    return figure


def lift_plot(y, score, title: str = ""):
    """Share of adverse outcomes captured against the share of enterprises ranked riskiest first."""
    plt = _pyplot()
    table = _metrics.lift_table(y, score, steps=20)
    figure, axis = plt.subplots(figsize=(5, 5))
    shares = np.concatenate([[0.0], table["share_ranked"].to_numpy()])
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random order")
    axis.plot(shares, np.concatenate([[0.0], table["captured_worst"].to_numpy()]), marker=".", label="model (worst ties)")
    axis.set_xlabel("share of enterprises ranked")
    axis.set_ylabel("share of adverse outcomes captured")
    axis.set_title(f"Capture curve {title}".strip())
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


def close(figures: Iterable) -> None:
    plt = _pyplot()
    for figure in figures:
        plt.close(figure)
