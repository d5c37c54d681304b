"""Checks of what the operator typed, made before any work starts: output files, capacity files, dates.

Each refusal is one :class:`~features.errors.RiskgradeError` line naming the option and the fix (exit code 2 for an
option that cannot work, 3 for a file whose content cannot be used), never a traceback.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from features.errors import DataError, UsageError

__all__ = ["check_future", "check_output", "read_capacity"]

SUFFIX_FORMATS: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".json": "json", ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xlsx",
    ".html": "html", ".htm": "html", ".parquet": "parquet", ".db": "database", ".sqlite": "database",
    ".sqlite3": "database",
}
"""What a file's suffix says it holds; an ``--out`` whose suffix says another format than the one written is refused."""

_SQLITE_HEADER = b"SQLite format 3\x00"


def check_output(out: Path | None, written: str, *, db_url: str | None = None, option: str = "--out",
                 suffix_hint: str | None = None) -> None:
    """Refuse an output path that cannot work or would destroy something, before the command does its work.

    ``written`` is the format the command will write there (``csv``, ``json``, ``xlsx``, ``html``, ``parquet``);
    refused: a folder, a path in a folder that does not exist or cannot be written, the live database (or any
    SQLite database file), and a suffix that names another format (``--format csv --out list.xlsx``).
    """
    if out is None:
        return
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder; name a file in it, e.g. {path / ('export.' + written)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: no permission to write in the folder {folder}")
    if _is_database(path, db_url):
        raise UsageError(f"{option} {path}: is a database file; refusing to overwrite it (name another file)")
    said = SUFFIX_FORMATS.get(path.suffix.lower())
    if said is not None and said != written:
        fix = suffix_hint or f"name it {path.with_suffix('.' + written).name}"
        raise UsageError(f"{option} {path}: the suffix {path.suffix} says {said}, but this writes {written}; {fix}")


def _is_database(path: Path, db_url: str | None) -> bool:
    from features.db import database_url

    url = database_url(db_url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        live = Path(url.removeprefix("sqlite:///"))
        candidates = {live, live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")}
        if any(_same_file(path, c) for c in candidates):
            return True
    if path.is_file():
        try:
            with path.open("rb") as handle:
                return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
        except OSError:
            return False
    return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def read_capacity(path: Path) -> pd.DataFrame:
    """The ``--capacity`` file as text columns: UTF-8 (with or without BOM) or GB18030/GBK, as Chinese Excel
    saves CSV; refused naming the file for a missing, empty or undecodable file."""
    import io

    if path.is_dir():
        raise UsageError(f"--capacity {path}: is a folder; name the CSV file")
    if not path.is_file():
        raise DataError(f"capacity file {path} does not exist")
    data = path.read_bytes()
    text = None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError as exc:
            failure = exc
    if text is None:
        line = data[:failure.start].count(b"\n") + 1
        raise DataError(f"capacity file {path.name} line {line}: byte 0x{data[failure.start]:02x} at offset "
                        f"{failure.start} is neither UTF-8 nor GB18030/GBK text; save it as CSV UTF-8")
    if not text.strip():
        raise DataError(f"capacity file {path.name} is empty: expected a header line 'department,visits' and one "
                        f"line per department")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"capacity file {path.name}: not a CSV table: {str(exc).strip()}") from None
    if frame.empty:
        raise DataError(f"capacity file {path.name} has a header but no department lines")
    return frame


def check_future(day: date, today: date, max_future_days: int, *, allow_future: bool) -> None:
    """Refuse an as-of date more than ``max_future_days`` after ``today`` unless the operator said so."""
    if allow_future or day <= today + timedelta(days=max_future_days):
        return
    raise UsageError(f"--as-of {day}: {(day - today).days} days after today ({today}); a nightly run may be dated "
                     f"at most {max_future_days} days ahead ([nightly] max_future_days of the policy file). Check "
                     f"the date, or pass --allow-future to run it anyway")
