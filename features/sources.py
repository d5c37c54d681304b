"""Finding and reading the input files of an import: encodings, headers, sheets, formulas and malformed rows.

This is the reading half of :mod:`features.importer` (which validates and writes); :func:`features.store.
read_directory` uses it too. What it accepts, as bureaus export their tables (DESIGN.md §3):

Files
    A directory holds one file per table, named after the table in English or Chinese (``enterprises.csv``,
    ``企业信息.xlsx``; the names are in :mod:`features.contract`); a single file can be imported too, its table
    given by its name or by ``table=`` (``riskgrade import 企业台账.xlsx --table enterprises``).
Encodings (CSV)
    Detected per file before anything is read: strict UTF-8 (with or without a byte-order mark), else GB18030
    (a superset of GBK and GB2312, what Chinese Excel writes). A file in neither is refused naming the line and
    byte offset of the first byte UTF-8 cannot read.
Headers
    Every column may be named by its contract name or one of its Chinese names (``企业编号``, ``所属行业`` …),
    compared after NFKC folding (full-width brackets) and in lower case; :attr:`Source.header` holds the
    contract names, :attr:`Source.file_header` the file's own.
Workbooks (xlsx)
    A workbook with one data sheet is read as the table its file is named after (or the one its sheet is named
    after). A workbook with several data sheets is read sheet by sheet, each as the table its sheet is named
    after (English or Chinese): a data sheet named after no table, or two sheets of one table, refuse the file
    naming the sheets — never a silent first sheet. Cached values are read; a formula cell without one (a file
    written by a program, never opened in Excel) is reported as a bad cell naming the cell (``D7``).
Malformed rows (CSV)
    A row with more fields than the header (or, in a sheet, a value right of the last header cell) is not read
    into columns: it is handed to the validator as a *rejected row* (quarantined with its line and its fields),
    and the rest of the file loads. Rows with fewer fields get empty trailing cells. A quoting error that makes
    the rest of the file unreadable (an unclosed quote) stops the import naming the line.

Line numbers count CSV records (header = line 1) — equal to physical lines unless a quoted cell spans lines —
and sheet rows for xlsx. Nothing here touches a database.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from features.contract import HEADER_LOOKUP, TABLES, TRUTH_TABLE, normalise_name, table_named
from features.errors import DataError, MissingInputError
from features.frames import spec_for
from features.validate import check_header, key_columns

__all__ = ["RawChunk", "Source", "find_sources", "read_chunks", "read_raw"]

EXTENSIONS = (".csv", ".xlsx")
_BLOCK = 1 << 22  # bytes read at a time when sniffing a file
_DIGEST_BYTES = 20  # 160-bit BLAKE2b digests of input files


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One input: a CSV file or one sheet of a workbook, the table it holds and what its header said.

    ``header``: contract column names (what the validator sees; unknown columns keep the file's name);
    ``file_header``: the names as in the file. ``label``: how messages and the quarantine name it (the file
    name, plus ``[sheet]`` when the workbook has several data sheets). CSV only: ``encoding`` as detected,
    ``has_nul`` whether a NUL byte occurs anywhere in the file (else cells need no NUL check), ``records``
    its newline count (a progress estimate), ``plain`` whether its data rows hold no quote character and no
    line break but LF or CRLF (every record is then one physical line, see :func:`_plain_chunks`).
    ``digest``: a BLAKE2b digest of the file's bytes (and, for a sheet, its title), with which a re-import
    recognises a file it has already imported.
    """

    table: str
    path: Path
    header: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    file_header: tuple[str, ...] = ()
    sheet: str | None = None
    label: str = ""
    encoding: str = "utf-8"
    has_nul: bool = True
    records: int | None = None
    digest: str = ""
    plain: bool = False

    @property
    def name(self) -> str:
        return self.label or self.path.name


class RawChunk(NamedTuple):
    """One chunk as read: text ``cells`` indexed by line (columns = :attr:`Source.header`), ``rejected`` rows
    that could not be read into columns (index line; columns ``key``, ``raw``, ``reason``, ``rule``), cell
    ``problems`` found while reading (index line; ``column_name``, ``value``, ``reason``, ``rule``) and
    whether cells may hold NUL bytes (``check_nul``)."""

    cells: pd.DataFrame
    rejected: pd.DataFrame | None = None
    problems: pd.DataFrame | None = None
    check_nul: bool = True


