"""The feature catalog (DESIGN.md §5): every point-in-time feature, declared once.

Each :class:`Feature` says what it measures (source table, event filter, value column, window),
how it is aggregated (the name of a builder function in :mod:`features.build`), which way risk is
expected to move with it (for monotone constraints and reason codes) and what it means in Chinese and
English. The builder, the models, the reason texts, the documentation and the tests all iterate over
this catalog; nothing else lists features.

Names carry their window (``major_hazards_365d``); features without a window describe the state as of
the date (``unrectified_major_hazards``, ``days_since_last_inspection``, ``blacklisted``).

Time semantics shared by all features (details in :func:`features.build.build_features`): a feature as
of date ``a`` uses only events whose event date **and** ``recorded_on`` are strictly before ``a``; a
window of ``w`` days is ``[a - w days, a)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from features.contract import (
    ACCIDENT_GRADES,
    CREDIT_GRADES,
    HAZARD_LEVELS,
    SECTOR_CODES,
    STANDARDIZATION_LEVELS,
    TABLE_BY_NAME,
)

Direction = Literal[-1, 0, 1]
"""Expected risk direction: +1 risk rises with the value, -1 risk falls, 0 none or unknown."""

DEFAULT_WINDOWS: tuple[int, ...] = (90, 365, 1095)
"""Default look-back windows in days (DESIGN.md §5)."""

TREND_WINDOW_DAYS = 365
"""Trends compare the last 365 days with the 365 days before them."""

PEER_WINDOW_DAYS = 365
"""Peer context (举一反三) counts accidents of other enterprises in the last 365 days."""

INSPECTOR_WINDOW_DAYS = 1095
"""Inspector stringency and inspector-adjusted rates read three years of visits (a county inspector makes a few
dozen a year: fewer would leave most of them at the prior)."""

EXTRA_PREFIX = TABLE_BY_NAME["enterprises"].extra_prefix or "x_"

NO_LEVEL = "none"
"""In an ordinal feature's ``levels``, the level given to an enterprise with no active record."""


@dataclass(frozen=True)
class Where:
    """Event filter: keep rows whose ``column`` is one of ``values`` (or none of them if ``negate``).

    Missing values never match ``values``: with ``negate=True`` they are kept (e.g. an accident with
    unknown ``road_traffic`` counts as not road traffic).
    """

    column: str
    values: tuple[object, ...]
    negate: bool = False

    def __str__(self) -> str:
        shown = ", ".join(str(v) for v in self.values)
        return f"{self.column} {'not in' if self.negate else 'in'} ({shown})"


@dataclass(frozen=True)
class Quantity:
    """What is summed over events of ``source`` matching ``where``: ``value`` (a column) or a count.

    With ``half_life_days`` each event is weighted by ``0.5 ** (days before the as-of date / half_life_days)``:
    recent events count fully, older ones fade (a firm's current level rather than its whole history).
    """

    source: str
    where: tuple[Where, ...] = ()
    value: str | None = None
    half_life_days: int | None = None

    def __str__(self) -> str:
        what = f"sum of {self.value}" if self.value else "count"
        where = " and ".join(str(w) for w in self.where)
        decay = f", weighted by recency (half-life {self.half_life_days} days)" if self.half_life_days else ""
        return f"{what} of {self.source}" + (f" where {where}" if where else "") + decay


