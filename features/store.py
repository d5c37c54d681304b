"""Reading the contract tables as canonical frames: from the database, or straight from a directory.

- :func:`load_tables` reads what :func:`features.importer.import_directory` stored.
- :func:`read_directory` validates CSV/xlsx files without a database (same validation code path as the
  import: :func:`features.importer.iter_validated`), for analysts and benchmarks.
- :func:`quarantine_frame` reads the quarantine table.

Frames are canonical (:func:`features.frames.canonical_frame`): contract columns in canonical dtypes,
``recorded_on`` filled with the event date where empty, and the enterprises' ``x_*`` extras as ordinary
columns (sorted by name) — numeric (``float64``) when every non-empty value is a number, text otherwise.
Frames read from the database end with ``enterprise_key`` (:data:`features.contract.ENTERPRISE_KEY`, int32),
with which the feature build finds each event's enterprise without hashing its ``enterprise_id``.
Rows come sorted by key. An optional table that is absent or empty is left out of the mapping (the bureau
has no such data: its features are absent, not zero); ``enterprises`` and ``inspections`` are always there.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME, TABLES, TRUTH_TABLE
from features.errors import DataError
from features.frames import canonical_frame, spec_for
from features.importer import Progress, find_sources, iter_validated, reported
from features.schema import quarantine
from features.validate import ISSUE_COLUMNS, key_columns

__all__ = ["load_tables", "quarantine_frame", "read_directory"]

logger = logging.getLogger(__name__)

_EXTRAS = "extras"


def load_tables(engine: sa.Engine, tables: Iterable[str] | None = None, *,
                key_range: tuple[int, int] | None = None,
                extra_kinds: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """The contract tables stored in ``engine``'s database, as canonical frames keyed by table name.

    ``tables``: names to read (default: every contract table; add ``"truth"`` to get a synthetic world's
    hidden truth). Absent or empty optional tables are omitted. ``key_range=(low, high)``: only the rows whose
    ``enterprise_key`` is in ``[low, high)`` (one partition of the enterprises with all their events; every
    table read must carry the key). ``extra_kinds``: the enterprises' ``x_*`` columns as ``"numeric"`` or
    ``"text"`` by name, the columns it does not name as text (a partition then types its extras as all the
    partitions do); default: numeric when every value of the frame is a number. Reads in bulk: SQLite and PostgreSQL through
    their Apache Arrow ADBC drivers (Arrow columns straight from the database, one ``SELECT`` per table);
    without those drivers, PostgreSQL through ``COPY ... TO STDOUT``, SQLite through the DBAPI cursor, other
    databases through SQLAlchemy. Both ways give the same frames.
    """
    names = _table_names(tables)
    keyed = _tables_with_keys(engine, names)
    filters = dict.fromkeys(names, "")
    if key_range is not None:
        parents = {spec_for(name).belongs_to for name in names} - {None}
        keyed |= _tables_with_keys(engine, parents)
        unkeyed = [name for name in sorted({*names, *parents}) if name not in keyed
                   and sa.inspect(engine).has_table(name) and spec_for(name).per_enterprise]
        if unkeyed:
            raise DataError(f"table {unkeyed[0]!r} has no {ENTERPRISE_KEY} column: it cannot be read by key range "
                            "(import the data again with this version to number the enterprises)")
        filters = {name: _key_range_filter(name, key_range, engine.dialect.name) for name in names}
    out = {}
    with _adbc_connection(engine) as adbc:
        for name in names:
            rows = filters[name]
            frame = _read_adbc(adbc, name, name in keyed, rows) if adbc is not None else None
            if frame is None:
                frame = _read_sqlalchemy(engine, name, name in keyed, rows)
            if frame.empty and not spec_for(name).required_file:
                continue
            out[name] = _canonical(name, frame, extra_kinds)
    return out


def _key_range_filter(table: str, key_range: tuple[int, int], dialect: str = "sqlite") -> str:
    """The ``WHERE`` clause reading ``table``'s rows of the enterprises keyed in ``[low, high)``: on the table's own
    key, or through the table its rows belong to (the links, through their inspection); none for the roster."""
    low, high = (int(k) for k in key_range)
    in_range = f"{_quote(ENTERPRISE_KEY)} >= {low} AND {_quote(ENTERPRISE_KEY)} < {high}"
    spec = spec_for(table)
    if spec.per_enterprise:
        return f" WHERE {in_range}"
    if spec.belongs_to is not None:
        key, parents = _quote(spec.key), f"SELECT {_quote(spec.key)} FROM {_quote(spec.belongs_to)} WHERE {in_range}"
        if dialect == "postgresql":
            # The partition's parent keys as one array, looked up in the links' primary key: PostgreSQL plans
            # "IN (SELECT ...)" as a hash join over the whole link table, so each partition's read grew with the
            # database (a partition of 50 000 enterprises at 1M: 2.8 s on three processes that way, 1.4 s this way,
            # as at 200k; see benchmarks/dask_scale.py and the README's "Beyond one machine").
            return f" WHERE {key} = ANY(ARRAY({parents}))"
        return f" WHERE {key} IN ({parents})"
    return ""


def _tables_with_keys(engine: sa.Engine, names: Iterable[str]) -> set[str]:
    """The contract tables whose rows carry ``enterprise_key`` (all, unless the database predates it and
    nothing has been imported since)."""
    inspector = sa.inspect(engine)
    return {name for name in names if name in TABLE_BY_NAME and inspector.has_table(name)
            and ENTERPRISE_KEY in {c["name"] for c in inspector.get_columns(name)}}


def _stored_columns(table: str, with_key: bool = False) -> list[str]:
    spec = spec_for(table)
    return list(spec.column_names) + ([_EXTRAS] if spec.extra_prefix else []) + ([ENTERPRISE_KEY] if with_key else [])


def _read_sqlalchemy(engine: sa.Engine, table: str, with_key: bool = False, where: str = "") -> pd.DataFrame:
    """``table`` (the rows ``where`` selects) through the engine's own driver, in canonical dtypes (not yet sorted)."""
    reader = _READERS.get(engine.dialect.name, _read_generic)
    with engine.connect() as conn:
        return _typed(table, reader(conn, table, _stored_columns(table, with_key), where))