def find_sources(path: str | Path, *, tables: Sequence[str] | None = None,
                 table: str | None = None) -> tuple[Source, ...]:
    """The inputs at ``path`` (a directory, or one file), enterprises first, each with its header checked.

    Directory: one file per table, named after it (English or Chinese; ``.csv`` or ``.xlsx``); the required
    tables (enterprises, inspections) must be there. ``tables`` restricts the optional tables looked for
    (``truth`` is looked for unless ``tables`` excludes it). One file: its table is ``table``, else the one its
    name (or, for a workbook, its sheets' names) says; required tables are then not demanded.

    Raises :class:`~features.errors.MissingInputError` for a missing required file or column and
    :class:`~features.errors.DataError` for an ambiguous, unreadable or undecodable file — before anything is
    written.
    """
    path = Path(path)
    if table is not None and spec_for_name(table) is None:
        raise DataError(f"unknown table {table!r}; expected one of {', '.join(_ALL_TABLES)}")
    if path.is_file():
        return _ordered(_file_sources(path, table=table, explicit=True), path.name)
    if not path.is_dir():
        raise MissingInputError(f"input directory or file {path} does not exist")
    if table is not None:
        raise DataError(f"{path} is a directory: --table names the table of one file (import FILE --table T)")
    wanted = {spec.name for spec in (*TABLES, TRUTH_TABLE)
              if tables is None or spec.name in tables or spec.required_file}
    found: list[Source] = []
    for file in sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()):
        named = table_named(file.stem)
        if named is None and file.suffix.lower() == ".csv":
            continue  # not a table file
        if named is None:  # a workbook not named after a table: read it if its sheets are
            try:
                sheets = _workbook_tables(file)
            except DataError:
                continue  # not a workbook of ours (or not a workbook at all): not an input
            if not any(t in wanted for t in sheets.values()):
                continue
        found.extend(s for s in _file_sources(file, table=named, explicit=False) if s.table in wanted)
    sources = _ordered(found, str(path))
    for spec in TABLES:
        if spec.required_file and spec.name not in {s.table for s in sources}:
            raise MissingInputError(
                f"{path}: required file {spec.name}.csv (or {spec.name}.xlsx, or named {_zh_names(spec.name)}) "
                f"is missing")
    return sources


def spec_for_name(table: str):
    return next((spec for spec in (*TABLES, TRUTH_TABLE) if spec.name == table), None)


_ALL_TABLES = tuple(spec.name for spec in (*TABLES, TRUTH_TABLE))


def _zh_names(table: str) -> str:
    names = spec_for(table).zh
    return " or ".join(f"{n}.csv" for n in names[:2]) if names else "after the table"


def _ordered(sources: list[Source], where: str) -> tuple[Source, ...]:
    """Sources in contract order (enterprises first); one table found twice is refused naming both inputs."""
    by_table: dict[str, Source] = {}
    for source in sources:
        if source.table in by_table:
            first = by_table[source.table]
            raise DataError(f"{where}: table {source.table} is in both {_where(first)} and {_where(source)}; "
                            f"keep one of them")
        by_table[source.table] = source
    return tuple(by_table[name] for name in _ALL_TABLES if name in by_table)


def _where(source: Source) -> str:
    return source.path.name + (f" (sheet {source.sheet!r})" if source.sheet else "")


def _file_sources(path: Path, *, table: str | None, explicit: bool) -> list[Source]:
    if path.suffix.lower() not in EXTENSIONS:
        raise DataError(f"{path.name}: expected a .csv or .xlsx file")
    if path.suffix.lower() == ".csv":
        table = table or table_named(path.stem)
        if table is None:
            raise DataError(f"{path.name}: cannot tell which table this file holds; name it after its table "
                            f"(enterprises.csv, 企业信息.csv, …) or give --table")
        facts = _sniff(path)
        file_header = _csv_header(path, facts.encoding)
        return [_source(table, path, file_header, encoding=facts.encoding, has_nul=facts.has_nul,
                        records=facts.newlines, digest=facts.digest, plain=facts.plain)]
    return _sheet_sources(path, table=table, explicit=explicit)


