"""Parameters of the synthetic world and of today's inspection practice, with their documented defaults.

Frozen dataclasses grouped by mechanism (population, hazards, inspections, accidents, bureau); the defaults
land in the realism ranges of DESIGN.md §9 (checked by ``tests/data_samples/test_world.py``). Per-sector
numbers are read-only mappings keyed by the sector codes of :mod:`features.contract`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from features.contract import SECTOR_BY_CODE, SECTOR_CODES

def _frozen(mapping: Mapping) -> Callable[[], Mapping]:
    """default_factory for a read-only mapping field of a frozen dataclass."""
    return lambda: MappingProxyType(dict(mapping))


def _per_sector(default: float, **overrides: float) -> Callable[[], Mapping[str, float]]:
    unknown = set(overrides) - set(SECTOR_CODES)
    assert not unknown, f"unknown sectors {unknown}"
    return _frozen({code: overrides.get(code, default) for code in SECTOR_CODES})


HIGH_RISK_SECTORS = tuple(s.code for s in SECTOR_BY_CODE.values() if s.cap_group != "other")
"""Coal and non-coal mines, hazchem, fireworks, metal smelting: the sectors with their own visit caps (§4)."""

DEPARTMENTS = ("应急", "住建", "交通", "消防", "市场监管")
LEAD_DEPARTMENT: Mapping[str, str] = MappingProxyType(
    {
        **{code: "应急" for code in SECTOR_CODES},
        "construction": "住建",
        "gas": "住建",
        "road_transport": "交通",
        "warehouse_logistics": "交通",
        "crowded_place": "消防",
        "special_equipment": "市场监管",
    }
)

# Hazard categories: common ones for everybody, plus a few typical of the sector.
COMMON_CATEGORIES = ("安全管理", "设备设施", "作业环境", "消防安全", "用电安全", "应急管理", "职业健康", "有限空间")
SECTOR_CATEGORIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "coal_mine": ("通风瓦斯", "顶板管理", "防治水", "机电运输"),
        "noncoal_mine": ("边坡管理", "尾矿库", "爆破作业", "机电运输"),
        "hazchem": ("工艺安全", "储罐区", "危险物品", "特殊作业"),
        "fireworks": ("危险物品", "防火防爆", "特殊作业"),
        "metal_smelting": ("高温熔融金属", "煤气区域", "起重机械"),
        "metallurgy": ("高温熔融金属", "煤气区域", "起重机械"),
        "nonferrous": ("高温熔融金属", "粉尘防爆"),
        "building_materials": ("粉尘防爆", "窑炉", "起重机械"),
        "machinery": ("机械防护", "起重机械", "粉尘防爆"),
        "light_industry": ("机械防护", "粉尘防爆", "涉氨制冷"),
        "textile": ("机械防护", "粉尘防爆"),
        "construction": ("高处作业", "脚手架", "起重机械", "深基坑"),
        "gas": ("管网设施", "场站安全", "用户安全"),
        "road_transport": ("车辆技术状况", "驾驶员管理", "动态监控"),
        "crowded_place": ("疏散通道", "消防设施"),
        "warehouse_logistics": ("危险物品", "叉车作业"),
        "oil_gas_pipeline": ("管道完整性", "第三方施工"),
        "special_equipment": ("特种设备", "起重机械"),
    }
)
HAZARD_CATEGORIES = tuple(dict.fromkeys(COMMON_CATEGORIES + sum(SECTOR_CATEGORIES.values(), ())))

# Kinds of planned visits (as opposed to complaint visits, accident investigations and follow-ups).
ROUTINE_VISIT_KINDS = ("routine", "random", "focused", "unannounced", "joint")


# =============================================================================================
# Parameters
# =============================================================================================


@dataclass(frozen=True)
class PopulationParams:
    """Who the enterprises are. Shares are normalised, so they need not sum to one."""

    city: str = "高平市"
    county_code: str = "140581"  # 高平市 administrative division code: positions 3-8 of every USCC
    sector_mix: Mapping[str, float] = field(
        default_factory=_frozen(
            {
                "coal_mine": 0.03, "noncoal_mine": 0.03, "hazchem": 0.04, "fireworks": 0.01, "metal_smelting": 0.02,
                "metallurgy": 0.03, "nonferrous": 0.02, "building_materials": 0.06, "machinery": 0.08,
                "light_industry": 0.08, "textile": 0.04, "tobacco": 0.005, "commerce": 0.17, "construction": 0.09,
                "gas": 0.015, "road_transport": 0.07, "crowded_place": 0.10, "warehouse_logistics": 0.05,
                "oil_gas_pipeline": 0.005, "special_equipment": 0.03, "other": 0.07,
            }
        )
    )
    # Township -> relative number of enterprises (towns and townships of 高平市, plus two urban sub-districts).
    townships: Mapping[str, float] = field(
        default_factory=_frozen(
            {
                "马村镇": 1.2, "三甲镇": 0.9, "河西镇": 1.0, "米山镇": 1.1, "北诗镇": 0.8, "陈区镇": 1.1,
                "建宁乡": 0.6, "寺庄镇": 1.0, "原村乡": 0.6, "野川镇": 0.7, "东城街道": 1.6, "南城街道": 1.4,
            }
        )
    )
    urban_townships: tuple[str, ...] = ("东城街道", "南城街道")
    # Worlds beyond one county (more than single_county_max enterprises) get about one township per
    # enterprises_per_township enterprises, as whole counties of 10-19 townships (_population.township_layout).
    single_county_max: int = 5000
    enterprises_per_township: float = 300.0
    # Heavy industry is not sited in the urban sub-districts; shops, hotels and sites cluster there.
    rural_only_sectors: tuple[str, ...] = (
        "coal_mine", "noncoal_mine", "hazchem", "fireworks", "metal_smelting", "metallurgy", "nonferrous",
        "building_materials", "oil_gas_pipeline",
    )
    urban_sectors: tuple[str, ...] = ("commerce", "crowded_place", "construction", "special_equipment")
    urban_sector_boost: float = 3.0
    # Median head count per sector (log-normal around it).
    employees_median: Mapping[str, float] = field(
        default_factory=_per_sector(
            25, coal_mine=320, noncoal_mine=60, hazchem=90, fireworks=40, metal_smelting=150, metallurgy=180,
            nonferrous=120, building_materials=60, machinery=45, light_industry=35, textile=60, tobacco=80,
            commerce=12, construction=80, gas=40, road_transport=50, crowded_place=20, warehouse_logistics=25,
            oil_gas_pipeline=30, special_equipment=15,
        )
    )
    employees_sigma: float = 0.9
    area_per_employee_m2: Mapping[str, float] = field(
        default_factory=_per_sector(
            60, coal_mine=400, noncoal_mine=600, hazchem=250, fireworks=300, metal_smelting=200, metallurgy=200,
            building_materials=250, commerce=40, crowded_place=80, warehouse_logistics=300, oil_gas_pipeline=500,
            construction=150, road_transport=120,
        )
    )
    mean_age_years: float = 11.0  # enterprises existing at the start: age ~ 0.5 + exponential(mean)
    founded_per_year: float = 0.025  # share of all enterprises founded during the simulated years, per year
    closures_per_year: float = 0.012  # base yearly share closing (more under poor management, after accidents)
    # Special-risk flags: probability per sector (sectors not listed: 0).
    special_flag_rates: Mapping[str, Mapping[str, float]] = field(
        default_factory=_frozen(
            {
                "major_hazard_source": MappingProxyType(
                    {"hazchem": 0.45, "gas": 0.35, "fireworks": 0.3, "oil_gas_pipeline": 0.5, "coal_mine": 0.25,
                     "metal_smelting": 0.2, "metallurgy": 0.15, "warehouse_logistics": 0.05}
                ),
                "dust_explosion": MappingProxyType(
                    {"metallurgy": 0.15, "nonferrous": 0.25, "building_materials": 0.15, "machinery": 0.12,
                     "light_industry": 0.18, "textile": 0.2, "tobacco": 0.3}
                ),
                "ammonia_refrigeration": MappingProxyType(
                    {"light_industry": 0.08, "commerce": 0.01, "warehouse_logistics": 0.08, "tobacco": 0.05}
                ),
                "confined_space": MappingProxyType(
                    {"hazchem": 0.5, "metal_smelting": 0.4, "metallurgy": 0.4, "nonferrous": 0.3,
                     "building_materials": 0.3, "light_industry": 0.2, "textile": 0.1, "gas": 0.4,
                     "construction": 0.2, "oil_gas_pipeline": 0.4, "machinery": 0.1, "coal_mine": 0.3,
                     "noncoal_mine": 0.2, "other": 0.05}
                ),
            }
        )
    )
    # Industrial parks (x_park) and the townships they lie in; park firms are somewhat better run.
    parks: Mapping[str, tuple[str, ...]] = field(
        default_factory=_frozen(
            {
                "高平经济技术开发区": ("米山镇", "寺庄镇"),
                "陈区化工园区": ("陈区镇",),
                "马村工业园区": ("马村镇",),
                "三甲丝织产业园": ("三甲镇",),
            }
        )
    )
    park_sectors: tuple[str, ...] = (
        "hazchem", "metal_smelting", "metallurgy", "nonferrous", "building_materials", "machinery",
        "light_industry", "textile", "warehouse_logistics", "other",
    )
    park_share: float = 0.45  # of park-eligible firms in a park township
    park_management_bonus: float = 0.25


@dataclass(frozen=True)
class HazardParams:
    """The hidden hazard process."""

    # Expected new hazards a month for a 50-employee firm with average management, by sector.
    base_rate: Mapping[str, float] = field(
        default_factory=_per_sector(
            1.0, coal_mine=3.2, noncoal_mine=2.4, hazchem=2.6, fireworks=2.0, metal_smelting=2.6, metallurgy=2.2,
            nonferrous=2.0, building_materials=1.8, machinery=1.5, light_industry=1.3, textile=1.3, tobacco=0.8,
            commerce=0.9, construction=2.4, gas=1.6, road_transport=1.1, crowded_place=1.1, warehouse_logistics=1.2,
            oil_gas_pipeline=1.5, special_equipment=1.2,
        )
    )
    size_elasticity: float = 0.3
    firm_factor_sigma: float = 0.45  # hidden, persistent log-normal firm effect (never observed)
    management_effect: float = 0.5  # λ ∝ exp(−effect · m)
    management_level_sigma: float = 0.75  # spread of firms' long-run management levels
    management_noise_sigma: float = 0.65  # month-to-month wander around the long-run level (stationary sd)
    management_persistence: float = 0.95  # monthly AR(1) coefficient of that wander
    management_changes_per_year: float = 0.05  # new owner/manager: long-run level redrawn
    management_boost_per_visit: float = 0.03  # a visit nudges management up a little
    management_boost_after_accident: float = 0.3
    sector_year_shock_sigma: float = 0.12  # sector-wide yearly swings (economy, local campaigns)
    # Share of new hazards that are major, by sector (scaled by exp(−major_share_management_effect · m)).
    # Majors are fixed more slowly and spotted more easily than general hazards, so their share among
    # found hazards is about twice these values.
    major_share: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.0045, coal_mine=0.009, noncoal_mine=0.0075, hazchem=0.0075, fireworks=0.0075, metal_smelting=0.007,
            gas=0.007, oil_gas_pipeline=0.0075, construction=0.006,
        )
    )
    major_share_management_effect: float = 0.3
    # Monthly share of latent hazards the firm fixes unprompted: (poorly run, well run) ends of a logistic in m.
    self_fix_general: tuple[float, float] = (0.12, 0.45)
    self_fix_major: tuple[float, float] = (0.04, 0.18)
    seasonal_amplitude: float = 0.15  # summer peak, or winter peak for the sectors below
    winter_sectors: tuple[str, ...] = ("coal_mine", "gas", "fireworks", "crowded_place")
    # Campaign months (专项整治) besides June (安全生产月): firms fix more, fewer accidents happen.
    campaign_months_per_year: int = 1
    campaign_self_fix_boost: float = 1.5
    campaign_accident_factor: float = 0.85
    # Special-risk flags multiply hazard and accident intensity.
    flag_risk: Mapping[str, float] = field(
        default_factory=_frozen(
            {"major_hazard_source": 1.25, "dust_explosion": 1.15, "ammonia_refrigeration": 1.1, "confined_space": 1.1}
        )
    )
    suspension_activity: float = 0.3  # hazard arrivals while suspended (the plant is idle), relative
    suspension_accident_factor: float = 0.2  # accident intensity while suspended, relative


@dataclass(frozen=True)
class InspectionParams:
    """What a visit finds and how findings are rectified."""

    # Probability that a 2-inspector visit of this kind finds a given latent general hazard.
    detection_prob: Mapping[str, float] = field(
        default_factory=_frozen(
            {"routine": 0.55, "random": 0.55, "focused": 0.68, "unannounced": 0.72, "complaint": 0.6,
             "accident_investigation": 0.8, "follow_up": 0.5, "joint": 0.65}
        )
    )
    detection_per_extra_inspector: float = 0.08  # relative gain for each inspector beyond two
    detection_major_boost: float = 1.3  # major hazards are easier to spot
    visit_luck_sigma: float = 0.3  # log-normal spread of a visit's thoroughness
    violations_per_visit: float = 0.3  # 三违 seen per visit at average management (detection-scaled)
    exam_takers_mean: float = 3.0  # 逢查必考: workers tested per visit
    exam_skip_share: float = 0.05  # visits where no exam was held
    exam_pass_logit: tuple[float, float] = (1.3, 0.8)  # intercept, slope in m
    deadline_days_general: tuple[int, ...] = (7, 15, 30)
    deadline_days_major: tuple[int, ...] = (30, 60, 90)
    late_share: float = 0.065  # rectified after the deadline (average firm; more under poor management)
    never_share: float = 0.01  # never rectified
    late_delay_mean_days: float = 20.0
    self_report_habit_share: float = 0.3  # firms that use the self-report system (企业自查自报)
    self_report_share: float = 0.2  # of the hazards such a firm fixes itself, the share it reports


@dataclass(frozen=True)
class AccidentParams:
    """Accidents: rates, severity, concealment."""

    # Yearly probability of an accident for a 50-employee firm of average hidden risk, by sector.
    yearly_rate: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.0025, coal_mine=0.022, noncoal_mine=0.018, hazchem=0.011, fireworks=0.014, metal_smelting=0.011,
            metallurgy=0.008, nonferrous=0.007, building_materials=0.006, machinery=0.0045, light_industry=0.0035,
            textile=0.003, tobacco=0.0012, commerce=0.0012, construction=0.011, gas=0.004, road_transport=0.014,
            crowded_place=0.0012, warehouse_logistics=0.004, oil_gas_pipeline=0.005, special_equipment=0.004,
        )
    )
    size_elasticity: float = 0.4
    hidden_risk_elasticity: float = 0.8  # accident intensity ∝ (λ / sector-size reference)^elasticity
    per_unrectified_major: float = 0.8  # μ × (1 + this × unrectified major hazards)
    # Share of accidents of each grade above general (for an ordinary sector).
    grade_shares: Mapping[str, float] = field(
        default_factory=_frozen({"larger": 0.05, "major": 0.006, "especially_major": 0.0008})
    )
    severity_factor: Mapping[str, float] = field(
        default_factory=_per_sector(
            1.0, coal_mine=2.0, noncoal_mine=1.5, hazchem=1.6, fireworks=1.6, metal_smelting=1.3, gas=1.5,
            crowded_place=1.3, road_transport=1.2, commerce=0.6, textile=0.7, tobacco=0.6, other=0.8,
        )
    )
    fatal_share_general: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.12, coal_mine=0.35, noncoal_mine=0.3, construction=0.3, road_transport=0.3, fireworks=0.25,
            hazchem=0.2, metal_smelting=0.2, commerce=0.06, crowded_place=0.08,
        )
    )
    road_traffic_share: Mapping[str, float] = field(
        default_factory=_per_sector(0.01, road_transport=0.7, warehouse_logistics=0.15, construction=0.03)
    )
    concealed_share: float = 0.03  # of general accidents (more under poor management)
    concealment_discovery_days: tuple[int, int] = (45, 400)
    closure_after_severe: float = 0.3  # chance that a larger-or-worse accident ends the firm within months


@dataclass(frozen=True)
class BureauParams:
    """The bureau's reactions and the credit records (penalties, blacklist, certificates, grades)."""

    penalty_per_major_hazard: float = 0.45
    penalty_per_violation: float = 0.12
    penalty_many_hazards: float = 0.06  # a visit finding at least many_hazards
    many_hazards: int = 8
    penalty_overdue_major: float = 0.8  # a follow-up finding a major hazard past its deadline
    penalty_after_accident: float = 0.55
    penalty_after_fatal_accident: float = 0.95
    suspension_share: tuple[float, float, float] = (0.12, 0.5, 0.6)  # major hazard, overdue major, fatal/severe
    person_penalized_share: tuple[float, float] = (0.3, 0.85)  # findings, fatal/severe accident
    blacklist_after_severe: float = 0.9  # larger-or-worse accident
    blacklist_after_fatal: float = 0.2  # general accident with deaths
    blacklist_after_concealment: float = 1.0
    blacklist_years: int = 3
    blacklist_early_removal: float = 0.3  # removed after 12-24 months (信用修复)
    # Standardization (安全生产标准化): share of firms holding a certificate at the start, by sector.
    standardization_share: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.2, coal_mine=0.95, noncoal_mine=0.8, hazchem=0.85, fireworks=0.8, metal_smelting=0.8,
            metallurgy=0.6, nonferrous=0.55, building_materials=0.5, machinery=0.4, light_industry=0.35,
            textile=0.35, tobacco=0.7, construction=0.4, gas=0.6, road_transport=0.5, oil_gas_pipeline=0.7,
            commerce=0.12, crowded_place=0.15,
        )
    )
    standardization_level_shares: tuple[float, float, float] = (0.08, 0.3, 0.62)  # 一级, 二级, 三级
    standardization_renewal: float = 0.85
    standardization_new_per_year: float = 0.03
    insurance_share: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.45, coal_mine=0.98, noncoal_mine=0.95, hazchem=0.95, fireworks=0.95, metal_smelting=0.9,
            metallurgy=0.8, nonferrous=0.75, construction=0.85, gas=0.85, road_transport=0.8, oil_gas_pipeline=0.9,
        )
    )
    commitment_share: tuple[float, float] = (0.88, 0.45)  # lowest-risk firm, highest-risk firm (linear in rank)
    # Insurance policies and commitments run a year from signing; renewals (see WorldSimulator._rolling_yearly):
    renewal_early_share: float = 0.7  # signed up to renewal_early_days before expiry, the rest after a gap
    renewal_early_days: int = 30
    renewal_late_mean_days: float = 20.0
    new_firm_signing_days: float = 45.0  # mean days from founding to the first policy / commitment
    redlist_share: float = 0.4  # of eligible firms (A1, standardization 一/二级, clean 3 years)
    complaints_per_year: float = 0.04  # at a 50-employee firm of average hidden risk
    # Reporting lags (days): share recorded the same day, then 1 + geometric(mean).
    same_day_share: float = 0.55
    lag_mean_days: Mapping[str, float] = field(
        default_factory=_frozen(
            {"inspections": 6, "accidents": 2, "penalties": 5, "credit_records": 8, "complaints": 1, "self_reports": 3}
        )
    )


