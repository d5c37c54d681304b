"""The synthetic world generator (DESIGN.md §9): contract conformance, invariants, realism, exposure."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from data_samples.world import (
    REALISM_RANGES,
    PopulationParams,
    WorldSimulator,
    accident_grades,
    default_inspection_policy,
    generate_world,
    oracle_risk,
    world_stats,
    write_world,
)
from features.contract import (
    ACCIDENT_GRADES,
    EVENT_TABLES,
    TABLE_BY_NAME,
    accident_grade,
)
from features.errors import DataError
from features.frames import canonical_frame, spec_for
from features.uscc import is_valid_uscc

MID_START = date(2021, 1, 1)
MID_END = pd.Timestamp("2023-12-31")  # last simulated day of the mid-sized world (3 years from MID_START)


@pytest.fixture(scope="module")
def mid_world() -> dict[str, pd.DataFrame]:
    """3000 enterprises × 3 years under today's practice: big enough for the realism ranges (~1 s)."""
    return generate_world(3000, 3, seed=11, start=MID_START)


@pytest.fixture(scope="module")
def mid_stats(mid_world) -> dict[str, float]:
    return world_stats(mid_world, mid_world["truth"])


def _no_visits(sim, rng) -> pd.DataFrame:
    return pd.DataFrame(columns=["enterprise_id", "kind", "department"])


# ---------------------------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    first = generate_world(150, 1, seed=5)
    again = generate_world(150, 1, seed=5)
    other = generate_world(150, 1, seed=6)
    assert first.keys() == again.keys()
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name], obj=f"table {name} with the same seed")
    assert not first["enterprises"]["name"].equals(other["enterprises"]["name"]), "seed 6 should differ from 5"
    assert not first["truth"]["accident_prob"].equals(other["truth"]["accident_prob"])


def test_the_population_does_not_depend_on_the_policy():
    idle, busy = WorldSimulator(200, seed=9), WorldSimulator(200, seed=9)
    rng = np.random.default_rng(0)
    for _ in range(3):
        idle.step(_no_visits(idle, rng))
        busy.step(default_inspection_policy(busy, rng))
    assert len(busy.tables()["inspections"]) > 0 and len(idle.tables()["inspections"]) == 0
    # Closures depend on management, which visits nudge; everything drawn at creation is identical.
    static = [c for c in idle.enterprises.columns if c != "closed_on"]
    pd.testing.assert_frame_equal(idle.enterprises[static], busy.enterprises[static])


# ---------------------------------------------------------------------------------------------
# Realism (DESIGN.md §9 ranges)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REALISM_RANGES))
def test_default_world_lands_in_realism_range(mid_stats, name):
    low, high = REALISM_RANGES[name]
    assert low <= mid_stats[name] <= high, f"{name} = {mid_stats[name]:.4f}, expected within [{low}, {high}]"


def test_severe_outcomes_are_rarer_than_accidents(mid_stats):
    assert mid_stats["accidents"] >= 30, "the mid-sized world should have enough accidents to judge"
    assert mid_stats["fatal_accident_rate_per_year"] < mid_stats["accident_rate_per_year"]
    assert mid_stats["larger_or_worse_share_of_accidents"] < 0.2
    assert mid_stats["blacklisted_max_share"] > 0, "some enterprise should be blacklisted at some time"


def test_oracle_is_informative_but_not_perfect(mid_stats):
    # Accidents are rare random events: even the truth cannot foresee which firm will have one.
    assert 0.65 < mid_stats["oracle_accident_auc"] < 0.97


# ---------------------------------------------------------------------------------------------
# Townships scale with the world; yearly credit records have no calendar cliff
# ---------------------------------------------------------------------------------------------


def test_small_worlds_are_one_county_with_its_own_townships():
    home = PopulationParams()
    for n in (300, 5000):
        ent = WorldSimulator(n, seed=3).enterprises
        assert set(ent["township"]) <= set(home.townships), "a small world keeps the home county's township list"
        assert ent["name"].str.startswith(home.city).all()
    assert set(ent["township"]) == set(home.townships)