def _source(table: str, path: Path, file_header: Sequence[str], **facts) -> Source:
    label = facts.pop("label", "") or path.name
    header = canonical_header(table, file_header, label)
    return Source(table, path, header, check_header(table, header, label, file_header=file_header),
                  file_header=tuple(file_header), label=label, **facts)


def canonical_header(table: str, file_header: Sequence[str], source_file: str) -> tuple[str, ...]:
    """The contract names of a file's header (contract or Chinese names, see :mod:`features.contract`); names
    of no contract column are kept as they are (``x_*`` extras, or ignored with a warning)."""
    lookup = HEADER_LOOKUP[table]
    names = []
    for position, name in enumerate(file_header, start=1):
        if "\x00" in name:
            raise DataError(f"{source_file}: header cell {position} contains a NUL byte ({_visible(name)!r}); "
                            f"the file is damaged or not a text table")
        names.append(lookup.get(normalise_name(name), name.strip()))
    counts = Counter(names)
    for name, n in counts.items():
        if n > 1:
            given = [h.strip() for h, c in zip(file_header, names) if c == name]
            raise DataError(f"{source_file}: column {name!r} appears {n} times in the header "
                            f"(as {', '.join(map(repr, given))})")
    return tuple(names)


def _visible(text: str) -> str:
    return text.replace("\x00", "\\x00")


# ---------------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------------


class _TextFacts(NamedTuple):
    encoding: str
    has_nul: bool
    newlines: int  # data records, estimated: newlines after the header's
    digest: str  # of the file's bytes
    plain: bool  # no quote character after the header's line, no CR but before LF: one record per line


def _sniff(path: Path) -> _TextFacts:
    """Decode the whole file strictly as UTF-8, else as GB18030 (one pass each, in blocks); count newlines,
    look for NUL bytes, quotes and lone CRs and take the file's digest on the way. Refuses a file in neither
    encoding naming line and byte offset."""
    with path.open("rb") as handle:
        bom = handle.read(3) == codecs.BOM_UTF8
        handle.seek(0)
        failure = None
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        newlines, nul, start, last = 0, False, 0, b"\n"
        quotes, crs, crlfs, header_quotes = 0, 0, 0, None
        digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
        while block := handle.read(_BLOCK):
            digest.update(block)
            if header_quotes is None:  # the header's physical line (a quoted line break in it: not plain)
                end = block.find(b"\n")
                header_quotes = block[:len(block) if end < 0 else end].count(b'"')
            quotes += block.count(b'"')
            crs += block.count(b"\r")
            crlfs += block.count(b"\r\n") + (last == b"\r" and block.startswith(b"\n"))
            last = block[-1:]
            if failure is None and not block.isascii():
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    offset = start - pending + exc.start
                    line = newlines + block[:max(offset - start, 0)].count(b"\n") + 1
                    failure = (line, offset, exc.object[exc.start:exc.end])
            newlines += block.count(b"\n")
            nul = nul or b"\x00" in block
            start += len(block)
        if failure is None:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                failure = (newlines + 1, start - len(exc.object) + exc.start, exc.object[exc.start:exc.end])
        records = max(newlines - (1 if last == b"\n" else 0), 0)
        plain = quotes == (header_quotes or 0) and (header_quotes or 0) % 2 == 0 and crs == crlfs
        if failure is None:
            return _TextFacts("utf-8-sig" if bom else "utf-8", nul, records, digest.hexdigest(), plain)
        if not bom and _decodes(handle, "gb18030"):
            return _TextFacts("gb18030", nul, records, digest.hexdigest(), plain)
    line, offset, data = failure
    raise DataError(f"{path.name} line {line} (byte offset {offset}): byte {data.hex(' ')} is not UTF-8, and the "
                    f"file is not GB18030/GBK text either; save it as CSV UTF-8 (or as the Chinese Excel CSV)")


