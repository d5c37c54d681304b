"""Exports of the planners' tables: terminal (Rich), CSV, JSON and Excel — one code path for every command.

Chinese text must survive every format:

- **terminal**: Rich tables (wide characters are measured correctly, so columns stay aligned);
- **CSV**: UTF-8 *with* a byte-order mark (``utf-8-sig``), so that Excel on a Chinese Windows opens it as UTF-8
  instead of GBK; on standard output no BOM is written (pipes want plain UTF-8);
- **JSON**: UTF-8, ``ensure_ascii=False`` (readable 中文), dates as ISO text, missing values as ``null``;
- **xlsx**: openpyxl, one sheet per frame, dates as Excel dates, column widths fitted to the (wide) text.

Spreadsheet safety (CSV and xlsx alike, :func:`neutralise_formulas`): a text cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return would be read by Excel / WPS / LibreOffice as a formula (a township named
``=HYPERLINK(...)`` becomes a live link in the planners' sheet). Following the OWASP CSV-injection advice, such a
cell is written with a single quote in front (``'=HYPERLINK(...)``); numbers stay numbers (a negative number, or
text that is exactly a number like ``-3.5``, is not touched).

Files are written whole or not at all: into a temporary file beside ``out``, renamed over it once complete; a
failure (disk full, no permission) removes the temporary file and raises :class:`OutputError` naming ``out``.

Used by ``riskgrade rank`` and ``riskgrade plan`` (and anything else that writes a table).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from features.errors import OutputError

__all__ = [
    "DISK_FULL_ERRNOS",
    "DISK_FULL_HINT",
    "atomic_output",
    "FORMATS",
    "FORMULA_TRIGGERS",
    "OutputError",
    "json_records",
    "json_value",
    "neutralise_formulas",
    "print_frame",
    "write_csv",
    "write_csv_rows",
    "write_json",
    "write_xlsx",
]

FORMATS = ("table", "csv", "json", "xlsx")

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP, CSV injection)."""

_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _neutralised_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell a spreadsheet would run as a formula prefixed with ``'`` (see the module
    docstring); number, date and boolean columns, and text that is exactly a number, are left as they are.

    The one place where CSV and xlsx exports are made safe to open: every writer of this module calls it.
    """
    out = frame
    for column in frame.columns:
        values = frame[column]
        kind = values.cat.categories.dtype if isinstance(values.dtype, pd.CategoricalDtype) else values.dtype
        if not (kind == object or pd.api.types.is_string_dtype(kind)):
            continue  # numbers, dates and booleans are written as such
        if isinstance(values.dtype, pd.StringDtype) and not values.str.match(_TRIGGER_PATTERN).any():
            continue  # string columns tested in one vectorised call: most have no formula-like cell at all
        text = values.astype(object)
        starts = np.fromiter((isinstance(v, str) and v[:1] in _TRIGGER_SET for v in text), dtype=bool,
                             count=len(text))
        if not starts.any():
            continue
        out = out.copy() if out is frame else out
        out[column] = pd.Series([_neutralised_text(v) if hit else v for v, hit in zip(text, starts, strict=True)],
                                index=frame.index, dtype=object)
    return out


_TRIGGER_SET = frozenset(FORMULA_TRIGGERS)
_TRIGGER_PATTERN = "[" + re.escape("".join(FORMULA_TRIGGERS)) + "]"


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""``OSError.errno`` values that mean the disk (or the user's quota) is full."""
DISK_FULL_HINT = "the disk is full: free some space and run the command again"


@contextlib.contextmanager
def atomic_output(out: Path | BinaryIO) -> Iterator[Path | BinaryIO]:
    """A temporary path beside ``out`` to write to; renamed over ``out`` when the block succeeds, removed if not.
    A binary buffer (the workbench's downloads) is written to directly."""
    if hasattr(out, "write"):
        yield out
        return
    out = Path(out)
    temporary = out.with_name(f".{out.stem}.{os.getpid()}.partial{out.suffix}")
    try:
        yield temporary
        os.replace(temporary, out)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        hint = f" ({DISK_FULL_HINT})" if exc.errno in DISK_FULL_ERRNOS else ""
        raise OutputError(f"could not write {out}: {reason}{hint}; nothing was written") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def json_value(value: Any) -> Any:
    """One value as plain JSON-able Python: NaN/NA/NaT → None, numpy scalars → Python, dates → ISO text."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:  # most values, returned before the slower checks below
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        if pd.isna(value):
            return None
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as JSON-able dicts (see :func:`json_value`), columns in order."""
    columns = list(frame.columns)
    out = []
    for row in frame.itertuples(index=False, name=None):
        out.append({column: json_value(value) for column, value in zip(columns, row, strict=True)})
    return out


def _destination(out: Path | BinaryIO | None, what: str, say: Callable[[str], None] | None) -> None:
    if out is not None and say is not None and not hasattr(out, "write"):
        say(f"{what} written to {out}")