def test_townships_grow_with_the_world_as_whole_counties():
    sim = WorldSimulator(50_000, seed=3)
    ent = sim.enterprises
    per_township = ent.groupby("township").size()
    assert len(per_township) >= 100, f"only {len(per_township)} townships for 50 000 enterprises"
    assert 150 <= per_township.mean() <= 500, f"{per_township.mean():.0f} enterprises per township"
    assert per_township.max() < 2_000, "no township should hold a province's worth of enterprises"
    county = ent["township"].str.partition("·")[0]
    assert ent["township"].str.contains("·").all(), "beyond one county, townships are county-qualified"
    towns_per_county = ent.groupby(county)["township"].nunique()
    assert len(towns_per_county) >= 8 and towns_per_county.between(8, 25).all(), towns_per_county.describe()
    home = PopulationParams()
    assert {f"{home.city}·{t}" for t in home.townships} <= set(ent["township"]), "the home county is kept"
    assert ent["x_park"].notna().mean() > 0.03, "other counties have industrial parks too"
    # Company names lead with their own county (or prefecture city), not the home county's.
    assert ent["name"].str[:2].nunique() > 5
    # Deterministic per seed, different for another seed.
    assert WorldSimulator(50_000, seed=3).township_names == sim.township_names
    assert WorldSimulator(50_000, seed=4).township_names != sim.township_names


def _held_on_first_days(world, kind: str) -> pd.Series:
    """Share of operating enterprises holding a known, valid ``kind`` record on the first day of each month."""
    truth, credit = world["truth"], world["credit_records"]
    rows = credit[credit["kind"] == kind]
    shares = {}
    for month, operating in truth.groupby("month")["enterprise_id"]:
        valid = rows[(rows["valid_from"] <= month) & (rows["valid_to"] >= month) & (rows["recorded_on"] <= month)]
        holders = set(valid["enterprise_id"])
        shares[month] = operating.isin(holders).mean()
    return pd.Series(shares)


@pytest.mark.parametrize("kind", ["commitment", "insurance"])
def test_yearly_records_are_held_evenly_through_the_year(mid_world, kind):
    # Commitments are what the low tier requires: on 1 January as on any other day, most firms hold one.
    shares = _held_on_first_days(mid_world, kind)
    for year, in_year in shares.groupby(shares.index.year):
        assert (in_year >= 0.8 * in_year.mean()).all(), f"{kind} {year}: {in_year.round(3).to_dict()}"
        assert in_year.max() - in_year.min() < 0.1, f"{kind} {year}: {in_year.round(3).to_dict()}"
    assert 0.4 < shares.mean() < 0.9


def test_credit_grades_stay_valid_until_the_next_grading(mid_world):
    shares = _held_on_first_days(mid_world, "credit_grade")
    graded = shares[shares.index >= pd.Timestamp("2022-05-01")]  # the first grades: March 2022
    assert (graded > 0.9).all(), graded.round(3).to_dict()


# ---------------------------------------------------------------------------------------------
# Observation depends on exposure
# ---------------------------------------------------------------------------------------------


def _quarterly_half_policy(sim, rng) -> pd.DataFrame:
    """Visit a fixed random half of the enterprises every quarter; never the other half."""
    state = sim.policy_state
    if "half" not in state:
        state["half"] = rng.random(sim.n_enterprises) < 0.5
    if sim.months_done % 3:
        return _no_visits(sim, rng)
    who = np.flatnonzero(state["half"] & sim.plannable)
    return pd.DataFrame({"enterprise_id": sim.enterprise_ids[who], "kind": "routine", "department": "应急"})


