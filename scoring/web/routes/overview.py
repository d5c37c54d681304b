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
from scoring.results.run_cache import run_cached
from scoring.web.auth import Account, require
from scoring.web.pages import engine, render, settings

router = APIRouter()


def _named_rows(table) -> list[tuple[str, dict]]:
    """(group, counts) per row of a :func:`tier_counts` table: a province's hundreds of townships are rendered
    from plain dicts, not frame rows."""
    return list(zip(table.index, table.to_dict("records"), strict=True))


@router.get("/")
def overview(request: Request, account: Account = Depends(require("viewer"))):
    db, config = engine(request), settings(request)
    status = run_status(db, now=config.now(), stale_hours=config.stale_run_hours)
    context = {"status": status, "sector_labels": {code: s.label_zh for code, s in SECTOR_BY_CODE.items()}}
    if status.succeeded is not None:
        day, scope = status.succeeded["as_of"], account.townships

        def facts() -> dict:  # the run's stored rows only: the same for every view of this run and scope
            return {
                "by_township": _named_rows(tier_counts(db, day, by="township", townships=scope)),
                "by_sector": _named_rows(tier_counts(db, day, by="sector", townships=scope)),
                "changes": change_counts(db, day, townships=scope),
                "changed": changed_enterprises(db, day, townships=scope, limit=30),
                "vetoes": veto_counts(db, day, townships=scope),
                "clusters": special_assistance_clusters(db, day, townships=scope),
            }

        key = ("overview", None if scope is None else tuple(sorted(scope)))
        context.update(run_cached(db, status.succeeded, key, facts))
    return render(request, "overview.html", context)
