"""首页 Overview: the latest nightly run, tier counts by township and sector, changes, vetoes and clusters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from features.contract import SECTOR_BY_CODE
from scoring.results.overview import (
    change_counts,
    changed_enterprises,
    run_status,
    special_assistance_clusters,
    tier_counts,
    veto_counts,
)
from scoring.web.auth import Account, require
from scoring.web.pages import engine, render, settings

router = APIRouter()


@router.get("/")
def overview(request: Request, account: Account = Depends(require("viewer"))):
    db, config = engine(request), settings(request)
    status = run_status(db, now=config.now(), stale_hours=config.stale_run_hours)
    context = {"status": status, "sector_labels": {code: s.label_zh for code, s in SECTOR_BY_CODE.items()}}
    if status.succeeded is not None:
        day, scope = status.succeeded["as_of"], account.townships
        context.update(
            by_township=tier_counts(db, day, by="township", townships=scope),
            by_sector=tier_counts(db, day, by="sector", townships=scope),
            changes=change_counts(db, day, townships=scope),
            changed=changed_enterprises(db, day, townships=scope, limit=30),
            vetoes=veto_counts(db, day, townships=scope),
            clusters=special_assistance_clusters(db, day, townships=scope),
        )
    return render(request, "overview.html", context)
