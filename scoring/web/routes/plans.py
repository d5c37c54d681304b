"""检查计划 Plans: the stored plans with version and status; a new plan for a month with each department's capacity
edited in a form (planner and above); a plan's visits, unmet mandatory visits and draws; its export (the files
``riskgrade plan`` writes); approval (supervisor and above: the approved plan is frozen); verifying its draws.

An account limited to some townships sees only its townships' visits and draws, and cannot generate or approve
(a plan covers the whole county). An unknown plan answers 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from features.errors import DataError, RiskgradeError
from scoring.domain.planning import parse_period
from scoring.exports import json_records
from scoring.results.batch import policy_fingerprint
from scoring.results.plans import (
    PLAN_STATUSES,
    approve_plan,
    default_seed,
    generate_plan,
    plan_detail,
    plan_export_sheets,
    plan_list,
    verify_draws,
)
from scoring.web.auth import Account, require
from scoring.web.downloads import csv_download, enterprise_href, xlsx_download
from scoring.web.pages import engine, policy, render, settings

router = APIRouter()

ITEM_ROWS = 1000
EXTRA_DEPARTMENTS = 2  # blank rows in the capacity form for a department the policy does not list
FIELD_LIMIT = 200


@router.get("/plans")
def plans_page(request: Request, account: Account = Depends(require("viewer"))):
    listed = plan_list(engine(request), townships=account.townships)
    return render(request, "plans.html", {"plans": json_records(listed), "statuses": PLAN_STATUSES})


def _next_period(request: Request) -> str:
    today = settings(request).now().date()
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return f"{year:04d}-{month:02d}"


def _new_form(request: Request, account: Account, *, values: dict | None = None, problem: str | None = None,
              status_code: int = 200):
    capacity = dict(policy(request).planning.capacity)
    values = values or {"period": _next_period(request), "seed": "",
                        "rows": [(d, str(v)) for d, v in capacity.items()] + [("", "")] * EXTRA_DEPARTMENTS}
    return render(request, "plan_new.html", {"values": values, "problem": problem,
                                             "scoped": account.townships is not None}, status_code=status_code)


@router.get("/plans/new")
def new_plan(request: Request, account: Account = Depends(require("planner"))):
    return _new_form(request, account)


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _capacity(rows: list[tuple[str, str]]) -> dict[str, int]:
    capacity: dict[str, int] = {}
    for department, visits in rows:
        if not department and not visits:
            continue
        if not department:
            raise DataError(f"检查力量 capacity: 填写了次数 {visits!r} 却没有部门 · visits without a department")
        if not visits.isdigit() or len(visits) > 7:
            raise DataError(f"检查力量 capacity: 部门 {department!r} 的次数应为非负整数 · visits must be a whole number "
                            f">= 0, got {visits!r}")
        if department in capacity:
            raise DataError(f"检查力量 capacity: 部门 {department!r} 填写了两次 · appears twice")
        capacity[department] = int(visits)
    if not capacity:
        raise DataError("检查力量 capacity: 至少填写一个部门 · at least one department")
    return capacity


def _whole_county(account: Account) -> None:
    if account.townships is not None:
        raise HTTPException(status_code=403, detail="计划覆盖全县，需由不限乡镇的账户操作 · a plan covers the whole "
                                                    "county: this needs an account without township scope")


@router.post("/plans")
async def create_plan(request: Request, account: Account = Depends(require("planner"))):
    _whole_county(account)
    form = await request.form()
    departments = [_text(v) for v in form.getlist("department")]
    visits = [_text(v) for v in form.getlist("visits")]
    rows = list(zip(departments, visits, strict=False))
    values = {"period": _text(form.get("period")), "seed": _text(form.get("seed")), "rows": rows}
    rules = policy(request)
    try:
        for text in (values["period"], values["seed"], *departments, *visits):
            if len(text) > FIELD_LIMIT:
                raise DataError(f"内容过长 · a field is too long ({len(text):,} characters; at most {FIELD_LIMIT})")
        parse_period(values["period"])
        if values["seed"] and not (values["seed"].isdigit() and len(values["seed"]) <= 18):
            raise DataError(f"随机种子 seed: 应为非负整数 · a whole number >= 0, got {values['seed']!r}")
        made = generate_plan(engine(request), values["period"], by=account.username, policy=rules,
                             policy_hash=policy_fingerprint(rules), capacity=_capacity(rows),
                             seed=int(values["seed"]) if values["seed"] else None, townships=account.townships,
                             now=settings(request).now())
    except RiskgradeError as exc:
        return _new_form(request, account, values=values, problem=str(exc), status_code=400)
    return RedirectResponse(f"/plans/{made.plan_id}", status_code=303)


def _view(request: Request, plan_id: int, account: Account):
    try:
        return plan_detail(engine(request), plan_id, townships=account.townships)
    except DataError:
        raise HTTPException(status_code=404) from None


@router.get("/plans/{plan_id:int}")
def plan_page(request: Request, plan_id: int, account: Account = Depends(require("viewer"))):
    view = _view(request, plan_id, account)
    latest = plan_list(engine(request))
    latest = int(latest.loc[latest["period"] == view.header["period"], "version"].max())
    sheets = plan_export_sheets(view)
    return render(request, "plan.html", {
        "plan": view.header, "frozen": view.frozen, "latest_version": latest, "statuses": PLAN_STATUSES,
        "items": json_records(view.items.head(ITEM_ROWS)), "n_items": len(view.items), "item_rows": ITEM_ROWS,
        "unmet": json_records(view.unmet), "draws": json_records(view.draws),
        "summary": json_records(sheets["summary"]), "capacity": json_records(view.capacity),
        "scoped": account.townships is not None, "enterprise_href": enterprise_href,
        "default_seed": default_seed(view.header["period"]),
    })


@router.post("/plans/{plan_id:int}/approve")
def approve(request: Request, plan_id: int, account: Account = Depends(require("supervisor"))):
    _view(request, plan_id, account)  # 404 for an unknown plan
    _whole_county(account)
    try:
        approve_plan(engine(request), plan_id, by=account.username, townships=account.townships,
                     now=settings(request).now())
    except DataError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return RedirectResponse(f"/plans/{plan_id}", status_code=303)


@router.get("/plans/{plan_id:int}/verify")
def verify(request: Request, plan_id: int, account: Account = Depends(require("viewer"))):
    view = _view(request, plan_id, account)
    rules = policy(request)
    try:
        check = verify_draws(engine(request), plan_id, policy=rules, policy_hash=policy_fingerprint(rules),
                             townships=account.townships)
    except RiskgradeError as exc:
        raise HTTPException(status_code=400, detail=f"无法重现抽取 · the draws cannot be re-made: {exc}") from None
    return render(request, "plan_verify.html", {"plan": view.header, "check": check,
                                                "strata": json_records(check.strata), "statuses": PLAN_STATUSES,
                                                "teams": None if check.teams is None else json_records(check.teams)})


def _file_name(view, suffix: str) -> str:
    return f"检查计划-plan-{view.header['period']}-v{view.header.get('version') or 1}.{suffix}"


@router.get("/plans/{plan_id:int}/export.csv")
def export_csv(request: Request, plan_id: int, account: Account = Depends(require("viewer"))):
    view = _view(request, plan_id, account)
    return csv_download(plan_export_sheets(view)["plan"], _file_name(view, "csv"))


@router.get("/plans/{plan_id:int}/export.xlsx")
def export_xlsx(request: Request, plan_id: int, account: Account = Depends(require("viewer"))):
    view = _view(request, plan_id, account)
    return xlsx_download(plan_export_sheets(view), _file_name(view, "xlsx"))
