"""The policy file: shipped defaults load; bad files are refused with the key named."""

from __future__ import annotations

import textwrap

import pytest

from features.errors import PolicyError
from scoring.domain.policy import Policy, load_policy, read_policy_mapping


def write(tmp_path, text: str):
    path = tmp_path / "bureau.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_shipped_defaults_are_the_design_numbers(policy: Policy):
    caps = policy.supervision.caps
    assert dict(caps["coal_mine"].visits) == {"A": 2, "B": 4, "C": 6, "D": 4}
    assert dict(caps["noncoal_mine"].visits) == {"low": 1, "general": 1, "larger": 2, "major": 4}
    assert dict(caps["hazchem_smelting"].visits) == {"1": 2, "2": 4, "3": 8, "none": 12}
    assert dict(caps["other"].visits) == {"low": 1, "general": 2, "larger": 4, "major": 6}
    assert (policy.supervision.inspectors.min, policy.supervision.inspectors.max) == (2, 3)
    assert (policy.supervision.quiet_period.first_day, policy.supervision.quiet_period.last_day) == (1, 15)
    assert policy.supervision.floor.visits_per_year == 2
    assert (policy.tiers.high_share, policy.tiers.low_share, policy.tiers.demotion_hold_days) == (0.10, 0.30, 90)
    assert policy.overrides.serious_accident.min_grade == "larger"
    assert set(policy.labels) >= {"horizon_days"}