def _decodes(handle, encoding: str) -> bool:
    handle.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        while block := handle.read(_BLOCK):
            decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _csv_header(path: Path, encoding: str) -> tuple[str, ...]:
    """The first record's cells, stripped; empty ones become ``Unnamed: <i>`` (as pandas names them)."""
    with path.open(encoding=encoding, newline="") as handle:
        try:
            first = next(csv.reader(handle), [])
        except csv.Error as exc:
            raise DataError(f"{path.name} line 1: the header cannot be read as CSV ({exc})") from exc
    return tuple(h.strip() or f"Unnamed: {i}" for i, h in enumerate(first))


# ---------------------------------------------------------------------------------------------
# Workbooks
# ---------------------------------------------------------------------------------------------


def _open_book(path: Path, *, formulas: bool = False):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=not formulas)
    except Exception as exc:  # zipfile/openpyxl raise many kinds
        raise DataError(f"{path.name} cannot be opened as an Excel workbook: {exc}") from exc


def _has_data(sheet) -> bool:
    return any(v is not None and str(v).strip() for row in sheet.iter_rows(values_only=True) for v in row)


def _workbook_tables(path: Path) -> dict[str, str | None]:
    """Each data sheet's title -> the table it is named after (or ``None``)."""
    book = _open_book(path)
    try:
        return {sheet.title: table_named(sheet.title) for sheet in book.worksheets if _has_data(sheet)}
    finally:
        book.close()


def _sheet_sources(path: Path, *, table: str | None, explicit: bool) -> list[Source]:
    """The sheets of a workbook to read, each with its table (see the module docstring for the rules)."""
    sheets = _workbook_tables(path)
    if not sheets:  # nothing but empty sheets: read the first one (its empty header then says what is missing)
        book = _open_book(path)
        first = book.worksheets[0].title if book.worksheets else None
        book.close()
        if table is None:
            raise DataError(f"{path.name}: cannot tell which table this workbook holds; name it after its table "
                            f"or give --table")
        return [_sheet_source(path, first, table, several=False)]
    if len(sheets) == 1:
        title, named = next(iter(sheets.items()))
        if named is not None and table is not None and named != table and not explicit:
            raise DataError(f"{path.name}: the file is named after {table} but its only sheet {title!r} after "
                            f"{named}; rename one of them")
        chosen = table or named
        if chosen is None:
            raise DataError(f"{path.name}: cannot tell which table sheet {title!r} holds; name the file or the "
                            f"sheet after its table (enterprises, 企业信息, …) or give --table")
        return [_sheet_source(path, title, chosen, several=False)]
    described = ", ".join(f"{title!r} → {named or 'no table of that name'}" for title, named in sheets.items())
    if explicit and table is not None:
        titles = [title for title, named in sheets.items() if named == table]
        if len(titles) != 1:
            raise DataError(f"{path.name} has {len(sheets)} data sheets ({described}) and "
                            f"{'none' if not titles else 'more than one'} is named after {table}; name the sheet "
                            f"to read after its table, or save it alone")
        others = [t for t in sheets if t != titles[0]]
        source = _sheet_source(path, titles[0], table, several=True)
        note = (f"{path.name}: read sheet {titles[0]!r} only (--table {table}); not read: "
                f"{', '.join(map(repr, others))}")
        return [Source(**{**source.__dict__, "warnings": (*source.warnings, note)})]
    unnamed = [title for title, named in sheets.items() if named is None]
    if unnamed:
        raise DataError(f"{path.name} has {len(sheets)} data sheets, read each as the table it is named after: "
                        f"{described}; rename sheet {unnamed[0]!r} after its table (or delete it); nothing was "
                        f"read")
    tables = Counter(sheets.values())
    twice = [t for t, n in tables.items() if n > 1]
    if twice:
        raise DataError(f"{path.name}: several sheets are named after {twice[0]} ({described}); keep one")
    return [_sheet_source(path, title, named, several=True) for title, named in sheets.items()]


def _sheet_source(path: Path, title: str | None, table: str, *, several: bool) -> Source:
    book = _open_book(path)
    try:
        sheet = book[title] if title is not None else book.worksheets[0]
        first = [_cell_text(v) for v in next(sheet.iter_rows(values_only=True, max_row=1), ())]
        rows = max(sheet.max_row - 1, 0) if sheet.max_row else None
    finally:
        book.close()
    while first and not first[-1].strip():
        first.pop()
    header = tuple(h.strip() or f"Unnamed: {i}" for i, h in enumerate(first))
    label = f"{path.name}[{title}]" if several else path.name
    digest = hashlib.blake2b(path.read_bytes(), digest_size=_DIGEST_BYTES)
    digest.update(b"\x00sheet\x00" + str(title).encode())
    return _source(table, path, header, sheet=title, label=label, records=rows, digest=digest.hexdigest())


