"""What planners read from the nightly batch: the ranked list, and one enterprise explained.

Both read the stored results only (``batch_runs``, ``scores_history``, ``tier_changes``, ``manual_overrides``) plus,
for an explanation, the enterprise's recent records from the contract tables — no model, no recomputation.

- :func:`ranked_list` — the latest succeeded run not after today (or the run of a given as-of date), highest risk
  first: final tier (high, general, low), then calibrated probability; filters (:class:`ListFilter`: tier,
  township, sector, search by name / id / USCC, changed since the previous run, kind of override), a sort key
  from :data:`SORT_KEYS`, top N. Columns :data:`RANK_COLUMNS` (the JSON keys of ``riskgrade rank --format json``).
- :func:`list_page` — the same list one page at a time with the count of matching rows (the workbench's 风险清单);
  indexes on ``scores_history`` serve every sort key.

Every query takes the account's township scope (``townships``: None = all) and never returns an enterprise
outside it: an enterprise out of scope is "unknown", exactly like one that does not exist.
- :func:`enterprise_report` — one enterprise: current tier and why (reasons, overrides, special assistance),
  supervision limits, manual overrides in force, tier history (periods of equal final tier from the scores
  history, and the recorded tier changes) and the last 12 months of records.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from functools import cache, cached_property
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.contract import ENTERPRISE_KEY, SECTOR_BY_CODE, sector_code
from features.errors import DataError
from scoring.results.run_cache import run_cached
from scoring.results.tables import (
    _ACTIVE_COLUMNS,
    _selected,
    _typed_frame,
    RecordRows,
    create_scoring_tables,
    enterprise_changes_rows,
    enterprise_history_rows,
    latest_run,
    overrides_active_at,
    record_frame,
    scores_history,
    scores_row,
    tier_changes,
)
from scoring.domain.tiers import TIER_LABELS_ZH, TIERS

__all__ = [
    "RANK_COLUMNS",
    "PAGE_COLUMNS",
    "SORT_KEYS",
    "OVERRIDE_KINDS",
    "EnterpriseReport",
    "ListFilter",
    "ListPage",
    "enterprise_report",
    "find_enterprise",
    "export_frame",
    "export_rows",
    "list_frame",
    "ranked_rows",
    "in_scope",
    "list_conditions",
    "list_page",
    "ranked_list",
    "reasons_text",
    "resolve_run",
    "run_townships",
    "warm_run_cache",
]

RANK_COLUMNS: tuple[str, ...] = (
    "rank", "enterprise_id", "name", "township", "sector", "score", "points", "tier", "override", "reasons", "mode",
    "yearly_cap", "visits_used", "next_allowed_visit", "expected_hazards", "expected_major_hazards",
)
"""Columns of the ranked list, in order: ``score`` is the calibrated probability, ``tier`` the final tier,
``override`` the override cause (vetoes, hysteresis hold, manual override; empty when none), ``reasons`` the top
reasons (bilingual), ``next_allowed_visit`` the first day a counted visit is allowed, ``expected_hazards`` /
``expected_major_hazards`` the hazards (every level / major) one visit by a typical team is expected to find
(empty when the run had no expected-finds model)."""

PAGE_COLUMNS: tuple[str, ...] = (*RANK_COLUMNS, "veto", "override_codes", "from_tier")
"""Columns of a page of the list (:func:`list_page`): :data:`RANK_COLUMNS`, then ``veto`` (a one-vote veto holds),
``override_codes`` (``hold`` = hysteresis, ``manual``, veto codes…) and ``from_tier`` (the final tier of the
previous run when it changed in this run, else empty)."""

#: Sort keys of the ranked list (a whitelist: anything else is refused), each with its tie-breakers.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "rank": ("rank", "enterprise_id"),
    "probability": ("probability", "rank", "enterprise_id"),
    "points": ("points", "rank", "enterprise_id"),
    "name": ("name", "enterprise_id"),
    "township": ("township", "rank", "enterprise_id"),
    "sector": ("sector", "rank", "enterprise_id"),
    "visits": ("visits_used", "rank", "enterprise_id"),
}

#: ``override`` filter values: what kind of override holds the enterprise's final tier.
OVERRIDE_KINDS: dict[str, str] = {
    "any": "任一调整 any override (manual, veto or hysteresis hold)",
    "manual": "人工调整 manual override",
    "veto": "一票否决 one-vote veto",
    "hold": "降级保留期 hysteresis hold (stays high after leaving it)",
}

MAX_PAGE_SIZE = 500
MAX_SEARCH_LENGTH = 200


@dataclass(frozen=True)
class ListFilter:
    """What a planner filters the ranked list by (every field optional; text is trimmed, empty = no filter).

    ``search`` matches a part of the name, the whole enterprise id, or the whole USCC (统一社会信用代码);
    ``changed``: only enterprises whose final tier changed in this run (``tier_changes``); ``override``: one of
    :data:`OVERRIDE_KINDS`.
    """

    tier: str | None = None
    township: str | None = None
    sector: str | None = None
    search: str | None = None
    changed: bool = False
    override: str | None = None

    def cleaned(self) -> "ListFilter":
        """The filter with text trimmed and empty text dropped; :class:`DataError` for an unknown tier, sector or
        override kind (townships are checked against the run in :func:`list_conditions`)."""
        tier, township, sector, search, override = (_trimmed(v) for v in (self.tier, self.township, self.sector,
                                                                          self.search, self.override))
        if tier is not None and tier not in TIERS:
            raise DataError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
        if override is not None and override not in OVERRIDE_KINDS:
            raise DataError(f"override must be one of {', '.join(OVERRIDE_KINDS)}, got {override!r}")
        if search is not None and len(search) > MAX_SEARCH_LENGTH:
            raise DataError(f"search text is {len(search):,} characters long; at most {MAX_SEARCH_LENGTH} are "
                            f"searched (a name, an enterprise id or a USCC)")
        return ListFilter(tier=tier, township=township, sector=None if sector is None else _sector_code(sector),
                          search=search, changed=bool(self.changed), override=override)


def _trimmed(value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _scope(townships: Collection[str] | None) -> list[str] | None:
    return None if townships is None else sorted({str(t) for t in townships})


def resolve_run(engine: sa.Engine, as_of: date | str | None = None, *, today: date | None = None) -> dict:
    """The succeeded run of ``as_of``, or (``as_of`` None) the latest succeeded run dated on or before ``today``
    (default: the calendar day): a run dated in the future is not "the latest" a planner reads.
    :class:`DataError` when there is none."""
    if as_of is not None:
        run = latest_run(engine, as_of)
        if run is None:
            raise DataError(f"no succeeded nightly run as of {pd.Timestamp(as_of).date()}: run riskgrade nightly "
                            f"--as-of {pd.Timestamp(as_of).date()} (or leave --as-of out for the latest run)")
        return run
    day = today or date.today()
    run = latest_run(engine, day, on_or_before=True)
    if run is None:
        later = latest_run(engine)
        if later is None:
            raise DataError("no succeeded nightly run in this database yet: run riskgrade nightly first")
        raise DataError(f"no succeeded nightly run dated on or before today ({day}); the only runs are later (the "
                        f"latest as of {later['as_of']}): name it with --as-of {later['as_of']}")
    return run


def _sector_code(sector: str) -> str:
    code = sector_code(sector)  # a planner may type the Chinese label: the same words the import accepts
    if code is not None:
        return code
    raise DataError(f"unknown sector {sector!r}: expected a code ({', '.join(SECTOR_BY_CODE)}) or its Chinese label")


def run_townships(engine: sa.Engine, run: dict, townships: Collection[str] | None = None) -> list[str]:
    """The townships of the run's scored enterprises (within ``townships`` when given), sorted (kept per run and
    scope: the list's drop-down and its check of a typed township read it on every page)."""
    scope = _scope(townships)

    def distinct_townships() -> tuple[str, ...]:
        t = scores_history.c
        query = sa.select(t.township).where(t.as_of == run["as_of"], t.township.is_not(None)).distinct()
        if scope is not None:
            query = query.where(t.township.in_(scope))
        with engine.connect() as conn:
            return tuple(sorted(str(v) for v in conn.execute(query).scalars()))

    return list(run_cached(engine, run, ("townships", None if scope is None else tuple(scope)), distinct_townships))


