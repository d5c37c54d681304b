"""Tiers: cut-offs, low eligibility, one-vote vetoes, hysteresis and manual overrides, on hand-made frames."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from features.errors import DataError
from scoring.domain.tiers import assign_tiers, low_eligibility, vetoes

from scoring_frames import enterprises, frame

AS_OF = pd.Timestamp("2025-03-01")


def scores(probabilities: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"enterprise_id": list(probabilities), "probability": list(probabilities.values())})


def commitments(ids, valid_from="2024-01-01", valid_to=None) -> pd.DataFrame:
    ids = list(ids)
    return frame("credit_records", record_id=[f"K{e}" for e in ids], enterprise_id=ids, kind="commitment",
                 value="signed", valid_from=valid_from, valid_to=valid_to)


def tier_of(result, eid: str, column: str = "final_tier"):
    return result.tiers.set_index("enterprise_id").at[eid, column]


def run(policy, probs, tables, **kwargs):
    return assign_tiers(scores(probs), tables, as_of=kwargs.pop("as_of", AS_OF), tiers=kwargs.pop("tiers", policy.tiers),
                        overrides=kwargs.pop("overrides", policy.overrides), **kwargs)


# ---------------------------------------------------------------------------------------------
# cut-offs
# ---------------------------------------------------------------------------------------------


def test_quota_top_ten_percent_high_bottom_thirty_percent_low(policy):
    ids = [f"E{i}" for i in range(1, 11)]
    probs = {e: i / 100 for i, e in enumerate(ids, start=1)}  # 0.01 .. 0.10
    tables = {"enterprises": enterprises(ids), "credit_records": commitments(ids)}
    result = run(policy, probs, tables)
    got = result.tiers.set_index("enterprise_id")["final_tier"].to_dict()
    assert got == {"E1": "low", "E2": "low", "E3": "low", **{f"E{i}": "general" for i in range(4, 10)},
                   "E10": "high"}
    assert result.tiers.set_index("enterprise_id").at["E10", "rank"] == 1
    cutoffs = result.cutoffs.set_index("tier")
    assert cutoffs.at["high", "probability_from"] == 0.10 and cutoffs.at["low", "probability_to"] == 0.03
    assert cutoffs.at["high", "bounds"] == "probability ≥ 0.1"
    assert list(cutoffs["final_count"]) == [1, 6, 3]
    assert "top 10% of 10 scored" in cutoffs.at["high", "rule"]


def test_quota_ties_stay_together_on_the_side_closest_to_the_quota(policy):
    probs = {"E1": 0.01, "E2": 0.02, "E3": 0.03, "E4": 0.03, "E5": 0.05, "E6": 0.06, "E7": 0.07, "E8": 0.08,
             "E9": 0.10, "E10": 0.10}
    tables = {"enterprises": enterprises(probs), "credit_records": commitments(probs)}
    result = run(policy, probs, tables)
    assert tier_of(result, "E9") == tier_of(result, "E10") == "high"  # 1 wanted, tied: both
    assert [tier_of(result, e) for e in ("E1", "E2", "E3", "E4")] == ["low", "low", "general", "general"]
    # all equal: a block of 10 for a quota of 1 high / 3 low stays general (0 is closer to 1 than 10 is)
    same = {e: 0.2 for e in probs}
    assert set(run(policy, same, tables).tiers["final_tier"]) == {"general"}
    # a block of 3 tied at the top for a quota of 2 (20 scored): all three high (3 is closer to 2 than 0 is)
    twenty = {f"X{i:02d}": i / 100 for i in range(20)} | {"X17": 0.5, "X18": 0.5, "X19": 0.5}
    result = run(policy, twenty, {"enterprises": enterprises(twenty)})
    assert sorted(result.tiers.loc[result.tiers["final_tier"] == "high", "enterprise_id"]) == ["X17", "X18", "X19"]


def test_threshold_method(policy):
    tiers = replace(policy.tiers, method="threshold", high_probability=0.5, low_probability=0.1)
    probs = {"A": 0.1, "B": 0.11, "C": 0.49, "D": 0.5}
    tables = {"enterprises": enterprises(probs), "credit_records": commitments(probs)}
    result = run(policy, probs, tables, tiers=tiers)
    assert [tier_of(result, e) for e in "ABCD"] == ["low", "general", "general", "high"]
    assert result.cutoffs.set_index("tier").at["high", "rule"] == "probability ≥ 0.5"


def test_bad_scores_are_refused(policy):
    tables = {"enterprises": enterprises(["A"])}
    with pytest.raises(DataError, match=r"enterprise 'A': probability must be between 0 and 1, got 1\.2"):
        run(policy, {"A": 1.2}, tables)
    with pytest.raises(DataError, match=r"enterprise_id 'A' appears twice"):
        assign_tiers(pd.DataFrame({"enterprise_id": ["A", "A"], "probability": [0.1, 0.2]}), tables, as_of=AS_OF,
                     tiers=policy.tiers, overrides=policy.overrides)


# ---------------------------------------------------------------------------------------------
# low eligibility
# ---------------------------------------------------------------------------------------------


def test_low_needs_a_clean_record_known_before_the_date(policy):
    ids = ["ok", "acc2y", "acc4y", "maj", "pen11m", "pen13m", "nocommit", "expired", "lastday", "future_rec",
           "on_as_of"]
    tables = {
        "enterprises": enterprises(ids),
        "accidents": frame("accidents", accident_id=["a1", "a2", "a3", "a4"],
                           enterprise_id=["acc2y", "acc4y", "future_rec", "on_as_of"],
                           occurred_on=["2023-03-01", "2021-03-01", "2025-01-01", "2025-03-01"],
                           grade="general", recorded_on=[None, None, "2025-03-01", None]),
        "hazards": frame("hazards", hazard_id=["h1"], enterprise_id=["maj"], found_on=["2022-06-01"],
                         level=["major"], rectify_by=["2022-07-01"], rectified_on=["2022-06-20"]),
        "penalties": frame("penalties", penalty_id=["p1", "p2"], enterprise_id=["pen11m", "pen13m"],
                           decided_on=["2024-04-01", "2024-02-01"]),
        "credit_records": pd.concat([
            commitments([e for e in ids if e not in ("nocommit", "expired", "lastday")]),
            commitments(["expired"], valid_to="2025-02-28"),
            commitments(["lastday"], valid_to="2025-03-01"),
        ], ignore_index=True),
    }
    why = low_eligibility(tables, pd.Index(ids), as_of=AS_OF, policy=policy.tiers.low_eligibility)
    eligible = {e for e in ids if why[e] == ""}
    # an accident recorded only on the as-of date, or occurring on it, is not known before it
    assert eligible == {"ok", "acc4y", "pen13m", "lastday", "future_rec", "on_as_of"}
    assert "accident in 1095 days" in why["acc2y"]
    assert "major hazard in 1095 days" in why["maj"]
    assert "penalty in 365 days" in why["pen11m"]
    assert why["nocommit"] == why["expired"] == "no valid commitment 未签订有效承诺书"

    relaxed = replace(policy.tiers.low_eligibility, require_commitment=False)
    assert low_eligibility(tables, pd.Index(ids), as_of=AS_OF, policy=relaxed)["nocommit"] == ""


def test_model_low_but_not_eligible_becomes_general(policy):
    probs = {f"E{i}": i / 100 for i in range(1, 11)}
    tables = {"enterprises": enterprises(probs), "credit_records": commitments(["E2", "E3"])}
    result = run(policy, probs, tables)
    assert tier_of(result, "E1", "model_tier") == "low"
    assert tier_of(result, "E1") == "general"
    assert tier_of(result, "E1", "eligibility") == "no valid commitment 未签订有效承诺书"
    assert tier_of(result, "E2") == "low"


# ---------------------------------------------------------------------------------------------
# one-vote vetoes
# ---------------------------------------------------------------------------------------------

LOW_PROBS = {f"E{i}": 0.01 for i in range(1, 9)} | {f"Z{i}": 0.5 for i in range(1, 3)}  # E* low, Z* high


def veto_codes(policy, tables, overrides=None) -> dict[str, set[str]]:
    hits = vetoes(tables, as_of=AS_OF, policy=overrides or policy.overrides)
    return {e: set(g["code"]) for e, g in hits.groupby("enterprise_id")}


def test_blacklist_veto_only_while_active_and_known(policy):
    tables = {
        "enterprises": enterprises(LOW_PROBS),
        "credit_records": frame("credit_records", record_id=["b1", "b2", "b3"], enterprise_id=["E1", "E2", "E3"],
                                kind="blacklist", value="",
                                valid_from=["2024-05-01", "2022-01-01", "2024-05-01"],
                                valid_to=[None, "2025-01-01", None],
                                recorded_on=[None, None, "2025-03-02"]),
    }
    result = run(policy, LOW_PROBS, tables)
    assert tier_of(result, "E1") == "high" and tier_of(result, "E1", "veto")
    assert tier_of(result, "E1", "override_cause") == "blacklisted since 2024-05-01 列入严重失信名单"
    assert tier_of(result, "E2", "veto") == False and tier_of(result, "E3", "veto") == False  # noqa: E712


def test_serious_accident_veto_grade_window_and_road_traffic(policy):
    tables = {
        "enterprises": enterprises(LOW_PROBS, townships=[f"T{i}" for i in range(len(LOW_PROBS))]),
        "accidents": frame(
            "accidents", accident_id=["a1", "a2", "a3", "a4", "a5"], enterprise_id=["E1", "E2", "E3", "E4", "E5"],
            occurred_on=["2024-04-01", "2024-02-15", "2024-12-01", "2024-12-01", "2024-12-01"],
            grade=["larger", "major", "general", "larger", None], deaths=[3, 10, 0, 3, 3],
            road_traffic=[False, False, False, True, False]),
    }
    codes = veto_codes(policy, tables)
    assert "serious_accident" in codes["E1"]        # larger, 11 months ago
    assert "E2" not in codes                        # major, but 12.5 months ago
    assert "E3" not in codes                        # general accident: not this veto
    assert "E4" not in codes                        # road traffic excluded
    assert "serious_accident" in codes["E5"]        # grade derived from 3 deaths: larger
    stricter = replace(policy.overrides, serious_accident=replace(policy.overrides.serious_accident, min_grade="major"))
    assert "E1" not in veto_codes(policy, tables, stricter)


def test_overdue_major_hazard_veto(policy):
    tables = {
        "enterprises": enterprises(LOW_PROBS),
        "hazards": frame(
            "hazards", hazard_id=["h1", "h2", "h3", "h4", "h5", "h6"],
            enterprise_id=["E1", "E2", "E3", "E4", "E5", "E6"],
            found_on="2025-01-05", level=["major", "major", "major", "general", "major", "major"],
            rectify_by=["2025-02-01", "2025-02-01", "2025-03-15", "2025-02-01", None, "2025-02-01"],
            rectified_on=[None, "2025-02-27", None, None, None, "2025-03-01"]),
    }
    codes = veto_codes(policy, tables)
    assert codes == {"E1": {"overdue_major_hazard"}, "E6": {"overdue_major_hazard"}}
    # E2 rectified before the date; E3 not yet due; E4 a general hazard; E5 has no deadline;
    # E6 rectified only on the as-of date: still unrectified as known before it


def test_repeat_accidents_veto_raises_special_assistance(policy):
    tables = {
        "enterprises": enterprises(LOW_PROBS, townships=["T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T9"]),
        "accidents": frame(
            "accidents", accident_id=[f"a{i}" for i in range(6)],
            enterprise_id=["E1", "E1", "E2", "E2", "E3", "E3"],
            occurred_on=["2025-01-01", "2025-01-25",    # 24 days apart: repeat
                         "2024-11-01", "2024-12-16",    # 45 days apart: not
                         "2024-01-01", "2024-01-20"],   # repeat, but more than a year ago
            grade="general"),
    }
    result = run(policy, LOW_PROBS, tables)
    assert tier_of(result, "E1") == "high"
    assert tier_of(result, "E1", "special_assistance")
    assert tier_of(result, "E1", "override_cause").startswith("2 accidents within 30 days, latest 2025-01-25")
    assert tier_of(result, "E2", "veto") == False and tier_of(result, "E3", "veto") == False  # noqa: E712


def test_sector_cluster_in_a_township(policy):
    ids = ["E1", "E2", "E3", "E4", "E5", "E6"]
    tables = {
        "enterprises": enterprises(ids, sectors=["commerce"] * 5 + ["machinery"],
                                   townships=["T1", "T1", "T1", "T1", "T2", "T1"]),
        "accidents": frame("accidents", accident_id=["a1", "a2", "a3"], enterprise_id=["E1", "E2", "E3"],
                           occurred_on=["2024-04-01", "2024-09-01", "2025-02-01"], grade="general"),
    }
    probs = {e: 0.01 for e in ids} | {"Z1": 0.9}
    tables["enterprises"] = pd.concat([tables["enterprises"], enterprises(["Z1"], "machinery", "T3")])
    result = run(policy, probs, tables)
    got = result.tiers.set_index("enterprise_id")
    # the three with accidents: forced high and helped; their sector peer in the township: helped only
    assert list(got.loc[["E1", "E2", "E3"], "final_tier"]) == ["high"] * 3
    assert got.loc[["E1", "E2", "E3", "E4"], "special_assistance"].all()
    assert got.at["E4", "final_tier"] != "high" and got.at["E4", "override_codes"] == "sector_cluster_peer"
    assert not got.at["E5", "special_assistance"] and not got.at["E6", "special_assistance"]  # other township / sector
    assert "3 accidents in commerce / T1 within 365 days" in got.at["E4", "override_cause"]

    # jurisdiction scope: the whole sector of the bureau's area
    county = replace(policy.overrides, sector_cluster=replace(policy.overrides.sector_cluster, scope="jurisdiction"))
    got = run(policy, probs, tables, overrides=county).tiers.set_index("enterprise_id")
    assert got.at["E5", "special_assistance"] and not got.at["E6", "special_assistance"]


def test_sector_cluster_needs_the_count_within_the_window(policy):
    ids = ["E1", "E2", "E3", "E4"]
    tables = {
        "enterprises": enterprises(ids, townships=["T1", "T1", "T2", "T1"]),
        "accidents": frame("accidents", accident_id=["a1", "a2", "a3", "a4"], enterprise_id=["E1", "E2", "E3", "E4"],
                           occurred_on=["2024-04-01", "2024-09-01", "2025-02-01", "2024-02-01"], grade="general",
                           road_traffic=[False, False, False, False]),
    }
    assert veto_codes(policy, tables) == {}  # T1 has 2 in the year (E4's is 13 months old), T2 has 1
    county = replace(policy.overrides, sector_cluster=replace(policy.overrides.sector_cluster, scope="jurisdiction"))
    assert veto_codes(policy, tables, county)["E3"] == {"sector_cluster"}


def test_disabled_rules_do_not_fire(policy):
    tables = {"enterprises": enterprises(["E1"]),
              "credit_records": frame("credit_records", record_id=["b"], enterprise_id=["E1"], kind="blacklist",
                                      valid_from=["2024-01-01"])}
    off = replace(policy.overrides, blacklist=replace(policy.overrides.blacklist, enabled=False))
    assert veto_codes(policy, tables, off) == {}


# ---------------------------------------------------------------------------------------------
# hysteresis
# ---------------------------------------------------------------------------------------------


def history(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["enterprise_id", "as_of", "model_tier", "final_tier"]).assign(
        as_of=lambda f: pd.to_datetime(f["as_of"]))


def test_leaving_high_needs_the_score_below_the_cutoff_for_the_hold(policy):
    probs = {f"E{i}": 0.05 for i in range(1, 10)} | {"TOP": 0.9}  # E1 now general by score
    tables = {"enterprises": enterprises(probs)}
    past = history([
        ("E1", "2025-01-01", "high", "high"),
        ("E1", "2025-02-01", "general", "high"),
        ("E2", "2025-01-01", "high", "high"),
        ("E2", "2025-02-01", "general", "general"),      # a manual override had lowered it: no hold
        ("E3", "2025-02-01", "general", "high"),          # high by veto only, never by score: no hold
        ("E4", "2025-03-01", "high", "high"),             # a run on the as-of date itself is ignored
    ])
    result = run(policy, probs, tables, history=past)
    assert tier_of(result, "E1") == "high" and tier_of(result, "E1", "override_codes") == "hold"
    assert "held high until 2025-04-01" in tier_of(result, "E1", "override_cause")
    assert [tier_of(result, e) for e in ("E2", "E3", "E4")] == ["general"] * 3
    # 90 days after the last high score it leaves
    later = run(policy, probs, tables, history=past, as_of="2025-04-01")
    assert tier_of(later, "E1") == "general"
    assert tier_of(run(policy, probs, tables, history=past, as_of="2025-03-31"), "E1") == "high"


# ---------------------------------------------------------------------------------------------
# manual overrides
# ---------------------------------------------------------------------------------------------


def manual(rows) -> pd.DataFrame:
    frame_ = pd.DataFrame(rows, columns=["override_id", "enterprise_id", "tier", "reason", "created_by", "created_at",
                                         "valid_until"])
    return frame_.assign(created_at=pd.to_datetime(frame_["created_at"]),
                         valid_until=pd.to_datetime(frame_["valid_until"]))


def test_manual_overrides_apply_with_who_and_why_but_do_not_lift_a_veto(policy):
    probs = {f"E{i}": 0.05 for i in range(1, 10)} | {"TOP": 0.9}
    tables = {"enterprises": enterprises(probs),
              "credit_records": frame("credit_records", record_id=["b"], enterprise_id=["E3"], kind="blacklist",
                                      valid_from=["2024-01-01"])}
    active = manual([
        (1, "E1", "high", "群众反映夜间违规生产", "王科长", "2025-02-01", "2025-06-30"),
        (2, "E2", "general", "old decision", "李", "2025-01-01", "2025-06-30"),
        (3, "E2", "low", "newer decision", "赵", "2025-02-01", "2025-06-30"),
        (4, "E3", "general", "appeal accepted", "王科长", "2025-02-01", "2025-06-30"),
    ])
    result = run(policy, probs, tables, manual=active)
    assert tier_of(result, "E1") == "high" and tier_of(result, "E1", "model_tier") == "general"
    assert tier_of(result, "E1", "override_cause") == \
        "manual override to high by 王科长 until 2025-06-30: 群众反映夜间违规生产 人工调整"
    assert tier_of(result, "E2") == "low"  # the latest created wins
    assert tier_of(result, "E3") == "high"
    assert tier_of(result, "E3", "override_codes") == "blacklist,manual_ignored"

    lenient = replace(policy.overrides, manual=replace(policy.overrides.manual, may_lower_veto=True))
    assert tier_of(run(policy, probs, tables, manual=active, overrides=lenient), "E3") == "general"


def test_summary_counts(policy):
    probs = {f"E{i}": i / 100 for i in range(1, 11)}
    result = run(policy, probs, {"enterprises": enterprises(probs), "credit_records": commitments(probs)})
    summary = result.summary().set_index("tier")
    assert summary.loc[["low", "general", "high"], "final"].tolist() == [3, 6, 1]
