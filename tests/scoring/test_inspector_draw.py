"""The inspector draw (scoring.domain.planning.draw_inspectors): the second random of 双随机.

Property tests on random rosters, plans, histories and conflicts: the draw never breaks 回避, certification,
service dates, the monthly workload or the inspectors-per-visit limits; the same seed gives the same draw; an
auditor re-drawing each visit from its rebuilt pool gets the recorded inspectors. Plus hand-made cases.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.errors import PolicyError
from scoring.domain.planning import (
    InspectorDrawPolicy,
    choose_team,
    draw_inspectors,
    eligible_inspectors,
    pool_digest,
    redraw_team,
)
from scoring.domain.policy import load_policy, policy_from_mapping, read_policy_mapping

PERIOD = "2025-03"
START, END = pd.Timestamp("2025-03-01"), pd.Timestamp("2025-03-31")
DEPARTMENTS = ("应急", "住建")


@st.composite
def worlds(draw):
    n = draw(st.integers(2, 14))
    roster = pd.DataFrame({
        "inspector_id": [f"J{i:03d}" for i in range(n)],
        "name": [f"人{i}" for i in range(n)],
        "department": [draw(st.sampled_from(DEPARTMENTS)) for _ in range(n)],
        "active_from": [draw(st.sampled_from([None, "2020-01-01", "2025-03-01", "2025-03-10"])) for _ in range(n)],
        "active_to": [draw(st.sampled_from([None, None, "2025-03-31", "2025-03-20", "2024-12-31"])) for _ in range(n)],
        "certified": [draw(st.sampled_from([True, True, True, False, None])) for _ in range(n)],
    })
    roster["active_from"] = pd.to_datetime(roster["active_from"])
    roster["active_to"] = pd.to_datetime(roster["active_to"])
    roster["certified"] = roster["certified"].astype("boolean")
    n_visits = draw(st.integers(0, 12))
    items = pd.DataFrame({
        "priority": range(1, n_visits + 1),
        "enterprise_id": [f"E{draw(st.integers(0, 6))}" for _ in range(n_visits)],
        "departments": [draw(st.sampled_from(["应急", "住建", "应急;住建"])) for _ in range(n_visits)],
        "n_inspectors": [draw(st.integers(2, 3)) for _ in range(n_visits)],
        "kind": [draw(st.sampled_from(["focused", "random", "routine"])) for _ in range(n_visits)],
    })
    history = pd.DataFrame({
        "enterprise_id": [f"E{draw(st.integers(0, 6))}" for _ in range(draw(st.integers(0, 10)))],
    })
    history["inspector_id"] = [f"J{draw(st.integers(0, n - 1)):03d}" for _ in range(len(history))]
    history["inspected_on"] = pd.Series([START - pd.Timedelta(days=draw(st.sampled_from([1, 200, 365, 366, 800])))
                                         for _ in range(len(history))], dtype="datetime64[ns]")
    conflicts = pd.DataFrame({"inspector_id": [f"J{draw(st.integers(0, n - 1)):03d}"
                                               for _ in range(draw(st.integers(0, 3)))]})
    conflicts["enterprise_id"] = [f"E{draw(st.integers(0, 6))}" for _ in range(len(conflicts))]
    policy = InspectorDrawPolicy(avoid_repeat_days=draw(st.sampled_from([0, 30, 365])),
                                 monthly_workload=draw(st.integers(1, 4)),
                                 staff_focused_by=draw(st.sampled_from(["random", "expected_finds"])))
    seed = draw(st.integers(0, 2**31 - 1))
    stringency = {f"J{i:03d}": draw(st.floats(0.2, 3.0)) for i in range(n) if draw(st.booleans())}
    return roster, items, history, conflicts, policy, seed, stringency


def run(world):
    roster, items, history, conflicts, policy, seed, stringency = world
    return draw_inspectors(items, roster, period=PERIOD, seed=seed, policy=policy, history=history,
                           conflicts=conflicts, stringency=stringency)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_the_draw_never_breaks_a_rule(world):
    roster, items, history, conflicts, policy, seed, stringency = world
    result = run(world)
    teams = result.teams
    assert list(teams["priority"]) == sorted(items["priority"])  # every visit: staffed or said why not
    by_id = roster.set_index("inspector_id")
    load: dict[str, int] = {}
    for visit in teams.itertuples(index=False):
        team = [i for i in visit.inspectors.split(";") if i]
        if visit.unstaffed_reason:
            assert team == []
            continue
        assert len(team) == visit.n_inspectors and len(set(team)) == len(team)  # per-visit limits
        departments = visit.departments.split(";")
        assert set(by_id.loc[team, "department"]) <= set(departments)
        assert set(departments) <= set(by_id.loc[team, "department"])  # each department sends someone
        for inspector in team:
            row = by_id.loc[inspector]
            assert row["certified"] is True or row["certified"] == True  # noqa: E712 (执法证)
            assert pd.isna(row["active_from"]) or row["active_from"] <= START
            assert pd.isna(row["active_to"]) or row["active_to"] >= END
            recent = history[(history["enterprise_id"] == visit.enterprise_id)
                             & (history["inspector_id"] == inspector)
                             & (history["inspected_on"] >= START - pd.Timedelta(days=policy.avoid_repeat_days))]
            assert recent.empty, (visit.enterprise_id, inspector)  # 回避: recent visit
            assert not ((conflicts["inspector_id"] == inspector)
                        & (conflicts["enterprise_id"] == visit.enterprise_id)).any()  # 回避: declared conflict
            load[inspector] = load.get(inspector, 0) + 1
    assert all(n <= policy.monthly_workload for n in load.values())
    assert dict(zip(result.workload["inspector_id"], result.workload["visits"])) == load


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world=worlds())
def test_same_seed_same_draw_and_an_auditor_redraws_each_visit_from_its_pool(world):
    first, again = run(world), run(world)
    pd.testing.assert_frame_equal(first.teams, again.teams)
    for visit in first.teams.itertuples(index=False):
        pools = first.pools[visit.priority]
        assert pool_digest([f"{d}|{i}" for d, pool in pools.items() for i in pool]) == visit.pool_digest
        if not visit.unstaffed_reason:
            kind = world[1].set_index("priority").at[visit.priority, "kind"]
            if kind == "focused" and world[4].staff_focused_by == "expected_finds":  # chosen, not drawn
                again = choose_team(pools, world[6], k=visit.n_inspectors)
            else:  # drawn: random-stage visits always
                again = redraw_team(pools, seed=visit.seed, period=PERIOD, enterprise_id=visit.enterprise_id,
                                    k=visit.n_inspectors)
            assert ";".join(again) == visit.inspectors


def roster(*rows):
    frame = pd.DataFrame(rows, columns=["inspector_id", "name", "department", "active_from", "active_to",
                                        "certified"])
    frame["active_from"] = pd.to_datetime(frame["active_from"])
    frame["active_to"] = pd.to_datetime(frame["active_to"])
    frame["certified"] = frame["certified"].astype("boolean")
    return frame


STAFF = roster(
    ("J1", "张三", "应急", "2020-01-01", None, True),
    ("J2", "李四", "应急", "2020-01-01", None, True),
    ("J3", "王五", "应急", "2020-01-01", None, True),
    ("J4", "赵六", "应急", "2020-01-01", "2025-03-15", True),  # leaves mid-month
    ("J5", "钱七", "应急", "2020-01-01", None, None),  # certificate unknown
    ("J6", "孙八", "住建", "2025-03-02", None, True),  # starts after the 1st
    ("J7", "周九", "住建", "2019-01-01", None, True),
)


def test_only_inspectors_serving_the_whole_month_with_a_certificate_are_eligible():
    assert list(eligible_inspectors(STAFF, START, END)["inspector_id"]) == ["J1", "J2", "J3", "J7"]


def test_a_joint_visit_gets_one_of_each_department_and_names_them():
    items = pd.DataFrame({"priority": [1], "enterprise_id": ["E1"], "departments": ["应急;住建"], "n_inspectors": [3]})
    teams = draw_inspectors(items, STAFF, period=PERIOD, seed=7, policy=InspectorDrawPolicy()).teams
    team = teams.loc[0, "inspectors"].split(";")
    assert "J7" in team and len(set(team) & {"J1", "J2", "J3"}) == 2
    names = dict(zip(STAFF["inspector_id"], STAFF["name"]))
    assert teams.loc[0, "inspector_names"] == ";".join(names[i] for i in team)


def test_avoidance_and_workload_leave_a_visit_unstaffed_rather_than_bend():
    items = pd.DataFrame({"priority": [1, 2, 3], "enterprise_id": ["E1", "E2", "E3"],
                          "departments": ["应急"] * 3, "n_inspectors": [2, 2, 2]})
    history = pd.DataFrame({"enterprise_id": ["E3", "E3"], "inspector_id": ["J1", "J2"],
                            "inspected_on": [START - pd.Timedelta(days=10), START - pd.Timedelta(days=364)]})
    conflicts = pd.DataFrame({"inspector_id": ["J3"], "enterprise_id": ["E2"]})
    teams = draw_inspectors(items, STAFF, period=PERIOD, seed=1, history=history, conflicts=conflicts,
                            policy=InspectorDrawPolicy(avoid_repeat_days=365, monthly_workload=2)).teams
    assert set(teams.loc[1, "inspectors"].split(";")) == {"J1", "J2"}  # E2: J3 declared a conflict
    assert teams.loc[2, "inspectors"] == "" and "可选派执法人员不足" in teams.loc[2, "unstaffed_reason"]
    loose = draw_inspectors(items, STAFF, period=PERIOD, seed=1, history=history, conflicts=conflicts,
                            policy=InspectorDrawPolicy(avoid_repeat_days=5, monthly_workload=3)).teams
    assert loose["unstaffed_reason"].eq("").all()  # visits 10 and 364 days ago are outside a 5-day 回避


def test_another_seed_draws_other_teams():
    items = pd.DataFrame({"priority": range(1, 21), "enterprise_id": [f"E{i}" for i in range(20)],
                          "departments": ["应急"] * 20, "n_inspectors": [2] * 20})
    policy = InspectorDrawPolicy(monthly_workload=20)
    one = draw_inspectors(items, STAFF, period=PERIOD, seed=1, policy=policy).teams["inspectors"]
    two = draw_inspectors(items, STAFF, period=PERIOD, seed=2, policy=policy).teams["inspectors"]
    assert not one.equals(two)


def test_the_policy_section_is_validated():
    mapping, _ = read_policy_mapping()
    assert load_policy().planning.inspectors == InspectorDrawPolicy(365, 16)
    bad = {**mapping, "planning": {**mapping["planning"], "inspectors": {"monthly_workload": 0}}}
    with pytest.raises(PolicyError, match=r"planning\.inspectors\.monthly_workload: expected a whole number"):
        policy_from_mapping(bad)
    bad = {**mapping, "planning": {**mapping["planning"], "inspectors": {"avoid_days": 3}}}
    with pytest.raises(PolicyError, match=r"planning\.inspectors\.avoid_days: unknown key"):
        policy_from_mapping(bad)


def test_staffed_by_expected_finds_a_focused_visit_gets_the_most_stringent_eligible_team_and_a_random_one_not():
    items = pd.DataFrame({"priority": [1, 2], "enterprise_id": ["E1", "E2"], "departments": ["应急", "应急"],
                          "n_inspectors": [2, 2], "kind": ["focused", "random"]})
    stringency = {"J1": 0.5, "J2": 2.5, "J3": 1.7}
    policy = InspectorDrawPolicy(staff_focused_by="expected_finds")
    history = pd.DataFrame({"enterprise_id": ["E1"], "inspector_id": ["J2"],
                            "inspected_on": [START - pd.Timedelta(days=30)]})  # 回避 holds for the chosen team too
    teams = draw_inspectors(items, STAFF, period=PERIOD, seed=3, policy=policy, history=history,
                            stringency=stringency).teams.set_index("priority")
    assert teams.at[1, "inspectors"] == "J3;J1"
    drawn = draw_inspectors(items, STAFF, period=PERIOD, seed=3, policy=InspectorDrawPolicy(), history=history,
                            stringency=stringency).teams.set_index("priority")
    assert teams.at[2, "inspectors"] == drawn.at[2, "inspectors"]  # the random-stage visit: the same draw
    unknown = choose_team({"应急": ("J1", "J9")}, {"J1": 0.8}, k=2)  # no known stringency counts 1
    assert unknown == ["J9", "J1"]
    with pytest.raises(PolicyError, match="staff_focused_by: expected one of random, expected_finds"):
        mapping, source = read_policy_mapping(None)
        mapping["planning"]["inspectors"]["staff_focused_by"] = "seniority"
        policy_from_mapping(mapping, source)
