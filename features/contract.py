"""The data contract (DESIGN.md §3): which tables exist, their keys, columns and value domains.

This module is the single description of the import format. The database schema
(:mod:`features.schema`), the validator (:mod:`features.validate`) and the synthetic world generator
all read it; nothing else spells out column lists.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

ColumnKind = Literal["id", "text", "date", "int", "float", "bool", "category"]

# ---------------------------------------------------------------------------------------------
# Sectors (DESIGN.md §4): code -> (中文, English, policy group for visit caps)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sector:
    code: str
    label_zh: str
    label_en: str
    cap_group: Literal["coal_mine", "noncoal_mine", "hazchem_smelting", "other"]
    aliases: tuple[str, ...] = ()  # other names bureaus' files use for the sector (accepted on import)


SECTORS: tuple[Sector, ...] = (
    Sector("coal_mine", "煤矿", "coal mine", "coal_mine", ("煤矿企业", "煤炭开采")),
    Sector("noncoal_mine", "非煤矿山", "non-coal mine (incl. tailings ponds)", "noncoal_mine",
           ("非煤矿山企业", "尾矿库", "non-coal mine")),
    Sector("hazchem", "危险化学品/化工", "hazardous chemicals", "hazchem_smelting",
           ("危险化学品", "化工", "危化品", "危险化学品企业")),
    Sector("fireworks", "烟花爆竹", "fireworks", "hazchem_smelting", ("烟花爆竹企业",)),
    Sector("metal_smelting", "金属冶炼", "metal smelting", "hazchem_smelting"),
    Sector("metallurgy", "冶金", "metallurgy", "other"),
    Sector("nonferrous", "有色", "non-ferrous metals", "other", ("有色金属",)),
    Sector("building_materials", "建材", "building materials", "other"),
    Sector("machinery", "机械", "machinery", "other"),
    Sector("light_industry", "轻工", "light industry", "other"),
    Sector("textile", "纺织", "textile", "other"),
    Sector("tobacco", "烟草", "tobacco", "other"),
    Sector("commerce", "商贸", "commerce and trade", "other", ("商贸流通",)),
    Sector("construction", "建筑施工", "construction", "other", ("建筑", "建筑业")),
    Sector("gas", "城镇燃气", "urban gas", "other", ("燃气",)),
    Sector("road_transport", "道路运输", "road transport", "other", ("道路交通运输",)),
    Sector("crowded_place", "人员密集场所", "crowded place", "other"),
    Sector("warehouse_logistics", "仓储物流", "warehousing and logistics", "other", ("仓储", "物流")),
    Sector("oil_gas_pipeline", "油气管道", "oil and gas pipeline", "other", ("油气输送管道",)),
    Sector("special_equipment", "特种设备", "special equipment", "other"),
    Sector("other", "其他", "other", "other", ("其它",)),
)
SECTOR_CODES: tuple[str, ...] = tuple(s.code for s in SECTORS)
SECTOR_BY_CODE: dict[str, Sector] = {s.code: s for s in SECTORS}


# ---------------------------------------------------------------------------------------------
# Category codes and their labels (中文 first): what the database stores, and the words bureaus' files use
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """One value of a category column: the stored ``code``, its usual Chinese label and other accepted words."""

    code: str
    label_zh: str
    aliases: tuple[str, ...] = ()


class Labelled(Protocol):
    """A code with labels: :class:`Code` or :class:`Sector`."""

    code: str
    label_zh: str
    aliases: tuple[str, ...]


INSPECTION_KIND_CODES: tuple[Code, ...] = (
    Code("routine", "日常检查", ("日常", "常规检查", "例行检查")),
    Code("random", "双随机抽查", ("双随机", "双随机检查", "随机抽查")),
    Code("focused", "重点检查", ("重点监管检查", "专项检查")),
    Code("unannounced", "四不两直", ("暗查暗访", "突击检查")),
    Code("complaint", "举报核查", ("投诉举报", "举报投诉核查")),
    Code("accident_investigation", "事故调查", ("事故调查检查",)),
    Code("follow_up", "复查", ("整改复查", "回头看")),
    Code("joint", "联合检查", ("综合查一次", "多部门联合检查")),
)
HAZARD_LEVEL_CODES: tuple[Code, ...] = (
    Code("general", "一般隐患", ("一般", "一般事故隐患")),
    Code("major", "重大隐患", ("重大", "重大事故隐患")),
)
VIOLATION_KIND_CODES: tuple[Code, ...] = (
    Code("illegal_command", "违章指挥"),
    Code("illegal_operation", "违章作业"),
    Code("labor_discipline", "违反劳动纪律"),
)
CREDIT_KIND_CODES: tuple[Code, ...] = (
    Code("standardization", "安全生产标准化", ("标准化", "标准化等级")),
    Code("blacklist", "严重失信主体名单", ("严重失信名单", "失信名单", "黑名单")),
    Code("redlist", "红名单", ("守信红名单",)),
    Code("credit_grade", "信用等级", ("安全信用等级",)),
    Code("insurance", "安责险", ("安全生产责任保险", "安全生产责任险")),
    Code("commitment", "承诺书", ("安全承诺书", "安全承诺")),
)
STANDARDIZATION_LEVEL_CODES: tuple[Code, ...] = (
    Code("1", "一级", ("一级企业", "1级")),
    Code("2", "二级", ("二级企业", "2级")),
    Code("3", "三级", ("三级企业", "3级")),
)
# Accident grades, mildest first (State Council Decree 493, Art. 3).
ACCIDENT_GRADE_CODES: tuple[Code, ...] = (
    Code("general", "一般事故", ("一般",)),
    Code("larger", "较大事故", ("较大",)),
    Code("major", "重大事故", ("重大",)),
    Code("especially_major", "特别重大事故", ("特别重大", "especially major")),
)

INSPECTION_KINDS: tuple[str, ...] = tuple(c.code for c in INSPECTION_KIND_CODES)
HAZARD_LEVELS: tuple[str, ...] = tuple(c.code for c in HAZARD_LEVEL_CODES)
VIOLATION_KINDS: tuple[str, ...] = tuple(c.code for c in VIOLATION_KIND_CODES)
CREDIT_KINDS: tuple[str, ...] = tuple(c.code for c in CREDIT_KIND_CODES)
CREDIT_GRADES = ("A1", "A2", "A3", "B1", "B2", "B3", "C", "D")
STANDARDIZATION_LEVELS: tuple[str, ...] = tuple(c.code for c in STANDARDIZATION_LEVEL_CODES)
ACCIDENT_GRADES: tuple[str, ...] = tuple(c.code for c in ACCIDENT_GRADE_CODES)

#: Words accepted in boolean cells (compared after :func:`normalise_name`: lower case, full-width folded).
BOOL_WORDS: Mapping[str, bool] = {
    "true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False,
    "yes": True, "no": False, "y": True, "n": False, "t": True, "f": False,
    "是": True, "否": False, "有": True, "无": False, "√": True, "×": False,
}


def normalise_name(text: str) -> str:
    """How names, labels and header cells are compared: NFKC (full-width letters, digits and brackets folded
    to their usual forms), stripped, lower case."""
    return unicodedata.normalize("NFKC", text).strip().lower()


def label_lookup(codes: Iterable[Labelled]) -> dict[str, str]:
    """Every accepted word (code, Chinese label, English label, aliases; normalised) -> its code."""
    lookup: dict[str, str] = {}
    for item in codes:
        for word in (item.code, item.label_zh, getattr(item, "label_en", item.code), *item.aliases):
            key = normalise_name(word)
            if lookup.setdefault(key, item.code) != item.code:
                raise ValueError(f"label {word!r} names both {lookup[key]!r} and {item.code!r}")
    return lookup


SECTOR_LOOKUP: dict[str, str] = label_lookup(SECTORS)


def sector_code(text: str) -> str | None:
    """The sector code a code or label names (煤矿 -> coal_mine, 'Coal_Mine' -> coal_mine), or ``None``."""
    return SECTOR_LOOKUP.get(normalise_name(text))


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the import format.

    ``required`` columns must be present in the file (else the import stops); ``nullable=False``
    columns must also have a value in every row (else the row is quarantined).

    ``zh``: the column's Chinese header names, the usual one first (a file may use any of them, or ``name``).
    ``labels``: for category columns, the codes with their labels (``choices`` are their codes).
    ``not_after_today``: a date later than the import's today is refused (``future_date``).
    ``holds_row`` (derived): whether a bad value refuses the whole row — keys, references, required values,
    the dates of events and whatever ``row_level`` marks — or only the cell: the row then loads with that
    value empty and the cell goes to quarantine.
    """

    name: str
    kind: ColumnKind
    required: bool = False
    nullable: bool = True
    choices: tuple[str, ...] | None = None
    references: str | None = None  # table whose key this column must match
    min_value: float | None = None
    zh: tuple[str, ...] = ()
    labels: tuple[Labelled, ...] = ()
    not_after_today: bool = False
    row_level: bool = False

    def __post_init__(self):
        if self.labels and self.choices is None:
            object.__setattr__(self, "choices", tuple(item.code for item in self.labels))

    @property
    def holds_row(self) -> bool:
        return (self.row_level or self.required or not self.nullable or self.kind == "id"
                or self.references is not None)


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    columns: tuple[Column, ...]
    zh: tuple[str, ...] = ()  # Chinese names of the table (for file and sheet names), the usual one first
    required_file: bool = False
    event_date: str | None = None  # the column dating the event (None for enterprises)
    has_recorded_on: bool = True
    extra_prefix: str | None = None  # columns starting with this prefix are kept as extras
    description: str = ""
    checks: tuple[str, ...] = field(default=())  # names of row checks in features.validate
    key_with: tuple[str, ...] = ()  # further key columns: a link table's key is the pair of ids it links
    belongs_to: str | None = None  # a table without enterprise_id whose rows belong, by ``key``, to a row of this
    # table (a link to its inspection): a partitioned read splits it with that table

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def key_names(self) -> tuple[str, ...]:
        """The columns of the key (``key`` and ``key_with``)."""
        return (self.key, *self.key_with)

    @property
    def per_enterprise(self) -> bool:
        """Whether every row belongs to one enterprise (has ``enterprise_id``, so the import gives it the
        enterprise's ``enterprise_key`` and a partitioned read splits it by key range). The inspectors' roster
        and the inspection-inspector links are not."""
        return "enterprise_id" in self.column_names

    @property
    def split_by_key_range(self) -> bool:
        """Whether a partitioned read splits the table by ranges of ``enterprise_key``: its rows carry the
        enterprise, or belong to rows that do (the links, through their inspection). Only the inspectors'
        roster is read whole by every partition: it grows with the departments' staff, not with the events."""
        return self.per_enterprise or self.belongs_to is not None

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name!r} has no column {name!r}")


