"""Database tables of the data contract, built from :mod:`features.contract`.

SQLAlchemy Core (not the ORM): the tables are only ever read and written in bulk.
Later layers (the scoring outputs) add their tables to the same :data:`metadata`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from features.contract import ENTERPRISE_KEY, TABLES, TRUTH_TABLE, Column, TableSpec

metadata = sa.MetaData()

_SQL_TYPES = {
    "id": lambda: sa.String(64),
    "text": lambda: sa.Text(),
    "category": lambda: sa.String(32),
    "date": lambda: sa.Date(),
    "int": lambda: sa.Integer(),
    "float": lambda: sa.Float(),
    "bool": lambda: sa.Boolean(),
}


def _sql_column(column: Column, *, primary_key: bool) -> sa.Column:
    return sa.Column(
        column.name,
        _SQL_TYPES[column.kind](),
        primary_key=primary_key,
        nullable=primary_key is False and column.nullable,
    )


def _contract_table(spec: TableSpec) -> sa.Table:
    columns = [_sql_column(c, primary_key=c.name in spec.key_names) for c in spec.columns]
    if spec.extra_prefix:
        # Free-form extra columns (``x_*``) travel as one JSON object per row.
        columns.append(sa.Column("extras", sa.JSON(), nullable=True))
    indexes = []
    if spec.per_enterprise:
        # The enterprise's integer surrogate, written by the importer (see features.contract.ENTERPRISE_KEY).
        columns.append(sa.Column(ENTERPRISE_KEY, sa.Integer, nullable=True))
        if spec.name == "enterprises":
            indexes.append(sa.Index("ux_enterprises_enterprise_key", ENTERPRISE_KEY, unique=True))
        else:
            indexes.append(sa.Index(f"ix_{spec.name}_enterprise_id", "enterprise_id"))
            indexes.append(sa.Index(_key_range_index(spec.name), ENTERPRISE_KEY).ddl_if(dialect="postgresql"))
    return sa.Table(spec.name, metadata, *columns, *indexes, comment=spec.description)


def _key_range_index(table: str) -> str:
    """The index a partitioned read of ``table`` by ``enterprise_key`` range goes through (PostgreSQL only: the
    Dask nightly's database; without it every partition's read scans the whole table, so that reading all the
    partitions grows with the square of the enterprises)."""
    return f"ix_{table}_enterprise_key"


def dialect_indexes(table: sa.Table, dialect: sa.Dialect) -> tuple[sa.Index, ...]:
    """``table``'s indexes that the database of ``dialect`` has (the key-range indexes only on PostgreSQL)."""
    return tuple(index for index in table.indexes
                 if dialect.name == "postgresql" or index.name not in _KEY_RANGE_INDEXES)


CONTRACT_TABLES: dict[str, sa.Table] = {spec.name: _contract_table(spec) for spec in TABLES}
_KEYED_TABLES = tuple(spec.name for spec in TABLES if spec.per_enterprise)  # those carrying enterprise_key
_KEY_RANGE_INDEXES = {_key_range_index(name): name for name in _KEYED_TABLES if name != "enterprises"}  # → table