@dataclass(frozen=True)
class InspectorParams:
    """The departments' inspectors: how many, how they differ, how today's practice assigns them.

    Each inspector has a **stringency**, a multiplier of the detection probability of the visits they make (a
    team detects with the geometric mean of its members'). Today's practice assigns by territory: every
    department splits its roster into squads, each covering a block of townships, and a visit draws its team
    from the squad of the enterprise's township — so who inspects is confounded with the enterprise, as in real
    records (DESIGN.md §9: the tenth of inspectors who find the most find at least 3× per visit, at equal latent
    hazards, what the tenth who find the least do).
    """

    visits_per_inspector_month: float = 9.0  # staffing: the roster a department needs for today's visit load
    min_roster: int = 6  # even a department with little to do has this many
    squad_size: int = 5  # inspectors per territory squad (a visit's team is drawn at random within it)
    stringency_sigma: float = 0.9  # log-normal spread of the inspectors' detection multipliers
    turnover_per_year: float = 0.06  # inspectors leaving (replaced the next day by a new one)
    uncertified_share: float = 0.04  # inspectors without a law-enforcement certificate (执法证) yet


@dataclass(frozen=True)
class WorldParams:
    """Every knob of the synthetic world, with defaults that land in DESIGN.md §9's realism ranges."""

    population: PopulationParams = field(default_factory=PopulationParams)
    hazards: HazardParams = field(default_factory=HazardParams)
    inspections: InspectionParams = field(default_factory=InspectionParams)
    accidents: AccidentParams = field(default_factory=AccidentParams)
    bureau: BureauParams = field(default_factory=BureauParams)
    inspectors: InspectorParams = field(default_factory=InspectorParams)


