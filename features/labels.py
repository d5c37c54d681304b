"""Labels: did an adverse outcome happen in the horizon after the as-of date? (DESIGN.md §6)

Time semantics
--------------
- The label of the row ``(enterprise, a)`` looks at events whose **event date** lies in
  ``[a, a + horizon_days)``: an event exactly on ``a`` counts, one on ``a + horizon_days`` does not.
  Labels describe what happened, so they use event dates, not ``recorded_on``.
- But a model trained on date ``t`` must not see outcomes recorded on or after ``t``: pass
  ``known_before=t`` to drop every event whose ``recorded_on`` is on or after ``t`` (and train only on
  as-of dates whose labels are complete by ``t``: see :func:`labels_complete_on`).
- Rows are those of :func:`features.build.build_features` (enterprises founded before ``a`` and not
  closed before it), so labels and features join one-to-one. An enterprise closing during the horizon
  keeps its row; what happened before closing is its outcome.

Unknown is not negative
-----------------------
Some outcomes are only seen by inspecting (a major hazard is *found*). An enterprise not inspected in
the horizon and with no positive outcome has an **unknown** label (``label`` NA, ``label_known`` False)
when the target includes such an outcome. Accidents and suspensions are always observed, so a target of
only those is always known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import FeatureContext
from features.catalog import Quantity, Where
from features.errors import DataError

DEFAULT_HORIZON_DAYS = 365


@dataclass(frozen=True)
class Outcome:
    """An adverse outcome a label can target: the events that make it positive."""

    name: str
    quantity: Quantity
    seen_only_by_inspecting: bool
    description_en: str
    description_zh: str


_MAJOR_HAZARD = Outcome(
    "major_hazard", Quantity("hazards", (Where("level", ("major",)),)), True, "a major hazard found", "发现重大隐患"
)
_SUSPENSION = Outcome(
    "suspension", Quantity("penalties", (Where("suspension", (True,)),)), False,
    "an order to suspend production", "责令停产停业",
)


def _accident(exclude_road_traffic: bool) -> Outcome:
    where = (Where("road_traffic", (True,), negate=True),) if exclude_road_traffic else ()
    text = "an accident of any grade" + (" (road traffic excluded)" if exclude_road_traffic else "")
    return Outcome("accident", Quantity("accidents", where), False, text, "发生任何等级事故")


OUTCOMES: tuple[str, ...] = ("accident", "major_hazard", "suspension")
"""The outcomes a target may combine, in the order components are reported."""

_INSPECTED = Quantity("inspections")


@dataclass(frozen=True)
class LabelTarget:
    """Which outcomes make a label positive (any of them): a non-empty subset of :data:`OUTCOMES`.

    ``LabelTarget()`` is the default (all three); ``LabelTarget.parse("accident+major_hazard")`` or
    ``LabelTarget(("accident",))`` choose fewer.
    """

    outcomes: tuple[str, ...] = OUTCOMES

    def __post_init__(self) -> None:
        outcomes = tuple(self.outcomes)
        unknown = [o for o in outcomes if o not in OUTCOMES]
        if unknown or not outcomes:
            raise ValueError(
                f"a label target is a non-empty combination of {', '.join(OUTCOMES)}; got {list(outcomes)!r}"
            )
        object.__setattr__(self, "outcomes", tuple(o for o in OUTCOMES if o in outcomes))

    @classmethod
    def parse(cls, text: str) -> LabelTarget:
        """``"accident+major_hazard"`` (also ``,`` or spaces between names) as a target."""
        names = [part for part in text.replace(",", "+").replace(" ", "+").split("+") if part]
        return cls(tuple(names))

    def __str__(self) -> str:
        return "+".join(self.outcomes)


def as_target(target: LabelTarget | str | Iterable[str]) -> LabelTarget:
    if isinstance(target, LabelTarget):
        return target
    if isinstance(target, str):
        return LabelTarget.parse(target)
    return LabelTarget(tuple(target))


def labels_complete_on(as_of: object, horizon_days: int = DEFAULT_HORIZON_DAYS) -> pd.Timestamp | pd.DatetimeIndex:
    """The first day on which the labels of ``as_of`` are complete: ``as_of + horizon_days``.

    A backtest testing at date ``t`` may train on as-of dates ``a`` with ``labels_complete_on(a) <= t``
    (and build those labels with ``known_before=t``). Works on one date or an index of dates.
    """
    offset = pd.Timedelta(days=int(horizon_days))
    if isinstance(as_of, (pd.DatetimeIndex, pd.Series, list, tuple, np.ndarray)):
        return pd.DatetimeIndex(pd.to_datetime(as_of)) + offset
    return pd.Timestamp(as_of) + offset


def build_labels(
    data: Mapping[str, pd.DataFrame],
    as_of_dates: object,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    target: LabelTarget | str | Iterable[str] = LabelTarget(),
    exclude_road_traffic: bool = True,
    known_before: object = None,
) -> pd.DataFrame:
    """Labels for every active enterprise at every as-of date (same rows as the features).

    Parameters
    ----------
    data
        Canonical frames by table name; the tables of the target's outcomes are needed
        (``accidents``, ``hazards``, ``penalties``) as is ``inspections`` (who was looked at).
    as_of_dates
        One date or several; each row looks at event dates in ``[a, a + horizon_days)``.
    horizon_days
        Length of the outcome window in days.
    target
        A :class:`LabelTarget`, a string like ``"accident+major_hazard"`` or a list of outcome names.
    exclude_road_traffic
        Accidents flagged ``road_traffic`` do not count (unknown flag: counted).
    known_before
        If given, events with ``recorded_on`` on or after this date are dropped first (what a model
        trained on that date could know).

    Returns
    -------
    DataFrame indexed by ``(enterprise_id, as_of)`` with ``label`` (Int64: 1, 0 or NA), ``label_known``
    (bool) and the components, whether or not targeted: ``accident``, ``major_hazard``, ``suspension``
    (boolean; NA when their table is absent) and ``inspected`` (inspected at least once in the horizon).
    """
    if horizon_days <= 0:
        raise ValueError(f"horizon_days must be positive, got {horizon_days}")
    target = as_target(target)
    outcomes = {"accident": _accident(exclude_road_traffic), "major_hazard": _MAJOR_HAZARD, "suspension": _SUSPENSION}
    for name in target.outcomes:
        table = outcomes[name].quantity.source
        if table not in data:
            raise DataError(
                f"label target {str(target)!r} needs table {table!r} for {name!r}, which is absent; "
                f"choose a target from the outcomes whose tables you have"
            )
    cutoff = None if known_before is None else pd.Timestamp(known_before)
    ctx = FeatureContext(data, as_of_dates, offsets=(0, -horizon_days), point_in_time=False, known_before=cutoff)
    n_rows = ctx.rows.grid.n_rows

    def happened(quantity: Quantity) -> pd.array:
        if not ctx.has(quantity.source):
            return pd.array(np.full(n_rows, pd.NA), dtype="boolean")
        return pd.array(ctx.window_sum(quantity, 0, -horizon_days) > 0, dtype="boolean")

    components = {name: happened(outcome.quantity) for name, outcome in outcomes.items()}
    components["inspected"] = happened(_INSPECTED)

    positive = np.zeros(n_rows, dtype=bool)
    for name in target.outcomes:
        positive |= components[name].to_numpy(dtype=bool, na_value=False)
    known = np.ones(n_rows, dtype=bool)
    if any(outcomes[name].seen_only_by_inspecting for name in target.outcomes):
        known = positive | components["inspected"].to_numpy(dtype=bool, na_value=False)
    label = pd.array(positive.astype(np.int64), dtype="Int64")
    label[~known] = pd.NA
    frame = pd.DataFrame({"label": label, "label_known": known, **components}, index=ctx.rows.index)
    frame.attrs["target"] = str(target)
    frame.attrs["horizon_days"] = int(horizon_days)
    return frame


def oracle_risk(truth: pd.DataFrame, as_of, horizon_days: int = 365) -> pd.Series:
    """Synthetic worlds only: the true probability of an adverse outcome in ``[as_of, as_of + horizon_days)``, by ``enterprise_id``.

    ``1 − Π_months (1 − adverse_prob)^overlap``, where ``overlap`` is the share of each month inside the window
    (so an as-of date mid-month counts the rest of that month). Enterprises without a truth row overlapping
    the window are absent.
    """
    as_of = pd.Timestamp(as_of)
    end = as_of + pd.Timedelta(days=horizon_days)
    first = truth["month"]
    following = first + pd.offsets.MonthBegin(1)
    days_in_month = (following - first).dt.days
    overlap_days = (following.where(following < end, end) - first.where(first > as_of, as_of)).dt.days
    weight = (overlap_days.clip(lower=0) / days_in_month).to_numpy()
    inside = weight > 0
    log_survival = weight[inside] * np.log1p(-truth["adverse_prob"].to_numpy()[inside])
    total = pd.Series(log_survival, index=truth["enterprise_id"].to_numpy()[inside]).groupby(level=0).sum()
    risk = -np.expm1(total)
    risk.index.name = "enterprise_id"
    return risk.rename("oracle_risk")