@dataclass(frozen=True)
class Feature:
    """One point-in-time feature.

    ``aggregation`` names the builder function (see ``features.build.AGGREGATIONS``); ``source``,
    ``where`` and ``value`` say what it aggregates; ``per`` is the denominator of ratios and rates;
    ``levels`` orders the values of ordinal and categorical features; ``group_by`` is the enterprise
    column defining peers for peer-context features. ``window_days`` is ``None`` for state features.
    """

    name: str
    source: str
    window_days: int | None
    aggregation: str
    direction: Direction
    description_zh: str
    description_en: str
    where: tuple[Where, ...] = ()
    value: str | None = None
    per: Quantity | None = None
    levels: tuple[str, ...] = ()
    group_by: str | None = None
    kind: Literal["numeric", "categorical"] = "numeric"
    half_life_days: int | None = None  # recency weighting of the measure (see Quantity)

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"feature {self.name!r}: direction must be -1, 0 or +1, got {self.direction!r}")
        if self.kind == "categorical" and self.direction != 0:
            raise ValueError(f"feature {self.name!r}: a categorical feature has no risk direction")
        if self.window_days is not None and self.window_days <= 0:
            raise ValueError(f"feature {self.name!r}: window_days must be positive, got {self.window_days}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ValueError(f"feature {self.name!r}: half_life_days must be positive, got {self.half_life_days}")

    @property
    def measure(self) -> Quantity:
        """The quantity aggregated: events of ``source`` matching ``where``, summing ``value`` or counting."""
        return Quantity(self.source, self.where, self.value, self.half_life_days)

    def description(self, lang: str = "zh") -> str:
        if lang not in ("zh", "en"):
            raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}")
        return self.description_zh if lang == "zh" else self.description_en


# ---------------------------------------------------------------------------------------------
# Families. Each returns the features of one family for the given windows.
# ---------------------------------------------------------------------------------------------


def _zh_window(days: int) -> str:
    return f"近{days}天"


def _en_window(days: int) -> str:
    return f"in the last {days} days"


_ALL_INSPECTIONS = Quantity("inspections")
_LONG_RECORD_DAYS = 1825
_HALF_LIFE_DAYS = 365
_MAJOR = (Where("level", ("major",)),)
_GENERAL = (Where("level", ("general",)),)
_ANY_LEVEL = (Where("level", HAZARD_LEVELS),)
_NON_ROAD = (Where("road_traffic", (True,), negate=True),)


def _inspection_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    features = [
        Feature(
            "days_since_last_inspection", "inspections", None, "days_since_last", 0,
            "距上次检查天数（从未检查为空）", "Days since the last inspection (empty if never inspected)",
        )
    ]
    for w in windows:
        features += [
            Feature(
                f"inspections_{w}d", "inspections", w, "window_sum", 0,
                f"{_zh_window(w)}被检查次数", f"Inspections {_en_window(w)}",
            ),
            Feature(
                f"unannounced_inspection_share_{w}d", "inspections", w, "window_ratio", 1,
                f"{_zh_window(w)}四不两直（暗查暗访）检查占比", f"Share of unannounced inspections {_en_window(w)}",
                where=(Where("kind", ("unannounced",)),), per=_ALL_INSPECTIONS,
            ),
            Feature(
                f"focused_inspection_share_{w}d", "inspections", w, "window_ratio", 1,
                f"{_zh_window(w)}重点检查占比", f"Share of focused inspections {_en_window(w)}",
                where=(Where("kind", ("focused",)),), per=_ALL_INSPECTIONS,
            ),
            Feature(
                f"exam_pass_rate_{w}d", "inspections", w, "window_ratio", -1,
                f"{_zh_window(w)}逢查必考通过率", f"Spot-exam pass rate {_en_window(w)}",
                value="exam_passed", per=Quantity("inspections", value="exam_takers"),
            ),
        ]
    return tuple(features)