@dataclass(frozen=True)
class RoutinePractice:
    """Today's inspection practice, imitated by :func:`default_inspection_policy`.

    Visit rates are set by sector, barely by record: the bureau visits somewhat more where last year's records
    were bad (``targeting_strength``), follows its own historical focus list (``focus_sigma``, unrelated to risk),
    answers complaints, investigates accidents and follows up major hazards.
    """

    # Routine visits a year per sector (complaints, investigations and follow-ups come on top).
    visits_per_year: Mapping[str, float] = field(
        default_factory=_per_sector(
            0.5, coal_mine=5.0, noncoal_mine=3.2, hazchem=3.5, fireworks=3.0, metal_smelting=3.0, metallurgy=1.3,
            nonferrous=1.1, building_materials=1.0, machinery=0.7, light_industry=0.6, textile=0.6, tobacco=0.5,
            commerce=0.35, construction=1.4, gas=1.2, road_transport=0.8, crowded_place=0.7,
            warehouse_logistics=0.6, oil_gas_pipeline=1.2, special_equipment=0.8, other=0.4,
        )
    )
    focus_sigma: float = 0.35
    targeting_strength: float = 0.35  # at most +35 % visits for the worst recent records
    signal_half_life_months: float = 6.0
    # Visits are fewer around the Spring Festival, more in the work-safety month (June) and before year end.
    month_factor: tuple[float, ...] = (0.8, 0.5, 1.0, 1.0, 1.0, 1.4, 1.0, 0.9, 1.0, 1.0, 1.1, 1.2)
    # Kinds of routine visits: high-risk sectors get more focused and unannounced visits.
    kind_shares_high_risk: Mapping[str, float] = field(
        default_factory=_frozen({"routine": 0.4, "random": 0.25, "focused": 0.2, "unannounced": 0.1, "joint": 0.05})
    )
    kind_shares_other: Mapping[str, float] = field(
        default_factory=_frozen({"routine": 0.45, "random": 0.4, "focused": 0.05, "unannounced": 0.03, "joint": 0.07})
    )
    other_department_share: float = 0.12  # routine visits by 消防 / 市场监管 rather than the lead department
    inspectors_shares: tuple[float, float, float] = (0.7, 0.25, 0.05)  # 2, 3, 4 inspectors
    complaint_visit_share: float = 0.85
    follow_up_share: float = 0.9  # of major hazards, followed up after their deadline


ROUTINE_PRACTICE = RoutinePractice()
