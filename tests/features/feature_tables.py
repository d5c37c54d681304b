"""Test helpers for the feature and label tests: canonical tables from rows, and small random worlds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import (
    CREDIT_GRADES,
    INSPECTION_KINDS,
    TABLE_BY_NAME,
    VIOLATION_KINDS,
)
from features.frames import canonical_frame

D = pd.Timestamp


def table(name: str, rows: list[dict]) -> pd.DataFrame:
    """A canonical frame of contract table ``name`` from a list of row dicts (absent columns: missing)."""
    spec = TABLE_BY_NAME[name]
    frame = pd.DataFrame(rows)
    for column in spec.columns:
        if column.name not in frame.columns:
            frame[column.name] = np.nan if column.kind == "float" else None
    return canonical_frame(name, frame)


def tables(**rows: list[dict]) -> dict[str, pd.DataFrame]:
    """Canonical frames by table name; ``inspections`` defaults to an empty table (it is required)."""
    rows.setdefault("inspections", [])
    return {name: table(name, table_rows) for name, table_rows in rows.items()}


# ---------------------------------------------------------------------------------------------
# Random worlds
# ---------------------------------------------------------------------------------------------

AS_OF = (D("2023-01-01"), D("2023-07-01"))
_FIRST, _LAST = D("2019-01-01"), D("2024-03-01")
_EDGES = (0, 1, 2, 90, 91, 365, 366, 730, 731, 1095, 1096)


def _day(rng: np.random.Generator, as_of: tuple[pd.Timestamp, ...]) -> pd.Timestamp:
    """A random date, often exactly on a window edge of an as-of date (where off-by-ones hide)."""
    if rng.random() < 0.4:
        return as_of[rng.integers(len(as_of))] - pd.Timedelta(days=int(rng.choice(_EDGES)))
    return _FIRST + pd.Timedelta(days=int(rng.integers((_LAST - _FIRST).days)))


def _recorded(rng: np.random.Generator, day: pd.Timestamp) -> pd.Timestamp | None:
    """Mostly the event date (or missing = the event date); sometimes days to a year later."""
    roll = rng.random()
    if roll < 0.5:
        return None
    if roll < 0.75:
        return day
    return day + pd.Timedelta(days=int(rng.choice([1, 2, 30, 100, 400])))


def _maybe(rng: np.random.Generator, value: object, p_missing: float = 0.15) -> object:
    return None if rng.random() < p_missing else value


def random_world(seed: int, *, as_of: tuple[pd.Timestamp, ...] = AS_OF, n_enterprises: int = 8,
                 drop_optional: bool = True) -> dict[str, pd.DataFrame]:
    """A small random world in canonical frames, full of edge cases (dates on window edges, late records,
    missing values, closed and not-yet-founded enterprises); optional tables are sometimes absent."""
    rng = np.random.default_rng(seed)
    ids = [f"E{i}" for i in range(n_enterprises)]

    def enterprise() -> str:
        return ids[rng.integers(n_enterprises)]

    def founded() -> object:
        roll = rng.random()
        if roll < 0.2:
            return None
        if roll < 0.4:
            return as_of[rng.integers(len(as_of))] + pd.Timedelta(days=int(rng.integers(-1, 2)))
        return D("2000-01-01") + pd.Timedelta(days=int(rng.integers(9000)))

    def closed() -> object:
        if rng.random() < 0.75:
            return None
        return as_of[rng.integers(len(as_of))] + pd.Timedelta(days=int(rng.integers(-1, 2)))

    enterprises = [
        {
            "enterprise_id": e,
            "sector": str(rng.choice(["hazchem", "machinery", "coal_mine"])),
            "township": _maybe(rng, str(rng.choice(["T1", "T2"]))),
            "employees": _maybe(rng, int(rng.integers(1, 500))),
            "founded_on": founded(),
            "closed_on": closed(),
            "major_hazard_source": _maybe(rng, bool(rng.random() < 0.5)),
            "dust_explosion": _maybe(rng, bool(rng.random() < 0.5)),
            "ammonia_refrigeration": _maybe(rng, bool(rng.random() < 0.5)),
            "confined_space": _maybe(rng, bool(rng.random() < 0.5)),
            "x_capital": _maybe(rng, float(rng.integers(1, 100))),
            "x_zone": _maybe(rng, str(rng.choice(["north", "south"]))),
        }
        for e in ids
    ]

    def events(n: int, prefix: str, date_column: str, extra) -> list[dict]:
        rows = []
        for i in range(n):
            day = _day(rng, as_of)
            rows.append({f"{prefix}_id": f"{prefix[0].upper()}{i}", "enterprise_id": enterprise(),
                         date_column: day, "recorded_on": _recorded(rng, day), **extra(day)})
        return rows

    def inspection(day):
        takers = _maybe(rng, int(rng.integers(0, 4)))
        passed = None if takers is None else int(rng.integers(0, takers + 1))
        return {"kind": _maybe(rng, str(rng.choice(INSPECTION_KINDS))), "exam_takers": takers, "exam_passed": passed}

    def after(day, p_missing):
        """A later date (deadline, rectification, end of validity): often right at an as-of date."""
        if rng.random() < 0.3:
            edge = as_of[rng.integers(len(as_of))] + pd.Timedelta(days=int(rng.integers(-1, 2)))
            return _maybe(rng, max(day, edge), p_missing)
        return _maybe(rng, day + pd.Timedelta(days=int(rng.choice([0, 1, 10, 60, 200, 400]))), p_missing)

    def hazard(day):
        return {"level": str(rng.choice(["general", "major"], p=[0.6, 0.4])),
                "rectify_by": after(day, 0.2), "rectified_on": after(day, 0.4)}

    def accident(day):
        deaths = int(rng.choice([0, 0, 1, 3, 12]))
        grade = "general" if deaths < 3 else ("larger" if deaths < 10 else "major")
        return {"grade": _maybe(rng, grade, 0.3), "deaths": _maybe(rng, deaths, 0.1),
                "serious_injuries": 0, "direct_loss_yuan": 1000.0,
                "road_traffic": _maybe(rng, bool(rng.random() < 0.4)), "concealed": _maybe(rng, bool(rng.random() < 0.3))}

    def credit(day):
        kind = str(rng.choice(["standardization", "blacklist", "redlist", "credit_grade", "insurance", "commitment"]))
        value = {"standardization": str(rng.choice(["1", "2", "3"])), "credit_grade": str(rng.choice(CREDIT_GRADES))}.get(
            kind, _maybe(rng, str(rng.choice(["true", "false", "yes"])), 0.3))
        return {"kind": kind, "value": value, "valid_to": after(day, 0.4)}

    world = {
        "enterprises": enterprises,
        "inspections": events(int(rng.integers(0, 30)), "inspection", "inspected_on", inspection),
        "hazards": events(int(rng.integers(0, 40)), "hazard", "found_on", hazard),
        "violations": events(int(rng.integers(0, 15)), "violation", "found_on",
                             lambda day: {"kind": _maybe(rng, str(rng.choice(VIOLATION_KINDS)))}),
        "accidents": events(int(rng.integers(0, 15)), "accident", "occurred_on", accident),
        "penalties": events(int(rng.integers(0, 12)), "penalty", "decided_on", lambda day: {
            "amount_yuan": _maybe(rng, float(rng.integers(1, 50)) * 1000), "person_penalized": _maybe(rng, bool(rng.random() < 0.5)),
            "suspension": _maybe(rng, bool(rng.random() < 0.4))}),
        "credit_records": events(int(rng.integers(0, 20)), "record", "valid_from", credit),
        "complaints": events(int(rng.integers(0, 10)), "complaint", "received_on",
                             lambda day: {"substantiated": _maybe(rng, bool(rng.random() < 0.5))}),
    }
    if drop_optional:
        for name in list(world):
            if not TABLE_BY_NAME[name].required_file and rng.random() < 0.15:
                del world[name]
    result = tables(**world)
    result["enterprises"]["x_capital"] = result["enterprises"]["x_capital"].astype("float64")
    result["enterprises"]["x_zone"] = result["enterprises"]["x_zone"].astype("str")
    _add_inspectors(result, np.random.default_rng([seed, 16]), drop_optional)
    return result


INSPECTORS = tuple(f"P{i}" for i in range(6))


def _add_inspectors(world: dict[str, pd.DataFrame], rng: np.random.Generator, drop_optional: bool) -> None:
    """Who inspected (its own random stream: the rest of the world is as without it). Hazards are linked to an
    inspection of their enterprise; teams of 1-3 come as a link table, a list column, or both; sometimes none."""
    if "hazards" in world and len(world["inspections"]):
        hazards = world["hazards"]
        by_enterprise = world["inspections"].groupby("enterprise_id")["inspection_id"].agg(list).to_dict()
        linked = [(str(rng.choice(by_enterprise[e])) if e in by_enterprise and rng.random() < 0.75 else None)
                  for e in hazards["enterprise_id"]]
        hazards["inspection_id"] = pd.Series(linked, index=hazards.index, dtype="str")
    if drop_optional and rng.random() < 0.15:
        return
    shape = str(rng.choice(["links", "list", "both"]))
    links, lists = [], []
    for inspection in world["inspections"]["inspection_id"]:
        team = [] if rng.random() < 0.15 else list(rng.choice(INSPECTORS, int(rng.integers(1, 4)), replace=False))
        as_list = shape == "list" or (shape == "both" and rng.random() < 0.5)
        lists.append(";".join(team) if as_list and team else None)
        if not as_list:
            links += [{"inspection_id": inspection, "inspector_id": i} for i in team]
    if shape != "links":
        world["inspections"]["inspectors"] = pd.Series(lists, index=world["inspections"].index, dtype="str")
    if links:
        world["inspection_inspectors"] = table("inspection_inspectors", links)