def _cell_text(value) -> str:
    """An Excel cell as the text a CSV export would hold (dates ISO, whole numbers without ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------------------------
# Reading chunks
# ---------------------------------------------------------------------------------------------


def read_raw(source: Source, chunk_rows: int) -> Iterator[RawChunk]:
    """``source`` as :class:`RawChunk` of at most ``chunk_rows`` rows each."""
    if source.path.suffix.lower() != ".csv":
        yield from _xlsx_chunks(source, chunk_rows)
    elif source.plain and not source.has_nul and source.encoding in ("utf-8", "utf-8-sig"):
        yield from _plain_chunks(source, chunk_rows)
    else:
        yield from _csv_chunks(source, chunk_rows)


def read_chunks(source: Source, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Raw cells of ``source`` as text frames of at most ``chunk_rows`` rows, indexed by 1-based line number
    (the header is line 1), with the header's contract column names (rejected rows left out)."""
    for chunk in read_raw(source, chunk_rows):
        yield chunk.cells


_SKIPPED = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # what pandas' reader gives for dtype=str
_PLAIN_BLOCK = 1 << 23  # bytes Arrow's CSV reader parses at a time


def _plain_chunks(source: Source, chunk_rows: int) -> Iterator[RawChunk]:
    """A *plain* file (:attr:`Source.plain`: no quote after the header, UTF-8, no NUL: every record is one
    physical line) read by Arrow's CSV reader, several times faster than pandas'. Only rows of exactly the
    header's width are read so: at the first other row (too many fields, too few, a line of spaces) the rows
    not yet handed out are read again by :func:`_csv_chunks`, from that chunk's first line, so that what a
    chunk holds and how a malformed row is reported do not depend on the reader."""
    names = list(source.header)
    width = len(names)
    positional = [str(i) for i in range(width)]
    try:
        reader = pa_csv.open_csv(
            source.path,
            read_options=pa_csv.ReadOptions(skip_rows=1, column_names=positional, block_size=_PLAIN_BLOCK),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=False,
                                              invalid_row_handler=lambda row: "error"),
            convert_options=pa_csv.ConvertOptions(column_types={c: pa.string() for c in positional},
                                                  strings_can_be_null=False),
        )
    except pa.ArrowInvalid:  # e.g. no data row at all
        yield from _csv_chunks(source, chunk_rows)
        return
    kept = 0  # data rows handed out so far
    pending: list[pa.RecordBatch] = []
    buffered = 0
    with reader:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                batch = None
            except pa.ArrowInvalid:  # a row of another width: pandas' reader decides what it is
                yield from _csv_chunks(source, chunk_rows, start=kept)
                return
            if batch is not None:
                pending.append(batch)
                buffered += batch.num_rows
            while buffered >= chunk_rows or (batch is None and buffered):
                table = pa.Table.from_batches(pending)
                take = min(chunk_rows, buffered)
                rest = table.slice(take)
                pending, buffered = rest.to_batches(), rest.num_rows
                chunk = table.slice(0, take)
                lines = pd.Index(np.arange(kept + 2, kept + 2 + take, dtype=np.int64))
                cells = pd.DataFrame({name: pd.Series(chunk.column(i), index=lines, dtype=_TEXT, copy=False)
                                      for i, name in enumerate(names)}, index=lines)
                kept += take
                yield RawChunk(cells, None, None, False)
            if batch is None:
                if not kept:  # no data row: the header-only chunk pandas' reader gives
                    yield from _csv_chunks(source, chunk_rows)
                return