def _hazard_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    features = [
        Feature(
            "unrectified_major_hazards", "hazards", None, "unrectified", 1,
            "截至评估日未整改的重大隐患数", "Major hazards not known to be rectified as of the date",
            where=_MAJOR,
        ),
        Feature(
            "overdue_major_hazards", "hazards", None, "overdue", 1,
            "截至评估日已超整改期限仍未整改的重大隐患数", "Major hazards past their rectification deadline and not rectified",
            where=_MAJOR,
        ),
    ]
    for w in windows:
        for level, where, zh in (("general", _GENERAL, "一般"), ("major", _MAJOR, "重大")):
            features += [
                Feature(
                    f"{level}_hazards_{w}d", "hazards", w, "window_sum", 1,
                    f"{_zh_window(w)}发现的{zh}隐患数", f"{level.capitalize()} hazards found {_en_window(w)}",
                    where=where,
                ),
                Feature(
                    f"{level}_hazards_per_inspection_{w}d", "hazards", w, "shrunk_rate", 1,
                    f"{_zh_window(w)}每次检查发现的{zh}隐患数（向行业均值收缩）",
                    f"{level.capitalize()} hazards per inspection {_en_window(w)}, shrunk toward the sector mean",
                    where=where, per=_ALL_INSPECTIONS,
                ),
            ]
    # The firm's current level over a long record (five years, recent years weighing most), relative to its
    # sector so that one scale serves every sector.
    features.append(Feature(
        f"hazards_per_inspection_vs_sector_{_LONG_RECORD_DAYS}d", "hazards", _LONG_RECORD_DAYS, "relative_rate", 1,
        f"近{_LONG_RECORD_DAYS}天每次检查发现的隐患数与行业均值之比（近期加权，半衰期{_HALF_LIFE_DAYS}天，向行业均值收缩）",
        f"Hazards per inspection {_en_window(_LONG_RECORD_DAYS)} as a multiple of the sector mean, weighted toward "
        f"recent ones (half-life {_HALF_LIFE_DAYS} days) and shrunk toward the sector mean",
        half_life_days=_HALF_LIFE_DAYS, per=Quantity("inspections", half_life_days=_HALF_LIFE_DAYS),
    ))
    return tuple(features)


def _violation_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    kinds = (
        ("illegal_command", "违章指挥", "Illegal commands (违章指挥)"),
        ("illegal_operation", "违章作业", "Illegal operations (违章作业)"),
        ("labor_discipline", "违反劳动纪律", "Breaches of labour discipline"),
    )
    features = []
    for w in windows:
        features.append(
            Feature(f"violations_{w}d", "violations", w, "window_sum", 1,
                    f"{_zh_window(w)}三违次数", f"Violations (三违) {_en_window(w)}")
        )
        features += [
            Feature(f"{kind}_violations_{w}d", "violations", w, "window_sum", 1,
                    f"{_zh_window(w)}{zh}次数", f"{en} {_en_window(w)}", where=(Where("kind", (kind,)),))
            for kind, zh, en in kinds
        ]
    return tuple(features)


def _penalty_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    features = []
    for w in windows:
        features += [
            Feature(f"penalties_{w}d", "penalties", w, "window_sum", 1,
                    f"{_zh_window(w)}行政处罚次数", f"Administrative penalties {_en_window(w)}"),
            Feature(f"penalty_amount_yuan_{w}d", "penalties", w, "window_sum", 1,
                    f"{_zh_window(w)}罚款金额（元）", f"Fines in yuan {_en_window(w)}", value="amount_yuan"),
            Feature(f"person_penalties_{w}d", "penalties", w, "window_sum", 1,
                    f"{_zh_window(w)}一案双罚（处罚责任人）次数",
                    f"Penalties also imposed on a responsible person (一案双罚) {_en_window(w)}",
                    where=(Where("person_penalized", (True,)),)),
            Feature(f"suspensions_{w}d", "penalties", w, "window_sum", 1,
                    f"{_zh_window(w)}责令停产停业次数", f"Orders to suspend production {_en_window(w)}",
                    where=(Where("suspension", (True,)),)),
        ]
    return tuple(features)


def _accident_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    features = [
        Feature(
            "days_since_last_accident", "accidents", None, "days_since_last", -1,
            "距上次事故天数（含道路交通事故；从未发生为空）",
            "Days since the last accident, road traffic included (empty if none on record)",
        )
    ]
    for w in windows:
        features += [
            Feature(f"accidents_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}事故起数（含道路交通）", f"Accidents of any grade {_en_window(w)}, road traffic included"),
            Feature(f"non_road_accidents_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}非道路交通事故起数", f"Accidents other than road traffic {_en_window(w)}",
                    where=_NON_ROAD),
            Feature(f"general_accidents_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}一般事故起数", f"General-grade accidents {_en_window(w)}",
                    where=(Where("grade", ("general",)),)),
            Feature(f"larger_or_worse_accidents_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}较大及以上事故起数", f"Accidents of grade larger or worse {_en_window(w)}",
                    where=(Where("grade", ACCIDENT_GRADES[1:]),)),
            Feature(f"accident_deaths_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}事故死亡人数", f"Deaths in accidents {_en_window(w)}", value="deaths"),
            Feature(f"concealed_accidents_{w}d", "accidents", w, "window_sum", 1,
                    f"{_zh_window(w)}瞒报事故起数", f"Concealed (瞒报) accidents {_en_window(w)}",
                    where=(Where("concealed", (True,)),)),
        ]
    return tuple(features)


