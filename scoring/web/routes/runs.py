"""运行记录 Runs: every nightly run (status, durations per stage, warnings, errors) and the latest monitoring
report's headline figures. Accounts limited to some townships see the runs' status and durations only (the
counts, messages and monitoring figures are about the whole jurisdiction)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from scoring.results.overview import latest_monitoring, runs_table
from scoring.web.auth import Account, require
from scoring.web.pages import engine, render

router = APIRouter()


@router.get("/runs")
def runs(request: Request, account: Account = Depends(require("viewer"))):
    db = engine(request)
    whole = account.townships is None
    return render(request, "runs.html", {"runs": runs_table(db), "whole": whole,
                                         "monitoring": latest_monitoring(db) if whole else None})