def _has_code(code: str):
    # override_codes is a comma-joined list: match whole codes ("manual" must not match "manual_ignored"); the range
    # condition lets the (as_of, override_codes, …) index skip the many enterprises without any override
    t = scores_history.c
    padded = sa.literal(",") + t.override_codes + sa.literal(",")
    return sa.and_(t.override_codes > "", padded.like(f"%,{code},%"))


def _contains(engine: sa.Engine, column, text: str):
    # instr/strpos: a plain substring test (LIKE would need escaping and is slower on SQLite)
    function = sa.func.strpos if engine.dialect.name == "postgresql" else sa.func.instr
    return function(column, text) > 0


_USCC_SHAPE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")
SEARCH_ID_LIMIT = 20_000
"""A search matching at most this many enterprises becomes an ``IN`` list of their ids; a broader one (as broad
as "公司" in a province) stays a substring condition on every row."""
NAME_INDEX_MAX_ROWS = 2_000_000
"""Runs of at most this many enterprises have their names searched in memory (about 60 bytes a name per server
process); larger ones by the database's substring test alone."""


@dataclass(frozen=True)
class _NameIndex:
    """A run's names, NUL-separated in one string (a search is ``str.find`` over it, in C), with the start of
    each name and the ids in the same order."""

    text: str
    starts: np.ndarray
    ids: tuple[str, ...]

    @classmethod
    def of_run(cls, engine: sa.Engine, run: dict) -> _NameIndex:
        t = scores_history.c
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.enterprise_id, t.name).where(t.as_of == run["as_of"])).all()
        names = [str(name or "").replace("\0", "") for _, name in rows]
        lengths = np.fromiter((len(n) + 1 for n in names), dtype=np.int64, count=len(names))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(names) else np.zeros(0, dtype=np.int64)
        return cls(text="\0".join(names) + "\0", starts=starts, ids=tuple(str(i) for i, _ in rows))

    def matching(self, needle: str, limit: int) -> list[str] | None:
        """The ids whose name contains ``needle``; None when it occurs more than ``limit`` times."""
        positions: list[int] = []
        position = self.text.find(needle)
        while position != -1:
            positions.append(position)
            if len(positions) > limit:
                return None
            position = self.text.find(needle, position + 1)
        rows = np.unique(np.searchsorted(self.starts, np.asarray(positions, dtype=np.int64), side="right") - 1)
        return [self.ids[row] for row in rows]