ENTERPRISE_KEY = "enterprise_key"
"""The database's integer surrogate of ``enterprise_id``: the importer gives each enterprise one (kept across
re-imports) and writes it beside ``enterprise_id`` on every event row; :func:`features.store.load_tables` returns it.
Not part of the files. It lets the feature build find an event's enterprise by a small-array gather instead of a
string hash lookup per event."""


def _id(name: str, *zh: str) -> Column:
    return Column(name, "id", required=True, nullable=False, zh=zh)


_ENTERPRISE_ID_ZH = ("企业编号", "企业ID", "企业代码", "单位编号")
_INSPECTION_ID_ZH = ("检查编号", "检查记录编号")
_INSPECTOR_ID_ZH = ("执法人员编号", "检查人员编号", "人员编号", "执法人员ID")

INSPECTOR_SEPARATORS = ";；、,，/|"
"""What separates the inspectors of one visit in ``inspections.inspectors`` ("P017;P203", "张三、李四")."""


def _enterprise_ref() -> Column:
    return Column("enterprise_id", "id", required=True, nullable=False, references="enterprises",
                  zh=_ENTERPRISE_ID_ZH)


def _event_date(name: str, *zh: str) -> Column:
    return Column(name, "date", required=True, nullable=False, zh=zh, not_after_today=True)


