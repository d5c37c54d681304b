"""The departments' inspectors in the synthetic world: rosters, stringency, and today's territorial assignment.

Each department gets a roster of **slots** (posts), staffed for today's visit load. A slot is held by one inspector
at a time; inspectors leave now and then and the next one takes the post the day after, so the roster of a date
lists who held a post on it. Slots are grouped into **squads**, each covering a block of townships: a visit draws
its team at random from the squad of the enterprise's township (today's practice, not a 双随机 draw), so who
inspects is confounded with whom. Each inspector has a **stringency** (detection multiplier, log-normal); a team
detects with the geometric mean of its members'. Everything is vectorised over visits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from data_samples._params import InspectorParams, RoutinePractice
from data_samples._store import NO_DAY, IdFormat, bools, days_to_datetime, string_series

INSPECTOR_IDS = IdFormat("J", 5)  # 执法 (law enforcement); P is taken by penalties

_SURNAMES = tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
                  "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴")
_GIVEN = tuple("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华平刚桂兰辉玲鹏飞红霞建国志文斌宇浩凯晨阳林欣怡俊博")
_SPAN = 1 << 22  # day numbers stay far below: (slot, day) packs into one int64


@dataclass(frozen=True)
class InspectorRoster:
    """Every inspector who holds a post at some time (a *hire*), by slot, with their stringency.

    ``squad_start[d, t]``, ``squad_len[d, t]``: the slots of department ``d``'s squad covering township ``t``.
    Hires are sorted by (slot, first day); ``hire_to`` is the last day served (``NO_DAY``: still serving).
    """

    departments: tuple[str, ...]
    slot_department: np.ndarray
    squad_start: np.ndarray
    squad_len: np.ndarray
    hire_slot: np.ndarray
    hire_from: np.ndarray
    hire_to: np.ndarray
    stringency: np.ndarray
    certified: np.ndarray
    names: np.ndarray
    hire_number: np.ndarray  # the number in the inspector id (in order of first day, then slot)

    @classmethod
    def build(cls, departments: Sequence[str], lead_department: np.ndarray, sector_rate: np.ndarray,
              township: np.ndarray, n_townships: int, start_day: int, end_day: int, params: InspectorParams,
              practice: RoutinePractice, rng: np.random.Generator) -> InspectorRoster:
        """Rosters staffed for today's load: ``lead_department[e]`` (index into ``departments``) visits enterprise
        ``e`` about ``sector_rate[e]`` times a month; other departments take ``practice.other_department_share``
        of the routine visits (DESIGN.md §8: 2–4 inspectors each)."""
        n_departments = len(departments)
        team = float(np.dot(practice.inspectors_shares, np.arange(2, 2 + len(practice.inspectors_shares))))
        load = np.bincount(lead_department, sector_rate * (1 - practice.other_department_share),
                           minlength=n_departments)
        others = [departments.index(d) for d in ("消防", "市场监管") if d in departments]
        for d in others:
            load[d] += sector_rate.sum() * practice.other_department_share / len(others)
        load *= team * 1.15  # complaints, investigations and follow-ups on top of routine visits
        slots = np.maximum(params.min_roster, np.ceil(load / params.visits_per_inspector_month)).astype(np.int64)
        first_slot = np.r_[0, np.cumsum(slots)[:-1]]
        squad_start = np.zeros((n_departments, n_townships), dtype=np.int64)
        squad_len = np.zeros((n_departments, n_townships), dtype=np.int64)
        block = np.arange(n_townships)
        for d in range(n_departments):
            n_squads = max(1, int(slots[d]) // params.squad_size)
            bounds = np.linspace(0, slots[d], n_squads + 1).astype(np.int64)
            squad = block * n_squads // max(n_townships, 1)
            squad_start[d] = first_slot[d] + bounds[squad]
            squad_len[d] = bounds[squad + 1] - bounds[squad]
        n_slots = int(slots.sum())
        slot_department = np.repeat(np.arange(n_departments), slots)

        # Who holds each post: one inspector from before the start, then a successor after each departure.
        years = max((end_day - start_day) / 365.25 + 1, 1.0)
        leaves = rng.poisson(params.turnover_per_year * years, n_slots)
        hire_slot = np.repeat(np.arange(n_slots), leaves + 1)
        first = np.r_[0, np.cumsum(leaves + 1)[:-1]]
        rank = np.arange(len(hire_slot)) - first[hire_slot]
        span = int(years * 365.25)
        days = start_day + rng.integers(0, span, len(hire_slot))
        leave_day = days[np.lexsort((days, hire_slot))]  # hire_slot is sorted: each slot's days in order
        is_last = rank == leaves[hire_slot]
        hire_to = np.where(is_last, NO_DAY, leave_day).astype(np.int64)
        previous_end = np.r_[0, hire_to[:-1]]
        seniority = (rng.exponential(8.0, len(hire_slot)) * 365.25).astype(np.int64)
        hire_from = np.where(rank == 0, start_day - 1 - seniority, previous_end + 1).astype(np.int64)

        sigma = params.stringency_sigma
        log_mean = -sigma**2 / (2 * team)  # a team's geometric-mean multiplier averages about 1
        stringency = np.exp(log_mean + sigma * rng.standard_normal(len(hire_slot)))
        certified = rng.random(len(hire_slot)) >= params.uncertified_share
        surname = rng.integers(0, len(_SURNAMES), len(hire_slot))
        given = rng.integers(0, len(_GIVEN), (len(hire_slot), 2))
        two = rng.random(len(hire_slot)) < 0.7
        names = np.array([_SURNAMES[s] + _GIVEN[g[0]] + (_GIVEN[g[1]] if t else "")
                          for s, g, t in zip(surname, given, two, strict=True)], dtype=object)
        order = np.lexsort((hire_slot, hire_from))
        hire_number = np.empty(len(hire_slot), dtype=np.int64)
        hire_number[order] = np.arange(1, len(hire_slot) + 1)
        return cls(tuple(departments), slot_department, squad_start, squad_len, hire_slot, hire_from, hire_to,
                   stringency, certified, names, hire_number)

    @property
    def ids(self) -> pa.Array:
        return INSPECTOR_IDS(self.hire_number)

    def teams(self, department: np.ndarray, township: np.ndarray, day: np.ndarray, size: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(hires ``[visit, member]``, -1 past the team; detection multiplier per visit) for visits of
        ``department`` codes (codes beyond the rosters: no team, multiplier 1) at enterprises of ``township``."""
        n = len(department)
        width = int(size.max()) if n else 0
        hires = np.full((n, max(width, 1)), -1, dtype=np.int64)
        multiplier = np.ones(n)
        staffed = department < len(self.departments)
        if not staffed.any():
            return hires[:, :width], multiplier
        rows = np.flatnonzero(staffed)
        start = self.squad_start[department[rows], township[rows]]
        length = self.squad_len[department[rows], township[rows]]
        k = np.minimum(size[rows], length)
        longest = int(length.max())
        keys = rng.random((len(rows), longest))
        keys[np.arange(longest)[None, :] >= length[:, None]] = np.inf
        pick = np.argsort(keys, axis=1)[:, :width]
        member = np.arange(width)[None, :] < k[:, None]
        slot = start[:, None] + pick
        wanted = slot * _SPAN + (day[rows][:, None] - self.hire_from.min())
        hire_key = self.hire_slot * _SPAN + (self.hire_from - self.hire_from.min())
        found = np.searchsorted(hire_key, wanted.ravel(), side="right").reshape(wanted.shape) - 1
        chosen = np.where(member, found, -1)
        hires[rows, :width] = chosen
        logs = np.where(member, np.log(self.stringency[np.maximum(chosen, 0)]), 0.0)
        multiplier[rows] = np.exp(logs.sum(axis=1) / np.maximum(k, 1))
        return hires[:, :width], multiplier

    def named(self, teams: Sequence[object]) -> np.ndarray:
        """Hires ``[visit, member]`` (-1 past the team) of teams given as ``;``-joined inspector ids (empty or
        missing: none given); an id not on the roster is refused."""
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {inspector: i for i, inspector in enumerate(self.ids.to_pylist())}
            object.__setattr__(self, "_lookup", lookup)
        lists = [[t for t in str(team).split(";") if t] if isinstance(team, str) else [] for team in teams]
        hires = np.full((len(lists), max((len(t) for t in lists), default=0) or 1), -1, dtype=np.int64)
        for row, team in enumerate(lists):
            for column, inspector in enumerate(team):
                if inspector not in lookup:
                    raise KeyError(inspector)
                hires[row, column] = lookup[inspector]
        return hires

    def multiplier(self, hires: np.ndarray) -> np.ndarray:
        """Each team's detection multiplier: the geometric mean of its members' stringency (1: no member)."""
        member = hires >= 0
        logs = np.where(member, np.log(self.stringency[np.maximum(hires, 0)]), 0.0)
        return np.exp(logs.sum(axis=1) / np.maximum(member.sum(axis=1), 1))

    def frame(self, horizon: int) -> pd.DataFrame:
        """The roster as known on day ``horizon``: everyone who took a post by then (a later end shows as empty)."""
        known = np.flatnonzero(self.hire_from <= horizon)
        known = known[np.argsort(self.hire_number[known])]
        ended = np.where((self.hire_to != NO_DAY) & (self.hire_to <= horizon), self.hire_to, NO_DAY)[known]
        return pd.DataFrame({
            "inspector_id": string_series(self.ids.take(pa.array(known))),
            "name": string_series(pa.array(self.names[known].tolist(), pa.string())),
            "department": string_series(pa.array(np.asarray(self.departments, dtype=object)[
                self.slot_department[self.hire_slot[known]]].tolist(), pa.string())),
            "active_from": days_to_datetime(self.hire_from[known]),
            "active_to": days_to_datetime(ended),
            "certified": bools(self.certified[known]),
        })

    def truth(self, horizon: int) -> pd.DataFrame:
        """Each inspector of :meth:`frame`'s roster with their hidden stringency (detection multiplier)."""
        known = np.flatnonzero(self.hire_from <= horizon)
        known = known[np.argsort(self.hire_number[known])]
        return pd.DataFrame({
            "inspector_id": string_series(self.ids.take(pa.array(known))),
            "stringency": self.stringency[known].astype(np.float64),
        })


def staffing_rates(sector_index: np.ndarray, sector_codes: Sequence[str], practice: RoutinePractice,
                   lead: Mapping[str, str], departments: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(lead department index, routine visits a month) per enterprise under today's practice."""
    rate = np.array([practice.visits_per_year[c] for c in sector_codes])[sector_index] / 12
    lead_index = np.array([departments.index(lead[c]) for c in sector_codes])[sector_index]
    return lead_index, rate