def test_observed_hazards_depend_on_inspection_exposure():
    sim = WorldSimulator(1200, start=date(2022, 1, 1), seed=21, years=2)
    rng = np.random.default_rng(0)
    for _ in range(24):
        sim.step(_quarterly_half_policy(sim, rng))
    tables, truth = sim.tables(), sim.truth()
    inspected_ids = set(sim.enterprise_ids[sim.policy_state["half"]])
    ent = tables["enterprises"]
    inspected = ent["enterprise_id"].isin(inspected_ids)

    visits = tables["inspections"]
    assert visits["enterprise_id"].isin(inspected_ids).all(), "only the chosen half was visited"
    hazards = tables["hazards"]
    at_visit = hazards[hazards["inspection_id"].notna()]
    found = at_visit.groupby("enterprise_id").size().reindex(ent["enterprise_id"], fill_value=0).to_numpy()
    assert found[~inspected.to_numpy()].sum() == 0, "never-inspected enterprises cannot have inspection-found hazards"
    assert found[inspected.to_numpy()].mean() > 10, "8 quarterly visits should find many hazards"

    # Self-reports exist for both halves, but all observed hazards still differ several-fold.
    observed = hazards.groupby("enterprise_id").size().reindex(ent["enterprise_id"], fill_value=0).to_numpy()
    assert observed[inspected.to_numpy()].mean() > 3 * observed[~inspected.to_numpy()].mean()

    # Yet the truth is much the same: the uninspected half has hazards, they are just not seen.
    rate = truth.groupby("enterprise_id")["hazard_rate"].mean()
    rate_uninspected = rate[~rate.index.isin(inspected_ids)]
    rate_inspected = rate[rate.index.isin(inspected_ids)]
    assert (rate_uninspected > 0).all()
    assert 0.75 < rate_uninspected.mean() / rate_inspected.mean() < 1.33
    latent = truth[truth["month"] == truth["month"].max()].set_index("enterprise_id")["latent_hazards"]
    assert latent[~latent.index.isin(inspected_ids)].mean() > latent[latent.index.isin(inspected_ids)].mean()


def test_a_policy_without_visits_yields_no_inspections():
    tables = generate_world(300, 1, seed=4, policy=_no_visits)
    assert tables["inspections"].empty
    assert tables["violations"].empty
    assert tables["hazards"]["inspection_id"].isna().all(), "only self-reported hazards without visits"
    assert (tables["truth"]["hazard_rate"] > 0).all()


def test_orders_are_honoured_and_checked():
    sim = WorldSimulator(50, start=date(2023, 3, 1), seed=2)
    target = sim.enterprise_ids[np.flatnonzero(sim.plannable)[0]]
    orders = pd.DataFrame(
        {"enterprise_id": [target], "kind": ["unannounced"], "department": ["消防"], "n_inspectors": [3], "day": [15]}
    )
    records = sim.step(orders)
    visit = records["inspections"]
    assert len(visit) == 1 and visit["order_row"].tolist() == [0]
    frame = sim.tables()["inspections"]
    assert frame[["enterprise_id", "kind", "department"]].iloc[0].tolist() == [target, "unannounced", "消防"]
    assert frame["inspected_on"].iloc[0] == pd.Timestamp("2023-03-15")
    assert frame["n_inspectors"].iloc[0] == 3

    with pytest.raises(DataError, match="unknown enterprise_id 'E999999'"):
        sim.step(pd.DataFrame({"enterprise_id": ["E999999"], "kind": ["routine"], "department": ["应急"]}))
    with pytest.raises(DataError, match="kind 'audit' is not one of"):
        sim.step(pd.DataFrame({"enterprise_id": [target], "kind": ["audit"], "department": ["应急"]}))
    with pytest.raises(DataError, match="missing column 'department'"):
        sim.step(pd.DataFrame({"enterprise_id": [target], "kind": ["routine"]}))


def test_knowledge_only_grows_month_by_month():
    sim = WorldSimulator(400, start=date(2022, 1, 1), seed=8, years=1)
    rng = np.random.default_rng(1)
    for _ in range(6):
        sim.step(default_inspection_policy(sim, rng))
    early = sim.tables()
    horizon = pd.Timestamp(sim.horizon)
    for _ in range(6):
        sim.step(default_inspection_policy(sim, rng))
    late = sim.tables()
    for name in EVENT_TABLES:
        assert (early[name]["recorded_on"] <= horizon).all(), f"{name}: recorded after the horizon"
        kept = late[name].set_index(TABLE_BY_NAME[name].key).loc[early[name][TABLE_BY_NAME[name].key]]
        event = TABLE_BY_NAME[name].event_date
        assert (kept[event].to_numpy() == early[name][event].to_numpy()).all(), f"{name}: a known record changed"
    # A hazard not rectified at the first horizon may be rectified by the second, never the reverse.
    hz_early = early["hazards"].set_index("hazard_id")["rectified_on"]
    hz_late = late["hazards"].set_index("hazard_id")["rectified_on"].loc[hz_early.index]
    assert (hz_late[hz_early.notna()] == hz_early[hz_early.notna()]).all()
    assert (hz_early.isna() & hz_late.notna()).any()