def read_directory(
    directory: str | Path,
    *,
    today: date,
    uscc_allowlist: frozenset[str] = frozenset(),
    tables: Iterable[str] | None = None,
    chunk_rows: int = 200_000,
    progress: Progress | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Validate the CSV/xlsx files in ``directory`` without a database.

    Returns ``(tables, quarantine)``: the good rows of each table as canonical frames (same rules as
    :func:`load_tables`: absent or empty optional tables omitted; ``truth`` only if named in ``tables``),
    and the refused cells as a frame with the quarantine table's columns (:data:`features.validate.ISSUE_COLUMNS`).
    Missing required files or columns raise :class:`~features.errors.MissingInputError`. When one file holds
    the same key twice, the first copy wins (see :mod:`features.validate`).
    """
    names = _table_names(tables)
    sources = find_sources(directory, tables=names)
    good: dict[str, list[pd.DataFrame]] = {source.table: [] for source in sources}
    issues: list[pd.DataFrame] = []

    def known_enterprises() -> pd.Index:
        frames = good.get("enterprises", [])
        return pd.Index(pd.concat(frames)["enterprise_id"] if frames else [], dtype="str")

    files = iter_validated(sources, today=today, known_enterprises=known_enterprises, in_database=False,
                           uscc_allowlist=uscc_allowlist, chunk_rows=chunk_rows)
    for source, _validator, chunks in files:
        for result in reported(chunks, source, progress):
            good[source.table].append(result.good)
            if len(result.issues):
                issues.append(result.issues)
    out = {}
    for name in names:
        frames = good.get(name, [])
        if not frames or (not sum(map(len, frames)) and not spec_for(name).required_file):
            continue
        out[name] = _canonical(name, pd.concat(frames))
    refused = pd.concat(issues, ignore_index=True) if issues else pd.DataFrame(columns=list(ISSUE_COLUMNS))
    return out, refused


def quarantine_frame(engine: sa.Engine, table: str | None = None) -> pd.DataFrame:
    """The quarantine table (optionally one source table's entries), in insertion order; ``raw`` as dicts."""
    query = sa.select(quarantine).order_by(quarantine.c.quarantine_id)
    if table is not None:
        query = query.where(quarantine.c.table_name == table)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame([dict(row) for row in rows], columns=[c.name for c in quarantine.columns])


# ---------------------------------------------------------------------------------------------
# Fast path: Apache Arrow ADBC drivers (SQLite, PostgreSQL) return Arrow columns, typed here
# ---------------------------------------------------------------------------------------------

_SQLITE_BATCH_ROWS = 2**30
"""The ADBC SQLite driver infers each column's Arrow type from its first batch of rows (an all-NULL batch
would make a text column int64 and fail on the first text further down): one batch per table, so that it
looks at every value."""


@dataclass
class _Adbc:
    """An open ADBC DBAPI connection, and the statement options its driver needs."""

    connection: Any
    statement_options: dict[str, str]


@contextlib.contextmanager
def _adbc_connection(engine: sa.Engine) -> Iterator[_Adbc | None]:
    """The ADBC connection for ``engine``'s database, or ``None`` (no ADBC driver for this dialect, driver
    not installed, in-memory SQLite database, or the connection failed: then SQLAlchemy reads the tables)."""
    adbc = None
    try:
        adbc = _adbc_connect(engine.url)
    except Exception as error:  # noqa: BLE001 - any failure here only means the slower path
        logger.warning("ADBC connection to %s failed (%s); reading through SQLAlchemy",
                       engine.url.render_as_string(hide_password=True), error)
    try:
        yield adbc
    finally:
        if adbc is not None:
            adbc.connection.close()


def _adbc_connect(url: sa.URL) -> _Adbc | None:
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:") or url.query:
            return None
        try:
            import adbc_driver_sqlite.dbapi as sqlite_driver
        except ImportError:
            return None
        # Read-only URI filename: never creates a database (the engine's schema is already there).
        uri = f"file:{urllib.parse.quote(str(Path(path).resolve()))}?mode=ro"
        return _Adbc(sqlite_driver.connect(uri), {"adbc.sqlite.query.batch_rows": str(_SQLITE_BATCH_ROWS)})
    if backend == "postgresql":
        try:
            import adbc_driver_postgresql.dbapi as postgresql_driver
        except ImportError:
            return None
        # libpq URI: postgresql://user:password@host:port/database?params (the params psycopg got).
        uri = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return _Adbc(postgresql_driver.connect(uri), {})
    return None


def _read_adbc(adbc: _Adbc, table: str, with_key: bool = False, where: str = "") -> pd.DataFrame | None:
    """``table`` in canonical dtypes (not yet sorted), or ``None`` if the driver failed (then the caller reads
    it through SQLAlchemy, where a real problem with the database shows)."""
    import adbc_driver_manager

    columns = _stored_columns(table, with_key)
    query = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {_quote(table)}{where}"
    try:
        with adbc.connection.cursor() as cursor:
            if adbc.statement_options:
                cursor.adbc_statement.set_options(**adbc.statement_options)
            cursor.execute(query)
            arrow = cursor.fetch_arrow_table()
        return _typed_arrow(table, arrow)
    except (adbc_driver_manager.Error, OSError, pa.ArrowException) as error:
        logger.warning("ADBC read of %s failed (%s); reading through SQLAlchemy", table, error)
        return None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_STR = pd.Series([], dtype="str").dtype  # pandas 3: the Arrow-backed string dtype (pandas 2: object)
_ARROW_TO_PANDAS = {
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    **({pa.large_string(): _STR} if isinstance(_STR, pd.api.extensions.ExtensionDtype) else {}),
}

_ARROW_TYPES = {
    "id": pa.large_string(), "text": pa.large_string(), "category": pa.large_string(),
    "date": pa.timestamp("ns"), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
}


def _arrow_column(values: pa.ChunkedArray, kind: str) -> pa.ChunkedArray:
    """An Arrow column as stored (SQLite: text dates, 0/1 booleans; PostgreSQL: date32, int32, bool) in the
    Arrow type whose pandas conversion is the canonical dtype."""
    target = _ARROW_TYPES[kind]
    if values.null_count == len(values):  # SQLite types an all-NULL column int64, whatever it holds
        return pa.chunked_array([pa.nulls(len(values), target)], type=target)
    if kind == "date" and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.date32())  # ISO 'YYYY-MM-DD' only: anything else raises
    return values.cast(target)


def _typed_arrow(table: str, arrow: pa.Table) -> pd.DataFrame:
    """The Arrow result of the ``SELECT`` in canonical dtypes, extras expanded as in :func:`_typed`."""
    spec = spec_for(table)
    typed = pa.table({c.name: _arrow_column(arrow.column(c.name), c.kind) for c in spec.columns})
    frame = typed.to_pandas(types_mapper=_ARROW_TO_PANDAS.get)
    if ENTERPRISE_KEY in arrow.column_names:
        frame[ENTERPRISE_KEY] = _keys(pd.Series(arrow.column(ENTERPRISE_KEY).to_pandas(), index=frame.index))
    if _EXTRAS not in arrow.column_names:
        return frame
    texts = arrow.column(_EXTRAS)
    if isinstance(texts.type, pa.BaseExtensionType):  # PostgreSQL json: arrow.json over a string array
        texts = pa.chunked_array([chunk.storage for chunk in texts.chunks], type=texts.type.storage_type)
    extras = _expand_extras(pd.Series(texts.to_pylist(), index=frame.index, dtype=object))
    return pd.concat([frame, extras], axis=1) if len(extras.columns) else frame


# ---------------------------------------------------------------------------------------------
# Readers: one per dialect, each returning the raw stored values (text, numbers, 0/1, JSON text)
# ---------------------------------------------------------------------------------------------


def _read_sqlite(conn: sa.Connection, table: str, columns: Sequence[str], where: str = "") -> pd.DataFrame:
    quote = conn.dialect.identifier_preparer.quote
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}{where}")
        parts = []
        while rows := cursor.fetchmany(500_000):
            parts.append(pd.DataFrame.from_records(rows, columns=list(columns), coerce_float=False))
    finally:
        cursor.close()
    if not parts:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _read_postgresql(conn: sa.Connection, table: str, columns: Sequence[str], where: str = "") -> pd.DataFrame:
    quote = conn.dialect.identifier_preparer.quote
    buffer = io.BytesIO()
    with conn.connection.dbapi_connection.cursor() as cursor:
        query = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}{where}"
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame(columns=list(columns))
    return pd.read_csv(buffer, names=list(columns), header=None, dtype=str, keep_default_na=False,
                       na_values=[""], encoding="utf-8")


