"""Validated, idempotent import of the data contract (DESIGN.md §3) into the database.

:func:`import_directory` reads ``<table>.csv`` or ``<table>.xlsx`` for every contract table (plus the
optional ``truth.csv`` of synthetic worlds), validates each file chunk by chunk with
:class:`features.validate.TableValidator`, upserts the good rows by key and writes the bad ones to the
``quarantine`` table. Guarantees:

- **Stops before writing** when a required file (enterprises, inspections) or a required column is absent
  (:class:`~features.errors.MissingInputError`, naming file and column); every file's header is read first.
- **Loses nothing**: every refused row goes to quarantine with file, line, column, value, reason, the rule
  that failed, its key (``row_key``) and the whole raw row (``raw``).
- **Idempotent**: rows are upserted by key (``INSERT ... ON CONFLICT DO UPDATE``, skipping rows whose values
  are unchanged); a key's quarantine entries are replaced by this import's verdict on that key, so
  re-importing the same files changes nothing, and a corrected row replaces its quarantined twin.
  Keyless bad rows (no key, or a key too long to store) are matched on file, line, column and reason.
  A row refused now leaves the version loaded by an earlier import in place (nothing is deleted).
- **Unchanged files are not read again**: each table's last import is recorded in ``imported_files`` (the
  file's digest, the digest of everything its verdicts depend on, ``today``, its counts, and the table's and its
  quarantine's row counts after it). A file whose bytes, name, validation code, USCC allow-list and (for event
  tables) known and quarantined enterprises are those of the table's last import, into a table and quarantine
  that still hold that import's row counts, with ``today`` the same or later and no ``future_date`` verdict in
  that import (a later day could only accept such rows) is skipped: every verdict would be the same, so an import
  would write nothing (see :class:`_ImportLedger`). Anything else, the smallest change included, is read and
  validated in full.
- **All or nothing**: one transaction for the whole import.
- **Bounded memory**: files are read in chunks of ``chunk_rows``; only key hashes survive between chunks.
  Bulk writes: PostgreSQL ``COPY`` into a temporary table then one ``INSERT ... ON CONFLICT`` per chunk;
  SQLite ``executemany`` of an upsert on the DBAPI connection, except for a large file into an empty table,
  staged through a scratch SQLite file (see :class:`_SQLiteStage`). A reader thread reads and validates the
  next chunk while the current one is staged, and every statement runs on one work thread, in order
  (:class:`_SerialWork`), so that the next file is read while the one before is written. The truth file of a
  synthetic world goes right after the enterprises, so that its rows are written while the event files are read.

Columns a file does not have are left alone on update (a file without ``township`` does not erase the
townships already stored); ``x_*`` columns of enterprises are stored together in the ``extras`` JSON column
(as text; :func:`features.store.load_tables` turns all-numeric ones back into numbers). Line numbers count
CSV records (header = line 1), which equal physical lines unless a quoted cell spans lines; for ``.xlsx``
they are sheet rows. Dates ``recorded_on`` left empty stay empty in the database (they mean "the event
date"; :func:`features.frames.canonical_frame` fills them when reading).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from features.contract import ENTERPRISE_KEY, TABLE_BY_NAME
from features.errors import DataError, RiskgradeError
from features.inspectors import RosterBook, stored_roster
from features.db import serialise, write_transaction
from features.schema import CONTRACT_TABLES, create_schema, dialect_indexes, metadata, quarantine, truth
from features.sources import Source, find_sources, read_chunks, read_raw
from features.validate import (
    ChunkResult,
    TableValidator,
    ValidationContext,
    ignored_columns,
    key_columns,
)

log = logging.getLogger("riskgrade.import")

__all__ = [
    "ImportSummary",
    "Progress",
    "Source",
    "TableImport",
    "find_sources",
    "import_directory",
    "iter_validated",
    "read_chunks",
    "reported",
]

#: ``progress(table, rows_done, rows_total_or_None)``, called at the start, after every chunk has been handled
#: and at the end of each file (a CSV's total is estimated from its line count; the last call has the exact
#: count as total). Always called from the caller's thread.
Progress = Callable[[str, int, "int | None"], None]

_EXTENSIONS = (".csv", ".xlsx")


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableImport:
    """What happened to one file: rows read (blank lines skipped), loaded (upserted), quarantined (rows
    refused as a whole), identical duplicates dropped, cells held back (bad optional values: their rows loaded
    without them), and quarantined cells per rule. ``rows_read == loaded + quarantined + identical_duplicates``."""

    table: str
    source_file: str
    rows_read: int
    loaded: int
    quarantined: int
    identical_duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    ignored_columns: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    held_cells: int = 0


@dataclass(frozen=True)
class ImportSummary:
    """Per-table outcome of an import (or of :func:`features.store.read_directory`)."""

    tables: tuple[TableImport, ...]
    seconds: float = 0.0

    def __getitem__(self, table: str) -> TableImport:
        for item in self.tables:
            if item.table == table:
                return item
        raise KeyError(f"no file of table {table!r} was imported; imported: {[t.table for t in self.tables]}")

    @property
    def warnings(self) -> tuple[str, ...]:
        """Warnings of every file (columns ignored), in import order."""
        return tuple(w for item in self.tables for w in item.warnings)

    @property
    def quarantined(self) -> int:
        return sum(item.quarantined for item in self.tables)

    @property
    def loaded(self) -> int:
        return sum(item.loaded for item in self.tables)

    def to_table(self) -> pd.DataFrame:
        """One row per file: rows read / loaded / quarantined / identical duplicates dropped / cells held back,
        quarantined cells per rule (most frequent first) and the columns ignored."""
        counts = ("read", "loaded", "quarantined", "identical dups", "cells held")
        rows = [
            {
                "table": item.table,
                "file": item.source_file,
                "read": item.rows_read,
                "loaded": item.loaded,
                "quarantined": item.quarantined,
                "identical dups": item.identical_duplicates,
                "cells held": item.held_cells,
                "reasons": ", ".join(f"{rule} {n}" for rule, n in sorted(item.reasons.items(), key=lambda x: -x[1])),
                "ignored columns": ", ".join(item.ignored_columns),
            }
            for item in self.tables
        ]
        frame = pd.DataFrame(rows, columns=["table", "file", *counts, "reasons", "ignored columns"])
        return frame.astype({c: "int64" for c in counts})


def _estimate_rows(source: Source) -> int | None:
    return source.records


# ---------------------------------------------------------------------------------------------
# Validation of a whole directory (shared with features.store.read_directory)
# ---------------------------------------------------------------------------------------------


def iter_validated(
    sources: Sequence[Source],
    *,
    today: date,
    known_enterprises: Callable[[], pd.Index],
    in_database: bool,
    uscc_allowlist: frozenset[str] = frozenset(),
    chunk_rows: int = 200_000,
    stored_inspectors: Callable[[], pd.DataFrame] | None = None,
) -> Iterator[tuple[Source, TableValidator, Iterator[ChunkResult]]]:
    """One ``(source, validator, chunks)`` per file, in order; ``chunks`` reads and validates the file lazily
    and must be used up before the next file is asked for.

    ``known_enterprises()`` is called once, when the first non-enterprise file comes up — after the
    consumer has handled every enterprise chunk — and gives the ids an ``enterprise_id`` may refer to.
    ``stored_inspectors()``: the roster already stored, against which (with the import's own inspectors file)
    who inspected is resolved (:class:`features.inspectors.RosterBook`).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    roster = RosterBook(stored_inspectors)
    known: pd.Index | None = None
    quarantined_enterprises: dict[str, int] = {}
    enterprises_file = "the enterprises file"
    for source in sources:
        if source.table == "enterprises":
            enterprises_file = source.name
        elif known is None:
            known = known_enterprises()
        context = ValidationContext(
            today=today,
            known_enterprises=None if source.table == "enterprises" else known,
            quarantined_enterprises=quarantined_enterprises,
            enterprises_source=enterprises_file,
            in_database=in_database,
            uscc_allowlist=uscc_allowlist,
        )
        validator = TableValidator(source.table, header=source.header, source_file=source.name, context=context)
        yield source, validator, _validate_file(source, validator, chunk_rows, quarantined_enterprises, roster)


def _validate_file(source: Source, validator: TableValidator, chunk_rows: int,
                   quarantined_enterprises: dict[str, int], roster: RosterBook) -> Iterator[ChunkResult]:
    for chunk in read_raw(source, chunk_rows):
        result = validator.validate(chunk.cells, rejected=chunk.rejected, problems=chunk.problems,
                                    check_nul=chunk.check_nul)
        result = roster.resolve(source.table, validator, result)
        if source.table == "enterprises":  # for a clearer reason on the events of a quarantined enterprise
            refused = result.issues[result.issues["line"].isin(result.quarantined_lines)]
            for key, line in zip(refused["row_key"], refused["line"]):
                if isinstance(key, str):  # a row without a readable id has a missing key (None or NaN)
                    quarantined_enterprises.setdefault(key, int(line))
        yield result


def reported(chunks: Iterable[ChunkResult], source: Source, progress: Progress | None) -> Iterator[ChunkResult]:
    """``chunks``, calling ``progress(table, rows_done, rows_total_or_None)`` before the first chunk, after
    the consumer has handled each chunk, and at the end (with the exact count as total)."""
    if progress is None:
        yield from chunks
        return
    total = _estimate_rows(source)
    done = 0
    progress(source.table, 0, total)
    for result in chunks:
        yield result
        done += result.rows_read
        progress(source.table, done, max(total or 0, done))
    progress(source.table, done, done)


def _prefetched(items: Iterator[ChunkResult], depth: int = 1) -> Iterator[ChunkResult]:
    """``items`` produced by a worker thread up to ``depth`` ahead, so that reading and validating the next
    chunk overlaps writing this one (the database drivers release the GIL while they work). Exceptions of
    the worker are raised here; closing this generator stops the worker."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))

    worker = threading.Thread(target=work, name="riskgrade-import-reader", daemon=True)
    worker.start()
    try:
        while True:
            item, exc = handoff.get()
            if exc is not None:
                raise exc
            if item is done:
                return
            yield item
    finally:
        stop.set()
        worker.join()
        items.close()


class _SerialWork:
    """The import's database work, done in the order it was asked for, on one thread of its own, so that the next
    file is read, checked and staged while the rows of the one before are still being written (an ``INSERT ...
    SELECT`` of a province's truth file takes half a minute; the drivers release the GIL while they work).

    :meth:`submit` queues a call; :meth:`submit_rows` one that carries a chunk's rows, waiting while ``depth`` of
    those are queued (so that the chunks waiting to be written stay few, while statements without rows never wait);
    :meth:`call` queues one and returns its result, so it waits for every call before it too. Once a call has
    failed, the calls after it are not made, and its exception is raised by the next :meth:`submit`, :meth:`call`
    or :meth:`finish`. :meth:`abandon` (the import failing in the calling thread) stops the statement running, if
    it can, drops what is queued and waits for the thread: the caller then rolls the transaction back.
    """

    def __init__(self, conn: sa.Connection, depth: int = 4):
        self._conn = conn
        self._slots = threading.BoundedSemaphore(depth)
        self._tasks: queue.Queue = queue.Queue()
        self._failure: BaseException | None = None
        self._stopped = False
        self._running = False  # a call is being made
        self._thread = threading.Thread(target=self._run, name="riskgrade-import-writer", daemon=True)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            function, args, kwargs, answer, rows = task
            try:
                if self._failure is not None or self._stopped:
                    raise self._failure or RiskgradeError("the import was stopped")
                self._running = True
                try:
                    result = function(*args, **kwargs)
                finally:
                    self._running = False
            except BaseException as exc:  # raised in the calling thread
                if self._failure is None and not self._stopped:
                    self._failure = exc
                if answer is not None:
                    answer.set_exception(exc)
            else:
                if answer is not None:
                    answer.set_result(result)
            finally:
                if rows:
                    self._slots.release()

    def submit(self, function: Callable, *args, **kwargs) -> None:
        self._queue(function, args, kwargs, None)

    def submit_rows(self, function: Callable, *args, **kwargs) -> None:
        self._queue(function, args, kwargs, None, rows=True)

    def call(self, function: Callable, *args, **kwargs):
        answer: Future = Future()
        self._queue(function, args, kwargs, answer)
        return answer.result()

    def _queue(self, function: Callable, args, kwargs, answer: Future | None, rows: bool = False) -> None:
        if self._failure is not None:
            raise self._failure
        if rows:
            self._slots.acquire()
        if self._thread.ident is None:  # started at the first call: a writer that failed to set up leaves none
            self._thread.start()
        self._tasks.put((function, args, kwargs, answer, rows))

    def finish(self) -> None:
        """Wait for every queued call; raise the first failure."""
        self.call(lambda: None)
        self._close()

    def abandon(self) -> None:
        self._stopped = True
        if self._running:
            _interrupt(self._conn)
        self._close()

    def _close(self) -> None:
        if self._thread.is_alive():
            self._tasks.put(None)
            self._thread.join()


def _interrupt(conn: sa.Connection) -> None:
    """Stop the statement running on ``conn``'s driver connection, if the driver can (the transaction is rolled back
    next)."""
    driver = conn.connection.dbapi_connection
    try:
        if isinstance(driver, sqlite3.Connection):
            driver.interrupt()
        elif hasattr(driver, "cancel_safe"):  # psycopg 3
            driver.cancel_safe(timeout=5.0)
    except Exception:  # nothing running, or the connection already gone: the rollback is what matters
        pass


def _table_import(source: Source, validator: TableValidator, loaded: int) -> TableImport:
    return TableImport(
        table=source.table,
        source_file=source.name,
        rows_read=validator.rows_read,
        loaded=loaded,
        quarantined=validator.quarantined_rows,
        identical_duplicates=validator.identical_duplicates,
        held_cells=validator.held_cells,
        reasons=dict(validator.rule_counts),
        ignored_columns=ignored_columns(source.table, source.header),
        warnings=source.warnings,
    )


# ---------------------------------------------------------------------------------------------
# Import into the database
# ---------------------------------------------------------------------------------------------


def import_directory(
    engine: sa.Engine,
    directory: str | Path,
    *,
    today: date,
    uscc_allowlist: frozenset[str] = frozenset(),
    chunk_rows: int = 200_000,
    progress: Progress | None = None,
    table: str | None = None,
) -> ImportSummary:
    """Validate the files in ``directory`` (or the one file ``directory`` names) and load them into ``engine``'s
    database in one transaction. ``table``: the table of a single file not named after it
    (:func:`features.sources.find_sources`).

    ``today``: event and knowledge dates after it are refused (``future_date``). ``uscc_allowlist``: USCCs
    accepted despite a failing check character. ``chunk_rows``: rows per chunk (memory is bounded by it).
    ``progress(table, rows_done, rows_total_or_None)``: optional progress callback.

    Returns an :class:`ImportSummary`. Raises :class:`~features.errors.MissingInputError` (nothing written)
    for a missing required file or column, :class:`~features.errors.DataError` for a file that cannot be
    read as CSV/Excel (the transaction is rolled back).
    """
    started = time.perf_counter()
    sources = find_sources(directory, table=table)
    writer_type = _WRITERS.get(engine.dialect.name)
    if writer_type is None:
        raise RiskgradeError(f"importing into {engine.dialect.name} is not supported (use SQLite or PostgreSQL)")
    create_schema(engine)
    imported_at = datetime.now(timezone.utc).replace(tzinfo=None)  # quarantine.imported_at is naive UTC
    results = []
    stage = _SQLiteStage() if engine.dialect.name == "sqlite" else None
    with (write_transaction(engine, what="this import", finish=stage.finish if stage else None) as conn,
          closing(writer_type(conn, stage)) as writer):
        # What the loop needs of the database is read first, here; then every statement runs on the work thread.
        keys = _EnterpriseKeys(conn)
        keys.ids()  # read now: from here on the keys are kept in memory
        ledger = _ImportLedger(conn, today=today, uscc_allowlist=uscc_allowlist, imported_at=imported_at)
        roster = stored_roster(conn)  # before this import's writes: its own inspectors file is added to it
        tables = list(dict.fromkeys(s.table for s in sources))
        books = _QuarantineBook.read(conn, tables, imported_at)
        writer.prepare(tables)
        work = writer.work
        files = iter_validated(
            _write_order(sources),
            today=today,
            known_enterprises=keys.ids,
            in_database=True,
            uscc_allowlist=uscc_allowlist,
            chunk_rows=chunk_rows,
            stored_inspectors=lambda: roster,
        )
        try:
            for source, validator, chunks in files:
                unchanged = work.call(ledger.unchanged, source, validator) if ledger.may_skip(source) else None
                if unchanged is not None:
                    chunks.close()  # never started: the file is not read again
                    if source.table == "enterprises":  # for the reasons of the event files that are read
                        work.call(ledger.restore_quarantined_enterprises, validator.context.quarantined_enterprises)
                    if progress is not None:
                        progress(source.table, unchanged.rows_read, unchanged.rows_read)
                    results.append(unchanged)
                    continue
                book = books[source.table]
                loaded = 0
                writer.begin(source.table, rows_hint=source.records)
                with closing(_prefetched(chunks)) as prefetched:  # stops the reader thread on any error
                    for result in reported(prefetched, source, progress):
                        stale, records = book.changes(result)
                        if stale or records:
                            work.submit_rows(book.write, conn, stale, records)
                        if len(result.good):
                            writer.upsert(source.table, keys.added(source.table, _db_frame(validator, result.good)))
                        loaded += len(result.good)
                bulk = writer.bulk_loading(source.table)
                writer.end(source.table)  # queued: the next file is read while this one is written
                results.append(_table_import(source, validator, loaded))
                entry = ledger.entry(source, validator, results[-1])  # here: the validator can then go
                if entry is not None:
                    work.submit(ledger.record, source.table, entry, stored_rows=loaded if bulk else None)
            work.finish()
        except BaseException:
            work.abandon()
            raise
    if engine.dialect.name == "postgresql":
        _analyze(engine, [outcome.table for outcome in results if outcome.loaded])
    order = {source.table: i for i, source in enumerate(sources)}
    results.sort(key=lambda outcome: order[outcome.table])  # as the files were found
    return ImportSummary(tuple(results), seconds=time.perf_counter() - started)


def _analyze(engine: sa.Engine, tables: Sequence[str]) -> None:
    """PostgreSQL's planner statistics of the tables an import wrote, after it committed. A table bulk loaded into
    has none until autovacuum comes round, and the nightly that follows an import planned its reads blind (seen on a
    200k world just imported: a partition's inspections estimated at 2,556 rows where there were 307,460). A
    failure here loses nothing: the rows are committed and autovacuum analyses them later."""
    quote = engine.dialect.identifier_preparer.quote
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in dict.fromkeys(tables):
                conn.exec_driver_sql(f"ANALYZE {quote(table)}")
    except sa.exc.SQLAlchemyError as exc:
        log.warning("the import committed, but ANALYZE failed (%s): autovacuum will analyse the tables later",
                    exc.__class__.__name__)


def _write_order(sources: Sequence[Source]) -> list[Source]:
    """``sources`` with the truth file (it needs only the enterprises) right after the enterprises: the largest
    file's rows are then written while the event files are read, instead of after them all."""
    return sorted(sources, key=lambda source: 0 if source.table == "enterprises" else 1 if source.table == "truth"
                  else 2)


imported_files = sa.Table(
    "imported_files",
    metadata,
    sa.Column("table_name", sa.String(32), primary_key=True),
    sa.Column("source_file", sa.Text, nullable=False),  # the file's name (a sheet: file[sheet])
    sa.Column("digest", sa.String(64), nullable=False),  # of the file's bytes (features.sources.Source.digest)
    sa.Column("context", sa.String(64), nullable=False),  # of what the verdicts depend on besides the file
    sa.Column("today", sa.Date, nullable=False),
    sa.Column("future_dates", sa.Boolean, nullable=False),  # whether a row was refused as after ``today``
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("loaded", sa.BigInteger, nullable=False),
    sa.Column("quarantined", sa.BigInteger, nullable=False),
    sa.Column("identical_duplicates", sa.BigInteger, nullable=False),
    sa.Column("held_cells", sa.BigInteger, nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),  # quarantined cells per rule
    sa.Column("stored_rows", sa.BigInteger, nullable=False),  # rows of the table after that import
    sa.Column("quarantine_rows", sa.BigInteger, nullable=False),  # the table's quarantine entries after it
    sa.Column("imported_at", sa.DateTime, nullable=False),
    comment="The last import of each table: which file, with which verdicts (lets a re-import skip unchanged files).",
)

#: The modules whose code decides an import's verdicts and writes: a change to any of them re-reads every file.
_RULE_MODULES = ("features.contract", "features.frames", "features.schema", "features.sources", "features.uscc",
                 "features.validate", "features.importer")


class _ImportLedger:
    """``imported_files``: what each table's last import read, so that a re-import of an unchanged file can be
    skipped without changing any outcome.

    A file is skipped only when an import of it would write nothing: the same bytes under the same name
    (digest), the same *context* — the code of :data:`_RULE_MODULES`, the USCC allow-list and, for tables that
    refer to enterprises, the set of known enterprise ids, the quarantined ones and the enterprises file's name
    (they decide ``dangling_reference`` verdicts and their reasons) — and a database still as that import left
    it: the table and its quarantine hold the row counts recorded then (a guard against a database emptied or
    edited since; the contract tables are written by the importer only). ``today`` decides only ``future_date``
    verdicts: the file is skipped on a later day only if that import refused no row as in the future.
    """

    def __init__(self, conn: sa.Connection, *, today: date, uscc_allowlist: frozenset[str], imported_at: datetime):
        self.conn, self.today, self.imported_at = conn, today, imported_at
        imported_files.create(conn, checkfirst=True)  # databases made before it (inside the import's lock)
        rows = conn.execute(sa.select(imported_files)).mappings().all()
        self._last = {row["table_name"]: row for row in rows}
        allowlist = "\x1f".join(sorted(c.strip().upper() for c in uscc_allowlist))
        self._base = _digest(_rules_digest(), allowlist)
        self._known: tuple[int, str] | None = None  # (id of the known-enterprises index, its fingerprint)

    def _context(self, validator: TableValidator) -> str:
        context = validator.context
        if context.known_enterprises is None:
            return _digest(self._base, validator.table)
        known = context.known_enterprises
        if self._known is None or self._known[0] != id(known):
            self._known = (id(known), _set_fingerprint(known))
        # Only the refused enterprises no stored version stands for can make a reason (as restored when skipped).
        quarantined = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(context.quarantined_enterprises.items())
                                   if k not in known)
        return _digest(self._base, validator.table, self._known[1], quarantined, context.enterprises_source)

    def _count(self, table: str) -> int:
        quote = self.conn.dialect.identifier_preparer.quote
        return int(self.conn.execute(sa.text(f"SELECT count(*) FROM {quote(table)}")).scalar_one())

    def _quarantine_count(self, table: str) -> int:
        q = quarantine.c
        return int(self.conn.execute(sa.select(sa.func.count()).where(q.table_name == table)).scalar_one())

    def may_skip(self, source: Source) -> bool:
        """Whether the table's last import read this very file (only then can :meth:`unchanged` say yes)."""
        last = self._last.get(source.table)
        return (last is not None and bool(source.digest) and last["digest"] == source.digest
                and last["source_file"] == source.name)

    def unchanged(self, source: Source, validator: TableValidator) -> TableImport | None:
        """The last import's outcome for ``source`` if the file can be skipped (see the class docstring)."""
        if not self.may_skip(source):
            return None
        last = self._last[source.table]
        if last["today"] != self.today and (self.today < last["today"] or last["future_dates"]):
            return None
        if last["context"] != self._context(validator):
            return None
        if (self._count(source.table) != last["stored_rows"]
                or self._quarantine_count(source.table) != last["quarantine_rows"]):
            return None
        when = last["imported_at"].replace(microsecond=0).isoformat(sep=" ")
        note = f"{source.name}: unchanged since its import at {when} UTC (same file, same rules): not read again"
        return TableImport(
            table=source.table, source_file=source.name, rows_read=last["rows_read"], loaded=last["loaded"],
            quarantined=last["quarantined"], identical_duplicates=last["identical_duplicates"],
            held_cells=last["held_cells"], reasons=dict(last["reasons"]),
            ignored_columns=ignored_columns(source.table, source.header), warnings=(*source.warnings, note))

    def restore_quarantined_enterprises(self, into: dict[str, int]) -> None:
        """The enterprises refused as a whole by the last import (its file is skipped): their key and line, from
        the quarantine — the entries that import wrote (the verdicts on its file's keys) for ids that are not
        stored — as its validation would have found them."""
        last = self._last["enterprises"]
        q = quarantine.c
        rows = self.conn.execute(
            sa.select(q.row_key, sa.func.min(q.line))
            .where(q.table_name == "enterprises", q.row_key.is_not(None), q.source_file == last["source_file"],
                   q.imported_at == last["imported_at"],
                   q.row_key.not_in(sa.select(CONTRACT_TABLES["enterprises"].c.enterprise_id)))
            .group_by(q.row_key)).all()
        for key, line in rows:
            into.setdefault(key, int(line))

    def entry(self, source: Source, validator: TableValidator, outcome: TableImport) -> dict | None:
        """What :meth:`record` stores of the import of ``source`` just read (None: a file without a digest)."""
        if not source.digest:
            return None
        return dict(
            source_file=source.name, digest=source.digest, context=self._context(validator), today=self.today,
            future_dates=bool(validator.rule_counts.get("future_date")), rows_read=outcome.rows_read,
            loaded=outcome.loaded, quarantined=outcome.quarantined,
            identical_duplicates=outcome.identical_duplicates, held_cells=outcome.held_cells,
            reasons=dict(outcome.reasons), imported_at=self.imported_at)

    def record(self, table: str, entry: dict, *, stored_rows: int | None) -> None:
        """Record ``entry`` (:meth:`entry`), once its rows are written (``stored_rows``: the table's rows, when
        known)."""
        values = dict(entry, stored_rows=self._count(table) if stored_rows is None else stored_rows,
                      quarantine_rows=self._quarantine_count(table))
        self.conn.execute(imported_files.delete().where(imported_files.c.table_name == table))
        self.conn.execute(imported_files.insert().values(table_name=table, **values))


def _rules_digest() -> str:
    return _RULES_DIGEST


def _loaded_code_digest() -> str:
    """The digest of :data:`_RULE_MODULES` as this process loaded them (read once, at import: the code that
    runs, not a file edited since)."""
    parts = []
    for name in _RULE_MODULES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        parts.append(Path(path).read_bytes() if path else name.encode())
    return _digest(*parts)


def _digest(*parts: str | bytes) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))  # length-prefixed: parts cannot run into each other
        digest.update(data)
    return digest.hexdigest()