def write_csv(frame: pd.DataFrame, out: Path | BinaryIO | None, *, what: str = "table",
              say: Callable[[str], None] | None = None) -> None:
    """CSV with ISO dates: to ``out`` in ``utf-8-sig`` (Excel-friendly) — a file, or a binary buffer (the
    workbench's downloads) —, or to standard output without a BOM.

    Formula-like text cells are neutralised (:func:`neutralise_formulas`)."""
    text = neutralise_formulas(frame).to_csv(index=False, date_format="%Y-%m-%d")
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if hasattr(out, "write"):
        out.write(text.encode("utf-8-sig"))
        return
    with atomic_output(out) as temporary:
        temporary.write_text(text, encoding="utf-8-sig", newline="")
    _destination(out, what, say)


def write_csv_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: Path | BinaryIO | None, *,
                   what: str = "table", say: Callable[[str], None] | None = None) -> None:
    """The file :func:`write_csv` writes for a frame of these rows, from plain Python rows without a frame (the
    ranked list's export: a frame costs more than the file for a township's few hundred rows).

    Cells as pandas writes them: ``None`` and NaN empty, floats by ``repr``, dates and datetimes as ISO dates
    (ISO text passes as it is), formula-like text neutralised (:func:`neutralise_formulas`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # pandas' dialect: excel, QUOTE_MINIMAL, the platform's \n
    writer.writerow(columns)
    writer.writerows([_csv_cell(value) for value in row] for row in rows)
    text = buffer.getvalue()
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if hasattr(out, "write"):
        out.write(text.encode("utf-8-sig"))
        return
    with atomic_output(out) as temporary:
        temporary.write_text(text, encoding="utf-8-sig", newline="")
    _destination(out, what, say)


def _csv_cell(value: Any) -> Any:
    """One cell for the csv module (which writes ints by ``str`` and floats by ``repr``, as pandas does)."""
    kind = type(value)
    if kind is str:
        return _neutralised_text(value)
    if value is None:
        return ""
    if kind is int:
        return value
    if kind is float:
        return "" if math.isnan(value) else value
    if isinstance(value, float | np.floating):
        return "" if math.isnan(value) else float(value)
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, datetime | date):
        return "" if pd.isna(value) else value.strftime("%Y-%m-%d")
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def write_json(data: Any, out: Path | None, *, what: str = "table",
               say: Callable[[str], None] | None = None) -> None:
    """JSON (UTF-8, Chinese kept readable): a frame becomes a list of objects, anything else is dumped as is."""
    payload = json_records(data) if isinstance(data, pd.DataFrame) else json_value(data)
    text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(out) as temporary:
        temporary.write_text(text, encoding="utf-8")
    _destination(out, what, say)


def write_xlsx(sheets: Mapping[str, pd.DataFrame], out: Path | BinaryIO, *, what: str = "table",
               say: Callable[[str], None] | None = None) -> None:
    """An Excel workbook (to a file or a binary buffer), one sheet per frame (names cut to Excel's 31
    characters), widths fitted to the text.

    Formula-like text cells are neutralised (:func:`neutralise_formulas`): no cell of the workbook is a formula."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    # write-only: rows go straight to the file (half the time of building every cell in memory, 10k rows a second)
    book = Workbook(write_only=True)
    for name, frame in sheets.items():
        sheet = book.create_sheet(title=str(name)[:31])
        for i, column in enumerate(frame.columns, start=1):
            values = [str(column)] + [str(v) for v in frame[column].head(500) if v is not None]
            width = max((_display_width(v) for v in values), default=8)
            sheet.column_dimensions[get_column_letter(i)].width = min(max(width + 2, 8), 80)
        sheet.freeze_panes = "A2"
        sheet.append([str(column) for column in frame.columns])
        for row in _excel_ready(neutralise_formulas(frame)).itertuples(index=False, name=None):
            sheet.append([_excel_cell(value) for value in row])
    with atomic_output(out) as temporary:
        book.save(temporary)
    _destination(out, what, say)


def _excel_cell(value: Any) -> Any:
    """A value openpyxl writes as it is: missing → an empty cell, numpy scalars as Python numbers."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _excel_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as dates (no midnight time), nullable numbers as plain objects openpyxl can write."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            out[column] = [None if pd.isna(v) else v.date() for v in values]
        elif isinstance(values.dtype, pd.api.extensions.ExtensionDtype) or values.dtype == object:
            out[column] = [json_value(v) if not isinstance(v, str) else v for v in values]
            out[column] = out[column].astype(object)
    return out


def _display_width(text: str) -> int:
    """Terminal/Excel width: East Asian wide characters count double."""
    from rich.cells import cell_len

    return cell_len(text)


def print_frame(console, title: str, frame: pd.DataFrame, *, max_width: Mapping[str, int] | None = None) -> None:
    """A Rich table of ``frame`` (numbers right-aligned, missing values blank) on ``console``."""
    from rich.table import Table

    table = Table(title=title)
    widths = dict(max_width or {})
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "iuf" or pd.api.types.is_numeric_dtype(frame[column].dtype)
        table.add_column(str(column), justify="right" if numeric and frame[column].dtype != bool else "left",
                         max_width=widths.get(str(column)), overflow="fold")
    for row in frame.itertuples(index=False, name=None):
        table.add_row(*("" if json_value(v) is None else _cell(v) for v in row))
    console.print(table)


def _cell(value: Any) -> str:
    value = json_value(value)
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)