def _read_generic(conn: sa.Connection, table: str, columns: Sequence[str], where: str = "") -> pd.DataFrame:
    sql_table = sa.Table(table, sa.MetaData(), autoload_with=conn)
    query = sa.select(*(sql_table.c[c] for c in columns))
    rows = conn.execute(query.where(sa.text(where.removeprefix(" WHERE "))) if where else query).all()
    return pd.DataFrame.from_records(rows, columns=list(columns))


_READERS: dict[str, Callable[[sa.Connection, str, Sequence[str], str], pd.DataFrame]] = {
    "sqlite": _read_sqlite,
    "postgresql": _read_postgresql,
}

_BOOL_VALUES = {1: True, 0: False, True: True, False: False, "t": True, "f": False, "1": True, "0": False,
                "true": True, "false": False}


def _typed(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Stored values to canonical dtypes (the values were validated on the way in)."""
    out = {}
    for column in spec_for(table).columns:
        out[column.name] = _TO_CANONICAL[column.kind](frame[column.name])
    if _EXTRAS in frame.columns:
        extras = _expand_extras(frame[_EXTRAS])
        for name in extras.columns:
            out[name] = extras[name]
    if ENTERPRISE_KEY in frame.columns:
        out[ENTERPRISE_KEY] = _keys(frame[ENTERPRISE_KEY])
    return pd.DataFrame(out, index=frame.index)


def _keys(values: pd.Series) -> pd.Series:
    """``enterprise_key`` values: plain int32 when every row has one (as the importer writes them), else a
    nullable Int32 (rows written by other means; the feature build then maps by ``enterprise_id``)."""
    numbers = pd.to_numeric(values)
    return numbers.astype("int32") if numbers.notna().all() else numbers.astype("Int32")


def _to_date(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    return pd.to_datetime(values.astype(object), format="%Y-%m-%d").astype("datetime64[ns]")


def _to_bool(values: pd.Series) -> pd.Series:
    return values.map(_BOOL_VALUES).astype("boolean")


_TO_CANONICAL: dict[str, Callable[[pd.Series], pd.Series]] = {
    "id": lambda v: v.astype("str"),
    "text": lambda v: v.astype("str"),
    "category": lambda v: v.astype("str"),
    "date": _to_date,
    "int": lambda v: pd.to_numeric(v).astype("Int64"),
    "float": lambda v: pd.to_numeric(v).astype("float64"),
    "bool": _to_bool,
}


def _expand_extras(texts: pd.Series) -> pd.DataFrame:
    """The ``extras`` JSON objects as text columns (one per ``x_*`` key); a missing one (SQL NULL, read as
    ``None`` or NaN) has no keys."""
    records = [_extras_record(t) for t in texts]
    frame = pd.DataFrame.from_records(records, index=texts.index) if records else pd.DataFrame(index=texts.index)
    return frame.reindex(columns=sorted(frame.columns))


def _extras_record(value: object) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _canonical(table: str, frame: pd.DataFrame, extra_kinds: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Canonical frame sorted by key, ``x_*`` extras numeric where every value is a number (or as ``extra_kinds``
    says, see :func:`load_tables`)."""
    frame = frame.sort_values(list(key_columns(table)), kind="stable")
    result = canonical_frame(table, frame)
    if ENTERPRISE_KEY in frame.columns:
        result[ENTERPRISE_KEY] = frame[ENTERPRISE_KEY].reset_index(drop=True)
    prefix = spec_for(table).extra_prefix
    if prefix:
        extras = sorted(c for c in result.columns if c.startswith(prefix))
        result = result[[c for c in result.columns if c not in extras and c != ENTERPRISE_KEY] + extras
                        + ([ENTERPRISE_KEY] if ENTERPRISE_KEY in result.columns else [])]
        for name in extras:
            result[name] = _extra_values(result[name], None if extra_kinds is None else extra_kinds.get(name, "text"))
    return result


def _extra_values(values: pd.Series, kind: str | None = None) -> pd.Series:
    """An ``x_*`` column: ``float64`` when every non-missing value is a number, else text (or as ``kind`` says)."""
    text = values.astype(object).where(values.notna(), None)
    if kind == "text":
        return values.astype("str").where(values.notna(), pd.NA)
    numbers = pd.to_numeric(text, errors="coerce" if kind is None else "raise")
    if kind == "numeric" or ((numbers.notna() | text.isna()).all() and text.notna().any()):
        return numbers.astype("float64")
    return values.astype("str").where(values.notna(), pd.NA)


def _table_names(tables: Iterable[str] | None) -> list[str]:
    if tables is None:
        return [t.name for t in TABLES]
    names = list(tables)
    unknown = [n for n in names if n not in TABLE_BY_NAME and n != TRUTH_TABLE.name]
    if unknown:
        raise ValueError(f"unknown table {unknown[0]!r}; expected some of "
                         f"{', '.join([*TABLE_BY_NAME, TRUTH_TABLE.name])}")
    return names