def _set_fingerprint(ids: pd.Index) -> str:
    """An order-independent fingerprint of a set of distinct ids: their count and two sums of 64-bit hashes."""
    values = ids.to_numpy(dtype=object)
    sums = [int(pd.util.hash_array(values, hash_key=key, categorize=False).sum(dtype=np.uint64))
            for key in ("riskgrade-set-01", "riskgrade-set-02")]
    return f"{len(values)}:{sums[0]:016x}:{sums[1]:016x}"


class _EnterpriseKeys:
    """The integer ``enterprise_key`` of every stored enterprise (:data:`features.contract.ENTERPRISE_KEY`).

    A new enterprise gets the next free key; a re-imported one keeps its own, so re-importing unchanged files
    still changes nothing. Event rows get their enterprise's key (validation has already refused rows of unknown
    enterprises). Read from the database on first use, inside the import's transaction, which holds the key
    allocation lock until its commit, so two imports at once cannot hand out the same keys (on PostgreSQL an
    advisory lock, :func:`features.db.serialise`; on SQLite the import's write transaction).
    """

    def __init__(self, conn: sa.Connection):
        serialise(conn, "enterprise_key", what="this import")
        self._conn = conn
        self._key_of: pd.Series | None = None  # key by enterprise_id

    def _keys(self) -> pd.Series:
        if self._key_of is None:
            rows = self._conn.execute(sa.text(f"SELECT enterprise_id, {ENTERPRISE_KEY} FROM enterprises")).all()
            keyed = [(i, int(key)) for i, key in rows if key is not None]
            self._key_of = pd.Series([key for _, key in keyed], index=pd.Index([i for i, _ in keyed], dtype="str"),
                                     dtype="int64")
            unkeyed = sorted(i for i, key in rows if key is None)  # rows written by other means than the import
            if unkeyed:
                self._number(pd.Index(unkeyed, dtype="str"))
                self._conn.execute(
                    sa.text(f"UPDATE enterprises SET {ENTERPRISE_KEY} = :key WHERE enterprise_id = :id"),
                    [{"key": int(self._key_of[i]), "id": i} for i in unkeyed])
        return self._key_of

    def ids(self) -> pd.Index:
        """Every stored enterprise's id, those of this import included (what an event's enterprise_id may be)."""
        return self._keys().index

    def _number(self, new: pd.Index) -> None:
        first = int(self._key_of.max()) + 1 if len(self._key_of) else 1
        self._key_of = pd.concat([self._key_of, pd.Series(range(first, first + len(new)), index=new, dtype="int64")])

    def added(self, table: str, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (rows to write into ``table``) with its ``enterprise_key`` column; other tables unchanged."""
        if table not in TABLE_BY_NAME or not TABLE_BY_NAME[table].per_enterprise:
            return frame
        key_of = self._keys()
        ids = pd.Index(frame["enterprise_id"], dtype="str")
        found = key_of.index.get_indexer(ids)
        if table == "enterprises":
            new = ids[found < 0].unique().sort_values()  # in id order: the feature build then needs no lookup
            if len(new):
                self._number(new)
                key_of = self._key_of
                found = key_of.index.get_indexer(ids)
        if (found < 0).any():
            missing = ids[found < 0][0]
            raise DataError(f"{table}: enterprise_id {missing!r} has no stored enterprise (validation should "
                            f"have refused the row)")
        return frame.assign(**{ENTERPRISE_KEY: key_of.to_numpy()[found]})


class _QuarantineBook:
    """Keeps one table's quarantine entries in step with this import's verdicts. What is stored is read once, at
    the import's start (:meth:`read`: no other file of the import touches this table's entries), so that a chunk's
    changes are worked out in the calling thread and only the statements, when there are any, queued."""

    def __init__(self, table: str, imported_at: datetime, keyed: pd.Index, keyless: set[tuple]):
        self.table, self.imported_at = table, imported_at
        self.keyed, self.keyless = keyed, keyless

    @classmethod
    def read(cls, conn: sa.Connection, tables: Sequence[str], imported_at: datetime) -> dict[str, _QuarantineBook]:
        q = quarantine.c
        existing = conn.execute(sa.select(q.table_name, q.row_key, q.source_file, q.line, q.column_name, q.reason)
                                .where(q.table_name.in_(tables))).all()
        keyed: dict[str, set[str]] = {table: set() for table in tables}
        keyless: dict[str, set[tuple]] = {table: set() for table in tables}
        for row in existing:
            if row.row_key is not None:
                keyed[row.table_name].add(row.row_key)
            else:
                keyless[row.table_name].add(tuple(row[2:]))
        return {table: cls(table, imported_at, pd.Index(sorted(keyed[table]), dtype="str"), keyless[table])
                for table in tables}

    def changes(self, result: ChunkResult) -> tuple[list[str], list[dict]]:
        """The old entries' keys this chunk has a verdict on (to drop), and its new entries."""
        stale = result.first_keys[result.first_keys.isin(self.keyed)].tolist() if len(self.keyed) else []
        records = []
        if len(result.issues):
            for issue in result.issues.to_dict("records"):
                if issue["row_key"] is None:
                    identity = (issue["source_file"], issue["line"], issue["column_name"], issue["reason"])
                    if identity in self.keyless:
                        continue
                    self.keyless.add(identity)
                issue.update(imported_at=self.imported_at, line=int(issue["line"]))
                records.append(issue)
        return stale, records

    def write(self, conn: sa.Connection, stale: list[str], records: list[dict]) -> None:
        if stale:
            q = quarantine.c
            conn.execute(quarantine.delete().where(q.table_name == self.table, q.row_key == sa.bindparam("stale_key")),
                         [{"stale_key": key} for key in stale])
        if records:
            conn.execute(quarantine.insert(), records)


