"""Point-in-time features: one row per active enterprise and as-of date (DESIGN.md §5).

Time semantics (the rules every feature follows)
------------------------------------------------
- An event counts for as-of date ``a`` only if it was **known before** ``a``: both its event date
  (``inspected_on``, ``found_on``, ``occurred_on``, ``decided_on``, ``valid_from``, ``received_on``) and its
  ``recorded_on`` are strictly before ``a``. (A record dated before ``a`` but entered on or after ``a`` is
  invisible as of ``a``.)
- A window of ``w`` days is ``[a - w days, a)`` on the event date; "prior" windows of trends are
  ``[a - 2w, a - w)``, still restricted to events known before ``a``.
- State features (unrectified hazards, credit state, days since the last event) use the same knowledge
  rule: a major hazard counts as rectified only if ``rectified_on < a``; a credit record is active if
  ``valid_from < a``, ``recorded_on < a`` and it has not ended (``valid_to`` empty or ``>= a``).
- Rows: an enterprise is scored as of ``a`` unless it was not yet founded (``founded_on >= a``) or had
  already closed (``closed_on < a``; closing on ``a`` itself is not known before ``a``). Empty dates
  mean "founded long ago" and "still open".
- A missing optional table gives NaN for every feature drawn from it (never silent zeros); a present
  table in which an enterprise has no events gives zero counts. Ratios with a zero denominator are NaN.

How it is computed (fast, and ready for Dask)
---------------------------------------------
Windows are read at a handful of "cut days": every as-of date minus every window bound. Each event
table is mapped once to enterprise codes and day numbers; each event falls in a bucket (how many cut
days are on or before its date, from a small lookup table). One ``np.bincount`` per quantity over
``bucket × enterprise`` and a cumulative sum along the buckets give "sum before each cut day" for every
enterprise (bucket-major, so reading one cut day for all enterprises walks memory in order), and a
window sum is a difference of two of those — for all enterprises and all as-of dates in the same pass,
with no sort and no loop over enterprises or events. A count whose filter keeps most
events (general hazards) is all events minus the few others, which spares copying nearly every bin.
Records entered late (dated before an as-of date, recorded on or after it) are found once per date and
subtracted. Recency-weighted sums (``Quantity.half_life_days``) use the same pass: each event is weighted
``2 ** ((day - last as-of day) / half-life)`` and each row's window sum rescaled to its own as-of date.
"Days since the last event" needs no sort either: the latest event day per (enterprise, first as-of date
that knows the event), from one ``np.maximum.at``, carried forward along the dates.

The aggregations registered with ``stage="enterprise"`` only read the enterprise's own events: they can
run partition-wise (e.g. Dask partitioned by ``enterprise_id``). Those with ``stage="cross_enterprise"``
(sector-mean shrinkage, peer context) combine enterprises and run as a second step, from the window sums
of the first and the (small) accidents table.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.catalog import (
    DEFAULT_WINDOWS,
    NO_LEVEL,
    Feature,
    Quantity,
    Where,
    catalog_for,
    extra_features,
)
from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME, TABLES, accident_grade
from features.errors import DataError, MissingInputError
from features.inspectors import inspection_teams

DEFAULT_SHRINKAGE_STRENGTH = 5.0
"""Pseudo-inspections of the sector mean added to each enterprise's own record (see :func:`_shrunk_rate`)."""

DAYS_PER_YEAR = 365.25

_NS_PER_DAY = 86_400 * 10**9

_FALSE_WORDS = frozenset({"false", "0", "no", "n", "f", "否", "无", "none", "0.0"})

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Dates and rows
# ---------------------------------------------------------------------------------------------


def as_of_index(as_of_dates: object) -> pd.DatetimeIndex:
    """The as-of dates as a sorted, duplicate-free ``DatetimeIndex`` of midnights (``datetime64[ns]``)."""
    if isinstance(as_of_dates, (str, pd.Timestamp, np.datetime64)) or not isinstance(as_of_dates, Iterable):
        as_of_dates = [as_of_dates]
    dates = pd.DatetimeIndex(pd.to_datetime(list(as_of_dates))).astype("datetime64[ns]")
    if len(dates) == 0:
        raise ValueError("as_of_dates is empty: give at least one date")
    if dates.hasnans:
        raise ValueError("as_of_dates contains a missing date")
    if (dates != dates.normalize()).any():
        raise ValueError("as_of dates must be whole days (midnight), got times of day")
    return dates.unique().sort_values()