# ---------------------------------------------------------------------------------------------
# Contract conformance and invariants
# ---------------------------------------------------------------------------------------------


def test_every_table_is_a_canonical_contract_frame(mid_world):
    for name, frame in mid_world.items():
        spec = spec_for(name)
        assert list(frame.columns[: len(spec.columns)]) == list(spec.column_names), name
        contract_part = frame[list(spec.column_names) + [c for c in frame.columns if c.startswith("x_")]]
        pd.testing.assert_frame_equal(canonical_frame(name, contract_part), contract_part, obj=name)
        for column in spec.columns:
            if not column.nullable:
                assert frame[column.name].notna().all(), f"{name}.{column.name} has missing values"
            if column.choices:
                assert frame[column.name].dropna().isin(column.choices).all(), f"{name}.{column.name}"
            if column.min_value is not None:
                assert (frame[column.name].dropna() >= column.min_value).all(), f"{name}.{column.name}"
    assert {"x_area_m2", "x_park"} <= set(mid_world["enterprises"].columns)
    assert mid_world["enterprises"]["x_park"].notna().any() and mid_world["enterprises"]["x_park"].isna().any()


def test_keys_are_unique_and_references_exist(mid_world):
    known = set(mid_world["enterprises"]["enterprise_id"])
    for name in EVENT_TABLES:
        frame = mid_world[name]
        key = TABLE_BY_NAME[name].key
        assert frame[key].is_unique, f"{name}.{key} is not unique"
        assert frame["enterprise_id"].isin(known).all(), f"{name} references an unknown enterprise"
        assert len(frame) > 0, f"{name} is empty"
    assert mid_world["enterprises"]["enterprise_id"].str.fullmatch(r"E\d{6}").all()
    visits = set(mid_world["inspections"]["inspection_id"])
    for name in ("hazards", "violations"):
        assert mid_world[name]["inspection_id"].dropna().isin(visits).all(), f"{name} cites an unknown inspection"
    roster = mid_world["inspectors"]
    assert roster["inspector_id"].is_unique and roster["inspector_id"].str.fullmatch(r"J\d{5}").all()
    teams = mid_world["inspection_inspectors"]
    assert not teams.duplicated().any()
    assert teams["inspection_id"].isin(visits).all() and teams["inspector_id"].isin(roster["inspector_id"]).all()
    assert mid_world["truth_inspectors"]["inspector_id"].tolist() == roster["inspector_id"].tolist()
    truth = mid_world["truth"]
    assert not truth.duplicated(["enterprise_id", "month"]).any()
    assert (truth["month"].dt.day == 1).all()


def test_no_event_outside_an_enterprise_lifetime(mid_world):
    ent = mid_world["enterprises"].set_index("enterprise_id")
    assert ent["closed_on"].notna().sum() >= 20, "some enterprises should close during three years"
    assert (ent["founded_on"] > pd.Timestamp(MID_START)).sum() >= 20, "some should be founded during them"
    assert (ent["closed_on"].dropna() > ent["founded_on"][ent["closed_on"].notna()]).all()
    closed = ent["closed_on"].fillna(pd.Timestamp.max)
    for name in EVENT_TABLES:
        frame = mid_world[name]
        event = frame[TABLE_BY_NAME[name].event_date]
        owner = frame["enterprise_id"]
        assert (event.to_numpy() <= closed.loc[owner].to_numpy()).all(), f"{name}: event after closed_on"
        assert (event.to_numpy() >= ent["founded_on"].loc[owner].to_numpy()).all(), f"{name}: before founded_on"
    hz = mid_world["hazards"]
    rectified = hz["rectified_on"].notna()
    assert (hz["rectified_on"][rectified].to_numpy() <= closed.loc[hz["enterprise_id"][rectified]].to_numpy()).all()
    truth = mid_world["truth"]
    month_end = truth["month"] + pd.offsets.MonthEnd(0)
    assert (truth["month"].to_numpy() <= closed.loc[truth["enterprise_id"]].to_numpy()).all()
    assert (month_end.to_numpy() >= ent["founded_on"].loc[truth["enterprise_id"]].to_numpy()).all()


