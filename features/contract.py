"""The data contract (DESIGN.md §3): which tables exist, their keys, columns and value domains.

This module is the single description of the import format. The database schema
(:mod:`features.schema`), the validator (:mod:`features.validate`) and the synthetic world generator
all read it; nothing else spells out column lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


SECTORS: tuple[Sector, ...] = (
    Sector("coal_mine", "煤矿", "coal mine", "coal_mine"),
    Sector("noncoal_mine", "非煤矿山", "non-coal mine (incl. tailings ponds)", "noncoal_mine"),
    Sector("hazchem", "危险化学品/化工", "hazardous chemicals", "hazchem_smelting"),
    Sector("fireworks", "烟花爆竹", "fireworks", "hazchem_smelting"),
    Sector("metal_smelting", "金属冶炼", "metal smelting", "hazchem_smelting"),
    Sector("metallurgy", "冶金", "metallurgy", "other"),
    Sector("nonferrous", "有色", "non-ferrous metals", "other"),
    Sector("building_materials", "建材", "building materials", "other"),
    Sector("machinery", "机械", "machinery", "other"),
    Sector("light_industry", "轻工", "light industry", "other"),
    Sector("textile", "纺织", "textile", "other"),
    Sector("tobacco", "烟草", "tobacco", "other"),
    Sector("commerce", "商贸", "commerce and trade", "other"),
    Sector("construction", "建筑施工", "construction", "other"),
    Sector("gas", "城镇燃气", "urban gas", "other"),
    Sector("road_transport", "道路运输", "road transport", "other"),
    Sector("crowded_place", "人员密集场所", "crowded place", "other"),
    Sector("warehouse_logistics", "仓储物流", "warehousing and logistics", "other"),
    Sector("oil_gas_pipeline", "油气管道", "oil and gas pipeline", "other"),
    Sector("special_equipment", "特种设备", "special equipment", "other"),
    Sector("other", "其他", "other", "other"),
)
SECTOR_CODES: tuple[str, ...] = tuple(s.code for s in SECTORS)
SECTOR_BY_CODE: dict[str, Sector] = {s.code: s for s in SECTORS}

INSPECTION_KINDS = (
    "routine",
    "random",
    "focused",
    "unannounced",
    "complaint",
    "accident_investigation",
    "follow_up",
    "joint",
)
HAZARD_LEVELS = ("general", "major")
VIOLATION_KINDS = ("illegal_command", "illegal_operation", "labor_discipline")
CREDIT_KINDS = ("standardization", "blacklist", "redlist", "credit_grade", "insurance", "commitment")
CREDIT_GRADES = ("A1", "A2", "A3", "B1", "B2", "B3", "C", "D")
STANDARDIZATION_LEVELS = ("1", "2", "3")

# Accident grades, mildest first (State Council Decree 493, Art. 3).
ACCIDENT_GRADES = ("general", "larger", "major", "especially_major")


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of the import format.

    ``required`` columns must be present in the file (else the import stops); ``nullable=False``
    columns must also have a value in every row (else the row is quarantined).
    """

    name: str
    kind: ColumnKind
    required: bool = False
    nullable: bool = True
    choices: tuple[str, ...] | None = None
    references: str | None = None  # table whose key this column must match
    min_value: float | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    columns: tuple[Column, ...]
    required_file: bool = False
    event_date: str | None = None  # the column dating the event (None for enterprises)
    has_recorded_on: bool = True
    extra_prefix: str | None = None  # columns starting with this prefix are kept as extras
    description: str = ""
    checks: tuple[str, ...] = field(default=())  # names of row checks in features.validate

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

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


def _id(name: str) -> Column:
    return Column(name, "id", required=True, nullable=False)


def _enterprise_ref() -> Column:
    return Column("enterprise_id", "id", required=True, nullable=False, references="enterprises")


def _event_date(name: str) -> Column:
    return Column(name, "date", required=True, nullable=False)