def _search_condition(engine: sa.Engine, run: dict, text: str):
    """Search by a part of the name, the whole id or the whole USCC. The matching ids are found once per run and
    search text — names in memory (:class:`_NameIndex`), the id and the USCC by their indexes — and up to
    :data:`SEARCH_ID_LIMIT` of them become an ``IN`` list; more than that stays a condition on every row."""
    from features.schema import CONTRACT_TABLES

    t = scores_history.c
    enterprises = CONTRACT_TABLES["enterprises"]
    uscc = text.upper() if _USCC_SHAPE.fullmatch(text.upper()) else None
    by_key = [t.enterprise_id == text]
    if uscc is not None:
        by_key.append(t.enterprise_id.in_(sa.select(enterprises.c.enterprise_id).where(enterprises.c.uscc == uscc)))
    condition = sa.or_(*by_key, _contains(engine, t.name, text))

    def matching_ids() -> tuple[str, ...] | None:
        if "\0" in text or scored_count(engine, run) > NAME_INDEX_MAX_ROWS:
            with engine.connect() as conn:
                ids = tuple(conn.execute(sa.select(t.enterprise_id).where(t.as_of == run["as_of"], condition)
                                         .limit(SEARCH_ID_LIMIT + 1)).scalars())
            return ids if len(ids) <= SEARCH_ID_LIMIT else None
        names = run_cached(engine, run, "names", lambda: _NameIndex.of_run(engine, run)).matching(
            text, SEARCH_ID_LIMIT)
        if names is None:
            return None
        with engine.connect() as conn:
            exact = set(conn.execute(sa.select(t.enterprise_id).where(t.as_of == run["as_of"], sa.or_(*by_key)))
                        .scalars())
        return tuple(dict.fromkeys([*names, *sorted(exact)]))

    ids = run_cached(engine, run, ("search", text), matching_ids)
    return condition if ids is None or len(ids) > SEARCH_ID_LIMIT else t.enterprise_id.in_(ids)


