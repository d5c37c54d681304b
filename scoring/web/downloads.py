"""Files the workbench hands out: the same CSV (UTF-8 with BOM) and xlsx the CLI writes, built in memory by the
writers of :mod:`scoring.exports`, and page helpers shared by the ranked-list, enterprise and plan pages."""

from __future__ import annotations

import io
from collections.abc import Mapping
from urllib.parse import quote

import pandas as pd
from fastapi.responses import Response

from scoring.exports import write_csv, write_xlsx

__all__ = ["CSV_TYPE", "XLSX_TYPE", "csv_download", "enterprise_href", "xlsx_download"]

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
    return Response(buffer.getvalue(), media_type=CSV_TYPE,
                    headers={"Content-Disposition": _disposition(filename), "Cache-Control": "no-store"})


def xlsx_download(sheets: Mapping[str, pd.DataFrame], filename: str) -> Response:
    """``sheets`` as the workbook ``riskgrade … --format xlsx --out FILE`` writes."""
    buffer = io.BytesIO()
    write_xlsx(sheets, buffer)
    return Response(buffer.getvalue(), media_type=XLSX_TYPE,
                    headers={"Content-Disposition": _disposition(filename), "Cache-Control": "no-store"})


def enterprise_href(enterprise_id: object) -> str:
    """The enterprise file's path, the id quoted whole (a ``/`` in an id cannot climb out of ``/enterprise/``)."""
    return "/enterprise/" + quote(str(enterprise_id), safe="")
