"""Point-in-time guarantees of build_features, checked on random worlds.

1. Every feature equals a slow, obvious reference implementation written here independently (loops over
   enterprises and events, plain date comparisons).
2. Adding, removing or changing any event dated on or after the as-of date, or recorded on or after it,
   never changes any feature as of that date (Hypothesis).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import CATALOG, DEFAULT_SHRINKAGE_STRENGTH, build_features
from features.contract import TABLE_BY_NAME
from feature_tables import AS_OF, random_world

WINDOWS = (90, 365, 1095)
DAY = pd.Timedelta(days=1)
NO_WORDS = {"false", "no", "0", "n", "f", "否", "无", "none", "0.0"}


# ---------------------------------------------------------------------------------------------
# The reference implementation
# ---------------------------------------------------------------------------------------------


def missing(value: object) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def number(value: object) -> float:
    return 0.0 if missing(value) else float(value)


def is_true(value: object) -> bool:
    return not missing(value) and bool(value)


def grade_of(accident: dict) -> str:
    if not missing(accident["grade"]):
        return accident["grade"]
    deaths, injuries, loss = number(accident["deaths"]), number(accident["serious_injuries"]), number(accident["direct_loss_yuan"])
    if deaths >= 30 or injuries >= 100 or loss >= 1e8:
        return "especially_major"
    if deaths >= 10 or injuries >= 50 or loss >= 5e7:
        return "major"
    if deaths >= 3 or injuries >= 10 or loss >= 1e7:
        return "larger"
    return "general"


class Reference:
    """Features computed the slow way, one enterprise and one event at a time."""

    def __init__(self, data: dict[str, pd.DataFrame], shrinkage: float = DEFAULT_SHRINKAGE_STRENGTH) -> None:
        self.data = data
        self.m = shrinkage
        self.events = {name: frame.to_dict("records") for name, frame in data.items() if name != "enterprises"}
        self.enterprises = sorted(data["enterprises"].to_dict("records"), key=lambda e: e["enterprise_id"])

    def known(self, table: str, enterprise_id: str, a: pd.Timestamp) -> list[dict]:
        """The enterprise's events dated and recorded strictly before a."""
        date = TABLE_BY_NAME[table].event_date
        return [ev for ev in self.events[table]
                if ev["enterprise_id"] == enterprise_id and ev[date] < a and ev["recorded_on"] < a]

    def count(self, table: str, enterprise_id: str, a: pd.Timestamp, start: int, end: int = 0,
              keep=lambda ev: True, value=None, half_life=None) -> float:
        """Sum of value (or count) over known events with a - start <= date < a - end, each weighted by
        0.5 ** (days before a / half_life) if half_life is given."""
        if table not in self.events:
            return math.nan
        date = TABLE_BY_NAME[table].event_date
        total = 0.0
        for ev in self.known(table, enterprise_id, a):
            if a - start * DAY <= ev[date] < a - end * DAY and keep(ev):
                weight = 1.0 if half_life is None else 0.5 ** ((a - ev[date]).days / half_life)
                total += weight * (1.0 if value is None else number(ev[value]))
        return total

    @staticmethod
    def ratio(x: float, n: float) -> float:
        return math.nan if n == 0 or math.isnan(n) else x / n

    def rows(self, dates) -> list[tuple[dict, pd.Timestamp]]:
        return [(e, a) for e in self.enterprises for a in sorted(dates)
                if (missing(e["founded_on"]) or e["founded_on"] < a) and (missing(e["closed_on"]) or e["closed_on"] >= a)]

    def frame(self, dates) -> pd.DataFrame:
        rows = self.rows(dates)
        records = [self.own(e, a) for e, a in rows]
        self.add_cross_enterprise(rows, records)
        index = pd.MultiIndex.from_tuples([(e["enterprise_id"], a) for e, a in rows], names=["enterprise_id", "as_of"])
        return pd.DataFrame(records, index=index)

    def own(self, e: dict, a: pd.Timestamp) -> dict:
        eid = e["enterprise_id"]
        f: dict[str, object] = {
            "sector": e["sector"],
            "employees": number(e["employees"]) if not missing(e["employees"]) else math.nan,
            "age_years": math.nan if missing(e["founded_on"]) else (a - e["founded_on"]).days / 365.25,
            "x_capital": math.nan if missing(e["x_capital"]) else e["x_capital"],
            "x_zone": None if missing(e["x_zone"]) else e["x_zone"],
        }
        for flag in ("major_hazard_source", "dust_explosion", "ammonia_refrigeration", "confined_space"):
            f[flag] = math.nan if missing(e[flag]) else float(bool(e[flag]))

        inspections = self.known("inspections", eid, a)
        f["days_since_last_inspection"] = min(((a - ev["inspected_on"]).days for ev in inspections), default=math.nan)
        for w in WINDOWS:
            n = self.count("inspections", eid, a, w)
            f[f"inspections_{w}d"] = n
            for kind in ("unannounced", "focused"):
                f[f"{kind}_inspection_share_{w}d"] = self.ratio(
                    self.count("inspections", eid, a, w, keep=lambda ev, k=kind: ev["kind"] == k), n)
            f[f"exam_pass_rate_{w}d"] = self.ratio(self.count("inspections", eid, a, w, value="exam_passed"),
                                                   self.count("inspections", eid, a, w, value="exam_takers"))
        f["inspections_change_365d"] = self.count("inspections", eid, a, 365) - self.count("inspections", eid, a, 730, 365)

        def major(ev):
            return ev["level"] == "major"

        def general(ev):
            return ev["level"] == "general"

        if "hazards" in self.events:
            majors = [ev for ev in self.known("hazards", eid, a) if major(ev)]
            unrectified = [ev for ev in majors if missing(ev["rectified_on"]) or ev["rectified_on"] >= a]
            f["unrectified_major_hazards"] = float(len(unrectified))
            f["overdue_major_hazards"] = float(sum(not missing(ev["rectify_by"]) and ev["rectify_by"] < a for ev in unrectified))
        else:
            f["unrectified_major_hazards"] = f["overdue_major_hazards"] = math.nan
        for w in WINDOWS:
            f[f"general_hazards_{w}d"] = self.count("hazards", eid, a, w, keep=general)
            f[f"major_hazards_{w}d"] = self.count("hazards", eid, a, w, keep=major)
        f["major_hazards_change_365d"] = self.count("hazards", eid, a, 365, keep=major) - self.count("hazards", eid, a, 730, 365, keep=major)

        for w in WINDOWS:
            f[f"violations_{w}d"] = self.count("violations", eid, a, w)
            for kind in ("illegal_command", "illegal_operation", "labor_discipline"):
                f[f"{kind}_violations_{w}d"] = self.count("violations", eid, a, w, keep=lambda ev, k=kind: ev["kind"] == k)
            f[f"penalties_{w}d"] = self.count("penalties", eid, a, w)
            f[f"penalty_amount_yuan_{w}d"] = self.count("penalties", eid, a, w, value="amount_yuan")
            f[f"person_penalties_{w}d"] = self.count("penalties", eid, a, w, keep=lambda ev: is_true(ev["person_penalized"]))
            f[f"suspensions_{w}d"] = self.count("penalties", eid, a, w, keep=lambda ev: is_true(ev["suspension"]))
            f[f"accidents_{w}d"] = self.count("accidents", eid, a, w)
            f[f"non_road_accidents_{w}d"] = self.count("accidents", eid, a, w, keep=lambda ev: not is_true(ev["road_traffic"]))
            f[f"general_accidents_{w}d"] = self.count("accidents", eid, a, w, keep=lambda ev: grade_of(ev) == "general")
            f[f"larger_or_worse_accidents_{w}d"] = self.count("accidents", eid, a, w, keep=lambda ev: grade_of(ev) != "general")
            f[f"accident_deaths_{w}d"] = self.count("accidents", eid, a, w, value="deaths")
            f[f"concealed_accidents_{w}d"] = self.count("accidents", eid, a, w, keep=lambda ev: is_true(ev["concealed"]))
            f[f"complaints_{w}d"] = self.count("complaints", eid, a, w)
            f[f"substantiated_complaints_{w}d"] = self.count("complaints", eid, a, w, keep=lambda ev: is_true(ev["substantiated"]))
        if "accidents" in self.events:
            f["days_since_last_accident"] = min(((a - ev["occurred_on"]).days for ev in self.known("accidents", eid, a)),
                                                default=math.nan)
        else:
            f["days_since_last_accident"] = math.nan
        f.update(self.credit(eid, a))
        return f

    def credit(self, eid: str, a: pd.Timestamp) -> dict:
        names = {"blacklist": "blacklisted", "redlist": "redlisted", "insurance": "insured", "commitment": "commitment_signed"}
        if "credit_records" not in self.events:
            return {name: math.nan for name in [*names.values(), "standardization_level", "credit_grade_rank"]}
        latest: dict[str, dict] = {}
        for position, record in enumerate(self.events["credit_records"]):
            active = (record["enterprise_id"] == eid and record["valid_from"] < a and record["recorded_on"] < a
                      and (missing(record["valid_to"]) or record["valid_to"] >= a))
            if not active:
                continue
            rank = (record["valid_from"], max(record["valid_from"], record["recorded_on"]), position)
            current = latest.get(record["kind"])
            if current is None or rank > current["rank"]:
                latest[record["kind"]] = {"rank": rank, "value": record["value"]}
        result = {}
        for kind, name in names.items():
            record = latest.get(kind)
            result[name] = 0.0 if record is None else float(
                missing(record["value"]) or str(record["value"]).strip().lower() not in NO_WORDS)
        standard = latest.get("standardization")
        result["standardization_level"] = 4.0 if standard is None else {"1": 1.0, "2": 2.0, "3": 3.0}.get(standard["value"], math.nan)
        grade = latest.get("credit_grade")
        grades = ["A1", "A2", "A3", "B1", "B2", "B3", "C", "D"]
        result["credit_grade_rank"] = math.nan if grade is None else float(grades.index(grade["value"]) + 1)
        return result

    def teams(self) -> dict[str, set[str]] | None:
        """Inspection id -> its inspectors, from the link table and the list column; None when neither has any."""
        teams: dict[str, set[str]] = {}
        for link in self.events.get("inspection_inspectors", []):
            teams.setdefault(link["inspection_id"], set()).add(link["inspector_id"])
        for ev in self.events["inspections"]:
            if not missing(ev.get("inspectors")):
                teams.setdefault(ev["inspection_id"], set()).update(t for t in ev["inspectors"].split(";") if t)
        known = {ev["inspection_id"] for ev in self.events["inspections"]}
        teams = {k: v for k, v in teams.items() if k in known and v}
        return teams or None

    def add_inspectors(self, rows: list[tuple[dict, pd.Timestamp]], records: list[dict], w: int = 1095) -> None:
        names = (f"inspector_stringency_{w}d", f"hazards_per_inspection_inspector_adjusted_{w}d",
                 f"major_hazards_per_inspection_inspector_adjusted_{w}d")
        teams = self.teams()
        if teams is None or "hazards" not in self.events:
            for record in records:
                record.update(dict.fromkeys(names, math.nan))
            return
        sector_of = {e["enterprise_id"]: e["sector"] for e in self.enterprises}
        for a in sorted({a for _, a in rows}):
            visits = [ev for ev in self.events["inspections"]
                      if ev["inspection_id"] in teams and ev["enterprise_id"] in sector_of
                      and a - w * DAY <= ev["inspected_on"] < a and ev["recorded_on"] < a]
            found = {v["inspection_id"]: [0, 0] for v in visits}
            for h in self.events["hazards"]:
                if h["inspection_id"] in found and h["enterprise_id"] in sector_of and h["found_on"] < a \
                        and h["recorded_on"] < a:
                    found[h["inspection_id"]][0] += 1
                    found[h["inspection_id"]][1] += h["level"] == "major"
            by_sector: dict[str, list[float]] = {}
            for v in visits:
                tally = by_sector.setdefault(sector_of[v["enterprise_id"]], [0.0, 0.0, 0.0])
                tally[0] += found[v["inspection_id"]][0]
                tally[1] += found[v["inspection_id"]][1]
                tally[2] += 1
            mean = {s: t[0] / t[2] for s, t in by_sector.items()}
            major_mean = {s: t[1] / t[2] for s, t in by_sector.items()}
            f_i: dict[str, float] = {}
            e_i: dict[str, float] = {}
            n_i: dict[str, int] = {}
            for v in visits:
                for i in teams[v["inspection_id"]]:
                    f_i[i] = f_i.get(i, 0) + found[v["inspection_id"]][0]
                    e_i[i] = e_i.get(i, 0) + mean[sector_of[v["enterprise_id"]]]
                    n_i[i] = n_i.get(i, 0) + 1

            def stringency(i: str) -> float:
                if e_i.get(i, 0) == 0:
                    return 1.0
                pseudo = self.m * e_i[i] / n_i[i]
                return (f_i[i] + pseudo) / (e_i[i] + pseudo)

            for record, (e, a2) in zip(records, rows, strict=True):
                if a2 != a:
                    continue
                own = [v for v in visits if v["enterprise_id"] == e["enterprise_id"]]
                if not own:
                    record.update(dict.fromkeys(names, math.nan))
                    continue
                t = [sum(stringency(i) for i in teams[v["inspection_id"]]) / len(teams[v["inspection_id"]])
                     for v in own]
                record[names[0]] = sum(t) / len(t)
                for name, k, means in ((names[1], 0, mean), (names[2], 1, major_mean)):
                    mu = means[e["sector"]]
                    total = sum(found[v["inspection_id"]][k] for v in own)
                    record[name] = math.nan if mu == 0 else self.ratio(total / mu + self.m, sum(t) + self.m)

    def add_cross_enterprise(self, rows: list[tuple[dict, pd.Timestamp]], records: list[dict]) -> None:
        self.add_inspectors(rows, records)

        def levels(*wanted):
            return lambda ev: ev["level"] in wanted

        def shrunk(start: int, end: int, keep, half_life=None, relative=False) -> list[float]:
            x = [self.count("hazards", e["enterprise_id"], a, start, end, keep=keep, half_life=half_life)
                 for e, a in rows]
            n = [self.count("inspections", e["enterprise_id"], a, start, end, half_life=half_life) for e, a in rows]
            out = []
            for i, (e, a) in enumerate(rows):
                peers = [j for j, (e2, a2) in enumerate(rows) if a2 == a and e2["sector"] == e["sector"]]
                mean = self.ratio(sum(x[j] for j in peers), sum(n[j] for j in peers))
                rate = self.ratio(x[i], n[i]) if self.m == 0 else (x[i] + self.m * mean) / (n[i] + self.m)
                out.append(self.ratio(rate, mean) if relative else rate)
            return out

        for w in WINDOWS:
            for level in ("general", "major"):
                for record, value in zip(records, shrunk(w, 0, levels(level)), strict=True):
                    record[f"{level}_hazards_per_inspection_{w}d"] = value
        last, prior = shrunk(365, 0, levels("general", "major")), shrunk(730, 365, levels("general", "major"))
        for record, now, before in zip(records, last, prior, strict=True):
            record["hazards_per_inspection_change_365d"] = now - before
        weighted = shrunk(1825, 0, lambda ev: True, half_life=365, relative=True)
        for record, value in zip(records, weighted, strict=True):
            record["hazards_per_inspection_vs_sector_1825d"] = value

        for record, (e, a) in zip(records, rows, strict=True):
            for group in ("sector", "township"):
                if missing(e[group]) or "accidents" not in self.events:
                    record[f"{group}_peer_accidents_365d"] = math.nan
                    continue
                record[f"{group}_peer_accidents_365d"] = sum(
                    self.count("accidents", other["enterprise_id"], a, 365, keep=lambda ev: not is_true(ev["road_traffic"]))
                    for other in self.enterprises
                    if other["enterprise_id"] != e["enterprise_id"] and other[group] == e[group]
                )