def list_conditions(engine: sa.Engine, run: dict, filters: ListFilter,
                    townships: Collection[str] | None = None) -> list:
    """The WHERE conditions on ``scores_history`` for the run, ``filters`` (already :meth:`~ListFilter.cleaned`)
    and the township scope. An unknown township — or one outside the scope — is a :class:`DataError` naming the
    known ones (those in scope), as an unknown sector is."""
    t = scores_history.c
    where = [t.as_of == run["as_of"]]
    scope = _scope(townships)
    if scope is not None:
        where.append(t.township.in_(scope))
    if filters.tier is not None:
        where.append(t.final_tier == filters.tier)
    if filters.township is not None:
        known = run_townships(engine, run, townships)
        if filters.township not in known:
            shown = ", ".join(known[:40]) + (f" … ({len(known)} in all)" if len(known) > 40 else "")
            raise DataError(f"unknown township {filters.township!r}: the run of {run['as_of']} knows "
                            f"{shown or 'none'}")
        where.append(t.township == filters.township)
    if filters.sector is not None:
        where.append(t.sector == filters.sector)
    if filters.search is not None:
        where.append(_search_condition(engine, run, filters.search))
    if filters.changed:
        c = tier_changes.c
        where.append(t.enterprise_id.in_(sa.select(c.enterprise_id).where(c.as_of == run["as_of"])))
    if filters.override == "any":
        where.append(sa.or_(_has_code("manual"), _has_code("hold"), sa.and_(t.override_codes > "", t.veto.is_(True))))
    elif filters.override == "veto":
        where.append(sa.and_(t.override_codes > "", t.veto.is_(True)))
    elif filters.override is not None:
        where.append(_has_code(filters.override))
    return where


SORTED_KEYS_LIMIT = 20_000
"""A filter matching at most this many enterprises has its sorted ids kept (per run, filter and order)."""
DEEP_PAGE_OFFSET = 2_000
"""A broader filter's sorted ids are kept too once a page this far down is asked for: the database would otherwise
walk the sort key's index over every row before the page, on each deep page (the ids are interned, so that each
order kept costs a pointer per enterprise)."""