def _days(values: pd.Series | pd.Index | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(days since 1970 as int64 — the smallest int64 where missing —, missing mask) of a datetime column."""
    nanoseconds = np.asarray(values, dtype="datetime64[ns]").view(np.int64)
    days = nanoseconds // _NS_PER_DAY  # floors like ``astype("datetime64[D]")``, at half its cost
    if len(nanoseconds) and nanoseconds.min() == np.iinfo(np.int64).min:  # NaT: a mask only when there are some
        missing = nanoseconds == np.iinfo(np.int64).min
        days[missing] = np.iinfo(np.int64).min
    else:
        missing = np.zeros(len(nanoseconds), dtype=bool)
    return days, missing


@dataclass(frozen=True)
class Grid:
    """Query rows: one per (group, as-of date) — groups are enterprises or peer groups (sector, township).

    ``lookup[group, date_index]`` is the row of that pair, or -1 when the pair is not a row (an enterprise
    not active at the date).
    """

    group: np.ndarray  # int64, per row
    date_index: np.ndarray  # int64, per row
    day: np.ndarray  # int64 days since 1970 of the row's as-of date
    lookup: np.ndarray  # int64 [n_groups, n_dates]

    @property
    def n_rows(self) -> int:
        return len(self.group)

    @property
    def n_groups(self) -> int:
        return self.lookup.shape[0]


def _full_grid(n_groups: int, as_of_days: np.ndarray) -> Grid:
    n_dates = len(as_of_days)
    group = np.repeat(np.arange(n_groups, dtype=np.int64), n_dates)
    date_index = np.tile(np.arange(n_dates, dtype=np.int64), n_groups)
    return Grid(group, date_index, as_of_days[date_index], np.arange(n_groups * n_dates).reshape(n_groups, n_dates))


@dataclass(frozen=True)
class ActiveRows:
    """The rows of a feature (or label) frame: active enterprises × as-of dates, ordered by (id, date)."""

    enterprises: pd.DataFrame  # sorted by enterprise_id, index 0..n-1 (row i has code i)
    ids: pd.Index
    dates: pd.DatetimeIndex
    grid: Grid
    code_of_key: np.ndarray | None = None  # code of each ``enterprise_key`` (-1: none), when the frame has keys
    keys_in_id_order: bool = False  # the enterprises' keys are consecutive in id order: code = key - first key

    def codes(self, events: pd.DataFrame) -> np.ndarray:
        """The code of each event's enterprise (int32; -1 when it is not one of the enterprises).

        By ``enterprise_key`` when both frames carry the database's keys (one gather in a small array),
        otherwise by ``enterprise_id`` (a hash lookup per event: on province-scale tables the costliest step).
        """
        keys = _integer_keys(events)
        if self.code_of_key is not None and keys is not None and len(keys):
            smallest = keys.min()
            if smallest >= 0 and keys.max() < len(self.code_of_key):
                if self.keys_in_id_order:  # (a first import numbers them so) the code is the key shifted: no gather
                    first_key = len(self.code_of_key) - len(self.ids)
                    codes = np.subtract(keys, first_key, dtype=np.int32)
                    if smallest < first_key:  # keys below the first: no enterprise of the frame
                        np.maximum(codes, -1, out=codes)
                    return codes
                return self.code_of_key[keys]
        return _codes(events["enterprise_id"], self.ids)

    @property
    def index(self) -> pd.MultiIndex:
        return pd.MultiIndex(
            levels=[self.ids, self.dates],
            codes=[self.grid.group, self.grid.date_index],
            names=["enterprise_id", "as_of"],
            verify_integrity=False,
        )


def active_rows(enterprises: pd.DataFrame, as_of_dates: object) -> ActiveRows:
    """Enterprises active at each as-of date ``a``: ``founded_on < a`` (or empty) and not ``closed_on < a``."""
    dates = as_of_index(as_of_dates)
    if enterprises["enterprise_id"].isna().any():
        raise DataError("enterprises: enterprise_id is empty in some rows")
    ids = pa.array(enterprises["enterprise_id"].astype("str").array)
    order = pc.sort_indices(ids)  # stable; a few times faster than pandas' sort of the frame
    sorted_ids = ids.take(order)
    repeated = pc.equal(sorted_ids[1:], sorted_ids[:-1])  # sorted: a repeated id is next to itself
    if pc.any(repeated).as_py():
        raise DataError(f"enterprises: enterprise_id {sorted_ids[pc.index(repeated, True).as_py()].as_py()!r} "
                        "appears more than once")
    ordered = enterprises.take(order.to_numpy()).reset_index(drop=True)
    as_of_days, _ = _days(dates)
    founded, founded_missing = _days(_column(ordered, "founded_on", "datetime64[ns]"))
    closed, closed_missing = _days(_column(ordered, "closed_on", "datetime64[ns]"))
    started = founded_missing[:, None] | (founded[:, None] < as_of_days[None, :])
    open_ = closed_missing[:, None] | (closed[:, None] >= as_of_days[None, :])
    active = started & open_
    group, date_index = np.nonzero(active)
    lookup = np.full(active.shape, -1, dtype=np.int64)
    lookup[group, date_index] = np.arange(len(group))
    grid = Grid(group.astype(np.int64), date_index.astype(np.int64), as_of_days[date_index], lookup)
    code_of_key = _code_of_key(ordered)
    keys_in_id_order = code_of_key is not None and bool(
        np.array_equal(code_of_key[len(code_of_key) - len(ordered):], np.arange(len(ordered))))
    return ActiveRows(ordered, pd.Index(pd.Series(sorted_ids, dtype="str")), dates, grid, code_of_key,
                      keys_in_id_order)


def _integer_keys(frame: pd.DataFrame) -> np.ndarray | None:
    """The frame's ``enterprise_key`` column as a numpy integer array, or None (absent, or with missing values)."""
    if ENTERPRISE_KEY not in frame.columns or not pd.api.types.is_integer_dtype(frame[ENTERPRISE_KEY].dtype):
        return None
    if frame[ENTERPRISE_KEY].hasnans:
        return None
    return frame[ENTERPRISE_KEY].to_numpy(dtype=np.int64 if frame[ENTERPRISE_KEY].dtype.itemsize > 4 else np.int32)


def _code_of_key(enterprises: pd.DataFrame) -> np.ndarray | None:
    """``code_of_key[key]`` = row of the enterprise with that key in ``enterprises``, -1 for unused keys; None
    when the keys cannot be trusted to identify enterprises (missing, negative, repeated, or too sparse)."""
    keys = _integer_keys(enterprises)
    if keys is None or not len(keys) or keys.min() < 0 or keys.max() > 4 * len(keys) + 1024:
        return None
    code_of_key = np.full(int(keys.max()) + 1, -1, dtype=np.int32)
    code_of_key[keys] = np.arange(len(keys), dtype=np.int32)
    if np.count_nonzero(code_of_key >= 0) != len(keys):  # a key used twice
        return None
    return code_of_key


def _column(frame: pd.DataFrame, name: str, dtype: str | None = None) -> pd.Series:
    """``frame[name]``, or an all-missing column when a non-canonical frame lacks it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(pd.NaT if dtype == "datetime64[ns]" else pd.NA, index=frame.index, dtype=dtype or "object")


def _codes(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each id in ``index`` (int32, or int64 beyond 2**31 ids; -1 when absent)."""
    try:
        values = pa.array(ids)
        found = pc.index_in(values, value_set=pa.array(index).cast(values.type))
    except (TypeError, ValueError, pa.ArrowException):  # e.g. non-string ids: slower pandas path
        return index.get_indexer(ids.astype("str"))
    return found.fill_null(-1).to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------------------------------------
# Cut days and cumulative sums
# ---------------------------------------------------------------------------------------------


class CutDays:
    """The days at which sums are read: every as-of date shifted back by every window offset.

    A window sum over ``[a - start, a - end)`` is (sum of events before ``a - end``) − (sum before
    ``a - start``), so "sum before each cut day" per group is all any window needs. Events are put in
    buckets — the number of cut days on or before the event's day — through a lookup table over the
    day range, counted per (group, bucket) with one ``np.bincount`` and accumulated along the buckets.
    No sort, and the same pass serves every as-of date.
    """

    def __init__(self, as_of_days: np.ndarray, offsets: Iterable[int]) -> None:
        self.offsets = tuple(sorted(set(offsets)))
        shifted = as_of_days[:, None] - np.asarray(self.offsets, dtype=np.int64)[None, :]
        self.days = np.unique(shifted)
        self.column = {o: np.searchsorted(self.days, as_of_days - o) for o in self.offsets}
        # The lookup starts at day 0 when the cut days allow (after 1970): event days then index it
        # directly, without a shifted copy as long as the table.
        self._origin = min(int(self.days[0]) - 1, 0)
        lookup = np.searchsorted(self.days, np.arange(self._origin, int(self.days[-1]) + 1), side="right")
        self._lookup = lookup.astype(np.min_scalar_type(len(self.days)))  # small: the gather stays cheap

    def __len__(self) -> int:
        return len(self.days)

    def bucket(self, day: np.ndarray) -> np.ndarray:
        """Number of cut days ``<= day`` for each event day (0 … len(self))."""
        index = day - self._origin if self._origin else day
        return self._lookup.take(index, mode="clip")  # days beyond the range: first/last bucket


def _cumulative_before(bins: np.ndarray, weights: np.ndarray | None, n_rows: int, n_cuts: int) -> np.ndarray:
    """``C[j, r]`` = sum of ``weights`` (or count) of the events of matrix row r dated before cut day j.

    ``bins`` is ``bucket * n_rows + row`` per event: bucket-major, so that reading one cut day for every
    enterprise walks memory in order. The last cut row (all events) is never read. Counts stay integers
    (int64), sums of values are float64.
    """
    histogram = np.bincount(bins, weights, minlength=(n_cuts + 1) * n_rows).reshape(n_cuts + 1, n_rows)
    return np.cumsum(histogram, axis=0, out=histogram)


# ---------------------------------------------------------------------------------------------
# Event tables
# ---------------------------------------------------------------------------------------------


class EventSource:
    """One event table prepared for counting: enterprise codes, event days, knowledge days.

    ``point_in_time=True`` (features): an event is known from ``max(event date, recorded_on)``.
    ``point_in_time=False`` (labels): knowledge dates are ignored, except that ``known_before`` drops
    rows recorded on or after a cutoff before anything else.
    """

    def __init__(self, name: str, frame: pd.DataFrame, rows: ActiveRows, *, point_in_time: bool,
                 known_before: pd.Timestamp | None = None) -> None:
        spec = TABLE_BY_NAME[name]
        code = rows.codes(frame)
        day, day_missing = _days(frame[spec.event_date])
        recorded, recorded_missing = _days(_column(frame, "recorded_on", "datetime64[ns]"))
        # Rows to drop, as a mask only when there are some: usually none, and a table-long mask is not free.
        drop = (code < 0) | day_missing if code.min(initial=0) < 0 or day_missing.any() else None
        if known_before is not None:
            late = ~recorded_missing & (recorded >= _days(pd.DatetimeIndex([known_before]))[0][0])
            drop = late if drop is None else drop | late
        if drop is not None and drop.any():
            keep = ~drop
            frame, code, day = frame[keep].reset_index(drop=True), code[keep], day[keep]
            recorded, recorded_missing = recorded[keep], recorded_missing[keep]
        self.name = name
        self.frame = frame
        self.code = code
        self.day = day
        if point_in_time:  # a missing recorded_on is the smallest int64 (see _days): the event date decides
            self.known = np.maximum(day, recorded, out=recorded)
        else:
            self.known = day
        self._as_of_days, _ = _days(rows.dates)
        self._inflight: tuple[np.ndarray, np.ndarray] | None = None
        self._masks: dict[tuple[Where, ...], np.ndarray | None] = {}
        self._equals: dict[tuple[str, object], np.ndarray] = {}
        self._values: dict[str, np.ndarray] = {}
        self._positions: dict[tuple[Where, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.code)

    def mask(self, where: tuple[Where, ...]) -> np.ndarray | None:
        """Events matching all filters (missing values never match; ``negate`` keeps them); None: all."""
        if not where:
            return None
        if where not in self._masks:
            mask = None  # a single "column is value" filter is the cached equality itself: no copy
            for condition in where:
                matches = self._equal(condition.column, condition.values[0])
                for value in condition.values[1:]:
                    matches = matches | self._equal(condition.column, value)
                if condition.negate:
                    matches = ~matches
                mask = matches if mask is None else mask & matches
            self._masks[where] = None if mask.all() else mask  # e.g. "level in (general, major)"
        return self._masks[where]

    def positions(self, where: tuple[Where, ...]) -> np.ndarray:
        """Positions of the events matching ``where`` (kept: state features select the same events several times)."""
        if where not in self._positions:
            mask = self.mask(where)
            self._positions[where] = np.arange(len(self)) if mask is None else np.flatnonzero(mask)
        return self._positions[where]

    def _equal(self, column: str, value: object) -> np.ndarray:
        """Events whose ``column`` is ``value`` (missing: False), kept: filters share their values' scans."""
        key = (column, value)
        if key not in self._equals:
            values = _graded(self.frame) if column == "grade" else _column(self.frame, column)
            self._equals[key] = _equal_mask(values, value)
        return self._equals[key]

    def weights(self, quantity: Quantity) -> np.ndarray | None:
        """What each event adds to a sum of ``quantity``: its value (None: 1, a plain count), times
        ``2 ** ((day - last as-of day) / half-life)`` when recency-weighted. Multiplying a window's sum by
        ``2 ** ((last as-of day - a) / half-life)`` then gives each event its weight as of ``a`` (see
        :meth:`FeatureContext.window_sum`). Past events get factors below 1, so cumulative sums stay
        dominated by recent events and window differences keep their precision."""
        if quantity.half_life_days is None:
            return self.values(quantity.value) if quantity.value else None
        key = f"{quantity.value or ''} × recency {quantity.half_life_days}"
        if key not in self._values:
            # One factor per calendar day, then a gather: far cheaper than exp2 over every event. The table
            # starts at day 0 when it can (events after 1970), so event days index it without a shifted copy.
            first = min(int(self.day.min(initial=0)), 0)
            days = np.arange(first, int(self.day.max(initial=0)) + 1)
            factor = np.exp2((days - self._as_of_days.max()) / quantity.half_life_days)
            growth = factor.take(self.day - first if first else self.day)
            self._values[key] = growth * self.values(quantity.value) if quantity.value else growth
        return self._values[key]

    def values(self, column: str) -> np.ndarray:
        """A value column as float64, missing values as 0 (they add nothing to sums)."""
        if column not in self._values:
            values = _column(self.frame, column)
            if not (pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)):
                values = pd.to_numeric(values, errors="coerce")  # e.g. numbers held as text
            self._values[column] = values.to_numpy(dtype=np.float64, na_value=0.0)
        return self._values[column]

    def dates(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(days, missing) of another date column of the table (e.g. ``rectified_on``)."""
        return _days(_column(self.frame, column, "datetime64[ns]"))

    def inflight(self) -> tuple[np.ndarray, np.ndarray]:
        """(event, as-of date index) pairs: events dated before the date but recorded on or after it."""
        if self._inflight is None:
            if self.known is self.day:  # knowledge dates ignored (labels): nothing is ever in flight
                late = np.empty(0, dtype=np.intp)
            else:  # only events known on or after the first date can be in flight: few, so select them first
                late = np.flatnonzero(self.known >= self._as_of_days.min())
                late = late[(self.known[late] > self.day[late]) & (self.day[late] < self._as_of_days.max())]
            events, date_indices = [], []
            for date_index, as_of in enumerate(self._as_of_days):
                hit = late[(self.day[late] < as_of) & (self.known[late] >= as_of)]
                events.append(hit)
                date_indices.append(np.full(len(hit), date_index, dtype=np.int64))
            self._inflight = (np.concatenate(events), np.concatenate(date_indices))
        return self._inflight


def _equal_mask(values: pd.Series, value: object) -> np.ndarray:
    """``values == value`` as a numpy bool array, missing values False.

    Text held by Arrow (pandas' ``str``) is compared by Arrow and its result bitmap unpacked directly: the
    generic route through a masked boolean array costs as much again as the comparison itself.
    """
    if isinstance(value, str) and isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        matches = pc.fill_null(pc.equal(pa.array(values.array), value), False)
        chunks = matches.chunks if isinstance(matches, pa.ChunkedArray) else [matches]
        parts = [np.unpackbits(np.frombuffer(chunk.buffers()[1], dtype=np.uint8), count=chunk.offset + len(chunk),
                               bitorder="little")[chunk.offset:].view(bool) for chunk in chunks if len(chunk)]
        return parts[0] if len(parts) == 1 else np.concatenate([np.zeros(0, dtype=bool), *parts])
    # ``==`` rather than ``isin([value])``: the same answer, without isin's value-set machinery.
    return (values == value).to_numpy(dtype=bool, na_value=False)


def _graded(accidents: pd.DataFrame) -> pd.Series:
    """Accident grades, derived from casualties and loss (Decree 493) where the grade is empty."""
    grade = _column(accidents, "grade")
    missing = grade.isna()
    if not missing.any():
        return grade
    numbers = {c: pd.to_numeric(_column(accidents, c)[missing]).fillna(0)
               for c in ("deaths", "serious_injuries", "direct_loss_yuan")}
    derived = [
        accident_grade(int(d), int(s), float(loss))
        for d, s, loss in zip(numbers["deaths"], numbers["serious_injuries"], numbers["direct_loss_yuan"], strict=True)
    ]
    grade = grade.astype("object").copy()
    grade[missing] = derived
    return grade


# ---------------------------------------------------------------------------------------------
# The build context: caches shared by all aggregations of one build
# ---------------------------------------------------------------------------------------------

Grouping = Literal["enterprise", "sector", "township"]


@dataclass(frozen=True)
class TotalKey:
    """A sum across enterprises: the window sum of ``quantity`` over ``[a - start_days, a - end_days)`` added up
    per (``grouping`` value, as-of date) — over the enterprises active at the date (``active_only``: the sector
    means behind shrunk and relative rates) or over all the group's enterprises (peer context)."""

    quantity: Quantity
    start_days: int
    end_days: int
    grouping: Grouping
    active_only: bool


@dataclass(frozen=True)
class GroupTotals:
    """Cross-enterprise sums by group label (one frame per :class:`TotalKey`: group labels × as-of dates).

    What a partitioned build hands to every partition: each partition computes its own
    (:func:`group_totals`), :meth:`combine` adds them up, and ``build_features(..., totals=...)`` reads the
    sums of every partition instead of its own — the result is then that of one build over all enterprises.
    """

    dates: pd.DatetimeIndex
    sums: Mapping[TotalKey, pd.DataFrame]
    # what every partition derives alike from the sums (each inspector's stringency): computed once per process
    # that holds these totals, not once per partition (its size grows with the inspectors, so with N)
    derived: dict[tuple, object] = field(default_factory=dict, compare=False, repr=False)

    def cells(self, key: TotalKey, labels: pd.Index) -> np.ndarray:
        """The sums for the groups ``labels`` (in that order), flat by (group, date); 0 for a group not seen."""
        if key not in self.sums:
            raise ValueError(f"group totals lack the sums of {key.quantity} over [a - {key.start_days}, "
                             f"a - {key.end_days}) by {key.grouping}: compute them with the same catalog and "
                             "shrinkage strength as the build")
        return self.sums[key].reindex(labels, fill_value=0).to_numpy().ravel()

    @classmethod
    def combine(cls, parts: Sequence[GroupTotals]) -> GroupTotals:
        """The sums over all ``parts`` (partitions of disjoint enterprises, same as-of dates)."""
        if not parts:
            raise ValueError("no group totals to combine")
        dates = parts[0].dates
        for part in parts[1:]:
            if not part.dates.equals(dates):
                raise ValueError("group totals of different as-of dates cannot be combined")
        keys = list(dict.fromkeys(key for part in parts for key in part.sums))
        sums = {}
        for key in keys:
            frames = [part.sums[key] for part in parts if key in part.sums]
            sums[key] = pd.concat(frames).groupby(level=0, sort=True).sum() if len(frames) > 1 else frames[0]
        return cls(dates, sums)

_MATRICES_KEPT = 6  # cumulative matrices kept for reuse (each cut days × n_groups)


class FeatureContext:
    """Everything the aggregations read: the rows, prepared event tables and cached sums.

    All sums follow the module's time semantics. ``grouping`` selects whose events are summed: the
    row's enterprise (default) or all enterprises of a peer group (``sector``, ``township``).
    ``offsets`` are the window bounds (days before the as-of date) the build will ask for; others
    still work, at the cost of one more pass. The sums of the quantities in ``keep`` stay cached for the
    whole build (those read again by the cross-enterprise step); others are recomputed when evicted.
    """

    def __init__(self, data: Mapping[str, pd.DataFrame], as_of_dates: object, *,
                 offsets: Iterable[int] = (0,), keep: Iterable[Quantity] = (),
                 shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
                 point_in_time: bool = True, known_before: pd.Timestamp | None = None,
                 totals: GroupTotals | None = None) -> None:
        for spec in TABLES:
            if spec.required_file and spec.name not in data:
                raise MissingInputError(f"required table {spec.name!r} is missing from the data")
        self.data = data
        self.rows = active_rows(data["enterprises"], as_of_dates)
        self.as_of_days, _ = _days(self.rows.dates)
        self.cuts = CutDays(self.as_of_days, offsets)
        self.shrinkage_strength = float(shrinkage_strength)
        self.point_in_time = point_in_time
        self.known_before = known_before
        self._sources: dict[str, EventSource] = {}
        self._groups: dict[str, tuple[np.ndarray, int]] = {}
        self._group_labels: dict[str, pd.Index] = {}
        self._grids: dict[str, Grid] = {"enterprise": self.rows.grid}
        self._cache: dict[tuple, object] = {}
        self._matrices: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._kept_quantities = set(keep)
        self._kept_matrices: dict[tuple, np.ndarray] = {}
        if totals is not None and not totals.dates.equals(self.rows.dates):
            raise ValueError(f"group totals are as of {totals.dates.date.tolist()}, the build as of "
                             f"{self.rows.dates.date.tolist()}: give totals computed for the same dates")
        self._given_totals = totals
        self._local_totals: dict[TotalKey, np.ndarray] = {}
        self._local_frames: dict[TotalKey, pd.DataFrame] = {}  # sums by other labels (inspectors), as frames

    # -- tables and groups ------------------------------------------------------------------------

    def has(self, table: str) -> bool:
        if table == "inspection_inspectors":  # who inspected: the link table or the list column
            return self.teams() is not None
        return table in self.data

    def teams(self) -> pd.DataFrame | None:
        """Who made each inspection (:func:`features.inspectors.inspection_teams`), or None."""
        return self._memo(("teams",), lambda: inspection_teams(self.data))

    def shared_frame(self, key: TotalKey, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """A cross-enterprise sum by labels other than the enterprises' groups (e.g. per inspector): labels ×
        as-of date indices. From this build's own events (``compute()``, kept for :meth:`own_totals`) or, when the
        context was given ``totals``, those of every partition."""
        if self._given_totals is not None:
            if key not in self._given_totals.sums:
                raise ValueError(f"group totals lack the sums of {key.quantity} by {key.grouping}: compute them "
                                 "with the same catalog and shrinkage strength as the build")
            return self._given_totals.sums[key]
        if key not in self._local_frames:
            self._local_frames[key] = compute()
        return self._local_frames[key]

    def source(self, table: str) -> EventSource:
        if table not in self._sources:
            self._sources[table] = EventSource(
                table, self.data[table], self.rows, point_in_time=self.point_in_time, known_before=self.known_before
            )
        return self._sources[table]

    def group_of_enterprise(self, grouping: Grouping) -> tuple[np.ndarray | None, int]:
        """(group code per enterprise code, -1 when missing — None for the identity; number of groups)."""
        if grouping == "enterprise":
            return None, len(self.rows.ids)
        if grouping not in self._groups:
            codes, uniques = pd.factorize(_column(self.rows.enterprises, grouping), sort=True)
            self._groups[grouping] = (codes.astype(np.int64), len(uniques))
            self._group_labels[grouping] = pd.Index(uniques).astype("str")
        return self._groups[grouping]

    def group_labels(self, grouping: Grouping) -> pd.Index:
        """The values of ``grouping`` (e.g. the sectors) in the order of the group codes (sorted)."""
        self.group_of_enterprise(grouping)
        return self._group_labels[grouping]

    def group_totals(self, key: TotalKey, own: np.ndarray | None = None) -> np.ndarray:
        """Per (group, as-of date) cell, ``group * n_dates + date index``: a cross-enterprise sum (see :data:`TotalKey`).

        From this build's own enterprises, or — when the context was given ``totals`` (the sums over every
        partition of a partitioned build, :func:`group_totals`) — those totals for this build's groups.
        ``own``: the rows' window sums of an ``active_only`` key, when the caller has them (spares a pass).
        """
        if self._given_totals is not None:
            return self._memo(("given totals", key), lambda: self._given_totals.cells(key, self.group_labels(key.grouping)))
        if key not in self._local_totals:
            self._local_totals[key] = self._own_totals(key, own)
        return self._local_totals[key]

    def _own_totals(self, key: TotalKey, own: np.ndarray | None) -> np.ndarray:
        _, n_groups = self.group_of_enterprise(key.grouping)
        if not key.active_only:  # the group's window sum over all its enterprises, active or not
            return self.window_sum(key.quantity, key.start_days, key.end_days, grouping=key.grouping)
        group, _ = self.group_of_enterprise(key.grouping)
        grid = self.rows.grid
        n_dates = len(self.rows.dates)
        values = self.window_sum(key.quantity, key.start_days, key.end_days) if own is None else own
        cell = np.where(group[grid.group] >= 0, group[grid.group] * n_dates + grid.date_index, -1)
        known = cell >= 0
        return np.bincount(cell[known], values[known], n_groups * n_dates)

    def own_totals(self) -> GroupTotals:
        """The cross-enterprise sums this build computed from its own enterprises, by group label."""
        sums = {}
        for key, cells in self._local_totals.items():
            labels = self.group_labels(key.grouping)
            sums[key] = pd.DataFrame(cells.reshape(len(labels), len(self.rows.dates)), index=labels)
        sums.update(self._local_frames)
        return GroupTotals(self.rows.dates, sums)

    def grid(self, grouping: Grouping) -> Grid:
        if grouping not in self._grids:
            _, n_groups = self.group_of_enterprise(grouping)
            self._grids[grouping] = _full_grid(n_groups, self.as_of_days)
        return self._grids[grouping]

    def derived(self, key: tuple, compute: Callable[[], object]) -> object:
        """A value derived from the shared sums alone: with given totals, kept on them (see
        :attr:`GroupTotals.derived`), else for this build."""
        cache = self._given_totals.derived if self._given_totals is not None else self._cache
        key = ("derived", *key)
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _memo(self, key: tuple, compute: Callable[[], object]) -> object:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def _event_groups(self, table: str, grouping: Grouping) -> np.ndarray:
        group_of, _ = self.group_of_enterprise(grouping)
        code = self.source(table).code
        return code if group_of is None else self._memo(("groups", table, grouping), lambda: group_of[code])

    # -- window sums ----------------------------------------------------------------------------------

    def _cuts_for(self, offsets: tuple[int, ...]) -> CutDays:
        if all(o in self.cuts.column for o in offsets):
            return self.cuts
        return self._memo(("cuts", offsets), lambda: CutDays(self.as_of_days, offsets))

    def _matrix_rows(self, table: str, grouping: Grouping) -> np.ndarray | None:
        """The row of each group in the table's matrices, or None when every group has its own row.

        Groups without any event in the table share one all-zero last row: a table of 20,000 accidents
        gets matrices of at most 20,001 rows, not one per enterprise.
        """

        def compute() -> np.ndarray | None:
            group = self._event_groups(table, grouping)
            n_groups = self.grid(grouping).n_groups
            present = np.zeros(n_groups, dtype=bool)
            present[group if grouping == "enterprise" else group[group >= 0]] = True
            if present.all():
                return None
            row = np.cumsum(present) - 1
            row[~present] = np.count_nonzero(present)
            return row

        return self._memo(("matrix rows", table, grouping), compute)

    def _matrix_height(self, table: str | None, grouping: Grouping) -> int:
        """Rows of the table's matrices: one per group, or fewer (see :meth:`_matrix_rows`)."""
        rows_of = None if table is None else self._matrix_rows(table, grouping)
        return self.grid(grouping).n_groups if rows_of is None else int(rows_of.max()) + 1

    def _bins(self, table: str, grouping: Grouping, cuts: CutDays) -> np.ndarray:
        """Per event ``bucket * matrix height + matrix row`` (-1 for events of no group)."""

        def compute() -> np.ndarray:
            group = self._event_groups(table, grouping)
            rows_of = self._matrix_rows(table, grouping)
            # As long as the table: one new array, then in place.
            bins = np.multiply(cuts.bucket(self.source(table).day), self._matrix_height(table, grouping),
                               dtype=np.int64)
            bins += group if rows_of is None else rows_of[group]
            if grouping != "enterprise":
                bins[group < 0] = -1
            return bins

        return self._memo(("bins", table, grouping, cuts.offsets), compute)

    def _cumulative(self, quantity: Quantity, grouping: Grouping, cuts: CutDays) -> np.ndarray:
        """Sum of the quantity over events dated before each cut day, per group (``[cut days + 1, groups]``)."""
        source = self.source(quantity.source)
        selected = source.mask(quantity.where)
        unfiltered = Quantity(quantity.source, value=quantity.value, half_life_days=quantity.half_life_days)
        # A filter that keeps every event (e.g. "level in (general, major)") shares the unfiltered matrix.
        key = (quantity if selected is not None else unfiltered, grouping, cuts.offsets)
        if key in self._kept_matrices:
            return self._kept_matrices[key]
        if key in self._matrices:
            self._matrices.move_to_end(key)
            return self._matrices[key]
        bins = self._bins(quantity.source, grouping, cuts)
        weights = source.weights(quantity)
        n_rows = self._matrix_height(quantity.source, grouping)
        if grouping != "enterprise":
            selected = bins >= 0 if selected is None else selected & (bins >= 0)
        if (selected is not None and weights is None and grouping == "enterprise"
                and np.count_nonzero(selected) > len(selected) // 2):
            # Counting most events (e.g. general hazards): all events minus the few others is exact
            # for integer counts, and spares a copy of nearly every bin.
            others = _cumulative_before(bins[~selected], None, n_rows, len(cuts))
            matrix = self._cumulative(unfiltered, grouping, cuts) - others
        else:
            if selected is not None:
                bins = bins[selected]
                weights = weights[selected] if weights is not None else None
            matrix = _cumulative_before(bins, weights, n_rows, len(cuts))
        if quantity in self._kept_quantities:
            self._kept_matrices[key] = matrix
        else:
            self._matrices[key] = matrix
            if len(self._matrices) > _MATRICES_KEPT:
                self._matrices.popitem(last=False)
        return matrix

    def _read_index(self, table: str | None, grouping: Grouping, cuts: CutDays, offset: int) -> np.ndarray:
        """Per grid row, the flat position in ``table``'s matrices of (its group, cut day ``a - offset``)."""
        grid = self.grid(grouping)
        column = self._memo(("column", grouping, cuts.offsets, offset), lambda: cuts.column[offset][grid.date_index])
        rows_of = None if table is None else self._matrix_rows(table, grouping)
        height = self._matrix_height(table, grouping)
        if rows_of is None:
            return self._memo(("read", grouping, cuts.offsets, offset), lambda: column * height + grid.group)
        row = self._memo(("matrix row", table, grouping), lambda: rows_of[grid.group])
        return column * height + row

    def _inflight_rows(self, table: str, where: tuple[Where, ...], grouping: Grouping) -> tuple[np.ndarray, np.ndarray]:
        """(event, row) pairs: events matching ``where``, dated before the row's date, recorded on or after it."""

        def compute() -> tuple[np.ndarray, np.ndarray]:
            source = self.source(table)
            events, date_index = source.inflight()
            selected = source.mask(where)
            if selected is not None:
                events, date_index = events[selected[events]], date_index[selected[events]]
            group = self._event_groups(table, grouping)[events]
            row = np.where(group >= 0, self.grid(grouping).lookup[np.maximum(group, 0), date_index], -1)
            return events[row >= 0], row[row >= 0]

        return self._memo(("inflight", table, where, grouping), compute)

    def window_sum(self, quantity: Quantity, start_days: int, end_days: int = 0,
                   grouping: Grouping = "enterprise") -> np.ndarray:
        """Per row, the quantity over events dated in ``[a - start_days, a - end_days)`` and known before ``a``.

        ``a`` is the row's as-of date. Negative offsets look forward (labels: ``start_days=0,
        end_days=-horizon``). Zero where the group has no such events; int64 for counts, float64 for sums
        (and for recency-weighted counts).
        """
        cuts = self._cuts_for((start_days, end_days))
        sums_before = self._cumulative(quantity, grouping, cuts).ravel()
        total = sums_before[self._read_index(quantity.source, grouping, cuts, end_days)]
        total -= sums_before[self._read_index(quantity.source, grouping, cuts, start_days)]
        events, row = self._inflight_rows(quantity.source, quantity.where, grouping)
        source = self.source(quantity.source)
        late_rows = row[:0]
        if len(events):
            as_of = self.grid(grouping).day[row]
            day = source.day[events]
            in_window = (day >= as_of - start_days) & (day < as_of - end_days)
            weights = source.weights(quantity)
            late_rows = row[in_window]
            np.subtract.at(total, late_rows, 1 if weights is None else weights[events[in_window]])
        if quantity.half_life_days is not None:  # from weights relative to the last as-of date to weights as of a
            # (not in place: np.bincount of no events at all gives integer zeros, whatever the weights)
            total = total * np.exp2((self.as_of_days.max() - self.grid(grouping).day) / quantity.half_life_days)
            if quantity.value is None and len(late_rows):
                # In a weighted count every event of the window weighs at least 0.5 ** (start / half-life): less than
                # half of that, where late records were taken out, is their rounding (1e-16) in an empty window.
                late_rows = late_rows[np.abs(total[late_rows]) < 0.5 ** (start_days / quantity.half_life_days) / 2]
                total[late_rows] = 0.0
        return total

    def count_before(self, name: str, table: str,
                     derived_day: Callable[[EventSource], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Per row, how many events of ``table`` have a derived day ``< a``.

        ``derived_day(source)`` returns (selected event positions, their day): for state features whose
        day is a maximum of dates, e.g. "known and rectified before a" is ``max(known, rectified_on) < a``.
        """

        def compute() -> np.ndarray:
            source = self.source(table)
            selected, day = derived_day(source)
            cuts = self._cuts_for((0,))
            bins = np.multiply(cuts.bucket(day), len(self.rows.ids), dtype=np.int64)
            bins += source.code[selected]
            matrix = _cumulative_before(bins, None, len(self.rows.ids), len(cuts))
            return matrix.ravel()[self._read_index(None, "enterprise", cuts, 0)]

        return self._memo(("count_before", name), compute)

    def days_since_last(self, table: str, where: tuple[Where, ...]) -> np.ndarray:
        """Days from the last event known before ``a`` (event date and recorded_on < a) to ``a``; NaN if none.

        No sort: each event goes to the bucket of the first as-of date that knows it (the number of as-of
        dates on or before its knowledge day); the latest event day per (enterprise, bucket), carried
        forward along the buckets, is the latest known at each date.
        """
        source = self.source(table)
        selected = source.mask(where)
        code, day, known = (source.code, source.day, source.known) if selected is None else \
            (source.code[selected], source.day[selected], source.known[selected])
        dates = self._memo(("cuts", (0,)), lambda: CutDays(self.as_of_days, (0,)))  # cut days = the as-of days
        n_buckets = len(dates) + 1  # the last: known on or after the last date, never read
        latest = np.full(n_buckets * len(self.rows.ids), np.iinfo(np.int64).min)
        bins = np.multiply(dates.bucket(known), len(self.rows.ids), dtype=np.int64)
        bins += code
        np.maximum.at(latest, bins, day)
        latest = np.maximum.accumulate(latest.reshape(n_buckets, -1), axis=0).ravel()
        last_day = latest[self._read_index(None, "enterprise", dates, 0)]
        grid = self.rows.grid
        return np.where(last_day > np.iinfo(np.int64).min, grid.day - last_day, np.nan)


# ---------------------------------------------------------------------------------------------
# Aggregations (registered by the name used in the catalog)
# ---------------------------------------------------------------------------------------------

Stage = Literal["enterprise", "cross_enterprise"]
Column = np.ndarray | pd.Categorical


def _window_offsets(feature: Feature) -> tuple[int, ...]:
    return (feature.window_days, 0) if feature.window_days else ()


def _trend_offsets(feature: Feature) -> tuple[int, ...]:
    return (2 * feature.window_days, feature.window_days, 0)


@dataclass(frozen=True)
class Aggregation:
    """A builder function, its stage and the window bounds it reads (days before the as-of date).

    ``stage="enterprise"``: reads only the enterprise's own records (partition-safe);
    ``stage="cross_enterprise"``: combines enterprises (sector means, peers) in a second step.
    """

    compute: Callable[[FeatureContext, Feature], Column]
    stage: Stage = "enterprise"
    offsets: Callable[[Feature], tuple[int, ...]] = _window_offsets


AGGREGATIONS: dict[str, Aggregation] = {}


def aggregation(name: str, stage: Stage = "enterprise",
                offsets: Callable[[Feature], tuple[int, ...]] = _window_offsets) -> Callable:
    """Register the decorated function as the builder of aggregation ``name``."""

    def register(function: Callable[[FeatureContext, Feature], Column]) -> Callable:
        AGGREGATIONS[name] = Aggregation(function, stage, offsets)
        return function

    return register


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1), np.nan)


@aggregation("window_sum")
def _window_sum(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Count (or sum of ``value``) of events dated in ``[a - window, a)``, known before ``a``."""
    return ctx.window_sum(feature.measure, feature.window_days)


@aggregation("window_ratio")
def _window_ratio(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """``measure / per`` over the window; NaN when ``per`` is zero (e.g. no inspection, no exam taker)."""
    return _ratio(ctx.window_sum(feature.measure, feature.window_days), ctx.window_sum(feature.per, feature.window_days))


@aggregation("window_change", offsets=_trend_offsets)
def _window_change(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Sum over ``[a - w, a)`` minus sum over ``[a - 2w, a - w)`` (both known before ``a``)."""
    w = feature.window_days
    return ctx.window_sum(feature.measure, w) - ctx.window_sum(feature.measure, 2 * w, w)


@aggregation("days_since_last")
def _days_since_last(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Days between the last event known before ``a`` and ``a`` (>= 1); NaN when there is none."""
    return ctx.days_since_last(feature.source, feature.where)


def _latest_day(source: EventSource, selected: np.ndarray, *columns: str) -> tuple[np.ndarray, np.ndarray]:
    """(events among ``selected`` with all ``columns`` filled, the latest of their knowledge day and columns)."""
    day = source.known[selected]
    filled = np.ones(len(selected), dtype=bool)
    for column in columns:
        other, missing = _days(_column(source.frame, column, "datetime64[ns]").to_numpy()[selected])
        filled &= ~missing
        day = np.maximum(day, other)
    return selected[filled], day[filled]


@aggregation("unrectified", offsets=lambda feature: (0,))
def _unrectified(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Hazards known before ``a`` (found_on, recorded_on < a) and not rectified before ``a``.

    A hazard counts as rectified only if ``rectified_on < a``: an empty ``rectified_on`` or one on or
    after ``a`` is "not rectified as of a". Counted as known − (known and rectified), where "known and
    rectified before a" means ``max(known, rectified_on) < a``.
    """
    name = str(feature.measure)

    def known(source: EventSource) -> tuple[np.ndarray, np.ndarray]:
        return _latest_day(source, source.positions(feature.where))

    def rectified(source: EventSource) -> tuple[np.ndarray, np.ndarray]:
        return _latest_day(source, source.positions(feature.where), "rectified_on")

    table = feature.source
    return ctx.count_before(f"known {name}", table, known) - ctx.count_before(f"rectified {name}", table, rectified)


@aggregation("overdue", offsets=lambda feature: (0,))
def _overdue(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Hazards known before ``a`` whose deadline ``rectify_by < a`` passed and not rectified before ``a``.

    A hazard without a deadline is never overdue. Counted as (known, deadline passed) −
    (known, deadline passed, rectified), each "before a" by the latest of its dates.
    """
    name = str(feature.measure)

    def deadline(source: EventSource) -> tuple[np.ndarray, np.ndarray]:
        return _latest_day(source, source.positions(feature.where), "rectify_by")

    def deadline_and_rectified(source: EventSource) -> tuple[np.ndarray, np.ndarray]:
        return _latest_day(source, source.positions(feature.where), "rectify_by", "rectified_on")

    table = feature.source
    return (ctx.count_before(f"deadline {name}", table, deadline)
            - ctx.count_before(f"deadline rectified {name}", table, deadline_and_rectified))


@dataclass(frozen=True)
class CreditState:
    """The latest active credit record of each kind for every row, and the records' values.

    Active as of ``a``: ``valid_from < a``, ``recorded_on < a`` and ``valid_to`` empty or ``>= a``
    (``valid_to`` is the last valid day). "Latest" is the largest ``valid_from``, then the latest known,
    then the last in the table.
    """

    n_rows: int
    latest: dict[str, np.ndarray]  # kind -> per row, position of the latest active record (-1: none)
    value_code: np.ndarray  # per record, index into ``values`` (-1: no value)
    values: tuple[str, ...]  # the distinct values, stripped and lower-cased

    def latest_of(self, feature: Feature) -> np.ndarray:
        kinds = [w.values for w in feature.where if w.column == "kind" and not w.negate]
        if len(feature.where) != 1 or len(kinds) != 1 or len(kinds[0]) != 1:
            raise ValueError(f"feature {feature.name!r}: a credit-state feature filters on exactly one kind")
        return self.latest.get(kinds[0][0], np.full(self.n_rows, -1, dtype=np.int64))

    def per_record(self, by_value: Callable[[str], float], no_value: float) -> np.ndarray:
        """``by_value(value)`` for each record (``no_value`` where the value is empty)."""
        return np.array([by_value(v) for v in self.values] + [no_value], dtype=np.float64)[self.value_code]


def _credit_state(ctx: FeatureContext) -> CreditState:
    """The credit state of every row, computed once per build for all kinds (see :class:`CreditState`)."""

    def compute() -> CreditState:
        source = ctx.source("credit_records")
        kind_code, kinds = pd.factorize(_column(source.frame, "kind"))
        value_code, values = pd.factorize(_column(source.frame, "value"))
        until, until_missing = source.dates("valid_to")
        order = _stable_order(kind_code, source.code, source.day, source.known)
        order = order[kind_code[order] >= 0]
        record_group = kind_code[order].astype(np.int64) * len(ctx.rows.ids) + source.code[order]
        known, until, until_missing = source.known[order], until[order], until_missing[order]
        grid = ctx.rows.grid
        latest = np.full((len(kinds), grid.n_rows), -1, dtype=np.int64)
        for date_index, as_of in enumerate(ctx.as_of_days):
            active = np.flatnonzero((known < as_of) & (until_missing | (until >= as_of)))
            group = record_group[active]
            last = order[active[np.r_[group[1:] != group[:-1], True]]] if len(active) else order[:0]
            row = grid.lookup[source.code[last], date_index]
            hit = row >= 0
            latest[kind_code[last][hit], row[hit]] = last[hit]
        return CreditState(
            grid.n_rows,
            {kind: latest[i] for i, kind in enumerate(kinds)},
            value_code,
            tuple(str(value).strip().lower() for value in values),
        )

    return ctx._memo(("credit state",), compute)


def _stable_order(*keys: np.ndarray) -> np.ndarray:
    """Positions sorted by integer keys (first key first), ties in table order.

    Packs the keys into one int64 when they fit (one stable argsort instead of one per key).
    """
    offsets = [int(k.min()) if len(k) else 0 for k in keys]
    bits = [(int(k.max()) - o).bit_length() if len(k) else 0 for k, o in zip(keys, offsets, strict=True)]
    if sum(bits) > 63:
        return np.lexsort(keys[::-1])
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, offset, width in zip(keys, offsets, bits, strict=True):
        packed <<= width
        packed |= key - offset
    return np.argsort(packed, kind="stable")


@aggregation("credit_flag", offsets=lambda feature: ())
def _credit_flag(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """1 if a record of the kind is active as of ``a`` (and its value is not a "no"), else 0."""
    state = _credit_state(ctx)
    latest = state.latest_of(feature)
    affirmative = state.per_record(lambda value: float(value not in _FALSE_WORDS), no_value=1.0)
    has = latest >= 0
    result = np.zeros(len(latest))
    result[has] = affirmative[latest[has]]
    return result


@aggregation("credit_level", offsets=lambda feature: ())
def _credit_level(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """1-based position of the latest active record's value in ``levels``.

    Without an active record: the position of ``"none"`` if ``levels`` has it (e.g. no standardization
    level = 4), else NaN. Values not in ``levels`` give NaN.
    """
    state = _credit_state(ctx)
    latest = state.latest_of(feature)
    rank_of = {level.lower(): i + 1.0 for i, level in enumerate(feature.levels)}
    rank = state.per_record(lambda value: rank_of.get(value, np.nan), no_value=np.nan)
    result = np.full(len(latest), rank_of.get(NO_LEVEL.lower(), np.nan))
    has = latest >= 0
    result[has] = rank[latest[has]]
    return result


@aggregation("attribute", offsets=lambda feature: ())
def _attribute(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """An enterprise column as a number (booleans as 1/0; missing as NaN)."""
    values = _column(ctx.rows.enterprises, feature.value)
    if pd.api.types.is_bool_dtype(values):
        numbers = values.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return numbers[ctx.rows.grid.group]


@aggregation("category", offsets=lambda feature: ())
def _category(ctx: FeatureContext, feature: Feature) -> pd.Categorical:
    """An enterprise column as a categorical with the feature's ``levels`` (other values become missing)."""
    values = _column(ctx.rows.enterprises, feature.value)
    if not isinstance(values.dtype, pd.StringDtype):  # e.g. numbers or objects: compared as text with the levels
        values = values.astype("str").where(values.notna())
    codes = pd.Categorical(values, categories=list(feature.levels)).codes
    return pd.Categorical.from_codes(codes[ctx.rows.grid.group], categories=list(feature.levels))


@aggregation("age_years", offsets=lambda feature: ())
def _age_years(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Years from ``founded_on`` to ``a`` (365.25-day years); NaN when the founding date is unknown."""
    founded, missing = _days(_column(ctx.rows.enterprises, feature.value, "datetime64[ns]"))
    grid = ctx.rows.grid
    age = (grid.day - founded[grid.group]) / DAYS_PER_YEAR
    return np.where(missing[grid.group], np.nan, age)


def _shrunk_rate(ctx: FeatureContext, feature: Feature, start_days: int, end_days: int, *,
                 relative: bool = False) -> np.ndarray:
    """Empirical-Bayes rate of ``measure`` per ``per`` over ``[a - start, a - end)``, shrunk to the sector.

    ``rate = (x + m·μ) / (n + m)``: ``x`` the enterprise's count (e.g. major hazards), ``n`` its exposure
    (inspections), ``m`` the shrinkage strength in pseudo-inspections, ``μ = Σx / Σn`` over the active
    enterprises of the same sector at the same as-of date. This is the posterior mean of a Poisson rate
    under a Gamma prior with mean ``μ`` and weight ``m``: an enterprise with little exposure is pulled
    toward its sector's mean, with none it gets the mean. ``m = 0`` gives the raw ratio (NaN when
    ``n = 0``); NaN too where the sector has no exposure at all. ``relative=True`` divides by ``μ``: the
    rate as a multiple of the sector's, comparable across sectors whose base rates differ several-fold.
    """
    x = ctx.window_sum(feature.measure, start_days, end_days)
    n = ctx.window_sum(feature.per, start_days, end_days)
    m = ctx.shrinkage_strength
    if m == 0 and not relative:
        return _ratio(x, n)
    sector, _ = ctx.group_of_enterprise("sector")
    grid = ctx.rows.grid
    n_dates = len(ctx.rows.dates)
    cell = np.where(sector[grid.group] >= 0, sector[grid.group] * n_dates + grid.date_index, -1)
    known = cell >= 0
    sector_sum = [ctx.group_totals(TotalKey(q, start_days, end_days, "sector", active_only=True), own=values)
                  for q, values in ((feature.measure, x), (feature.per, n))]
    mean = _ratio(*sector_sum)
    prior = np.where(known, mean[np.maximum(cell, 0)], np.nan)
    rate = _ratio(x, n) if m == 0 else (x + m * prior) / (n + m)
    return _ratio(rate, prior) if relative else rate


@aggregation("shrunk_rate", stage="cross_enterprise")
def _shrunk_rate_window(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Shrunk rate over ``[a - window, a)`` (see :func:`_shrunk_rate`)."""
    return _shrunk_rate(ctx, feature, feature.window_days, 0)


@aggregation("relative_rate", stage="cross_enterprise")
def _relative_rate(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Shrunk rate over ``[a - window, a)`` as a multiple of the sector mean (see :func:`_shrunk_rate`)."""
    return _shrunk_rate(ctx, feature, feature.window_days, 0, relative=True)


@aggregation("rate_change", stage="cross_enterprise", offsets=_trend_offsets)
def _rate_change(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Shrunk rate over ``[a - w, a)`` minus shrunk rate over ``[a - 2w, a - w)`` (each to its sector mean)."""
    w = feature.window_days
    return _shrunk_rate(ctx, feature, w, 0) - _shrunk_rate(ctx, feature, 2 * w, w)


@aggregation("peer_sum", stage="cross_enterprise")
def _peer_sum(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """The window sum over all *other* enterprises of the row's ``group_by`` group (sector, township).

    Peers include enterprises not active at ``a`` (a closed firm's accident still teaches its peers).
    NaN when the enterprise's group is unknown.
    """
    group_of, _ = ctx.group_of_enterprise(feature.group_by)
    grid = ctx.rows.grid
    group = group_of[grid.group]
    group_total = ctx.group_totals(TotalKey(feature.measure, feature.window_days, 0, feature.group_by,
                                            active_only=False))
    own = ctx.window_sum(feature.measure, feature.window_days)
    peer_rows = np.maximum(group, 0) * len(ctx.rows.dates) + grid.date_index  # (group, date) cells
    return np.where(group >= 0, group_total[peer_rows] - own, np.nan)


# ---------------------------------------------------------------------------------------------
# Inspectors: stringency, and finding rates adjusted for who inspected
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectorState:
    """Per as-of date and window: each inspector's stringency and, per row, the sums behind the enterprise's
    inspector features. See :func:`_inspector_state` for the definitions."""

    stringency: pd.DataFrame  # inspector id × as-of date index: shrunk stringency
    team_visits: np.ndarray  # per row: visits in the window with a recorded team
    team_stringency: np.ndarray  # per row: sum over those visits of the team's mean stringency
    found: np.ndarray  # per row: hazards found at those visits
    major_found: np.ndarray  # per row: major hazards found at those visits
    sector_mean: np.ndarray  # per row: hazards found per team-recorded visit in the enterprise's sector
    sector_major_mean: np.ndarray  # per row: the same for major hazards


def _inspector_key(name: str, grouping: str, window: int) -> TotalKey:
    """The key of one inspector-side sum in :class:`GroupTotals` (by sector, inspector, or inspector × sector)."""
    quantity = Quantity("inspection_inspectors", (Where("sum", (name,)),))  # a label for the sum, not a filter
    return TotalKey(quantity, window, 0, grouping, active_only=False)  # type: ignore[arg-type]


_LABEL_JOIN = "\x1f"  # inspector id and sector in one label (sums by inspector × sector)


def _positions_in(values: pd.Series, keys: pa.Array) -> np.ndarray:
    """The position of each value among ``keys`` (-1: absent or missing), hashed by Arrow (pandas' string lookups
    loop in Python)."""
    found = pc.index_in(pa.array(values, from_pandas=True).cast(keys.type), value_set=keys)
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _stringency_from_sums(sector_found: pd.DataFrame, sector_visits: pd.DataFrame, inspector_found: pd.DataFrame,
                          pair_visits: pd.DataFrame, m: float) -> pd.DataFrame:
    """Each inspector's shrunk stringency (inspector id × as-of date) from the sums of :func:`_inspector_state`."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (sector_found / sector_visits).where(sector_visits > 0, 0.0)
    pairs = pair_visits[(pair_visits != 0).any(axis=1)]
    split = pairs.index.str.split(_LABEL_JOIN, n=1)
    pair_inspector = split.str[0]
    pair_sector = pd.Index(split.str[1])
    expected = (pairs * mean.reindex(pair_sector, fill_value=0.0).to_numpy()).groupby(pair_inspector).sum()
    n_visits = pairs.groupby(pair_inspector).sum()
    found_i = inspector_found.reindex(expected.index, fill_value=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if m == 0:
            return (found_i / expected).where(expected > 0, 1.0)
        pseudo = m * expected / n_visits
        return ((found_i + pseudo) / (expected + pseudo)).where(expected > 0, 1.0)


def _inspector_state(ctx: FeatureContext, window: int) -> InspectorState:
    """The inspector sums as of every date, over visits known before it and dated in ``[a - window, a)`` whose
    team is recorded (``T``: those visits; a visit's sector is its enterprise's):

    - per visit ``v``: ``found_v`` hazards (and ``major_v`` major ones) linked to it by ``inspection_id`` and
      known before ``a``;
    - per sector ``s``: ``μ_s = Σ found_v / |T_s|`` (what a visit there finds), ``μmaj_s`` likewise;
    - per inspector ``i`` (visits ``T_i`` they took part in): ``F_i = Σ found_v``, ``E_i = Σ μ_s(v)`` (what the
      enterprises visited would yield), ``n_i = |T_i|``; stringency ``s_i = (F_i + m·E_i/n_i) / (E_i + m·E_i/n_i)``
      — the ratio ``F_i / E_i`` shrunk toward 1 by ``m`` (the shrinkage strength) pseudo-visits; 1 when ``E_i = 0``;
    - per row (enterprise ``e``, date ``a``), over ``e``'s visits in ``T``: their number, the sum of the teams' mean
      stringency ``t_v``, and the hazards (major hazards) found.

    The sums by sector, inspector and inspector × sector are additive over enterprises: a partitioned build adds
    them up (:meth:`FeatureContext.shared_frame`), so each partition sees every enterprise's visits."""

    def compute() -> InspectorState:
        teams = ctx.teams()
        visits = ctx.source("inspections")
        n_dates = len(ctx.rows.dates)
        visit_ids = pa.array(visits.frame["inspection_id"].astype("str"), from_pandas=True)
        link_visit = _positions_in(teams["inspection_id"], visit_ids)
        link_inspector, inspector_ids = pd.factorize(teams["inspector_id"][link_visit >= 0], sort=True)
        inspector_ids = np.asarray(inspector_ids, dtype=object)
        link_visit = link_visit[link_visit >= 0]
        has_team = np.bincount(link_visit, minlength=len(visits)) > 0
        sector_of, n_sectors = ctx.group_of_enterprise("sector")
        sector = sector_of[visits.code]
        sector_labels = ctx.group_labels("sector")
        hazards = ctx.source("hazards") if ctx.has("hazards") else None
        if hazards is not None:
            hazard_visit = _positions_in(_column(hazards.frame, "inspection_id").astype("str"), visit_ids)
            at_visit = np.flatnonzero(hazard_visit >= 0)
            hazard_visit, hazard_known = hazard_visit[at_visit], hazards.known[at_visit]
            hazard_major = _equal_mask(_column(hazards.frame, "level"), "major")[at_visit]
        grid = ctx.rows.grid
        shape = (len(inspector_ids), n_dates)
        found_by_sector, major_by_sector, visits_by_sector = (np.zeros((n_sectors, n_dates)) for _ in range(3))
        found_by_inspector = np.zeros(shape)
        pair_label = (np.repeat(inspector_ids, n_sectors).astype(str) + _LABEL_JOIN
                      + np.tile(sector_labels.to_numpy(dtype=object), len(inspector_ids)).astype(str))
        visits_by_pair = np.zeros((len(inspector_ids) * n_sectors, n_dates))
        per_date = []
        for d, as_of in enumerate(ctx.as_of_days):
            ok = (has_team & (visits.day >= as_of - window) & (visits.day < as_of) & (visits.known < as_of)
                  & (sector >= 0))
            found = np.zeros(len(visits))
            major = np.zeros(len(visits))
            if hazards is not None:
                counted = (hazard_known < as_of) & ok[hazard_visit]
                found = np.bincount(hazard_visit[counted], minlength=len(visits)).astype(np.float64)
                major = np.bincount(hazard_visit[counted & hazard_major], minlength=len(visits)).astype(np.float64)
            found_by_sector[:, d] = np.bincount(sector[ok], found[ok], n_sectors)
            major_by_sector[:, d] = np.bincount(sector[ok], major[ok], n_sectors)
            visits_by_sector[:, d] = np.bincount(sector[ok], minlength=n_sectors)
            link_ok = ok[link_visit]
            found_by_inspector[:, d] = np.bincount(link_inspector[link_ok], found[link_visit[link_ok]], shape[0])
            pair = link_inspector[link_ok] * n_sectors + sector[link_visit[link_ok]]
            visits_by_pair[:, d] = np.bincount(pair, minlength=len(pair_label))
            per_date.append((ok, found, major))

        def shared(name: str, grouping: str, values: np.ndarray, labels) -> pd.DataFrame:
            return ctx.shared_frame(_inspector_key(name, grouping, window),
                                    lambda: pd.DataFrame(values, index=pd.Index(labels, dtype="str")))

        sector_found = shared("found", "sector", found_by_sector, sector_labels)
        sector_major = shared("major found", "sector", major_by_sector, sector_labels)
        sector_visits = shared("visits", "sector", visits_by_sector, sector_labels)
        inspector_found = shared("found", "inspector", found_by_inspector, inspector_ids)
        visited = visits_by_pair.any(axis=1)  # the pairs seen: the others add nothing to any sum
        pair_visits = shared("visits", "inspector × sector", visits_by_pair[visited], pair_label[visited])

        # Stringency of every inspector (of all partitions: the sums are global), as of each date.
        stringency = ctx.derived(
            ("inspector stringency", window, ctx.shrinkage_strength),
            lambda: _stringency_from_sums(sector_found, sector_visits, inspector_found, pair_visits,
                                          ctx.shrinkage_strength))

        # Per row: the enterprise's team-recorded visits, their teams' stringency and finds.
        n_rows = grid.n_rows
        team_visits, team_stringency = np.zeros(n_rows), np.zeros(n_rows)
        found_rows, major_rows = np.zeros(n_rows), np.zeros(n_rows)
        members = np.bincount(link_visit, minlength=len(visits))
        own = stringency.reindex(pd.Index(inspector_ids, dtype="str"))
        for d, (ok, found, major) in enumerate(per_date):
            strict = own[d].to_numpy(dtype=np.float64, na_value=1.0) if len(own) else np.zeros(0)
            team_sum = np.bincount(link_visit, strict[link_inspector], len(visits))
            with np.errstate(divide="ignore", invalid="ignore"):
                team_mean = np.where(members > 0, team_sum / np.maximum(members, 1), 0.0)
            row = grid.lookup[visits.code, d]
            keep = ok & (row >= 0)
            team_visits += np.bincount(row[keep], minlength=n_rows)
            team_stringency += np.bincount(row[keep], team_mean[keep], n_rows)
            found_rows += np.bincount(row[keep], found[keep], n_rows)
            major_rows += np.bincount(row[keep], major[keep], n_rows)

        def by_row(sums: pd.DataFrame) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                per_sector = (sums / sector_visits.reindex(sums.index)).reindex(sector_labels)
            cells = per_sector.to_numpy(dtype=np.float64, na_value=np.nan)
            group = sector_of[grid.group]
            return np.where(group >= 0, cells[np.maximum(group, 0), grid.date_index], np.nan)

        return InspectorState(stringency, team_visits, team_stringency, found_rows, major_rows,
                              by_row(sector_found), by_row(sector_major))

    return ctx._memo(("inspector state", window), compute)


@aggregation("inspector_stringency", stage="cross_enterprise", offsets=lambda feature: ())
def _inspector_stringency(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Mean stringency of the teams that made the enterprise's visits in the window (see :func:`_inspector_state`);
    NaN without a visit whose team is recorded."""
    state = _inspector_state(ctx, feature.window_days)
    return _ratio(state.team_stringency, state.team_visits)


@aggregation("inspector_adjusted_rate", stage="cross_enterprise", offsets=lambda feature: ())
def _inspector_adjusted_rate(ctx: FeatureContext, feature: Feature) -> np.ndarray:
    """Hazards (``where`` level major: major hazards) found at the enterprise's team-recorded visits in the window,
    ÷ what its sector's visits find on average times its teams' stringency, shrunk toward 1 by ``m`` pseudo-visits:
    ``(found / μ_s + m) / (Σ t_v + m)``. 1: as expected given who inspected; NaN without such a visit or when the
    sector's visits found nothing of the kind."""
    state = _inspector_state(ctx, feature.window_days)
    major = any(w.column == "level" and w.values == ("major",) for w in feature.where)
    found, mean = (state.major_found, state.sector_major_mean) if major else (state.found, state.sector_mean)
    m = ctx.shrinkage_strength
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(mean > 0, found / np.where(mean > 0, mean, 1.0), np.nan)
        rate = _ratio(relative + m, state.team_stringency + m)
    return np.where(state.team_visits > 0, rate, np.nan)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------


def build_features(
    data: Mapping[str, pd.DataFrame],
    as_of_dates: object,
    *,
    catalog: Sequence[Feature] | None = None,
    windows: Sequence[int] | None = None,
    shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
    totals: GroupTotals | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Point-in-time features of every active enterprise at every as-of date.

    Parameters
    ----------
    data
        Canonical frames (:mod:`features.frames`) by table name; ``enterprises`` and ``inspections`` are
        required, other tables optional (their features are then NaN).
    as_of_dates
        One date or several. Features as of ``a`` use only events with event date **and** ``recorded_on``
        strictly before ``a``; windows are ``[a - w days, a)``.
    catalog
        The features to build (default: :data:`features.catalog.CATALOG`, or ``catalog_for(windows)``).
        Extra ``x_*`` enterprise columns are added as features in any case.
    windows
        Look-back windows in days for the default catalog (give ``catalog`` or ``windows``, not both).
    shrinkage_strength
        Pseudo-inspections pulling per-inspection rates toward the sector mean (0: raw ratios).
    totals
        For one partition of the enterprises (all their events, nobody else's): the cross-enterprise sums over
        every partition (:func:`cross_enterprise_totals` of each, :meth:`GroupTotals.combine`d). The sector
        means and peer sums then come from them, and the partition's rows equal those of one build over all
        partitions. Default: the sums over ``data``'s own enterprises.
    progress
        Called with a short message after each feature.

    Returns
    -------
    DataFrame indexed by ``(enterprise_id, as_of)``, one row per enterprise active at the date (founded
    before it, not closed before it), sorted by id then date; one column per feature in catalog order
    (then ``x_*`` extras): float64, except categorical features (``sector``, text ``x_*``).
    """
    features, ctx = _prepare(data, as_of_dates, catalog, windows, shrinkage_strength, totals)
    numeric = [f.name for f in features if f.kind == "numeric"]
    position = {name: i for i, name in enumerate(numeric)}
    block = np.empty((ctx.rows.grid.n_rows, len(numeric)), dtype=np.float64, order="F")
    categorical: dict[str, pd.Categorical] = {}
    done = 0
    for stage in ("enterprise", "cross_enterprise"):
        for feature in features:
            if AGGREGATIONS[feature.aggregation].stage != stage:
                continue
            values = _compute(ctx, feature)
            if feature.kind == "numeric":
                block[:, position[feature.name]] = values
            else:
                categorical[feature.name] = values
            done += 1
            if progress is not None:
                progress(f"features {done}/{len(features)}: {feature.name}")

    frame = pd.DataFrame(block, index=ctx.rows.index, columns=numeric, copy=False)
    for i, feature in enumerate(features):  # categoricals go in at their catalog position
        if feature.kind == "categorical":
            frame.insert(i, feature.name, categorical[feature.name])
    return frame


def cross_enterprise_totals(
    data: Mapping[str, pd.DataFrame],
    as_of_dates: object,
    *,
    catalog: Sequence[Feature] | None = None,
    windows: Sequence[int] | None = None,
    shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
) -> GroupTotals:
    """The cross-enterprise sums that :func:`build_features` would compute from ``data``'s enterprises alone.

    The first step of a partitioned build: run on each partition (same arguments as the build), combine the
    results with :meth:`GroupTotals.combine` and give the sum to each partition's ``build_features(...,
    totals=...)``. Only the cross-enterprise features are evaluated (their values are dropped: what they read
    from the other enterprises is what is kept).
    """
    features, ctx = _prepare(data, as_of_dates, catalog, windows, shrinkage_strength, None)
    for feature in features:
        if AGGREGATIONS[feature.aggregation].stage == "cross_enterprise":
            _compute(ctx, feature)
    return ctx.own_totals()


def inspector_stringency(
    data: Mapping[str, pd.DataFrame],
    as_of_dates: object,
    *,
    window_days: int = 1095,
    shrinkage_strength: float = DEFAULT_SHRINKAGE_STRENGTH,
    totals: GroupTotals | None = None,
) -> pd.DataFrame:
    """Each inspector's stringency as of each date: hazards found per visit relative to what the enterprises
    visited yield, shrunk toward 1 (the definition of :func:`_inspector_state`; visits known before the date,
    dated in ``[a - window_days, a)``). A frame inspectors × as-of dates (only inspectors with a visit in some
    window); empty when the data record no team or no hazards. ``totals``: as for :func:`build_features`."""
    dates = as_of_index(as_of_dates)
    ctx = FeatureContext(data, dates, shrinkage_strength=shrinkage_strength, totals=totals)
    if not (ctx.has("inspection_inspectors") and ctx.has("hazards")):
        return pd.DataFrame(columns=dates, index=pd.Index([], dtype="str", name="inspector_id"), dtype=float)
    frame = _inspector_state(ctx, window_days).stringency.copy()
    frame.columns = dates
    frame.index.name = "inspector_id"
    return frame


def _prepare(data: Mapping[str, pd.DataFrame], as_of_dates: object, catalog: Sequence[Feature] | None,
             windows: Sequence[int] | None, shrinkage_strength: float,
             totals: GroupTotals | None) -> tuple[tuple[Feature, ...], FeatureContext]:
    """The checked features of a build and its context."""
    if catalog is not None and windows is not None:
        raise ValueError("give either catalog or windows, not both (catalog_for(windows) builds a catalog)")
    if shrinkage_strength < 0:
        raise ValueError(f"shrinkage_strength must be >= 0, got {shrinkage_strength}")
    features = tuple(catalog) if catalog is not None else catalog_for(windows or DEFAULT_WINDOWS)
    if "enterprises" not in data:
        raise MissingInputError("required table 'enterprises' is missing from the data")
    names = {f.name for f in features}
    features += tuple(f for f in extra_features(data["enterprises"]) if f.name not in names)
    _check_catalog(features)
    offsets = {0} | {o for f in features for o in AGGREGATIONS[f.aggregation].offsets(f)}
    read_again = {q for f in features if AGGREGATIONS[f.aggregation].stage == "cross_enterprise"
                  for q in (f.measure, f.per) if q is not None}
    ctx = FeatureContext(data, as_of_dates, offsets=offsets, keep=read_again, shrinkage_strength=shrinkage_strength,
                         totals=totals)
    return features, ctx


def _check_catalog(features: Sequence[Feature]) -> None:
    seen: set[str] = set()
    for feature in features:
        if feature.name in seen:
            raise ValueError(f"duplicate feature name {feature.name!r}")
        seen.add(feature.name)
        if feature.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"feature {feature.name!r}: unknown aggregation {feature.aggregation!r} "
                f"(known: {', '.join(sorted(AGGREGATIONS))})"
            )
        for table in _tables_needed(feature):
            if table not in TABLE_BY_NAME:
                raise ValueError(f"feature {feature.name!r}: unknown source table {table!r}")


def _tables_needed(feature: Feature) -> tuple[str, ...]:
    return (feature.source,) + ((feature.per.source,) if feature.per else ())


def _compute(ctx: FeatureContext, feature: Feature) -> Column:
    """The feature's column; all missing when a table it reads is absent (never silent zeros)."""
    if not all(ctx.has(table) for table in _tables_needed(feature)):
        if feature.kind == "categorical":
            return pd.Categorical.from_codes(np.full(ctx.rows.grid.n_rows, -1), categories=list(feature.levels))
        return np.full(ctx.rows.grid.n_rows, np.nan)
    return AGGREGATIONS[feature.aggregation].compute(ctx, feature)