def _complaint_features(windows: Sequence[int]) -> tuple[Feature, ...]:
    features = []
    for w in windows:
        features += [
            Feature(f"complaints_{w}d", "complaints", w, "window_sum", 1,
                    f"{_zh_window(w)}收到举报次数", f"Complaints received {_en_window(w)}"),
            Feature(f"substantiated_complaints_{w}d", "complaints", w, "window_sum", 1,
                    f"{_zh_window(w)}查实举报次数", f"Substantiated complaints {_en_window(w)}",
                    where=(Where("substantiated", (True,)),)),
        ]
    return tuple(features)


def _trend_features() -> tuple[Feature, ...]:
    w = TREND_WINDOW_DAYS
    return (
        Feature(
            f"inspections_change_{w}d", "inspections", w, "window_change", 0,
            f"{_zh_window(w)}检查次数减去此前{w}天的检查次数",
            f"Inspections in the last {w} days minus those in the {w} days before",
        ),
        Feature(
            f"major_hazards_change_{w}d", "hazards", w, "window_change", 1,
            f"{_zh_window(w)}重大隐患数减去此前{w}天的重大隐患数",
            f"Major hazards in the last {w} days minus those in the {w} days before",
            where=_MAJOR,
        ),
        Feature(
            f"hazards_per_inspection_change_{w}d", "hazards", w, "rate_change", 1,
            f"每次检查隐患数：{_zh_window(w)}减去此前{w}天（均向行业均值收缩）",
            f"Hazards per inspection in the last {w} days minus the {w} days before (both shrunk)",
            where=_ANY_LEVEL, per=_ALL_INSPECTIONS,
        ),
    )


def _credit_features() -> tuple[Feature, ...]:
    def kind(name: str) -> tuple[Where, ...]:
        return (Where("kind", (name,)),)

    return (
        Feature("blacklisted", "credit_records", None, "credit_flag", 1,
                "评估日处于严重失信主体名单", "On the serious-dishonesty blacklist as of the date", where=kind("blacklist")),
        Feature("redlisted", "credit_records", None, "credit_flag", -1,
                "评估日处于守信红名单", "On the trustworthiness red list as of the date", where=kind("redlist")),
        Feature("insured", "credit_records", None, "credit_flag", -1,
                "评估日投保安全生产责任保险", "Holds work-safety liability insurance (安责险) as of the date",
                where=kind("insurance")),
        Feature("commitment_signed", "credit_records", None, "credit_flag", -1,
                "评估日已签订安全承诺书", "Has a signed safety commitment (承诺书) as of the date",
                where=kind("commitment")),
        Feature("standardization_level", "credit_records", None, "credit_level", 1,
                "安全生产标准化等级（1=一级最好，4=无等级）",
                "Safety standardization level (1 = level one, best; 4 = no level)",
                where=kind("standardization"), levels=(*STANDARDIZATION_LEVELS, NO_LEVEL)),
        Feature("credit_grade_rank", "credit_records", None, "credit_level", 1,
                "信用等级序号（1=A1最好 … 8=D最差；无等级为空）",
                "Credit grade as a rank (1 = A1, best … 8 = D, worst; empty if ungraded)",
                where=kind("credit_grade"), levels=CREDIT_GRADES),
    )


def _attribute_features() -> tuple[Feature, ...]:
    def flag(column: str, zh: str, en: str) -> Feature:
        return Feature(column, "enterprises", None, "attribute", 1, zh, en, value=column)

    return (
        Feature("sector", "enterprises", None, "category", 0, "行业类别", "Sector",
                value="sector", levels=SECTOR_CODES, kind="categorical"),
        Feature("employees", "enterprises", None, "attribute", 0, "从业人员数", "Number of employees", value="employees"),
        Feature("age_years", "enterprises", None, "age_years", 0,
                "成立年限（年）", "Years since the enterprise was founded", value="founded_on"),
        flag("major_hazard_source", "构成重大危险源", "Has a major hazard installation (重大危险源)"),
        flag("dust_explosion", "涉及粉尘爆炸危险", "Dust-explosion risk"),
        flag("ammonia_refrigeration", "涉氨制冷", "Ammonia refrigeration"),
        flag("confined_space", "涉及有限空间作业", "Confined-space work"),
    )