def _order_by(sort: str, descending: bool, *, unindexed: bool = False) -> list:
    """ORDER BY terms of a sort key with its tie-breakers; ``unindexed``: as expressions no index provides
    (``rank + 0``, ``name || ''``: the same order)."""
    if sort not in SORT_KEYS:
        raise DataError(f"sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
    columns = [scores_history.c[name] for name in SORT_KEYS[sort]]
    if unindexed:
        columns = [c + 0 if isinstance(c.type, sa.Integer | sa.Float) else c.concat("") for c in columns]
    # tie-breakers follow the direction of the key, so that one index serves both directions
    return [c.desc() if descending else c.asc() for c in columns]


_LIST_SOURCE = ["rank", "enterprise_id", "name", "township", "sector", "probability", "points", "final_tier",
                "override_cause", "reasons", "mode", "yearly_cap", "visits_used", "next_allowed_visit",
                "expected_hazards", "expected_major_hazards"]
_RENAMED = {"probability": "score", "final_tier": "tier", "override_cause": "override"}


def _list_frame(rows, columns: list[str]) -> pd.DataFrame:
    frame = _typed_frame(rows, columns).rename(columns=_RENAMED)
    frame["reasons"] = [list(r) if isinstance(r, list) else [] for r in frame["reasons"]]
    for column in ("yearly_cap", "visits_used", "rank"):
        frame[column] = frame[column].astype("Int64")
    return frame


def ranked_list(engine: sa.Engine, *, as_of: date | str | None = None, tier: str | None = None,
                township: str | None = None, sector: str | None = None, top: int | None = None,
                search: str | None = None, changed: bool = False, override: str | None = None,
                sort: str = "rank", descending: bool = False, townships: Collection[str] | None = None,
                today: date | None = None) -> tuple[dict, pd.DataFrame]:
    """``(run, list)``: the run read and its ranked list (:data:`RANK_COLUMNS`), filtered, highest risk first.

    ``rank`` is the position in the whole list of the run (filters do not renumber: "rank 153" means the same
    thing in every view); ties (same tier and probability) share a rank and are ordered by enterprise_id.
    Filters: see :class:`ListFilter`; ``sort`` one of :data:`SORT_KEYS`; ``townships`` the account's scope
    (None: all). Without ``as_of``: the latest run not after ``today`` (:func:`resolve_run`).
    """
    run, rows = ranked_rows(engine, as_of=as_of, tier=tier, township=township, sector=sector, top=top,
                            search=search, changed=changed, override=override, sort=sort, descending=descending,
                            townships=townships, today=today)
    return run, list_frame(rows)


def ranked_rows(engine: sa.Engine, *, as_of: date | str | None = None, tier: str | None = None,
                township: str | None = None, sector: str | None = None, top: int | None = None,
                search: str | None = None, changed: bool = False, override: str | None = None,
                sort: str = "rank", descending: bool = False, townships: Collection[str] | None = None,
                today: date | None = None) -> tuple[dict, list]:
    """:func:`ranked_list` as the rows the database gave, before any frame is built (:func:`list_frame` makes
    the list of them, :func:`export_rows` the exported rows)."""
    if top is not None and top < 1:
        raise DataError(f"top must be at least 1, got {top}")
    filters = ListFilter(tier=tier, township=township, sector=sector, search=search, changed=changed,
                         override=override).cleaned()
    order = _order_by(sort, descending)
    run = resolve_run(engine, as_of, today=today)
    query = (sa.select(*_selected(scores_history, _LIST_SOURCE))
             .where(*list_conditions(engine, run, filters, townships)).order_by(*order))
    if top is not None:
        query = query.limit(top)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return run, rows


def list_frame(rows) -> pd.DataFrame:
    """The ranked list (:data:`RANK_COLUMNS`) of :func:`ranked_rows`' rows."""
    return _list_frame(rows, _LIST_SOURCE)[list(RANK_COLUMNS)].reset_index(drop=True)


_REASONS_AT = _LIST_SOURCE.index("reasons")  # (the source's columns are RANK_COLUMNS before renaming)


def export_rows(rows) -> list[tuple]:
    """:func:`ranked_rows`' rows as :func:`export_frame` has them (:data:`RANK_COLUMNS`, reasons as one text
    cell, dates as ISO text), for :func:`scoring.exports.write_csv_rows`."""
    out = []
    for row in rows:
        cells = list(row)
        reasons = cells[_REASONS_AT]
        cells[_REASONS_AT] = reasons_text(reasons if isinstance(reasons, list) else [])
        out.append(tuple(cells))
    return out


@dataclass(frozen=True)
class ListPage:
    """One page of the ranked list: ``rows`` (dicts with the keys :data:`PAGE_COLUMNS`, ``reasons`` left out when
    :func:`list_page` was asked to; dates as :class:`datetime.date`, ``reasons`` a list), ``total`` rows matching
    the filter."""

    run: dict
    rows: list[dict[str, Any]]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def list_page(engine: sa.Engine, filters: ListFilter = ListFilter(), *, as_of: date | str | None = None,
              sort: str = "rank", descending: bool = False, page: int = 1, page_size: int = 50,
              townships: Collection[str] | None = None, today: date | None = None,
              reasons: bool = True) -> ListPage:
    """A page of the ranked list (server-side paging: ``LIMIT``/``OFFSET`` over the keys of an index that serves
    the order) and the number of rows matching (kept per run and filter); page numbers start at 1, a page past
    the end is empty. ``reasons=False``: the rows without ``reasons`` (the workbench's list does not show them,
    and decoding them was a tenth of its page's time)."""
    if page < 1:
        raise DataError(f"page must be at least 1, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise DataError(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    filters = filters.cleaned()
    order = _order_by(sort, descending)
    run = resolve_run(engine, as_of, today=today)
    where = list_conditions(engine, run, filters, townships)
    t, c = scores_history, tier_changes
    scope = _scope(townships)
    key = (filters, None if scope is None else tuple(scope))
    offset = (page - 1) * page_size
    source = [*(n for n in _LIST_SOURCE if reasons or n != "reasons"), "veto", "override_codes"]
    query = (sa.select(*(t.c[n] for n in source), c.c.from_tier, c.c.to_tier)
             .outerjoin(c, sa.and_(c.c.as_of == t.c.as_of, c.c.enterprise_id == t.c.enterprise_id)))
    with engine.connect() as conn:  # one connection for the page (a round trip costs on a busy server)
        total = run_cached(engine, run, (*key, "count"), lambda: int(
            conn.execute(sa.select(sa.func.count()).select_from(t).where(*where)).scalar_one()))
        narrow = total <= SORTED_KEYS_LIMIT
        if narrow or offset >= DEEP_PAGE_OFFSET:
            # a narrow filter: its matches sorted once (by expressions, so that the database reads them through
            # the filter's index and sorts them, instead of walking the whole run in index order), then sliced;
            # a broad one's deep page: the sort key's index walked once
            terms = _order_by(sort, descending, unindexed=True) if narrow else order
            ids = run_cached(engine, run, (*key, "sorted", sort, descending), lambda: tuple(map(sys.intern, (
                str(i) for i in conn.execute(sa.select(t.c.enterprise_id).where(*where).order_by(*terms))
                .scalars()))))
            page_ids = ids[offset:offset + page_size]
            # no ORDER BY: the rows come by enterprise id (an index lookup each) and are put in the cached order
            # here; ordering in SQL would make the database walk the sort key's index over the whole run
            at = source.index("enterprise_id")
            found = {row[at]: row for row in conn.execute(
                query.where(t.c.as_of == run["as_of"], t.c.enterprise_id.in_(page_ids))).all()}
            rows = [found[i] for i in page_ids if i in found]
        else:
            # a broad filter: the index of the sort key yields the page's keys (LIMIT/OFFSET on the index alone)
            keys = (sa.select(t.c.as_of, t.c.enterprise_id).where(*where).order_by(*order)
                    .limit(page_size).offset(offset).subquery("page"))
            query = query.join(keys, sa.and_(keys.c.as_of == t.c.as_of,
                                             keys.c.enterprise_id == t.c.enterprise_id))
            rows = conn.execute(query.order_by(*order)).all()
    names = [_RENAMED.get(n, n) for n in source]
    columns = [k for k in PAGE_COLUMNS if reasons or k != "reasons"]
    records = []
    for row in rows:  # tuples zipped with the names: row mappings and their items() were a tenth of the page
        record = dict(zip(names, row))
        if reasons:
            record["reasons"] = list(record["reasons"]) if isinstance(record["reasons"], list) else []
        record["veto"] = bool(record["veto"])
        # from_tier: the previous run's final tier when it changed in this run ("new": not scored before)
        from_tier, to_tier = row[-2], row[-1]
        record["from_tier"] = None if to_tier is None else from_tier or "new"
        records.append({k: record[k] for k in columns})
    return ListPage(run=run, rows=records, total=total, page=page, page_size=page_size)


def export_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ranked list as ``riskgrade rank --format csv/xlsx`` writes it: reasons as one bilingual text cell."""
    flat = frame[list(RANK_COLUMNS)].copy()
    flat["reasons"] = [reasons_text(r) for r in flat["reasons"]]
    return flat


def reasons_text(reasons: list[dict] | None, *, lang: str = "both") -> str:
    """Reasons as one line: ``1. 近一年重大隐患数 major hazards, last 365 days = 3; 2. …`` (``lang``: zh, en, both)."""
    parts = []
    for i, reason in enumerate(reasons or [], start=1):
        texts = {"zh": reason.get("text_zh"), "en": reason.get("text_en")}
        label = " ".join(str(v) for v in ((texts["zh"], texts["en"]) if lang == "both" else (texts[lang],)) if v)
        value = reason.get("value")
        parts.append(f"{i}. {label}" + ("" if value is None else f" = {_number(value)}"))
    return "; ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# ---------------------------------------------------------------------------------------------
# One enterprise
# ---------------------------------------------------------------------------------------------

#: The records shown by ``riskgrade explain``: table → (date column, columns shown).
EVENT_COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "inspections": ("inspected_on", ("inspected_on", "kind", "department", "n_inspectors", "exam_takers",
                                     "exam_passed")),
    "hazards": ("found_on", ("found_on", "level", "category", "rectify_by", "rectified_on")),
    "violations": ("found_on", ("found_on", "kind")),
    "accidents": ("occurred_on", ("occurred_on", "grade", "deaths", "serious_injuries", "direct_loss_yuan",
                                  "road_traffic", "concealed")),
    "penalties": ("decided_on", ("decided_on", "amount_yuan", "person_penalized", "suspension")),
    "credit_records": ("valid_from", ("kind", "value", "valid_from", "valid_to")),
    "complaints": ("received_on", ("received_on", "substantiated")),
}


@dataclass
class EnterpriseReport:
    """Everything ``riskgrade explain`` shows about one enterprise (``current`` is None when never scored).

    The stored runs' rows (``score_rows``), the tier changes (``change_rows``) and the records (``event_rows``) are
    kept as read; their frames (``scores``, ``changes``, ``events``), the tier periods (``history``) and the manual
    overrides in force (``manual_overrides``) are made when first asked for — the workbench's enterprise file shows
    rows and needs none of the frames, on every page view."""

    enterprise: dict[str, Any]
    as_of: date
    run: dict | None
    current: dict[str, Any] | None
    n_scored: int | None
    change_rows: RecordRows = ((), [])
    event_rows: dict[str, RecordRows] = field(default_factory=dict)
    score_rows: RecordRows = ((), [])  # every stored run's row (as_of, probability, final_tier, …), oldest first
    engine: sa.Engine | None = field(default=None, repr=False)  # reads manual_overrides when asked for

    @cached_property
    def scores(self) -> pd.DataFrame:
        """Every stored run's row of the enterprise, oldest first."""
        return record_frame(self.score_rows)

    @cached_property
    def changes(self) -> pd.DataFrame:
        """The enterprise's tier changes, oldest first."""
        return record_frame(self.change_rows)

    @cached_property
    def history(self) -> pd.DataFrame:
        """Periods of equal final tier (:func:`tier_periods`)."""
        return tier_periods(self.scores)

    @cached_property
    def events(self) -> dict[str, pd.DataFrame]:
        """The records of the months before ``as_of``, a frame per table (newest first)."""
        return {name: pd.DataFrame(rows, columns=list(columns)) for name, (columns, rows) in self.event_rows.items()}

    @cached_property
    def manual_overrides(self) -> pd.DataFrame:
        """The manual overrides of the enterprise in force on ``as_of``."""
        if self.engine is None:
            return pd.DataFrame(columns=_ACTIVE_COLUMNS)
        return overrides_active_at(self.engine, self.as_of, enterprise_id=self.enterprise["enterprise_id"])

    def to_json(self) -> dict[str, Any]:
        from scoring.exports import json_records, json_value

        return {
            "enterprise": json_value(self.enterprise),
            "as_of": self.as_of.isoformat(),
            "run_id": None if self.run is None else self.run["run_id"],
            "model": None if self.run is None else self.run.get("model_version"),
            "current": json_value(self.current),
            "n_scored": self.n_scored,
            "manual_overrides": json_records(self.manual_overrides),
            "history": json_records(self.history),
            "changes": json_records(self.changes),
            "events": {name: json_records(frame) for name, frame in self.events.items()},
        }


def enterprise_report(engine: sa.Engine, enterprise_id: str, *, as_of: date | str | None = None,
                      months: int = 12, townships: Collection[str] | None = None,
                      today: date | None = None) -> EnterpriseReport:
    """One enterprise explained (see the module docstring); :class:`DataError` if the id is unknown — or
    outside the township scope ``townships`` (the same message: scope does not reveal what exists elsewhere).

    The run read is the run of ``as_of`` or the latest succeeded run not after ``today``; events are those dated
    in the ``months`` before the run's as-of date (before today when there is no run).
    """
    from features.schema import CONTRACT_TABLES

    create_scoring_tables(engine)
    eid = str(enterprise_id)
    enterprises = CONTRACT_TABLES["enterprises"]
    with engine.connect() as conn:
        row = conn.execute(sa.select(enterprises).where(enterprises.c.enterprise_id == eid)).mappings().first()
    score_rows = enterprise_history_rows(engine, eid)
    if not in_scope(engine, eid, townships, row=row) or (row is None and not score_rows[1]):
        raise DataError(f"unknown enterprise {eid!r}: it is neither in the enterprises table nor in any nightly run "
                        f"(check the id, e.g. with riskgrade rank)")
    enterprise = dict(row) if row is not None else {"enterprise_id": eid}
    enterprise.pop("extras", None)
    enterprise.pop(ENTERPRISE_KEY, None)  # the database's own surrogate, not the planner's business
    sector = enterprise.get("sector")
    if sector in SECTOR_BY_CODE:
        enterprise["sector_zh"] = SECTOR_BY_CODE[sector].label_zh

    run = latest_run(engine, as_of) if as_of is not None else latest_run(engine, today or date.today(),
                                                                          on_or_before=True)
    current = None
    n_scored = None
    if run is not None:
        current = scores_row(engine, run["as_of"], eid)
        if current is not None:
            current["tier_zh"] = TIER_LABELS_ZH.get(current["final_tier"], "")
        n_scored = scored_count(engine, run)
        run = {**run, "model_version": None if current is None else current.get("model_version")}
        day = pd.Timestamp(run["as_of"])
    else:
        day = pd.Timestamp(as_of if as_of is not None else today or date.today()).normalize()

    return EnterpriseReport(
        enterprise=enterprise, as_of=day.date(), run=run, current=current, n_scored=n_scored,
        change_rows=enterprise_changes_rows(engine, eid), event_rows=recent_event_rows(engine, eid, day, months),
        score_rows=score_rows, engine=engine,
    )


def warm_run_cache(engine: sa.Engine, *, today: date | None = None) -> dict | None:
    """Compute now what the first pages of the latest run not after ``today`` would: its count, townships, first
    page and the names searched (``riskgrade serve`` does it at start, so that the morning's first planner does not
    wait for them). The run warmed, or None when there is none."""
    try:
        run = resolve_run(engine, today=today)
    except DataError:
        return None
    scored_count(engine, run)
    run_townships(engine, run)
    list_page(engine, as_of=run["as_of"])
    if scored_count(engine, run) <= NAME_INDEX_MAX_ROWS:
        run_cached(engine, run, "names", lambda: _NameIndex.of_run(engine, run))
    return run


def scored_count(engine: sa.Engine, run: dict) -> int:
    """How many enterprises the run scored (kept per run)."""
    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(scores_history)
                                    .where(scores_history.c.as_of == run["as_of"])).scalar_one())

    return run_cached(engine, run, "n_scored", count)