_RECORDED_ON = Column("recorded_on", "date")

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "enterprises",
        key="enterprise_id",
        required_file=True,
        has_recorded_on=False,
        extra_prefix="x_",
        description="Supervised enterprises (one row each).",
        columns=(
            _id("enterprise_id"),
            Column("name", "text"),
            Column("uscc", "text"),
            Column("sector", "category", required=True, nullable=False, choices=SECTOR_CODES),
            Column("township", "text"),
            Column("employees", "int", min_value=0),
            Column("founded_on", "date"),
            Column("closed_on", "date"),
            Column("major_hazard_source", "bool"),
            Column("dust_explosion", "bool"),
            Column("ammonia_refrigeration", "bool"),
            Column("confined_space", "bool"),
        ),
        checks=("uscc", "closed_after_founded"),
    ),
    TableSpec(
        "inspections",
        key="inspection_id",
        required_file=True,
        event_date="inspected_on",
        description="Inspections (visits) by any department.",
        columns=(
            _id("inspection_id"),
            _enterprise_ref(),
            _event_date("inspected_on"),
            Column("department", "text"),
            Column("kind", "category", choices=INSPECTION_KINDS),
            Column("n_inspectors", "int", min_value=0),
            Column("exam_takers", "int", min_value=0),
            Column("exam_passed", "int", min_value=0),
            _RECORDED_ON,
        ),
        checks=("exam_passed_le_takers",),
    ),
    TableSpec(
        "hazards",
        key="hazard_id",
        event_date="found_on",
        description="Hidden hazards (隐患) found by inspections or self-reported.",
        columns=(
            _id("hazard_id"),
            _enterprise_ref(),
            Column("inspection_id", "id"),
            _event_date("found_on"),
            Column("level", "category", required=True, nullable=False, choices=HAZARD_LEVELS),
            Column("category", "text"),
            Column("rectify_by", "date"),
            Column("rectified_on", "date"),
            _RECORDED_ON,
        ),
        checks=("rectified_after_found", "deadline_after_found"),
    ),
    TableSpec(
        "violations",
        key="violation_id",
        event_date="found_on",
        description="Violations of rules (三违).",
        columns=(
            _id("violation_id"),
            _enterprise_ref(),
            Column("inspection_id", "id"),
            _event_date("found_on"),
            Column("kind", "category", choices=VIOLATION_KINDS),
            _RECORDED_ON,
        ),
    ),
    TableSpec(
        "accidents",
        key="accident_id",
        event_date="occurred_on",
        description="Production-safety accidents.",
        columns=(
            _id("accident_id"),
            _enterprise_ref(),
            _event_date("occurred_on"),
            Column("grade", "category", choices=ACCIDENT_GRADES),
            Column("deaths", "int", min_value=0),
            Column("serious_injuries", "int", min_value=0),
            Column("direct_loss_yuan", "float", min_value=0),
            Column("road_traffic", "bool"),
            Column("concealed", "bool"),
            _RECORDED_ON,
        ),
        checks=("accident_grade",),
    ),
    TableSpec(
        "penalties",
        key="penalty_id",
        event_date="decided_on",
        description="Administrative penalties (行政处罚).",
        columns=(
            _id("penalty_id"),
            _enterprise_ref(),
            _event_date("decided_on"),
            Column("amount_yuan", "float", min_value=0),
            Column("person_penalized", "bool"),
            Column("suspension", "bool"),
            _RECORDED_ON,
        ),
    ),
    TableSpec(
        "credit_records",
        key="record_id",
        event_date="valid_from",
        description="Credit state records valid over a date range.",
        columns=(
            _id("record_id"),
            _enterprise_ref(),
            Column("kind", "category", required=True, nullable=False, choices=CREDIT_KINDS),
            Column("value", "text"),
            _event_date("valid_from"),
            Column("valid_to", "date"),
            _RECORDED_ON,
        ),
        checks=("valid_to_after_from", "credit_value"),
    ),
    TableSpec(
        "complaints",
        key="complaint_id",
        event_date="received_on",
        description="Complaints and reports (举报).",
        columns=(
            _id("complaint_id"),
            _enterprise_ref(),
            _event_date("received_on"),
            Column("substantiated", "bool"),
            _RECORDED_ON,
        ),
    ),
)
TABLE_BY_NAME: dict[str, TableSpec] = {t.name: t for t in TABLES}
EVENT_TABLES: tuple[str, ...] = tuple(t.name for t in TABLES if t.event_date)

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


def accident_grade(deaths: int, serious_injuries: int, direct_loss_yuan: float) -> str:
    """Grade an accident by its consequences (Decree 493 Art. 3; bounds are inclusive, "以上")."""
    if deaths >= 30 or serious_injuries >= 100 or direct_loss_yuan >= 100_000_000:
        return "especially_major"
    if deaths >= 10 or serious_injuries >= 50 or direct_loss_yuan >= 50_000_000:
        return "major"
    if deaths >= 3 or serious_injuries >= 10 or direct_loss_yuan >= 10_000_000:
        return "larger"
    return "general"