def test_recorded_on_is_never_before_the_event_and_sometimes_later(mid_world):
    for name in EVENT_TABLES:
        frame = mid_world[name]
        event = frame[TABLE_BY_NAME[name].event_date]
        assert (frame["recorded_on"] >= event).all(), f"{name}: recorded_on before the event"
        assert (frame["recorded_on"] > event).any(), f"{name}: no reporting lag at all"
    accidents = mid_world["accidents"]
    concealed = accidents[accidents["concealed"]]
    if len(concealed):
        assert ((concealed["recorded_on"] - concealed["occurred_on"]).dt.days >= 45).all()


def test_no_date_after_the_last_simulated_day(mid_world):
    for name, frame in mid_world.items():
        for column in frame.columns:
            if column in ("rectify_by", "valid_to") or frame[column].dtype.kind != "M":
                continue  # deadlines and validity ends are announced dates, not events
            assert (frame[column].dropna() <= MID_END).all(), f"{name}.{column} after {MID_END.date()}"


def test_hazard_dates_are_ordered(mid_world):
    hz = mid_world["hazards"]
    assert (hz["rectify_by"] > hz["found_on"]).all()
    done = hz["rectified_on"].notna()
    assert (hz["rectified_on"][done] >= hz["found_on"][done]).all()
    ins = mid_world["inspections"]
    assert (ins["exam_passed"] <= ins["exam_takers"]).all()
    credit = mid_world["credit_records"]
    assert (credit["valid_to"].dropna() >= credit["valid_from"][credit["valid_to"].notna()]).all()


@pytest.mark.parametrize(
    "deaths, injuries, loss, expected",
    [
        (2, 9, 9_999_999, "general"),
        (3, 0, 0, "larger"),
        (0, 10, 0, "larger"),
        (0, 0, 10_000_000, "larger"),
        (9, 49, 49_999_999, "larger"),
        (10, 0, 0, "major"),
        (0, 50, 0, "major"),
        (0, 0, 50_000_000, "major"),
        (30, 0, 0, "especially_major"),
        (0, 100, 0, "especially_major"),
        (0, 0, 100_000_000, "especially_major"),
    ],
)
def test_vectorised_grades_match_decree_493_bounds(deaths, injuries, loss, expected):
    assert accident_grade(deaths, injuries, loss) == expected
    assert ACCIDENT_GRADES[accident_grades(np.array([deaths]), np.array([injuries]), np.array([loss]))[0]] == expected


def test_accident_grades_are_consistent_with_casualties(mid_world):
    acc = mid_world["accidents"]
    derived = [accident_grade(d, i, loss) for d, i, loss in
               zip(acc["deaths"], acc["serious_injuries"], acc["direct_loss_yuan"], strict=True)]
    assert (acc["grade"] == derived).all()
    assert acc.loc[acc["road_traffic"], "enterprise_id"].size > 0, "road transport should have road accidents"


def test_every_uscc_is_valid_and_distinct(mid_world):
    codes = mid_world["enterprises"]["uscc"]
    bad = [code for code in codes if not is_valid_uscc(code)]
    assert not bad, f"invalid check characters: {bad[:5]}"
    assert codes.is_unique
    assert codes.str.slice(0, 8).eq("91140581").all(), "registered in 高平市 (140581) as enterprises (91)"