def _event_field(name: str, kind: ColumnKind, *zh: str, **options) -> Column:
    """An optional column of an event that is part of what the event is (a bad value refuses the event)."""
    return Column(name, kind, zh=zh, row_level=True, **options)


_RECORDED_ON = _event_field("recorded_on", "date", "录入日期", "登记日期", "记录日期", not_after_today=True)

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "enterprises",
        key="enterprise_id",
        zh=("企业信息", "企业", "企业名录", "企业基本信息"),
        required_file=True,
        has_recorded_on=False,
        extra_prefix="x_",
        description="Supervised enterprises (one row each).",
        columns=(
            _id("enterprise_id", *_ENTERPRISE_ID_ZH),
            Column("name", "text", zh=("企业名称", "单位名称")),
            Column("uscc", "text", zh=("统一社会信用代码", "社会信用代码", "信用代码")),
            Column("sector", "category", required=True, nullable=False, labels=SECTORS,
                   zh=("所属行业", "行业", "行业类别", "行业类型")),
            Column("township", "text", zh=("所属乡镇", "乡镇", "所属乡镇(街道)", "乡镇(街道)", "乡镇街道", "所属街道")),
            Column("employees", "int", min_value=0, zh=("从业人员数", "从业人数", "职工人数", "员工人数")),
            Column("founded_on", "date", zh=("成立日期", "成立时间"), not_after_today=True),
            Column("closed_on", "date", zh=("注销日期", "关闭日期")),
            Column("major_hazard_source", "bool", zh=("重大危险源", "是否重大危险源")),
            Column("dust_explosion", "bool", zh=("粉尘涉爆", "是否粉尘涉爆")),
            Column("ammonia_refrigeration", "bool", zh=("涉氨制冷", "是否涉氨制冷")),
            Column("confined_space", "bool", zh=("有限空间", "有限空间作业", "是否有限空间作业")),
        ),
        checks=("uscc", "closed_after_founded"),
    ),
    TableSpec(
        # Before inspections: an import resolves who inspected against the roster it has read.
        "inspectors",
        key="inspector_id",
        zh=("执法人员", "执法人员名册", "执法人员信息", "检查人员名册"),
        has_recorded_on=False,
        description="The bureau's inspectors (执法人员): department, service period, law-enforcement certificate.",
        columns=(
            _id("inspector_id", *_INSPECTOR_ID_ZH),
            Column("name", "text", zh=("姓名", "执法人员姓名", "人员姓名")),
            Column("department", "text", zh=("所属部门", "执法部门", "部门")),
            Column("active_from", "date", zh=("任职起始日期", "入职日期", "起始日期")),
            Column("active_to", "date", zh=("任职截止日期", "离职日期", "截止日期")),
            Column("certified", "bool", zh=("执法证", "持有执法证", "是否持有执法证", "持证")),
        ),
        checks=("active_to_after_from",),
    ),
    TableSpec(
        "inspections",
        key="inspection_id",
        zh=("检查记录", "检查", "执法检查", "监督检查"),
        required_file=True,
        event_date="inspected_on",
        description="Inspections (visits) by any department.",
        columns=(
            _id("inspection_id", *_INSPECTION_ID_ZH),
            _enterprise_ref(),
            _event_date("inspected_on", "检查日期", "检查时间"),
            Column("department", "text", zh=("检查部门", "执法部门")),
            Column("kind", "category", labels=INSPECTION_KIND_CODES, zh=("检查类型", "检查方式")),
            Column("n_inspectors", "int", min_value=0, zh=("检查人数", "执法人数", "检查人员数")),
            Column("exam_takers", "int", min_value=0, zh=("考试人数", "应考人数", "参考人数")),
            Column("exam_passed", "int", min_value=0, zh=("合格人数", "考试合格人数")),
            # Who inspected, as a list: ids or names (resolved against the roster by name within the department).
            Column("inspectors", "text", zh=("检查人员", "执法人员", "检查人", "执法人员姓名")),
            _RECORDED_ON,
        ),
        checks=("exam_passed_le_takers",),
    ),
    TableSpec(
        "hazards",
        key="hazard_id",
        zh=("隐患", "隐患记录", "隐患排查", "隐患台账"),
        event_date="found_on",
        description="Hidden hazards (隐患) found by inspections or self-reported.",
        columns=(
            _id("hazard_id", "隐患编号"),
            _enterprise_ref(),
            Column("inspection_id", "id", zh=_INSPECTION_ID_ZH),
            _event_date("found_on", "发现日期", "排查日期"),
            Column("level", "category", required=True, nullable=False, labels=HAZARD_LEVEL_CODES,
                   zh=("隐患等级", "隐患级别")),
            Column("category", "text", zh=("隐患类别", "隐患类型")),
            _event_field("rectify_by", "date", "整改期限", "整改时限"),
            _event_field("rectified_on", "date", "整改完成日期", "整改日期"),
            _RECORDED_ON,
        ),
        checks=("rectified_after_found", "deadline_after_found"),
    ),
    TableSpec(
        "violations",
        key="violation_id",
        zh=("三违", "三违记录", "违章记录"),
        event_date="found_on",
        description="Violations of rules (三违).",
        columns=(
            _id("violation_id", "三违编号", "违章编号"),
            _enterprise_ref(),
            Column("inspection_id", "id", zh=_INSPECTION_ID_ZH),
            _event_date("found_on", "发现日期"),
            Column("kind", "category", labels=VIOLATION_KIND_CODES, zh=("三违类型", "违章类型")),
            _RECORDED_ON,
        ),
    ),
    TableSpec(
        "accidents",
        key="accident_id",
        zh=("事故", "事故记录", "生产安全事故"),
        event_date="occurred_on",
        description="Production-safety accidents.",
        columns=(
            _id("accident_id", "事故编号"),
            _enterprise_ref(),
            _event_date("occurred_on", "事故日期", "发生日期", "发生时间"),
            _event_field("grade", "category", "事故等级", "事故级别", labels=ACCIDENT_GRADE_CODES),
            _event_field("deaths", "int", "死亡人数", min_value=0),
            _event_field("serious_injuries", "int", "重伤人数", min_value=0),
            _event_field("direct_loss_yuan", "float", "直接经济损失(元)", "直接经济损失", min_value=0),
            Column("road_traffic", "bool", zh=("道路交通事故", "是否道路交通事故")),
            Column("concealed", "bool", zh=("瞒报", "是否瞒报")),
            _RECORDED_ON,
        ),
        checks=("accident_grade",),
    ),
    TableSpec(
        "penalties",
        key="penalty_id",
        zh=("行政处罚", "处罚", "处罚记录"),
        event_date="decided_on",
        description="Administrative penalties (行政处罚).",
        columns=(
            _id("penalty_id", "处罚编号", "处罚决定书编号", "决定书文号"),
            _enterprise_ref(),
            _event_date("decided_on", "处罚日期", "决定日期"),
            Column("amount_yuan", "float", min_value=0, zh=("罚款金额(元)", "罚款金额")),
            Column("person_penalized", "bool", zh=("一案双罚", "是否一案双罚")),
            Column("suspension", "bool", zh=("责令停产停业", "是否责令停产停业")),
            _RECORDED_ON,
        ),
    ),
    TableSpec(
        "credit_records",
        key="record_id",
        zh=("信用记录", "信用"),
        event_date="valid_from",
        description="Credit state records valid over a date range.",
        columns=(
            _id("record_id", "记录编号", "信用记录编号"),
            _enterprise_ref(),
            Column("kind", "category", required=True, nullable=False, labels=CREDIT_KIND_CODES,
                   zh=("记录类型", "信用类型")),
            _event_field("value", "text", "记录值", "等级"),
            _event_date("valid_from", "生效日期", "起始日期"),
            _event_field("valid_to", "date", "失效日期", "截止日期"),
            _RECORDED_ON,
        ),
        checks=("valid_to_after_from", "credit_value"),
    ),
    TableSpec(
        "complaints",
        key="complaint_id",
        zh=("举报", "投诉举报", "举报记录"),
        event_date="received_on",
        description="Complaints and reports (举报).",
        columns=(
            _id("complaint_id", "举报编号", "投诉举报编号"),
            _enterprise_ref(),
            _event_date("received_on", "受理日期", "举报日期", "接收日期"),
            Column("substantiated", "bool", zh=("是否属实", "属实")),
            _RECORDED_ON,
        ),
    ),
    TableSpec(
        "inspection_inspectors",
        key="inspection_id",
        key_with=("inspector_id",),
        belongs_to="inspections",
        zh=("检查人员记录", "检查人员明细", "检查执法人员"),
        has_recorded_on=False,
        description="Who made each inspection: one row per (inspection, inspector).",
        columns=(
            _id("inspection_id", *_INSPECTION_ID_ZH),
            _id("inspector_id", *_INSPECTOR_ID_ZH),
        ),
    ),
    TableSpec(
        "inspector_conflicts",
        key="inspector_id",
        key_with=("enterprise_id",),
        zh=("回避", "回避名单", "利害关系回避"),
        has_recorded_on=False,
        description="Declared conflicts of interest (回避): the inspector never inspects the enterprise.",
        columns=(
            _id("inspector_id", *_INSPECTOR_ID_ZH),
            _enterprise_ref(),
            Column("reason", "text", zh=("回避原因", "原因")),
        ),
    ),
)
TABLE_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
EVENT_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES if t.event_date)
INSPECTOR_TABLES: tuple[str, ...] = ("inspectors", "inspection_inspectors", "inspector_conflicts")
"""The optional tables of who inspects (DESIGN.md §3): the roster, who made each inspection, declared conflicts."""