truth = sa.Table(
    TRUTH_TABLE.name,
    metadata,
    *[_sql_column(c, primary_key=c.name in ("enterprise_id", "month")) for c in TRUTH_TABLE.columns],
    comment=TRUTH_TABLE.description,
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("quarantine_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("table_name", sa.String(32), nullable=False),
    sa.Column("source_file", sa.Text, nullable=False),
    sa.Column("line", sa.Integer, nullable=True),  # 1-based line in the file, header is line 1
    sa.Column("column_name", sa.String(64), nullable=True),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("rule", sa.String(32), nullable=True),  # the validation rule that failed (features.validate.RULES)
    sa.Column("row_key", sa.String(64), nullable=True),  # the row's key, so a corrected twin can replace it
    sa.Column("raw", sa.JSON, nullable=True),  # the whole row as read, so nothing is lost
    sa.Column("imported_at", sa.DateTime, nullable=False),
    sa.Index("ix_quarantine_table_key", "table_name", "row_key"),
    comment="Rows refused by the import, with where and why.",
)


def create_schema(engine: sa.Engine) -> None:
    """Create every table that does not exist yet, and bring older contract tables up to date (idempotent)."""
    create_tables(engine, upgrade=_upgrade)


def create_tables(engine: sa.Engine, tables: Sequence[sa.Table] | None = None, *,
                  upgrade: Callable[[sa.Connection], None] | None = None) -> None:
    """Create ``tables`` (default: every table of :data:`metadata`) that do not exist yet, safely against other
    processes doing the same on a brand-new database: when something is missing, the check and the creation run
    under the database's write lock (:func:`features.db.write_transaction`, :func:`features.db.serialise`), so a
    second process waits and then finds the tables made. ``upgrade(conn)`` runs in the same transaction."""
    from features.db import serialise, write_transaction

    wanted = list(metadata.sorted_tables if tables is None else tables)
    if _complete(engine, wanted, upgrade is not None):
        return
    with write_transaction(engine, what="creating the tables") as conn:
        serialise(conn, "schema", what="creating the tables")
        metadata.create_all(conn, tables=wanted, checkfirst=True)
        if upgrade is not None:
            upgrade(conn)


def _complete(engine: sa.Engine, tables: Sequence[sa.Table], keyed: bool) -> bool:
    inspector = sa.inspect(engine)
    existing = set(inspector.get_table_names())
    if not {t.name for t in tables} <= existing:
        return False
    if not keyed:
        return True
    if not all(ENTERPRISE_KEY in {c["name"] for c in inspector.get_columns(name)} for name in _KEYED_TABLES):
        return False
    return engine.dialect.name != "postgresql" or not _missing_key_range_indexes(engine)


def _missing_key_range_indexes(bind: sa.Engine | sa.Connection) -> set[str]:
    """The key-range indexes a PostgreSQL database made before them lacks (one catalogue query)."""
    with bind.connect() if isinstance(bind, sa.Engine) else contextlib.nullcontext(bind) as conn:
        present = set(conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                                           " AND indexname = ANY(:names)"), {"names": sorted(_KEY_RANGE_INDEXES)})
                      .scalars())
    return set(_KEY_RANGE_INDEXES) - present


def _add_enterprise_keys(conn: sa.Connection) -> None:
    """Databases made before ``enterprise_key`` existed: add the column and fill it (enterprises numbered in
    ``enterprise_id`` order, events from their enterprise), in the caller's transaction."""
    inspector = sa.inspect(conn)
    lacking = [name for name in _KEYED_TABLES
               if ENTERPRISE_KEY not in {c["name"] for c in inspector.get_columns(name)}]
    if not lacking:
        return
    quote = conn.dialect.identifier_preparer.quote
    key = quote(ENTERPRISE_KEY)
    for name in lacking:
        conn.execute(sa.text(f"ALTER TABLE {quote(name)} ADD COLUMN {key} INTEGER"))
    if "enterprises" in lacking:
        conn.execute(sa.text(
            f"UPDATE enterprises SET {key} = numbered.n FROM (SELECT enterprise_id, "
            f"row_number() OVER (ORDER BY enterprise_id) AS n FROM enterprises) AS numbered "
            f"WHERE enterprises.enterprise_id = numbered.enterprise_id"))
        conn.execute(sa.text(f"CREATE UNIQUE INDEX ux_enterprises_enterprise_key ON enterprises ({key})"))
    for name in lacking:
        if name != "enterprises":
            conn.execute(sa.text(
                f"UPDATE {quote(name)} SET {key} = (SELECT e.{key} FROM enterprises AS e "
                f"WHERE e.enterprise_id = {quote(name)}.enterprise_id)"))


def _add_key_range_indexes(conn: sa.Connection) -> None:
    """PostgreSQL databases made before the key-range indexes: build them (once, in the caller's transaction)."""
    if conn.dialect.name != "postgresql":
        return
    quote = conn.dialect.identifier_preparer.quote
    for index in sorted(_missing_key_range_indexes(conn)):
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {quote(index)} ON {quote(_KEY_RANGE_INDEXES[index])} "
                             f"({quote(ENTERPRISE_KEY)})"))


def _upgrade(conn: sa.Connection) -> None:
    """Bring older contract tables up to date (see :func:`create_schema`)."""
    _add_enterprise_keys(conn)
    _add_key_range_indexes(conn)