def test_csv_round_trip_reproduces_the_frames(tmp_path):
    tables = generate_world(120, 1, seed=3, start=date(2022, 1, 1))
    write_world(tables, tmp_path)
    for name, frame in tables.items():
        raw = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False, na_values=[""])
        back = canonical_frame(name, raw)
        spec_columns = list(back.columns)
        if name == "truth":  # probabilities are written with float32 precision
            for column in ("accident_prob", "hazard_rate", "major_share", "adverse_prob"):
                np.testing.assert_allclose(back[column], frame[column], rtol=1e-6, err_msg=column)
            spec_columns = ["enterprise_id", "month"]
        elif name == "enterprises":
            np.testing.assert_allclose(back["x_area_m2"].astype(float), frame["x_area_m2"])
            spec_columns = [c for c in spec_columns if c != "x_area_m2"]
        pd.testing.assert_frame_equal(back[spec_columns], frame[spec_columns], obj=f"{name}.csv")


# ---------------------------------------------------------------------------------------------
# Truth and oracle
# ---------------------------------------------------------------------------------------------


def test_truth_probabilities_are_consistent(mid_world):
    truth = mid_world["truth"]
    assert truth["accident_prob"].between(0, 1).all() and truth["adverse_prob"].between(0, 1).all()
    expected = 1 - (1 - truth["accident_prob"]) * np.exp(-truth["hazard_rate"] * truth["major_share"])
    np.testing.assert_allclose(truth["adverse_prob"], expected, rtol=1e-5)
    assert (truth["adverse_prob"] >= truth["accident_prob"]).all()


def test_unrectified_major_hazards_raise_accident_risk(mid_world):
    truth = mid_world["truth"].merge(mid_world["enterprises"][["enterprise_id", "sector"]], on="enterprise_id")
    truth = truth[~truth["suspended"]]
    by_state = truth.groupby(["sector", truth["unrectified_major"] > 0])["accident_prob"].median().unstack()
    by_state = by_state.dropna()
    assert (by_state[True] > by_state[False]).mean() > 0.8, by_state


def test_risk_drifts_over_time(mid_world):
    truth = mid_world["truth"]
    first, last = truth["month"].min(), truth["month"].max()
    start = truth[truth["month"] == first].set_index("enterprise_id")["hazard_rate"]
    end = truth[truth["month"] == last].set_index("enterprise_id")["hazard_rate"]
    both = start.index.intersection(end.index)
    correlation = np.corrcoef(np.log(start[both]), np.log(end[both]))[0, 1]
    assert 0.3 < correlation < 0.95, f"hazard rates three years apart correlate {correlation:.2f}"


def _hand_truth() -> pd.DataFrame:
    months = pd.date_range("2023-01-01", periods=12, freq="MS")
    rows = [("E1", m, 0.1) for m in months] + [("E2", m, 0.0) for m in months] + [("E3", months[0], 0.5)]
    return pd.DataFrame(rows, columns=["enterprise_id", "month", "adverse_prob"])


def test_oracle_risk_hand_worked():
    risk = oracle_risk(_hand_truth(), "2023-01-01", horizon_days=365)  # 2023 has 365 days: all 12 months
    assert risk["E1"] == pytest.approx(1 - 0.9**12)  # 0.7176
    assert risk["E2"] == 0.0
    assert risk["E3"] == pytest.approx(0.5)


def test_oracle_risk_weights_partial_months():
    # From 2023-12-17 for 30 days: 15 of December's 31 days are inside; January 2024 has no truth row.
    risk = oracle_risk(_hand_truth(), "2023-12-17", horizon_days=30)
    assert risk["E1"] == pytest.approx(1 - 0.9 ** (15 / 31))
    assert "E3" not in risk.index, "an enterprise without a truth row in the window is absent"


def test_a_consumed_simulator_refuses_to_go_on():
    sim = WorldSimulator(20, seed=1)
    sim.step(None)
    assert len(sim.truth(consume=True)) > 0
    with pytest.raises(RuntimeError, match="cannot step: truth already consumed"):
        sim.step(None)
    with pytest.raises(RuntimeError, match="truth was consumed"):
        sim.truth()
    assert "inspections" in sim.tables(consume=True), "the records are still there after the truth is consumed"
    with pytest.raises(RuntimeError, match="records were consumed"):
        sim.tables()