_SEPARATOR_TABLE = str.maketrans({c: ";" for c in INSPECTOR_SEPARATORS})


def split_inspectors(text: str) -> list[str]:
    """The inspectors a list cell names, in order, without blanks or repeats ("P017；P203、" -> [P017, P203])."""
    parts = (part.strip() for part in unicodedata.normalize("NFKC", text).translate(_SEPARATOR_TABLE).split(";"))
    return list(dict.fromkeys(part for part in parts if part))

# The hidden truth written by the synthetic world (never part of a real bureau's data).
TRUTH_TABLE = TableSpec(
    "truth",
    key="enterprise_id",  # with month: the key is (enterprise_id, month)
    has_recorded_on=False,
    description="Synthetic worlds only: each enterprise's hidden risk month by month.",
    columns=(
        _enterprise_ref(),
        Column("month", "date", required=True, nullable=False),
        Column("accident_prob", "float", required=True, nullable=False, min_value=0),
        Column("hazard_rate", "float", required=True, nullable=False, min_value=0),
        Column("major_share", "float", required=True, nullable=False, min_value=0),
        Column("adverse_prob", "float", required=True, nullable=False, min_value=0),
        # Hidden state behind those probabilities (optional: only for diagnosing a model against the truth).
        Column("management", "float"),
        Column("latent_hazards", "int", min_value=0),
        Column("unrectified_major", "int", min_value=0),
        Column("suspended", "bool"),
    ),
)

