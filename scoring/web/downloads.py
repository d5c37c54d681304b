"""Files the workbench hands out: the same CSV (UTF-8 with BOM) and xlsx the CLI writes, built in memory by the
writers of :mod:`scoring.exports`, and page helpers shared by the ranked-list, enterprise and plan pages."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd
from fastapi.responses import Response

from scoring.exports import write_csv, write_csv_rows, write_xlsx

__all__ = ["CSV_TYPE", "XLSX_TYPE", "csv_download", "csv_rows_download", "enterprise_href", "xlsx_download"]

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _disposition(filename: str) -> str:
    # an ASCII fallback and the RFC 5987 form (file names may carry Chinese text)
    ascii_name = filename.encode("ascii", "replace").decode("ascii").replace("?", "_").replace('"', "_")
    return f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{quote(filename)}'


def csv_download(frame: pd.DataFrame, filename: str) -> Response:
    """``frame`` as the CSV file ``riskgrade … --format csv --out FILE`` writes (UTF-8 with a byte-order mark)."""
    buffer = io.BytesIO()
    write_csv(frame, buffer)
    return _attachment(buffer.getvalue(), CSV_TYPE, filename)


def csv_rows_download(columns: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """Rows as the CSV file the CLI writes of them (:func:`scoring.exports.write_csv_rows`)."""
    buffer = io.BytesIO()
    write_csv_rows(columns, rows, buffer)
    return _attachment(buffer.getvalue(), CSV_TYPE, filename)


def xlsx_download(sheets: Mapping[str, pd.DataFrame], filename: str) -> Response:
    """``sheets`` as the workbook ``riskgrade … --format xlsx --out FILE`` writes."""
    buffer = io.BytesIO()
    write_xlsx(sheets, buffer)
    return _attachment(buffer.getvalue(), XLSX_TYPE, filename)


def _attachment(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type,
                    headers={"Content-Disposition": _disposition(filename), "Cache-Control": "no-store"})


def enterprise_href(enterprise_id: object) -> str:
    """The enterprise file's path, the id quoted whole (a ``/`` in an id cannot climb out of ``/enterprise/``)."""
    return "/enterprise/" + quote(str(enterprise_id), safe="")