# ---------------------------------------------------------------------------------------------
# Inspectors: rosters, who inspected, stringency, territorial assignment
# ---------------------------------------------------------------------------------------------


def test_every_visit_of_a_staffed_department_has_a_team_of_its_own_department_serving_that_day(mid_world):
    inspections = mid_world["inspections"].set_index("inspection_id")
    roster = mid_world["inspectors"].set_index("inspector_id")
    made = mid_world["inspection_inspectors"].join(inspections, on="inspection_id").merge(
        roster, left_on="inspector_id", right_index=True, suffixes=("", "_inspector"))
    assert (made["department"] == made["department_inspector"]).all()
    assert (made["active_from"] <= made["inspected_on"]).all()
    assert ((made["active_to"].isna()) | (made["inspected_on"] <= made["active_to"])).all()
    team_size = mid_world["inspection_inspectors"].groupby("inspection_id").size()
    assert team_size.reindex(inspections.index).eq(inspections["n_inspectors"]).mean() > 0.99
    assert roster["certified"].mean() > 0.9 and roster["active_to"].notna().any()  # some leave


def test_teams_follow_territory_so_inspector_and_enterprise_are_confounded(mid_world):
    made = mid_world["inspection_inspectors"].merge(
        mid_world["inspections"][["inspection_id", "enterprise_id"]], on="inspection_id").merge(
        mid_world["enterprises"][["enterprise_id", "township"]], on="enterprise_id")
    townships_per_inspector = made.groupby("inspector_id")["township"].nunique()
    all_townships = mid_world["enterprises"]["township"].nunique()
    assert townships_per_inspector.median() < all_townships / 2  # each works a block of townships, not all


def test_stricter_inspectors_find_more_per_visit_at_equal_latent_hazards(mid_world):
    from data_samples._stats import inspector_spread

    truth = mid_world["truth_inspectors"].set_index("inspector_id")["stringency"]
    assert inspector_spread(mid_world, mid_world["truth"]) >= 3.0
    made = mid_world["inspection_inspectors"]
    found = mid_world["hazards"]["inspection_id"].dropna().value_counts()
    per_visit = made.assign(found=made["inspection_id"].map(found).fillna(0)).groupby("inspector_id")["found"]
    busy = per_visit.size() >= 20
    rank_corr = per_visit.mean()[busy].rank().corr(truth[busy[busy].index].rank())
    assert rank_corr > 0.4, rank_corr  # the records reveal stringency, confounded with territory


def test_equal_stringency_gives_no_spread_beyond_noise():
    from data_samples._params import InspectorParams
    from data_samples._stats import inspector_spread
    from data_samples.world import WorldParams

    world = generate_world(3000, 2, seed=4, params=WorldParams(inspectors=InspectorParams(stringency_sigma=0.0)))
    assert (world["truth_inspectors"]["stringency"] == 1.0).all()
    assert inspector_spread(world, world["truth"]) < 2.0


def test_orders_may_name_their_inspectors_and_then_those_make_the_visit():
    sim = WorldSimulator(200, start=date(2022, 1, 1), seed=3, years=1)
    roster = sim.tables()["inspectors"]
    strict, lenient = (sim.inspector_truth().sort_values("stringency")["inspector_id"].iloc[[-1, 0]])
    ids = sim.enterprise_ids[sim.plannable][:40]
    orders = pd.DataFrame({"enterprise_id": ids, "kind": "random", "department": "应急",
                           "inspectors": [f"{strict};{lenient}" if i % 2 else "" for i in range(len(ids))]})
    new = sim.step(orders)
    made = sim.tables()["inspection_inspectors"]
    named = made[made["inspector_id"].isin([strict, lenient])].groupby("inspection_id")["inspector_id"].agg(set)
    assert (named == {strict, lenient}).sum() >= 15  # the odd orders (those operating that month)
    assert len(new["inspections"]) <= len(orders) and set(roster["inspector_id"]) >= set(made["inspector_id"])
    with pytest.raises(DataError, match=r"orders: inspector 'J99999' is not on any department's roster"):
        sim.step(orders.assign(inspectors="J99999"))