TRUTH_INSPECTORS_TABLE = TableSpec(
    "truth_inspectors",
    key="inspector_id",
    has_recorded_on=False,
    description="Synthetic worlds only: each inspector's hidden stringency (detection multiplier of their visits).",
    columns=(
        _id("inspector_id"),
        Column("stringency", "float", required=True, nullable=False, min_value=0),
    ),
)


def header_lookup(spec: TableSpec) -> dict[str, str]:
    """Every accepted header name of ``spec``'s columns (the contract name and its Chinese names, normalised by
    :func:`normalise_name`) -> the column name."""
    lookup: dict[str, str] = {}
    for column in spec.columns:
        for word in (column.name, *column.zh):
            key = normalise_name(word)
            if lookup.setdefault(key, column.name) != column.name:
                raise ValueError(f"{spec.name}: header {word!r} names both {lookup[key]!r} and {column.name!r}")
    return lookup


def table_named(name: str) -> str | None:
    """The table a file stem or sheet name names (``enterprises``, ``企业信息`` -> ``enterprises``), or ``None``."""
    return _TABLE_LOOKUP.get(normalise_name(name))


def _table_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for spec in (*TABLES, TRUTH_TABLE):
        for word in (spec.name, *spec.zh):
            key = normalise_name(word)
            if lookup.setdefault(key, spec.name) != spec.name:
                raise ValueError(f"table name {word!r} names both {lookup[key]!r} and {spec.name!r}")
    return lookup