def find_enterprise(engine: sa.Engine, enterprise_id: str) -> dict | None:
    """``enterprise_id, name, township`` of an enterprise: from the enterprises table, else from its latest scored
    row; None when neither knows it."""
    from features.schema import CONTRACT_TABLES

    eid = str(enterprise_id)
    enterprises = CONTRACT_TABLES["enterprises"]
    t = scores_history.c
    with engine.connect() as conn:
        row = conn.execute(sa.select(enterprises.c.enterprise_id, enterprises.c.name, enterprises.c.township)
                           .where(enterprises.c.enterprise_id == eid)).mappings().first()
        if row is None:
            row = conn.execute(sa.select(t.enterprise_id, t.name, t.township).where(t.enterprise_id == eid)
                               .order_by(t.as_of.desc()).limit(1)).mappings().first()
    return None if row is None else dict(row)


def in_scope(engine: sa.Engine, enterprise_id: str, townships: Collection[str] | None, *,
             row: Any = None) -> bool:
    """Whether an account limited to ``townships`` (None: all) may see or change the enterprise (``row``: its
    enterprises-table row when already read)."""
    if townships is None:
        return True
    found = dict(row) if row is not None else find_enterprise(engine, enterprise_id)
    return found is not None and found.get("township") in set(townships)


def tier_periods(history: pd.DataFrame) -> pd.DataFrame:
    """Consecutive runs with the same final tier merged into periods: ``from, to, final_tier, runs,
    max_probability, overrides`` (oldest first)."""
    columns = ["from", "to", "final_tier", "runs", "max_probability", "overrides"]
    if history.empty:
        return pd.DataFrame(columns=columns)
    frame = history.sort_values("as_of").reset_index(drop=True)
    block = (frame["final_tier"] != frame["final_tier"].shift()).cumsum()
    rows = []
    for _, part in frame.groupby(block, sort=True):
        codes = sorted({c for text in part["override_codes"].fillna("") for c in str(text).split(",") if c})
        rows.append({"from": part["as_of"].iloc[0], "to": part["as_of"].iloc[-1],
                     "final_tier": part["final_tier"].iloc[0], "runs": len(part),
                     "max_probability": float(part["probability"].max()), "overrides": ",".join(codes)})
    return pd.DataFrame(rows, columns=columns)