def _csv_chunks(source: Source, chunk_rows: int, start: int = 0) -> Iterator[RawChunk]:
    """pandas' C parser, reading the header as a data row (so that its width, not the first data row's, is
    what a row must not exceed); longer rows are skipped with a warning naming their line, which is caught
    here and turned into a rejected row (its fields re-read by the csv module).

    ``start``: data rows to pass over (a plain file whose first ``start`` rows :func:`_plain_chunks` read; its
    records are its lines, so reading begins at the byte where line ``start + 2`` begins)."""
    names = list(source.header)
    width = len(names)
    skipped: list[int] = []  # lines of rejected rows so far, ascending
    finder = _RecordFinder(source)
    kept = start  # data rows yielded so far
    # pandas numbers the rows it reads from 1; the first one is the header, or line start + 2 when resuming
    first_line = start + 2 if start else 1
    handle = None
    try:
        if start:
            handle = source.path.open("rb")
            handle.seek(_line_offset(handle, start + 2))
        reader = pd.read_csv(
            handle if start else source.path, header=None, names=list(range(width)), dtype=str,
            na_filter=False, keep_default_na=False, skip_blank_lines=False, encoding=source.encoding,
            chunksize=chunk_rows, on_bad_lines="warn", index_col=False,
        )
        with reader:
            first = not start
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    try:  # the first chunk holds the header row too
                        chunk = reader.get_chunk(chunk_rows + 1 if first else chunk_rows)
                    except StopIteration:
                        chunk = None
                new = [line + first_line - 1 for line in _skipped_lines(caught)]
                if chunk is None and not new:
                    return
                if chunk is None:
                    chunk = pd.DataFrame(columns=list(range(width)), dtype="str")
                if first:
                    chunk = chunk.iloc[1:]  # the header row
                    first = False
                skipped.extend(new)
                chunk.columns = names
                chunk.index = _true_lines(kept, len(chunk), skipped)
                kept += len(chunk)
                rejected = finder.rejected(new, width) if new else None
                yield RawChunk(chunk, rejected, None, source.has_nul)
    except pd.errors.ParserError as exc:
        # pandas counts rows from 0 at the first row it reads (the header, line 1, unless resuming)
        message = re.sub(r"\brow (\d+)", lambda m: f"line {int(m.group(1)) + first_line}", str(exc))
        where = re.search(r"line (\d+)", message)
        at = f" line {where.group(1)}" if where else ""
        raise DataError(f"{source.name}{at} cannot be parsed as CSV ({message}); check the quoting of that "
                        f"line") from exc
    except pd.errors.EmptyDataError:
        return
    finally:
        finder.close()
        if handle is not None:
            handle.close()


def _line_offset(handle, line: int) -> int:
    """The byte offset at which physical ``line`` (1-based) of the binary ``handle`` begins."""
    handle.seek(0)
    offset, to_pass = 0, line - 1
    while to_pass and (block := handle.read(_BLOCK)):
        found = block.count(b"\n")
        if found < to_pass:
            to_pass -= found
            offset += len(block)
            continue
        at = -1
        for _ in range(to_pass):
            at = block.index(b"\n", at + 1)
        return offset + at + 1
    return offset


def _skipped_lines(caught) -> list[int]:
    lines = []
    for warning in caught:
        found = _SKIPPED.findall(str(warning.message))
        if found:
            lines.extend(int(line) for line, _expected, _saw in found)
        else:  # not ours: pass it on
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return sorted(lines)


def _true_lines(kept: int, n: int, skipped: list[int]) -> pd.Index:
    """Line numbers of the next ``n`` data rows when ``kept`` were read before and the rows at ``skipped``
    lines were left out: the k-th row read (0-based) is at line k + 2 plus the skipped lines before it."""
    naive = np.arange(kept, kept + n, dtype=np.int64) + 2
    if skipped:
        shifted = np.asarray(skipped, dtype=np.int64) - np.arange(len(skipped), dtype=np.int64)
        naive = naive + np.searchsorted(shifted, naive, side="right")
    return pd.Index(naive, dtype="int64")