_TABLE_LOOKUP = _table_lookup()
HEADER_LOOKUP: dict[str, dict[str, str]] = {spec.name: header_lookup(spec) for spec in (*TABLES, TRUTH_TABLE)}
"""Per table: accepted header name (normalised) -> column name. Built at import, so a name given to two columns
of one table fails here, not in a bureau's import."""
CODE_LOOKUP: dict[tuple[str, str], dict[str, str]] = {
    (spec.name, column.name): label_lookup(column.labels)
    for spec in TABLES for column in spec.columns if column.labels
}
"""Per (table, category column): accepted word (normalised) -> code."""
STANDARDIZATION_LOOKUP: dict[str, str] = label_lookup(STANDARDIZATION_LEVEL_CODES)


def accident_grade(deaths: int, serious_injuries: int, direct_loss_yuan: float) -> str:
    """Grade an accident by its consequences (Decree 493 Art. 3; bounds are inclusive, "以上")."""
    if deaths >= 30 or serious_injuries >= 100 or direct_loss_yuan >= 100_000_000:
        return "especially_major"
    if deaths >= 10 or serious_injuries >= 50 or direct_loss_yuan >= 50_000_000:
        return "major"
    if deaths >= 3 or serious_injuries >= 10 or direct_loss_yuan >= 10_000_000:
        return "larger"
    return "general"
