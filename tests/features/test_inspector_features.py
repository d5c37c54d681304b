"""Inspector stringency and inspector-adjusted finding rates (features.build, DESIGN.md §5), hand-worked.

The reference implementation and the leakage property test in test_point_in_time.py cover them on random worlds;
here: a world small enough to work out on paper, absence, and the partitioned build (sums added up).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import build_features
from features.build import GroupTotals, cross_enterprise_totals
from features.catalog import CATALOG, get_feature
from feature_tables import AS_OF, random_world, tables

D = pd.Timestamp
AS = D("2024-01-01")
NAMES = ["inspector_stringency_1095d", "hazards_per_inspection_inspector_adjusted_1095d",
         "major_hazards_per_inspection_inspector_adjusted_1095d"]
CATALOG_INSPECTORS = tuple(get_feature(n) for n in NAMES)


def world(**changes) -> dict[str, pd.DataFrame]:
    """hazchem E1, E2 and machinery E3. Finds: I1 (A, B) 4 of which 1 major; I2 (A) 2; I3 (C) 0; I4 (C) 1.
    μ(hazchem) = 6/3 = 2, μ(machinery) = 1; majors: μ(hazchem) = 1/3, μ(machinery) = 0."""
    rows = dict(
        enterprises=[{"enterprise_id": "E1", "sector": "hazchem"}, {"enterprise_id": "E2", "sector": "hazchem"},
                     {"enterprise_id": "E3", "sector": "machinery"}],
        inspections=[
            {"inspection_id": "I1", "enterprise_id": "E1", "inspected_on": D("2023-03-01")},
            {"inspection_id": "I2", "enterprise_id": "E2", "inspected_on": D("2023-04-01"), "inspectors": "A"},
            {"inspection_id": "I3", "enterprise_id": "E2", "inspected_on": D("2023-05-01")},
            {"inspection_id": "I4", "enterprise_id": "E3", "inspected_on": D("2023-06-01"), "inspectors": "C"},
        ],
        inspection_inspectors=[{"inspection_id": "I1", "inspector_id": "A"},
                               {"inspection_id": "I1", "inspector_id": "B"},
                               {"inspection_id": "I3", "inspector_id": "C"}],
        hazards=[{"hazard_id": f"H{i}", "enterprise_id": e, "inspection_id": v, "found_on": day, "level": level}
                 for i, (e, v, day, level) in enumerate([
                     ("E1", "I1", D("2023-03-01"), "major"), ("E1", "I1", D("2023-03-01"), "general"),
                     ("E1", "I1", D("2023-03-01"), "general"), ("E1", "I1", D("2023-03-01"), "general"),
                     ("E2", "I2", D("2023-04-01"), "general"), ("E2", "I2", D("2023-04-01"), "general"),
                     ("E3", "I4", D("2023-06-01"), "general"),
                     ("E2", None, D("2023-04-01"), "general"),  # self-reported: no visit, not counted
                 ])],
    )
    rows.update(changes)
    return tables(**rows)


def features(data, shrinkage: float = 0.0) -> pd.DataFrame:
    return build_features(data, [AS], catalog=CATALOG_INSPECTORS, shrinkage_strength=shrinkage).xs(AS, level="as_of")


def test_stringency_and_adjusted_rates_worked_by_hand():
    got = features(world())
    # Stringency (m = 0): A found 6 where 2 + 2 were expected: 1.5; B 4 for 2: 2.0; C 0 + 1 for 2 + 1: 1/3.
    expected = pd.DataFrame({
        NAMES[0]: [1.75, (1.5 + 1 / 3) / 2, 1 / 3],
        NAMES[1]: [(4 / 2) / 1.75, (2 / 2) / (1.5 + 1 / 3), (1 / 1) / (1 / 3)],
        NAMES[2]: [(1 / (1 / 3)) / 1.75, 0 / (1.5 + 1 / 3), np.nan],  # machinery's visits found no major hazard
    }, index=pd.Index(["E1", "E2", "E3"], name="enterprise_id"))
    pd.testing.assert_frame_equal(got, expected, rtol=1e-12)


def test_stringency_is_shrunk_toward_one_by_pseudo_visits():
    got = features(world(), shrinkage=5.0)
    # A: 2 visits, F 6, E 4: pseudo-visits 5 × 4/2 = 10 -> 16/14. C: F 1, E 3, 2 visits: 7.5 -> 8.5/10.5.
    s_a, s_c = 16 / 14, 8.5 / 10.5
    assert got.loc["E2", NAMES[0]] == pytest.approx((s_a + s_c) / 2, rel=1e-12)
    assert got.loc["E3", NAMES[1]] == pytest.approx((1 / 1 + 5) / (s_c + 5), rel=1e-12)


def test_a_lenient_team_makes_few_finds_count_for_more():
    """The same finds weigh more where the teams are lenient: E2's two finds among lenient C's visit beat E1's
    ratio of finds to expectation once its strict team is accounted for."""
    got = features(world())
    raw_per_visit = {"E1": 4 / 1, "E2": 2 / 2}
    assert raw_per_visit["E1"] > raw_per_visit["E2"]
    assert got.loc["E3", NAMES[1]] > got.loc["E1", NAMES[1]]  # E3: one find by the most lenient inspector


def test_visits_and_hazards_not_known_before_the_date_are_left_out():
    late = world()
    late["inspections"].loc[late["inspections"]["inspection_id"] == "I3", "recorded_on"] = AS  # known on the day
    late["hazards"].loc[late["hazards"]["hazard_id"] == "H6", "recorded_on"] = AS + pd.Timedelta(days=3)
    got = features(late)
    # Without I3 and H6: μ(hazchem) = 6/2 = 3, μ(machinery) = 0 (I4 found nothing known); A: 6/(3+3) = 1; B 4/3.
    assert got.loc["E2", NAMES[0]] == pytest.approx(1.0)
    assert got.loc["E1", NAMES[0]] == pytest.approx((1 + 4 / 3) / 2)
    assert np.isnan(got.loc["E3", NAMES[1]])  # the sector's visits found nothing yet


def test_absent_without_teams_or_without_hazards_not_zero():
    no_teams = world(inspection_inspectors=[])
    no_teams = {k: v for k, v in no_teams.items() if k != "inspection_inspectors"}
    no_teams["inspections"]["inspectors"] = pd.Series(pd.NA, index=no_teams["inspections"].index, dtype="str")
    assert features(no_teams).isna().all().all()
    no_hazards = {k: v for k, v in world().items() if k != "hazards"}
    assert features(no_hazards).isna().all().all()
    # An enterprise without a team-recorded visit in the window: absent too (nothing is known of who came).
    only_e1 = world()
    only_e1["inspections"]["inspectors"] = pd.Series(pd.NA, index=only_e1["inspections"].index, dtype="str")
    only_e1["inspection_inspectors"] = only_e1["inspection_inspectors"].iloc[:2]
    got = features(only_e1)
    assert got.loc["E1"].notna().all() and got.loc[["E2", "E3"]].isna().all().all()


def test_the_catalog_lists_them_with_a_direction_and_both_languages():
    by_name = {f.name: f for f in CATALOG}
    assert set(NAMES) <= set(by_name)
    assert [by_name[n].direction for n in NAMES] == [0, 1, 1]
    assert all(by_name[n].description_zh and by_name[n].description_en for n in NAMES)


@pytest.mark.parametrize("seed", range(6))
def test_a_partitioned_build_with_added_sums_equals_the_whole(seed):
    """What the Dask build does: each partition's sums (per sector, inspector, inspector × sector) added up and
    handed to every partition give the rows of one build over all enterprises."""
    data = random_world(seed, drop_optional=False)
    full = build_features(data, AS_OF)
    ids = data["enterprises"]["enterprise_id"]
    parts = [{name: frame[frame["enterprise_id"].isin(part)] if "enterprise_id" in frame else frame
              for name, frame in data.items()} for part in (ids.iloc[::2], ids.iloc[1::2], ids.iloc[:0])]
    totals = GroupTotals.combine([cross_enterprise_totals(part, AS_OF) for part in parts])
    built = pd.concat([build_features(part, AS_OF, totals=totals) for part in parts[:2]]).sort_index()
    pd.testing.assert_frame_equal(built[NAMES], full[NAMES], rtol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_who_made_a_visit_unknown_at_the_date_never_changes_features(seed):
    """The leakage rule for the teams: links of an inspection not known before the date (dated or recorded on or
    after it) may be added, removed or changed; the features as of the date stay the same. A changed team of a
    known visit does change them (the test can fail)."""
    data = random_world(seed, drop_optional=False)
    first = AS_OF[0]
    before = build_features(data, [first])
    inspections = data["inspections"]
    unknown = inspections[(inspections["inspected_on"] >= first) | (inspections["recorded_on"] >= first)]
    links = data.get("inspection_inspectors")
    extra = pd.DataFrame({"inspection_id": unknown["inspection_id"].to_numpy(), "inspector_id": "P9"}, dtype="str")
    kept = links[~links["inspection_id"].isin(unknown["inspection_id"])] if links is not None else extra.iloc[:0]
    mutated = dict(data, inspection_inspectors=pd.concat([kept, extra], ignore_index=True))
    listed = inspections["inspectors"].where(~inspections["inspection_id"].isin(unknown["inspection_id"]), "P8;P9")
    mutated["inspections"] = inspections.assign(inspectors=listed.astype("str"))
    pd.testing.assert_frame_equal(build_features(mutated, [first])[NAMES], before[NAMES])

    known = inspections[~inspections["inspection_id"].isin(unknown["inspection_id"])]["inspection_id"]
    if before[NAMES].notna().any().any():  # some known visit with a team counts: give every known visit P7 too
        relabelled = dict(mutated, inspection_inspectors=pd.concat([mutated["inspection_inspectors"], pd.DataFrame(
            {"inspection_id": known.to_numpy(), "inspector_id": "P7"}, dtype="str")], ignore_index=True))
        assert not build_features(relabelled, [first])[NAMES].equals(before[NAMES])