def test_a_bureau_file_overrides_only_what_it_names(tmp_path):
    policy = load_policy(write(tmp_path, """
        [supervision.inspectors]
        max = 4
        [planning.capacity]
        "城管" = 7
    """))
    assert policy.supervision.inspectors.max == 4
    assert policy.supervision.inspectors.min == 2
    # capacity is the bureau's own list of departments: replaced as a whole, not merged
    assert dict(policy.planning.capacity) == {"城管": 7}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[tiers]\nhigh_sharee = 0.1\n", r"tiers\.high_sharee: unknown key"),
        ("[scoring]\nx = 1\n", r"scoring: unknown key"),
        ("[supervision.inspectors]\nmin = 1\n", r"supervision\.inspectors\.min: the law requires at least 2"),
        ("[supervision.inspectors]\nmax = 1\n", r"supervision\.inspectors\.max: must be at least min"),
        ("[supervision.inspectors]\nmin = 4\n", r"supervision\.inspectors\.max: must be at least min \(4\)"),
        ("[tiers]\nhigh_share = 1.5\n", r"tiers\.high_share: expected a number between 0 and 1, got 1\.5"),
        ("[tiers]\nlow_share = -0.1\n", r"tiers\.low_share: expected a number between 0 and 1"),
        ("[tiers]\nlow_share = 0.95\n", r"tiers\.low_share: high_share \+ low_share must not exceed 1"),
        ("[tiers]\nmethod = \"magic\"\n", r"tiers\.method: expected one of 'quota', 'threshold'"),
        ("[planning.random_ratio]\ngeneral = 1.2\n", r"planning\.random_ratio\.general: expected a number between 0 and 1"),
        ("[planning.random_ratio]\nmedium = 0.2\n", r"planning\.random_ratio\.medium: unknown key"),
        ("[supervision.caps.coal_mine]\nvisits = { A = 1, B = 4, C = 6, D = 4 }\n",
         r"supervision\.caps\.coal_mine\.visits\.A: cap 1 is below the floor"),
        ("[supervision.caps.hazchem_smelting]\nvisits = { \"1\" = 2, \"2\" = 4, \"3\" = 8, none = 1 }\n",
         r"supervision\.caps\.hazchem_smelting\.visits\.none: cap 1 is below the floor"),
        # non-coal: high maps to "larger" (and "major" under a veto); "low" cannot be high, so 0 is fine there ...
        ("[supervision.caps.noncoal_mine]\nvisits = { low = 0, general = 1, larger = 1, major = 4 }\n",
         r"supervision\.caps\.noncoal_mine\.visits\.larger: cap 1 is below the floor"),
        # ... and a floor of every 3 months (4 a year) is refused by the shipped caps of 2
        ("[supervision.floor]\ninterval_months = 3\n", r"supervision\.caps\.coal_mine\.visits\.A: cap 2 is below"),
        ("[supervision.caps.coal_mine]\nvisits = { E = 3 }\n",
         r"supervision\.caps\.coal_mine\.visits\.E: unknown key"),
        ("[supervision.caps.coal_mine]\ntier_class = { low = \"A\", general = \"B\", high = \"E\", high_veto = \"C\" }\n",
         r"supervision\.caps\.coal_mine\.tier_class\.high: expected one of 'A', 'B', 'C', 'D', got 'E'"),
        ("[supervision.caps.coal_mine]\nclass_source = \"horoscope\"\n",
         r"supervision\.caps\.coal_mine\.class_source: expected one of"),
        ("[supervision.quiet_period]\nlast_day = 31\n", r"supervision\.quiet_period\.last_day: expected a day"),
        ("[supervision.quiet_period]\ntiers = [\"low\", \"medium\"]\n", r"supervision\.quiet_period\.tiers\[1\]"),
        ("[supervision]\nexempt_kinds = [\"complaint\", \"party\"]\n", r"supervision\.exempt_kinds\[1\]"),
        ("[supervision]\nmin_spacing_days = 200\n", r"supervision\.min_spacing_days: 200 days between visits"),
        ("[supervision.modes]\nhigh = \"relaxed\"\n", r"supervision\.modes\.high: expected one of"),
        ("[overrides.serious_accident]\nmin_grade = \"big\"\n", r"overrides\.serious_accident\.min_grade"),
        ("[overrides.repeat_accidents]\ncount = 1\n", r"overrides\.repeat_accidents\.count: a repeat needs at least 2"),
        ("[overrides.sector_cluster]\nscope = \"province\"\n", r"overrides\.sector_cluster\.scope"),
        ("[tiers]\ndemotion_hold_days = \"90\"\n", r"tiers\.demotion_hold_days: expected a whole number, got '90'"),
        ("[planning.capacity]\n\"应急\" = -1\n", r"planning\.capacity\.应急: expected a whole number >= 0"),
        ("[planning.sector_department]\nspaceport = \"航天\"\n", r"planning\.sector_department\.spaceport: unknown sector"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_key(tmp_path, text, match):
    with pytest.raises(PolicyError, match=match):
        load_policy(write(tmp_path, text))


def test_shipped_monitoring_section_is_the_documented_defaults(policy: Policy):
    from scoring.domain.monitoring import MonitoringSettings

    assert policy.monitoring == MonitoringSettings()


def test_a_bad_monitoring_threshold_is_refused_naming_the_key(tmp_path):
    with pytest.raises(PolicyError, match=r"monitoring\.psi_significant: expected 0 < psi_moderate"):
        load_policy(write(tmp_path, "[monitoring]\npsi_moderate = 0.3\n"))


def test_messages_name_the_file(tmp_path):
    with pytest.raises(PolicyError, match=r"^bureau\.toml: tiers\.high_share"):
        load_policy(write(tmp_path, "[tiers]\nhigh_share = 2\n"))


def test_policy_keeps_other_engineers_sections_as_mappings():
    from scoring.domain.policy import policy_from_mapping

    mapping, _ = read_policy_mapping()
    mapping = {**mapping, "expert_card": {"base": 100}, "training": {"folds": 3}}
    policy = policy_from_mapping(mapping)
    assert policy.expert_card["base"] == 100 and policy.training["folds"] == 3
    with pytest.raises(PolicyError, match=r"policy\.toml: batch: unknown key"):
        policy_from_mapping({**mapping, "batch": {}})
    caps = dict(mapping["supervision"]["caps"])
    caps["coal_mine"] = {**caps["coal_mine"], "visits": {"A": 2, "B": 4, "C": 6}}
    with pytest.raises(PolicyError, match=r"policy\.toml: supervision\.caps\.coal_mine\.visits\.D: missing"):
        policy_from_mapping({**mapping, "supervision": {**mapping["supervision"], "caps": caps}})
    without = {k: v for k, v in mapping.items() if k != "supervision"}
    with pytest.raises(PolicyError, match=r"supervision: missing section"):
        policy_from_mapping(without)