def recent_event_rows(engine: sa.Engine, enterprise_id: str, as_of: pd.Timestamp, months: int = 12
                      ) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    """The enterprise's records dated in ``[as_of − months, as_of)`` per contract table (credit records: those
    valid at some time in that window), newest first, as ``(columns, rows)``."""
    window = {"enterprise_id": str(enterprise_id), "start": (as_of - pd.DateOffset(months=months)).date(),
              "end": as_of.date()}
    with engine.connect() as conn:
        return {name: (EVENT_COLUMNS[name][1], [tuple(r) for r in conn.execute(query, window)])
                for name, query in _event_queries().items()}


@cache
def _event_queries() -> dict[str, sa.Select]:
    """The statements of :func:`recent_event_rows`, built once: the enterprise file runs seven on every page, and
    building them anew cost as much as running them."""
    from features.schema import CONTRACT_TABLES

    queries = {}
    for name, (date_column, columns) in EVENT_COLUMNS.items():
        table = CONTRACT_TABLES[name]
        query = sa.select(*(table.c[c] for c in columns)).where(table.c.enterprise_id == sa.bindparam("enterprise_id"))
        if name == "credit_records":
            query = query.where(table.c.valid_from < sa.bindparam("end"),
                                sa.or_(table.c.valid_to.is_(None), table.c.valid_to >= sa.bindparam("start")))
        else:
            query = query.where(table.c[date_column] >= sa.bindparam("start"),
                                table.c[date_column] < sa.bindparam("end"))
        queries[name] = query.order_by(table.c[date_column].desc())
    return queries


def recent_events(engine: sa.Engine, enterprise_id: str, as_of: pd.Timestamp, months: int = 12
                  ) -> dict[str, pd.DataFrame]:
    """:func:`recent_event_rows` as a frame per table."""
    return {name: pd.DataFrame(rows, columns=list(columns))
            for name, (columns, rows) in recent_event_rows(engine, enterprise_id, as_of, months).items()}