def assert_same_features(built: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(built.index) == list(expected.index)
    assert set(built.columns) == set(expected.columns), set(built.columns) ^ set(expected.columns)
    for column in built.columns:
        got, want = built[column], expected[column]
        if isinstance(got.dtype, pd.CategoricalDtype):
            assert [None if missing(v) else v for v in got] == [None if missing(v) else v for v in want], column
        else:
            np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-12, atol=1e-12,
                                       equal_nan=True, err_msg=column)


def test_reference_covers_the_whole_catalog():
    world = random_world(1, drop_optional=False)
    names = set(Reference(world).frame(AS_OF).columns)
    assert {f.name for f in CATALOG} <= names


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_feature_equals_the_reference(seed):
    world = random_world(seed)
    assert_same_features(build_features(world, AS_OF), Reference(world).frame(AS_OF))


def with_keys(world: dict[str, pd.DataFrame], seed: int, dtype: str = "int32") -> dict[str, pd.DataFrame]:
    """The world as :func:`features.store.load_tables` gives it: each enterprise a random (sparse) integer
    ``enterprise_key``, written beside ``enterprise_id`` on every event row."""
    rng = np.random.default_rng(seed)
    enterprises = world["enterprises"]
    key_of = dict(zip(enterprises["enterprise_id"], rng.permutation(3 * len(enterprises))[:len(enterprises)] + 1))
    return {name: frame.assign(enterprise_key=frame["enterprise_id"].map(key_of).astype(dtype))
            if "enterprise_id" in frame else frame for name, frame in world.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_enterprise_keys_give_the_same_features_as_ids(seed):
    world = random_world(seed, drop_optional=False)
    by_id = build_features(world, AS_OF)
    keyed = with_keys(world, seed)
    assert_same_features(build_features(keyed, AS_OF), by_id)
    # Keys the build cannot trust (missing on some enterprise) fall back to the ids, with the same result.
    untrusted = dict(keyed, enterprises=keyed["enterprises"].assign(
        enterprise_key=keyed["enterprises"]["enterprise_key"].astype("Int32").mask(lambda k: k.index == 0)))
    assert_same_features(build_features(untrusted, AS_OF), by_id)


def in_id_order(world: dict[str, pd.DataFrame], first: int) -> dict[str, pd.DataFrame]:
    """Keys as a first import gives them: consecutive in ``enterprise_id`` order, from ``first``."""
    ids = sorted(world["enterprises"]["enterprise_id"])
    key_of = {enterprise: first + i for i, enterprise in enumerate(ids)}
    return {name: frame.assign(enterprise_key=frame["enterprise_id"].map(key_of).astype("int32"))
            if "enterprise_id" in frame else frame for name, frame in world.items()}


@pytest.mark.parametrize("stray_key", [10**6, 0])  # beyond every key (ids used instead); below the first key
@pytest.mark.parametrize("keys", ["random", "in id order"])
def test_an_event_with_a_key_of_no_enterprise_is_ignored(keys, stray_key):
    world = random_world(3, drop_optional=False)
    keyed = with_keys(world, 3, dtype="int64") if keys == "random" else in_id_order(world, first=5)
    stray = keyed["inspections"].iloc[[0]].assign(inspection_id="I-stray", enterprise_id="nobody",
                                                  enterprise_key=stray_key)
    built = build_features(dict(keyed, inspections=pd.concat([keyed["inspections"], stray])), AS_OF)
    assert_same_features(built, build_features(world, AS_OF))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_keys_in_id_order_give_the_same_features_as_ids(seed):
    world = random_world(seed, drop_optional=False)
    assert_same_features(build_features(in_id_order(world, first=1), AS_OF), build_features(world, AS_OF))


@pytest.mark.parametrize("shrinkage", [0.0, 1.5])
def test_reference_agrees_for_other_shrinkage(shrinkage):
    for seed in range(5):
        world = random_world(seed, drop_optional=False)
        built = build_features(world, AS_OF, shrinkage_strength=shrinkage)
        assert_same_features(built, Reference(world, shrinkage).frame(AS_OF))


# ---------------------------------------------------------------------------------------------
# Events on or after the as-of date change nothing
# ---------------------------------------------------------------------------------------------

EVENT_TABLES = ("inspections", "hazards", "violations", "accidents", "penalties", "credit_records", "complaints")
FIRST = AS_OF[0]


def unknown_at(frame: pd.DataFrame, table: str, a: pd.Timestamp) -> pd.Series:
    """Rows dated on or after a, or recorded on or after a."""
    return (frame[TABLE_BY_NAME[table].event_date] >= a) | (frame["recorded_on"] >= a)


@st.composite
def unknown_dates(draw, a: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(event date, recorded_on) of an event not known before a: dated on/after a, or recorded on/after it."""
    if draw(st.booleans()):
        day = a + draw(st.integers(0, 800)) * DAY
        return day, day + draw(st.sampled_from([0, 0, 1, 100])) * DAY
    return a - draw(st.integers(1, 1200)) * DAY, a + draw(st.integers(0, 400)) * DAY


@st.composite
def mutations(draw, world: dict[str, pd.DataFrame], donor: dict[str, pd.DataFrame], a: pd.Timestamp):
    """Apply 1-4 random additions, removals and changes of events unknown at a (and of facts learnt after a)."""
    world = {name: frame.copy() for name, frame in world.items()}
    ids = world["enterprises"]["enterprise_id"].tolist()
    for step in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from([t for t in EVENT_TABLES if t in world]))
        spec = TABLE_BY_NAME[table]
        frame = world[table]
        unknown = np.flatnonzero(unknown_at(frame, table, a).to_numpy())
        operation = draw(st.sampled_from(["add", "remove", "change", "learn_later"]))
        if operation == "remove" and len(unknown):
            world[table] = frame.drop(index=frame.index[draw(st.sampled_from(list(unknown)))]).reset_index(drop=True)
        elif operation in ("add", "change") and len(donor[table]):
            row = donor[table].iloc[[draw(st.integers(0, len(donor[table]) - 1))]].copy()
            day, recorded = draw(unknown_dates(a))
            row[spec.event_date] = day
            row["recorded_on"] = recorded
            row["enterprise_id"] = draw(st.sampled_from(ids))
            if operation == "change" and len(unknown):
                position = draw(st.sampled_from(list(unknown)))
                row[spec.key] = frame[spec.key].iloc[position]
                frame = frame.drop(index=frame.index[position])
            else:
                row[spec.key] = f"new{step}"
            world[table] = pd.concat([frame, row], ignore_index=True)
        elif operation == "learn_later" and table in ("hazards", "credit_records"):
            # A rectification (or an end of validity) dated on or after a is not known before a either.
            column = "rectified_on" if table == "hazards" else "valid_to"
            late = np.flatnonzero((frame[column].isna() | (frame[column] >= a)).to_numpy())
            if len(late):
                position = draw(st.sampled_from(list(late)))
                new = draw(st.one_of(st.none(), st.integers(0, 500).map(lambda k: a + k * DAY)))
                frame.loc[frame.index[position], column] = pd.NaT if new is None else new
    return world


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_events_unknown_at_the_as_of_date_never_change_features(seed, data):
    world = random_world(seed)
    donor = random_world(seed + 1, drop_optional=False)
    dates = [FIRST, AS_OF[1]]  # a later date too: its rows may change, those of FIRST may not
    before = build_features(world, dates).xs(FIRST, level="as_of", drop_level=False)
    mutated = data.draw(mutations(world, donor, FIRST))
    after = build_features(mutated, dates).xs(FIRST, level="as_of", drop_level=False)
    pd.testing.assert_frame_equal(before, after)


def test_the_property_test_can_fail():
    """Sanity check of the harness: an event known just before the date does change features."""
    world = random_world(3, drop_optional=False)
    before = build_features(world, [FIRST])
    enterprise = before.index[0][0]
    row = world["hazards"].iloc[[0]].copy()
    row["hazard_id"], row["enterprise_id"], row["level"] = "extra", enterprise, "major"
    row["found_on"] = row["recorded_on"] = FIRST - DAY
    after = build_features(dict(world, hazards=pd.concat([world["hazards"], row], ignore_index=True)), [FIRST])
    assert after.loc[(enterprise, FIRST), "major_hazards_90d"] == before.loc[(enterprise, FIRST), "major_hazards_90d"] + 1


@pytest.mark.parametrize("seed", range(4))
def test_per_enterprise_features_can_be_built_partition_by_partition(seed):
    """Stage-1 aggregations read only the enterprise's own events (what Dask partitions by enterprise need)."""
    from features.build import AGGREGATIONS

    world = random_world(seed, drop_optional=False)
    full = build_features(world, AS_OF)
    own = [f.name for f in CATALOG if AGGREGATIONS[f.aggregation].stage == "enterprise"]
    ids = world["enterprises"]["enterprise_id"]
    parts = []
    for part in (ids.iloc[::2], ids.iloc[1::2]):
        subset = {name: frame[frame["enterprise_id"].isin(part)] if "enterprise_id" in frame else frame
                  for name, frame in world.items()}
        parts.append(build_features(subset, AS_OF)[own])
    pd.testing.assert_frame_equal(pd.concat(parts).sort_index(), full[own])