def _peer_features() -> tuple[Feature, ...]:
    w = PEER_WINDOW_DAYS
    return (
        Feature(
            f"sector_peer_accidents_{w}d", "accidents", w, "peer_sum", 1,
            f"{_zh_window(w)}同行业其他企业非道路交通事故起数（举一反三）",
            f"Accidents (not road traffic) at other enterprises of the same sector {_en_window(w)}",
            where=_NON_ROAD, group_by="sector",
        ),
        Feature(
            f"township_peer_accidents_{w}d", "accidents", w, "peer_sum", 1,
            f"{_zh_window(w)}同乡镇（街道）其他企业非道路交通事故起数",
            f"Accidents (not road traffic) at other enterprises of the same township {_en_window(w)}",
            where=_NON_ROAD, group_by="township",
        ),
    )


def _inspector_features() -> tuple[Feature, ...]:
    w = INSPECTOR_WINDOW_DAYS
    teams = Quantity("inspection_inspectors")  # who made each visit (the link table or the list column)
    return (
        Feature(
            f"inspector_stringency_{w}d", "inspection_inspectors", w, "inspector_stringency", 0,
            f"{_zh_window(w)}检查该企业的执法人员平均严格程度（发现隐患数与所查企业应有数之比，向1收缩）",
            f"Mean stringency of the inspectors who visited the enterprise {_en_window(w)} (hazards they find per "
            f"visit relative to what the enterprises they visit yield, shrunk toward 1)",
            per=Quantity("hazards"),  # read too: without hazards there is nothing to compare inspectors by
        ),
        Feature(
            f"hazards_per_inspection_inspector_adjusted_{w}d", "hazards", w, "inspector_adjusted_rate", 1,
            f"{_zh_window(w)}发现隐患数与按执法人员严格程度和行业均值应发现数之比（向1收缩）",
            f"Hazards found {_en_window(w)} relative to what the sector's visits find, given the stringency of who "
            f"inspected (shrunk toward 1): a firm visited by lenient inspectors is not scored as safe",
            where=_ANY_LEVEL, per=teams,
        ),
        Feature(
            f"major_hazards_per_inspection_inspector_adjusted_{w}d", "hazards", w, "inspector_adjusted_rate", 1,
            f"{_zh_window(w)}发现重大隐患数与按执法人员严格程度和行业均值应发现数之比（向1收缩）",
            f"Major hazards found {_en_window(w)} relative to what the sector's visits find, given the stringency "
            f"of who inspected (shrunk toward 1)",
            where=_MAJOR, per=teams,
        ),
    )


def catalog_for(windows: Iterable[int] = DEFAULT_WINDOWS) -> tuple[Feature, ...]:
    """The catalog with windowed families instantiated for ``windows`` (days; trends and peers fixed at 365)."""
    windows = tuple(sorted({int(w) for w in windows}))
    if not windows or windows[0] <= 0:
        raise ValueError(f"windows must be positive numbers of days, got {windows!r}")
    catalog = (
        *_attribute_features(),
        *_inspection_features(windows),
        *_hazard_features(windows),
        *_violation_features(windows),
        *_penalty_features(windows),
        *_accident_features(windows),
        *_complaint_features(windows),
        *_credit_features(),
        *_trend_features(),
        *_peer_features(),
        *_inspector_features(),
    )
    _check_unique(catalog)
    return catalog


def _check_unique(catalog: Sequence[Feature]) -> None:
    seen: set[str] = set()
    for feature in catalog:
        if feature.name in seen:
            raise ValueError(f"duplicate feature name {feature.name!r} in the catalog")
        seen.add(feature.name)


