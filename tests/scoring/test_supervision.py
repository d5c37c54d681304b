"""Supervision limits: caps by cap group and class, visits used, spacing, quiet period, floor, follow-ups."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pandas as pd
import pytest

from features.errors import DataError
from scoring.domain.supervision import counted_visits, supervision_limits

from scoring_frames import enterprises, frame

AS_OF = pd.Timestamp("2025-03-10")  # inside the quiet period (days 1–15)


def tiers(rows) -> pd.DataFrame:
    """(enterprise_id, final_tier[, veto]) rows."""
    rows = [r if len(r) == 3 else (*r, False) for r in rows]
    return pd.DataFrame(rows, columns=["enterprise_id", "final_tier", "veto"])


def limits_for(policy, tier_rows, tables, as_of=AS_OF, supervision=None):
    result = supervision_limits(tiers(tier_rows), tables, as_of=as_of, policy=supervision or policy.supervision)
    return result.set_index("enterprise_id")


def test_caps_by_cap_group_and_class(policy):
    ids = ["C1", "C2", "C3", "C4", "C5", "H1", "H2", "H3", "H4", "N1", "N2", "N3", "N4", "O1", "O2", "O3", "O4"]
    sectors = ["coal_mine"] * 5 + ["hazchem", "hazchem", "metal_smelting", "fireworks"] + ["noncoal_mine"] * 4 + [
        "commerce", "machinery", "construction", "gas"]
    credit = frame(
        "credit_records",
        record_id=[f"r{i}" for i in range(8)],
        enterprise_id=["C1", "C2", "C4", "C5", "H1", "H1", "H3", "H4"],
        kind=["credit_grade"] * 4 + ["standardization"] * 4,
        value=["A2", "D", "A1", "A1", "3", "1", "3", "2"],
        valid_from=["2024-01-01", "2024-01-01", "2023-01-01", "2024-01-01", "2020-01-01", "2024-06-01",
                    "2024-01-01", "2024-01-01"],
        valid_to=[None, None, "2025-01-01", None, None, None, None, None],
        recorded_on=[None, None, None, "2025-03-10", None, None, None, None],
    )
    rows = [("C1", "general"), ("C2", "high"), ("C3", "general"), ("C4", "high"), ("C5", "low"),
            ("H1", "high"), ("H2", "low"), ("H3", "general"), ("H4", "general"),
            ("N1", "low"), ("N2", "general"), ("N3", "high"), ("N4", "high", True),
            ("O1", "low"), ("O2", "general"), ("O3", "high"), ("O4", "high", True)]
    limits = limits_for(policy, rows, {"enterprises": enterprises(ids, sectors), "credit_records": credit})
    expected = {
        "C1": ("A", 2),   # credit grade A2 -> A
        "C2": ("D", 4),   # D
        "C3": ("B", 4),   # no grade: general -> B
        "C4": ("C", 6),   # grade expired: high -> C
        "C5": ("A", 2),   # grade recorded only on the as-of date: low -> A (tier_class)
        "H1": ("1", 2),   # latest standardization record: level 1
        "H2": ("none", 12),
        "H3": ("3", 8),
        "H4": ("2", 4),
        "N1": ("low", 1), "N2": ("general", 1), "N3": ("larger", 2), "N4": ("major", 4),
        "O1": ("low", 1), "O2": ("general", 2), "O3": ("larger", 4), "O4": ("major", 6),
    }
    got = {e: (limits.at[e, "cap_class"], int(limits.at[e, "yearly_cap"])) for e in ids}
    assert got == expected
    assert limits.at["C1", "class_basis"] == "credit grade A2 信用等级"
    assert limits.at["C3", "class_basis"] == "no record: from tier general 按风险等级"
    assert limits.at["N4", "class_basis"] == "no record: from tier high_veto 按风险等级"
    assert list(limits.loc[["O1", "O2", "O3"], "mode"]) == ["commitment", "routine", "focused"]
    assert list(limits.loc[["O1", "O2", "O3"], "mode_zh"]) == ["承诺式监管", "常态化监管", "重点式监管"]
    assert (limits["min_inspectors"] == 2).all() and (limits["max_inspectors"] == 3).all()


def test_visits_used_count_joint_visits_once_and_skip_exempt_kinds(policy):
    inspections = frame(
        "inspections",
        inspection_id=[f"i{i}" for i in range(7)],
        enterprise_id="V",
        inspected_on=["2024-12-20", "2025-01-10", "2025-01-10", "2025-02-03", "2025-02-20", "2025-02-25",
                      "2025-03-05"],
        department=["应急", "应急", "住建", "应急", "应急", "应急", "应急"],
        kind=["routine", "routine", "joint", "complaint", "follow_up", "accident_investigation", "random"],
        recorded_on=[None, None, None, None, None, None, "2025-03-12"],  # the last one is not known yet
    )
    visits = counted_visits(inspections, as_of=AS_OF, exempt_kinds=policy.supervision.exempt_kinds)
    assert visits.to_dict("list") == {
        "enterprise_id": ["V", "V"],
        "visited_on": [pd.Timestamp("2024-12-20"), pd.Timestamp("2025-01-10")],
        "departments": ["应急", "住建;应急"],
    }
    limits = limits_for(policy, [("V", "general")], {"enterprises": enterprises(["V"]), "inspections": inspections})
    assert limits.at["V", "visits_used"] == 1           # last year's visit and exempt visits do not count
    assert limits.at["V", "visits_left"] == 1
    assert limits.at["V", "last_visit_on"] == pd.Timestamp("2025-01-10")
    # spacing is long past; the as-of date is in the quiet period of a general enterprise: from the 16th
    assert limits.at["V", "next_routine_on"] == pd.Timestamp("2025-03-16")


@pytest.mark.parametrize(
    ("tier", "sector", "visits", "next_routine", "floor_due"),
    [
        # general, cap 2 used up: next year, after the quiet days of January
        ("general", "commerce", ["2025-01-05", "2025-02-25"], "2026-01-16", None),
        # high (other -> larger, cap 4): 30 days after the last visit, no quiet period; floor 6 months on
        ("high", "commerce", ["2025-03-01"], "2025-03-31", "2025-09-01"),
        # high never visited: now, and its floor visit is due now
        ("high", "commerce", [], "2025-03-10", "2025-03-10"),
        # low hazchem without a standardization level (cap 12): spacing ends on the 27th, outside the quiet days
        ("low", "hazchem", ["2024-06-01", "2025-02-25"], "2025-03-27", None),
        # low commerce (cap 1) already visited this year: next year
        ("low", "commerce", ["2024-06-01", "2025-02-25"], "2026-01-16", None),
        # high non-coal (larger, cap 2) used up: 1 January, no quiet period for high
        ("high", "noncoal_mine", ["2025-01-05", "2025-02-25"], "2026-01-01", "2025-08-25"),
        # general, spacing ends on the 12th, inside the quiet days: the 16th
        ("general", "commerce", ["2025-02-10"], "2025-03-16", None),
    ],
)
def test_next_routine_date_respects_cap_spacing_and_quiet_period(policy, tier, sector, visits, next_routine,
                                                                 floor_due):
    inspections = frame("inspections", inspection_id=[f"i{i}" for i in range(len(visits))] or ["x"],
                        enterprise_id="E", inspected_on=visits or ["2020-01-01"], kind="routine",
                        department="应急")
    limits = limits_for(policy, [("E", tier)], {"enterprises": enterprises(["E"], sector),
                                                 "inspections": inspections if visits else inspections.iloc[:0]})
    assert limits.at["E", "next_routine_on"] == pd.Timestamp(next_routine)
    assert limits.at["E", "quiet_period"] == (tier != "high")
    expected_floor = pd.Timestamp(floor_due) if floor_due else pd.NaT
    assert limits.at["E", "floor_due_on"] is expected_floor or limits.at["E", "floor_due_on"] == expected_floor


def test_a_cap_of_zero_means_no_counted_visit(policy):
    caps = dict(policy.supervision.caps)
    caps["other"] = replace(caps["other"], visits=MappingProxyType({**caps["other"].visits, "low": 0}))
    supervision = replace(policy.supervision, caps=MappingProxyType(caps))
    limits = limits_for(policy, [("E", "low")], {"enterprises": enterprises(["E"])}, supervision=supervision)
    assert limits.at["E", "yearly_cap"] == 0 and pd.isna(limits.at["E", "next_routine_on"])


def test_major_hazard_follow_ups(policy):
    ids = ["F1", "F2", "F3", "F4"]
    inspections = frame("inspections", inspection_id=["I1"], enterprise_id="F1", inspected_on="2025-01-20",
                        department="住建", kind="routine")
    hazards = frame(
        "hazards", hazard_id=["h1", "h2", "h3", "h4", "h5"], enterprise_id=["F1", "F1", "F2", "F3", "F4"],
        inspection_id=["I1", "I1", None, None, None], found_on="2025-01-20",
        level=["major", "major", "major", "major", "general"],
        rectify_by=["2025-03-05", "2025-04-10", "2025-02-20", "2025-04-10", "2025-02-01"],
        rectified_on=[None, None, "2025-03-01", None, None],
    )
    limits = limits_for(policy, [(e, "general") for e in ids],
                        {"enterprises": enterprises(ids), "inspections": inspections, "hazards": hazards})
    assert limits.at["F1", "open_major_hazards"] == 2 and limits.at["F1", "overdue_major_hazards"] == 1
    assert limits.at["F1", "followup_due_on"] == AS_OF  # overdue: now
    assert limits.at["F1", "followup_department"] == "住建"
    assert pd.isna(limits.at["F2", "followup_due_on"])  # rectified
    assert limits.at["F3", "followup_due_on"] == pd.Timestamp("2025-04-11")  # the day after its deadline
    assert pd.isna(limits.at["F3", "followup_department"])  # self-reported
    assert pd.isna(limits.at["F4", "followup_due_on"])  # general hazards need no follow-up here


def test_bad_tiers_are_refused(policy):
    with pytest.raises(DataError, match=r"enterprise 'X' is not in enterprises"):
        limits_for(policy, [("X", "low")], {"enterprises": enterprises(["E"])})
    with pytest.raises(DataError, match=r"final_tier must be one of low, general, high, got 'medium'"):
        limits_for(policy, [("E", "medium")], {"enterprises": enterprises(["E"])})