# ---------------------------------------------------------------------------------------------
# Bulk upserts
# ---------------------------------------------------------------------------------------------


def _db_frame(validator: TableValidator, good: pd.DataFrame) -> pd.DataFrame:
    """The columns to write: key, the contract columns the file has, and ``extras`` (JSON) if it has any."""
    columns = list(dict.fromkeys([*validator.key_columns, *validator.columns_present]))
    frame = good[columns]
    if validator.extra_columns:
        extras = good[list(validator.extra_columns)].astype(object)
        extras = extras.where(extras.notna(), None)
        texts = [json.dumps(row, ensure_ascii=False, sort_keys=True) for row in extras.to_dict("records")]
        frame = frame.assign(extras=pd.Series(texts, index=good.index, dtype=object))
    return frame


def _upsert_sql(dialect: sa.Dialect, table: str, columns: Sequence[str], source: str) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` that leaves unchanged rows untouched."""
    quote = dialect.identifier_preparer.quote
    key = key_columns(table)
    names = ", ".join(quote(c) for c in columns)
    conflict = f"ON CONFLICT ({', '.join(quote(k) for k in key)})"
    updates = [c for c in columns if c not in key]
    head = f"INSERT INTO {quote(table)} ({names}) {source} {conflict}"
    if not updates:
        return f"{head} DO NOTHING"
    assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in updates)
    if dialect.name == "postgresql":
        def side(prefix: str) -> str:  # json has no equality operator: compare its text
            return ", ".join(f"{prefix}.{quote(c)}" + ("::text" if c == "extras" else "") for c in updates)

        changed = f"({side(quote(table))}) IS DISTINCT FROM ({side('excluded')})"
    else:
        changed = " OR ".join(f"{quote(table)}.{quote(c)} IS NOT excluded.{quote(c)}" for c in updates)
    return f"{head} DO UPDATE SET {assignments} WHERE {changed}"


class _Writer:
    """Bulk writes of one import, inside its transaction.

    The calling thread reads, checks and stages the files; once the first file begins, every statement on the
    connection runs on the writer's :class:`_SerialWork` thread, in order (nothing else touches the connection while
    it works). :meth:`prepare`, before that, claims every table the import writes and notes which are empty.
    :meth:`begin` is called before a file's first
    chunk, :meth:`upsert` for each chunk of good rows, :meth:`end` after the file's last chunk. A table that is
    empty when the import begins is *bulk loaded*: its secondary indexes (:func:`_secondary_indexes`) are dropped
    and built again, by one sort, at :meth:`end` — maintaining them row by row on random keys is where most of a
    first import's time went. The drop and the build are part of the import's transaction: a failure anywhere
    rolls them back with everything else. Each table's rows come from its own file only.
    """

    def __init__(self, conn: sa.Connection, stage: _SQLiteStage | None = None):
        self.conn = conn
        self.dialect = conn.dialect
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.work = _SerialWork(conn)
        self._sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._bulk: dict[str, tuple[sa.Index, ...]] = {}  # tables being bulk loaded -> indexes to build at end
        self._empty: set[str] = set()  # tables empty when the import began, not begun yet

    def close(self) -> None:
        self.work.abandon()  # no-op once finished
        self._release()
        self.cursor.close()

    def _release(self) -> None:
        """What the writer holds besides its cursor (once the work thread has stopped)."""

    def prepare(self, tables: Iterable[str]) -> None:
        """Before the first file (nothing queued yet, so here on the calling thread): claim ``tables`` and note which
        are empty."""
        for table in tables:
            self._claim(table)
            if self._is_empty(table):
                self._empty.add(table)

    def begin(self, table: str, rows_hint: int | None = None) -> None:
        """Before the first chunk of ``table``'s file (``rows_hint``: about how many rows it has, if known)."""
        if table in self._empty:
            self._empty.discard(table)
            self._bulk[table] = indexes = _secondary_indexes(table, self.dialect)
            self.work.submit(self._unindex, table, indexes)

    def end(self, table: str) -> None:
        self.work.submit(self._reindex, table, self._bulk.pop(table, ()))

    def bulk_loading(self, table: str) -> bool:
        """Whether ``table`` was empty when the import began (so every good row is new)."""
        return table in self._bulk

    # On the work thread:

    def _unindex(self, table: str, indexes: tuple[sa.Index, ...]) -> None:
        for index in indexes:
            self.conn.execute(sa.schema.DropIndex(index, if_exists=True))

    def _reindex(self, table: str, indexes: tuple[sa.Index, ...]) -> None:
        for index in indexes:
            self.conn.execute(sa.schema.CreateIndex(index))

    def _claim(self, table: str) -> None:
        """Keep other writers off ``table`` until the import ends (before looking whether it is empty)."""

    def _is_empty(self, table: str) -> bool:
        quote = self.dialect.identifier_preparer.quote
        return self.conn.execute(sa.text(f"SELECT 1 FROM {quote(table)} LIMIT 1")).first() is None

    def _upsert_sql(self, table: str, columns: tuple[str, ...], source: str) -> str:
        sql = self._sql.get((table, columns))
        if sql is None:
            sql = self._sql[table, columns] = _upsert_sql(self.dialect, table, columns, source)
        return sql


class _SQLiteWriter(_Writer):
    """``executemany`` of an upsert on the DBAPI connection; a file of at least :data:`_STAGE_MIN_ROWS` rows into
    a table being bulk loaded goes through a staging file instead (:class:`_SQLiteStage`), filled by the calling
    thread while the work thread copies the file before into the database. The write transaction already holds
    the database's write lock, so a table seen empty stays empty but for this import's rows."""

    def __init__(self, conn: sa.Connection, stage: _SQLiteStage | None = None):
        super().__init__(conn)
        self._stage = stage
        self._staging: dict[str, _StagedTable] = {}
        self._cache_size = self.cursor.execute("PRAGMA cache_size").fetchone()[0]
        self.cursor.execute(f"PRAGMA cache_size = -{_SQLITE_IMPORT_CACHE_KIB}")  # indexes stay hot while importing
        attached = len(self.cursor.execute("PRAGMA database_list").fetchall()) - 1  # main (temp is not counted)
        self._attach_room = self.cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED) - attached

    def _release(self) -> None:
        for staged in self._staging.values():  # a file that failed half-way: its staging file is dropped
            staged.close()
        self.cursor.execute(f"PRAGMA cache_size = {int(self._cache_size)}")

    def begin(self, table: str, rows_hint: int | None = None) -> None:
        super().begin(table, rows_hint)
        if (self.bulk_loading(table) and self._stage is not None and (rows_hint or 0) >= _STAGE_MIN_ROWS
                and len(self._stage.opened) < self._attach_room):
            staged = self._stage.open(table)
            if staged is not None:
                self._staging[table] = staged

    def upsert(self, table: str, frame: pd.DataFrame) -> None:
        staged = self._staging.get(table)
        if staged is not None:
            staged.append(frame)
            return
        columns = tuple(frame.columns)
        sql = self._upsert_sql(table, columns, f"VALUES ({', '.join('?' for _ in columns)})")
        self.work.submit_rows(self._execute_many, sql, frame)

    def end(self, table: str) -> None:
        staged = self._staging.pop(table, None)
        if staged is not None:
            staged.close()  # its rows committed to its file, here: the work thread attaches and copies them
            if staged.columns:
                self.work.submit(self._copy_staged, table, staged)
        super().end(table)

    def _execute_many(self, sql: str, frame: pd.DataFrame) -> None:
        self.cursor.executemany(sql, zip(*(_python_values(frame[c]) for c in frame.columns)))

    def _copy_staged(self, table: str, staged: _StagedTable) -> None:
        schema = self._stage.attach(self.cursor, staged)
        quote = self.dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in staged.columns)
        # In key order, the primary key index grows at its end instead of taking rows at random places: once
        # it outgrows the page cache (the 11M rows of a province's truth file) that is many times cheaper.
        # "WHERE true": SQLite's parser needs it to tell the upsert's ON CONFLICT from a join's ON.
        order = ", ".join(quote(k) for k in key_columns(table))
        source = f"SELECT {names} FROM {schema}.{quote(_StagedTable.NAME)} WHERE true ORDER BY {order}"
        self.cursor.execute(self._upsert_sql(table, staged.columns, source))


_STAGE_MIN_ROWS = 50_000
"""Files smaller than this go straight through ``executemany``: staging them saves less than it costs."""


class _StagedTable:
    """One file's good rows, appended chunk by chunk to a scratch SQLite file through the Arrow ADBC driver
    (values bound from Arrow buffers in C, not one Python object at a time)."""

    NAME = "staged_rows"

    def __init__(self, path: Path, connection):
        self.path, self._connection = path, connection
        self.columns: tuple[str, ...] = ()

    def append(self, frame: pd.DataFrame) -> None:
        import adbc_driver_manager

        rows = _arrow_rows(frame)
        self.columns = self.columns or tuple(frame.columns)
        try:
            with self._connection.cursor() as cursor:
                cursor.adbc_ingest(self.NAME, rows, mode="create_append")
        except adbc_driver_manager.Error as exc:  # e.g. the disk is full: a database error like any other
            raise sa.exc.OperationalError(f"staging rows in {self.path}", None, exc) from exc

    def close(self) -> None:
        """Commit what was staged and close the scratch file (it is read, attached, by the import's connection)."""
        if self._connection is not None:
            import adbc_driver_manager

            try:
                self._connection.commit()
                self._connection.close()
            except adbc_driver_manager.Error as exc:
                raise sa.exc.OperationalError(f"staging rows in {self.path}", None, exc) from exc
            finally:
                self._connection = None


class _SQLiteStage:
    """Scratch SQLite files, one per large file bulk loaded into an empty table, in a private temporary folder.

    Python's ``sqlite3`` binds every value of an ``executemany`` as a Python object, which is most of a bulk
    load's cost. Here the rows are staged through the ADBC driver, then the import's connection attaches the
    scratch file (inside its transaction; it holds the only write lock on the database) and copies the rows
    with one ``INSERT ... SELECT`` — about twice as fast. Nothing is written to the database outside the
    import's transaction: a rollback leaves it as it was. :meth:`finish` (after the commit or rollback)
    detaches the scratch files and deletes them. Without the ADBC SQLite driver, or past SQLite's limit of
    attached databases, files go through ``executemany``.
    """

    def __init__(self):
        self.directory: Path | None = None
        self.attached: list[str] = []
        self.opened: list[_StagedTable] = []  # attached or not yet

    @staticmethod
    def _driver():
        try:
            import adbc_driver_sqlite.dbapi as driver
        except ImportError:
            return None
        return driver

    def open(self, table: str) -> _StagedTable | None:
        driver = self._driver()
        if driver is None:
            return None
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="riskgrade-import-"))
        path = self.directory / f"{table}.sqlite"
        staged = _StagedTable(path, driver.connect(str(path)))
        self.opened.append(staged)
        return staged

    def attach(self, cursor, staged: _StagedTable) -> str:
        """Attach ``staged``'s file (closed first) to the import's connection; its schema name."""
        staged.close()
        schema = f"rg_stage_{len(self.attached) + 1}"
        cursor.execute(f"ATTACH DATABASE ? AS {schema}", (str(staged.path),))
        self.attached.append(schema)
        return schema

    def finish(self, conn: sa.Connection) -> None:
        """After the import's commit or rollback: detach and delete every scratch file."""
        for staged in self.opened:
            try:
                staged.close()
            except sa.exc.OperationalError:
                pass  # its rows are not needed any more
        if self.attached:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                for schema in self.attached:
                    cursor.execute(f"DETACH DATABASE {schema}")
            finally:
                cursor.close()
        self.attached.clear()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def _arrow_rows(frame: pd.DataFrame) -> pa.Table:
    """``frame`` as Arrow columns holding what :func:`_python_values` would bind: dates as ISO text, booleans,
    64-bit integers, floats (NaN as NULL) and text — typed by the column's dtype, so that every chunk of a file
    has the same schema (an all-missing chunk included)."""
    columns = []
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            days = pc.cast(pa.array(values, type=pa.timestamp("ns"), from_pandas=True), pa.date32())
            columns.append(pc.cast(days, pa.large_string()))
        elif pd.api.types.is_bool_dtype(values):
            columns.append(pa.array(values, type=pa.bool_(), from_pandas=True))
        elif pd.api.types.is_integer_dtype(values):
            columns.append(pa.array(values, type=pa.int64(), from_pandas=True))
        elif pd.api.types.is_float_dtype(values):
            columns.append(pa.array(values, type=pa.float64(), from_pandas=True))
        elif isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
            columns.append(values.array._pa_array.cast(pa.large_string()))  # no copy through Python objects
        else:
            columns.append(pa.array(values.to_numpy(dtype=object, na_value=None), type=pa.large_string()))
    return pa.Table.from_arrays([c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c]) for c in columns],
                                names=list(frame.columns))


class _PostgresWriter(_Writer):
    """``COPY`` (the calling thread turns the chunk into CSV, the work thread sends it). Into a table being bulk
    loaded, straight into the table (every row is new); otherwise into a temporary staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT`` per chunk."""

    def __init__(self, conn: sa.Connection, stage: None = None):
        super().__init__(conn)
        self._staged: set[str] = set()  # staging tables are dropped at commit or rollback
        self.cursor.execute(f"SET LOCAL maintenance_work_mem = '{_PG_INDEX_BUILD_MEMORY}'")  # the index builds
        self._primary_keys: dict[str, str] = {}  # tables bulk loaded without their primary key -> its name

    def upsert(self, table: str, frame: pd.DataFrame) -> None:
        self.work.submit_rows(self._copy, table, tuple(frame.columns), _csv_bytes(frame), self.bulk_loading(table))

    # On the work thread:

    def _claim(self, table: str) -> None:
        # Conflicts with itself and with every other writer, not with readers; held until commit or rollback.
        quote = self.dialect.identifier_preparer.quote
        self.conn.execute(sa.text(f"LOCK TABLE {quote(table)} IN SHARE ROW EXCLUSIVE MODE"))

    def _unindex(self, table: str, indexes: tuple[sa.Index, ...]) -> None:
        """Into an empty table the primary key goes too, and is built again by one sort at the end: every row
        COPY writes is new and the file's duplicates are already out (see :mod:`features.validate`), and inserting
        random text keys into its index one by one was most of a first import's server time."""
        super()._unindex(table, indexes)
        name = self.conn.execute(sa.text(
            "SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND contype = 'p'"),
            {"t": self.dialect.identifier_preparer.quote(table)}).scalar()
        if name is not None:
            quote = self.dialect.identifier_preparer.quote
            self.conn.execute(sa.text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}"))
            self._primary_keys[table] = name

    def _reindex(self, table: str, indexes: tuple[sa.Index, ...]) -> None:
        name = self._primary_keys.pop(table, None)
        if name is not None:
            quote = self.dialect.identifier_preparer.quote
            keys = ", ".join(quote(k) for k in key_columns(table))
            self.conn.execute(sa.text(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} PRIMARY KEY ({keys})"))
        super()._reindex(table, indexes)

    def _copy(self, table: str, columns: tuple[str, ...], rows: memoryview, bulk: bool) -> None:
        quote = self.dialect.identifier_preparer.quote
        names = ", ".join(quote(c) for c in columns)
        if bulk:
            with self.cursor.copy(f"COPY {quote(table)} ({names}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(rows)
            return
        stage = quote(f"rg_stage_{table}")
        if table not in self._staged:
            self.cursor.execute(f"CREATE TEMPORARY TABLE {stage} (LIKE {quote(table)}) ON COMMIT DROP")
            self._staged.add(table)
        with self.cursor.copy(f"COPY {stage} ({names}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(rows)
        self.cursor.execute(self._upsert_sql(table, columns, f"SELECT {names} FROM {stage}"))
        self.cursor.execute(f"TRUNCATE {stage}")


_WRITERS: dict[str, type[_Writer]] = {"sqlite": _SQLiteWriter, "postgresql": _PostgresWriter}
_SQLITE_IMPORT_CACHE_KIB = 65_536  # 64 MB page cache while importing (a bulk load's sorter takes as much again)
_PG_INDEX_BUILD_MEMORY = "256MB"


def _secondary_indexes(table: str, dialect: sa.Dialect) -> tuple[sa.Index, ...]:
    """The indexes of ``table`` besides its primary key that this database has (the key stays: the upsert and
    the duplicate check of the database rest on it)."""
    sql_table = CONTRACT_TABLES.get(table, truth if table == truth.name else None)
    return tuple(sorted(dialect_indexes(sql_table, dialect), key=lambda index: index.name)) \
        if sql_table is not None else ()


def _csv_bytes(frame: pd.DataFrame) -> memoryview:
    """``frame`` as headerless CSV for ``COPY ... (FORMAT csv)``: missing values unquoted-empty (NULL), dates
    ISO, booleans true/false. Written by Arrow's CSV writer (several times faster than ``DataFrame.to_csv``)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = [pc.cast(column, pa.date32()) if pa.types.is_timestamp(column.type) else column
               for column in table.columns]
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.table(columns, names=table.column_names), sink,
                     write_options=pa_csv.WriteOptions(include_header=False))
    return memoryview(sink.getvalue())


def _python_values(values: pd.Series) -> list:
    """Plain Python values for the sqlite3 driver: ``None`` for missing, ISO text for dates, 0/1 for bools."""
    if pd.api.types.is_datetime64_any_dtype(values):  # few distinct days: format each once
        codes, days = pd.factorize(values)
        text = np.array([*pd.DatetimeIndex(days).strftime("%Y-%m-%d"), None], dtype=object)
        return text[codes].tolist()  # code -1 (missing) takes the trailing None
    return values.to_numpy(dtype=object, na_value=None).tolist()


_RULES_DIGEST = _loaded_code_digest()  # last: every module of _RULE_MODULES is loaded by now