CATALOG: tuple[Feature, ...] = catalog_for(DEFAULT_WINDOWS)
"""The default catalog (windows 90, 365 and 1095 days)."""


# ---------------------------------------------------------------------------------------------
# Extra enterprise columns (x_*): discovered in the data, not declared.
# ---------------------------------------------------------------------------------------------


def extra_feature(column: str, *, categorical: bool, levels: Sequence[str] = ()) -> Feature:
    """The feature for an extra enterprise column ``x_*`` (numeric kept numeric, text as categorical)."""
    if not column.startswith(EXTRA_PREFIX):
        raise ValueError(f"extra enterprise columns start with {EXTRA_PREFIX!r}, got {column!r}")
    return Feature(
        column, "enterprises", None, "category" if categorical else "attribute", 0,
        f"企业附加属性 {column}", f"Extra enterprise attribute {column}",
        value=column, levels=tuple(levels), kind="categorical" if categorical else "numeric",
    )


def extra_features(enterprises: pd.DataFrame) -> tuple[Feature, ...]:
    """Features for the ``x_*`` columns of an enterprises frame, in column order.

    Numeric and boolean columns stay numeric; any other column becomes a categorical feature whose
    levels are its distinct values, sorted.
    """
    features = []
    for column in enterprises.columns:
        if not column.startswith(EXTRA_PREFIX):
            continue
        values = enterprises[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            features.append(extra_feature(column, categorical=False))
        else:
            levels = sorted({str(v) for v in values.dropna()})
            features.append(extra_feature(column, categorical=True, levels=levels))
    return tuple(features)


# ---------------------------------------------------------------------------------------------
# Reading the catalog
# ---------------------------------------------------------------------------------------------


def feature_names(catalog: Sequence[Feature] = CATALOG) -> tuple[str, ...]:
    """Names of the catalog's features, in catalog order."""
    return tuple(f.name for f in catalog)


def get_feature(name: str, catalog: Sequence[Feature] = CATALOG) -> Feature:
    """The feature called ``name``; an ``x_*`` name not in the catalog gets a generic numeric entry."""
    for feature in catalog:
        if feature.name == name:
            return feature
    if name.startswith(EXTRA_PREFIX):
        return extra_feature(name, categorical=False)
    raise KeyError(f"no feature {name!r} in the catalog")


def monotone_constraints(names: Sequence[str], catalog: Sequence[Feature] = CATALOG) -> list[int]:
    """Risk directions for ``names`` in order (for ``HistGradientBoostingClassifier(monotonic_cst=...)``).

    Categorical and extra (``x_*``) features are unconstrained (0).
    """
    return [int(get_feature(name, catalog).direction) for name in names]


def categorical_names(names: Sequence[str], catalog: Sequence[Feature] = CATALOG) -> list[str]:
    """Those of ``names`` that are categorical features (e.g. ``sector``)."""
    by_name = {f.name: f for f in catalog}
    return [n for n in names if n in by_name and by_name[n].kind == "categorical"]


def describe(name: str, lang: str = "zh", catalog: Sequence[Feature] = CATALOG) -> str:
    """The feature's description in ``lang`` (``"zh"`` or ``"en"``), e.g. for reason codes."""
    return get_feature(name, catalog).description(lang)


def catalog_frame(catalog: Sequence[Feature] = CATALOG) -> pd.DataFrame:
    """The catalog as a table, one row per feature (for documentation, notebooks and MLflow)."""
    rows = [
        {
            "name": f.name,
            "source": f.source,
            "window_days": f.window_days,
            "aggregation": f.aggregation,
            "direction": f.direction,
            "kind": f.kind,
            "measure": str(f.measure) if f.source != "enterprises" else f"column {f.value}",
            "per": str(f.per) if f.per else None,
            "half_life_days": f.half_life_days,
            "group_by": f.group_by,
            "levels": ", ".join(f.levels) if f.levels else None,
            "description_zh": f.description_zh,
            "description_en": f.description_en,
        }
        for f in catalog
    ]
    frame = pd.DataFrame(rows)
    frame["window_days"] = frame["window_days"].astype("Int64")
    frame["half_life_days"] = frame["half_life_days"].astype("Int64")
    return frame.set_index("name")