class _RecordFinder:
    """Re-reads the records of rejected lines with the csv module (opened on first use, read forward only:
    rejected lines come in ascending order)."""

    def __init__(self, source: Source):
        self.source = source
        self.handle = None
        self.reader = None
        self.record = 0

    def rejected(self, lines: list[int], width: int) -> pd.DataFrame:
        header = list(self.source.header)
        key_at = [header.index(k) for k in key_columns(self.source.table) if k in header]
        rows = []
        for line in lines:
            fields = self._fields(line)
            raw = {name: value for name, value in zip(header, fields)}
            raw["(extra fields)"] = fields[width:]
            key = "|".join(fields[i].strip() for i in key_at) if key_at and len(key_at) == len(
                key_columns(self.source.table)) and all(fields[i].strip() for i in key_at) else None
            rows.append({"key": key, "raw": raw, "rule": "too_many_fields",
                         "reason": f"the row has {len(fields)} fields, the header {width}: it was not read "
                                   f"(a comma or quote inside an unquoted cell?); fix the row and import again"})
        return pd.DataFrame(rows, index=pd.Index(lines, dtype="int64"))

    def _fields(self, line: int) -> list[str]:
        if self.reader is None:
            self.handle = self.source.path.open(encoding=self.source.encoding, newline="")
            self.reader = csv.reader(self.handle)
        fields: list[str] = []
        while self.record < line:
            fields = next(self.reader, [])
            self.record += 1
        return fields

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _xlsx_chunks(source: Source, chunk_rows: int) -> Iterator[RawChunk]:
    """Rows of the sheet (cached values), with the formula view of the same sheet read alongside to find
    formula cells that have no cached value."""
    from openpyxl.utils import get_column_letter

    names = list(source.header)
    width = len(names)
    book, formulas = _open_book(source.path), _open_book(source.path, formulas=True)
    try:
        sheet = book[source.sheet] if source.sheet is not None else book.worksheets[0]
        formula_sheet = formulas[sheet.title]
        lines: list[int] = []
        rows: list[list[str]] = []
        rejected: list[dict] = []
        problems: list[dict] = []
        value_rows = sheet.iter_rows(min_row=2, values_only=True)
        formula_rows = formula_sheet.iter_rows(min_row=2, values_only=True)
        for line, (values, written) in enumerate(zip(value_rows, formula_rows), start=2):
            cells = [_cell_text(v) for v in values]
            for position, (value, formula) in enumerate(zip(values, written)):
                if value is None and isinstance(formula, str) and formula.startswith("="):
                    cell = f"{get_column_letter(position + 1)}{line}"
                    if position < width:
                        problems.append({"line": line, "column_name": names[position], "value": formula,
                                         "rule": "formula_without_value",
                                         "reason": f"cell {cell} holds the formula {formula} without a saved "
                                                   f"value; open the file in Excel and save it (or paste values)"})
                    cells[position] = formula
            extra = [c for c in cells[width:] if c.strip()]
            if extra:
                raw = dict(zip(names, cells[:width]))
                raw["(extra fields)"] = cells[width:]
                key_at = [names.index(k) for k in key_columns(source.table) if k in names]
                key = "|".join(cells[i].strip() for i in key_at) if key_at else None
                rejected.append({"line": line, "key": key or None, "raw": raw, "rule": "too_many_fields",
                                 "reason": f"row {line} has values right of the last header cell "
                                           f"({get_column_letter(width + 1)} onwards: {extra[0]!r}); give the "
                                           f"column a header or delete the values"})
            else:
                cells = cells[:width]
                rows.append(cells + [""] * (width - len(cells)))
                lines.append(line)
            if len(rows) + len(rejected) >= chunk_rows:
                yield _xlsx_chunk(rows, names, lines, rejected, problems)
                lines, rows, rejected, problems = [], [], [], []
        if rows or rejected:
            yield _xlsx_chunk(rows, names, lines, rejected, problems)
    finally:
        book.close()
        formulas.close()


def _xlsx_chunk(rows, names, lines, rejected, problems) -> RawChunk:
    cells = pd.DataFrame(rows, columns=names, index=pd.Index(lines, dtype="int64"), dtype="str")
    if not rows:
        cells = pd.DataFrame({n: pd.Series(dtype="str") for n in names}, index=pd.Index([], dtype="int64"))
    rejected_frame = pd.DataFrame(rejected).set_index("line") if rejected else None
    problem_frame = pd.DataFrame(problems).set_index("line") if problems else None
    return RawChunk(cells, rejected_frame, problem_frame, True)
