"""一企一档 Enterprise file: what ``riskgrade explain`` shows — tier and why, limits, tier and probability history
(an inline SVG chart), the last 12 months of records, the plans that include it — and the manual overrides
(人工调整): set one (supervisor and above) with tier, cause and expiry, revoke one.

An enterprise outside the account's townships answers 404, exactly like an unknown id.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from features.errors import DataError
from scoring.domain.supervision import MODES
from scoring.exports import json_value
from scoring.results.overrides import (
    OVERRIDE_STATUSES,
    lift_override,
    override_list,
    override_records,
    set_override,
)
from scoring.results.plans import PLAN_STATUSES, enterprise_plan_records
from scoring.results.ranking import enterprise_report
from scoring.web.auth import Account, require
from scoring.web.charts import history_svg
from scoring.web.downloads import enterprise_href
from scoring.web.pages import engine, policy, render, settings

router = APIRouter()

EVENT_TITLES = {
    "inspections": ("检查", "inspections"), "hazards": ("隐患", "hazards"), "violations": ("三违", "violations"),
    "accidents": ("事故", "accidents"), "penalties": ("行政处罚", "penalties"),
    "credit_records": ("信用记录", "credit records"), "complaints": ("举报", "complaints"),
}
EVENT_ROWS = 50
FORM_LIMIT = 2000


def _report(request: Request, enterprise_id: str, account: Account):
    try:
        return enterprise_report(engine(request), enterprise_id, townships=account.townships,
                                 today=settings(request).now().date())
    except DataError:
        raise HTTPException(status_code=404) from None


def _records(rows) -> list[dict]:
    columns, values = rows
    return [dict(zip(columns, map(json_value, row), strict=True)) for row in values]


def _chart_points(rows) -> list[tuple]:
    columns, values = rows
    at = [columns.index(name) for name in ("as_of", "probability", "final_tier")]
    return [tuple(row[i] for i in at) for row in values]


def _page(request: Request, enterprise_id: str, account: Account, *, problem: str | None = None,
          form: dict | None = None, status_code: int = 200):
    report = _report(request, enterprise_id, account)
    db = engine(request)
    today = settings(request).now().date()
    overrides = override_records(db, enterprise_id=report.enterprise["enterprise_id"],
                                 townships=account.townships, today=today)
    context = {
        "report": report, "e": json_value(report.enterprise), "c": json_value(report.current), "modes": MODES,
        "chart": history_svg(_chart_points(report.score_rows)), "overrides": [json_value(r) for r in overrides],
        "override_statuses": OVERRIDE_STATUSES, "changes": _records(report.change_rows),
        "plans": [json_value(r) for r in enterprise_plan_records(db, report.enterprise["enterprise_id"])],
        "plan_statuses": PLAN_STATUSES, "event_titles": EVENT_TITLES, "event_rows": EVENT_ROWS,
        "events": {name: (list(columns), len(rows), _records((columns, rows[:EVENT_ROWS])))
                   for name, (columns, rows) in report.event_rows.items()},
        "max_days": policy(request).overrides.manual.max_days, "problem": problem,
        "form": form or {"tier": "high", "reason": "", "valid_from": "", "valid_until": ""},
        "enterprise_href": enterprise_href,
    }
    return render(request, "enterprise.html", context, status_code=status_code)


@router.get("/enterprise/{enterprise_id}")
def enterprise_file(request: Request, enterprise_id: str, account: Account = Depends(require("viewer"))):
    return _page(request, enterprise_id, account)


def _field(form, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _check_lengths(values: dict[str, str]) -> None:
    for name, value in values.items():
        if len(value) > FORM_LIMIT:
            raise DataError(f"{name}: 内容过长 · too long ({len(value):,} characters; at most {FORM_LIMIT:,})")


def _day(text: str, label: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DataError(f"{label}: 日期格式应为 2025-03-25 · expected a date like 2025-03-25") from None


@router.post("/enterprise/{enterprise_id}/override")
async def add_override(request: Request, enterprise_id: str, account: Account = Depends(require("supervisor"))):
    report = _report(request, enterprise_id, account)  # 404 before anything else
    eid = report.enterprise["enterprise_id"]
    form = await request.form()
    values = {name: _field(form, name) for name in ("tier", "reason", "valid_from", "valid_until")}
    try:
        _check_lengths(values)
        until = _day(values["valid_until"], "有效期至 valid until")
        if until is None:
            raise DataError("有效期至 valid until: 必填 · required")
        set_override(engine(request), eid, tier=values["tier"], reason=values["reason"], by=account.username,
                     valid_until=until, valid_from=_day(values["valid_from"], "生效日期 valid from"),
                     policy=policy(request).overrides.manual, townships=account.townships,
                     now=settings(request).now())
    except DataError as exc:
        return _page(request, eid, account, problem=str(exc), form=values, status_code=400)
    return RedirectResponse(enterprise_href(eid) + "#overrides", status_code=303)


@router.post("/override/{override_id:int}/revoke")
async def revoke_override(request: Request, override_id: int, account: Account = Depends(require("supervisor"))):
    form = await request.form()
    db = engine(request)
    found = override_list(db, override_id=override_id, townships=account.townships)
    if found.empty:
        raise HTTPException(status_code=404)
    eid = str(found["enterprise_id"].iloc[0])
    try:
        _check_lengths({"reason": _field(form, "reason")})
        lift_override(db, override_id, by=account.username, reason=_field(form, "reason"),
                      townships=account.townships, now=settings(request).now())
    except DataError as exc:
        return _page(request, eid, account, problem=str(exc), status_code=400)
    return RedirectResponse(enterprise_href(eid) + "#overrides", status_code=303)
