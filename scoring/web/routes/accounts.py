"""Login and logout, the accounts page (admin) and the audit page (supervisor and admin).

The accounts page calls the same functions as ``riskgrade users`` (:mod:`scoring.results.accounts`); a refused
change shows its one-line reason and changes nothing.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from features.errors import DataError
from scoring.results.accounts import (
    ROLE_LABELS,
    ROLES,
    accounts_frame,
    add_account,
    bump_session_version,
    disable_account,
    known_townships,
    set_role,
    set_townships,
    verify_password,
)
from scoring.results.audit import audit_frame
from scoring.web.auth import Account, current_account, end_session, require, safe_next, start_session
from scoring.web.pages import engine, render, settings

router = APIRouter()

_FIELD = 1024  # the longest value a form field of these pages may carry (longer: refused, never stored)


# ---------------------------------------------------------------------------------------------
# Login / logout
# ---------------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = Query("/", max_length=2048)):
    return render(request, "login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
async def login(request: Request, username: str = Form("", max_length=_FIELD),
                password: str = Form("", max_length=_FIELD), next: str = Form("/", max_length=2048)):
    throttle = request.app.state.throttle
    address = request.client.host if request.client else "?"
    target = safe_next(next)
    if not await run_in_threadpool(throttle.allowed, username, address):
        window = settings(request).login_window_seconds // 60
        return render(request, "login.html", {
            "next": target, "error": f"登录失败次数过多，请 {window} 分钟后再试 · too many failed logins: try again in "
                                     f"{window} minutes"}, status_code=429)
    record = await run_in_threadpool(verify_password, engine(request), username, password)
    if record is None:
        await run_in_threadpool(throttle.failed, username, address)
        return render(request, "login.html", {
            "next": target, "error": "用户名或密码错误 · wrong name or password"}, status_code=401)
    await run_in_threadpool(throttle.succeeded, username)
    start_session(request, record)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
def logout(request: Request):
    account = current_account(request)
    if account is not None:
        bump_session_version(engine(request), account.username)  # a copy of the cookie is refused from now on
    end_session(request)
    return RedirectResponse("/login", status_code=303)


# ---------------------------------------------------------------------------------------------
# Accounts (admin)
# ---------------------------------------------------------------------------------------------


def _townships(text: str) -> list[str] | None:
    """Townships typed in one field, separated by commas, 、, ; or new lines; empty = every township."""
    parts = [p.strip() for p in re.split(r"[,，、;；\n\r]+", text or "") if p.strip()]
    return parts or None


def _accounts_page(request: Request, *, error: str | None = None, done: str | None = None, status_code: int = 200):
    db = engine(request)
    return render(request, "accounts.html", {
        "accounts": accounts_frame(db).to_dict("records"), "roles": ROLES, "role_labels": ROLE_LABELS,
        "known_townships": known_townships(db), "error": error, "done": done,
        "min_length": settings(request).password_min_length}, status_code=status_code)


@router.get("/admin/users")
def accounts_page(request: Request, account: Account = Depends(require("admin"))):
    return _accounts_page(request)


def _changed(request: Request, change, done: str):
    try:
        change()
    except DataError as exc:
        return _accounts_page(request, error=str(exc), status_code=400)
    return _accounts_page(request, done=done)


@router.post("/admin/users")
def add_account_form(request: Request, account: Account = Depends(require("admin")),
                     username: str = Form("", max_length=_FIELD), role: str = Form("", max_length=_FIELD),
                     townships: str = Form("", max_length=_FIELD), password: str = Form("", max_length=_FIELD),
                     password_again: str = Form("", max_length=_FIELD)):
    if password != password_again:
        return _accounts_page(request, error="两次输入的密码不一致 · the two passwords differ", status_code=400)
    return _changed(request, lambda: add_account(
        engine(request), username=username, role=role, password=password, townships=_townships(townships),
        by=account.username, min_password_length=settings(request).password_min_length),
        f"已创建账户 · account created: {username.strip()}")


@router.post("/admin/users/{username}/disable")
def disable_account_form(request: Request, username: str, account: Account = Depends(require("admin"))):
    return _changed(request, lambda: disable_account(engine(request), username, by=account.username),
                    f"已停用 · disabled: {username}")


@router.post("/admin/users/{username}/role")
def set_role_form(request: Request, username: str, account: Account = Depends(require("admin")),
                  role: str = Form("", max_length=_FIELD)):
    return _changed(request, lambda: set_role(engine(request), username, role, by=account.username),
                    f"已修改角色 · role changed: {username} → {role}")


@router.post("/admin/users/{username}/townships")
def set_townships_form(request: Request, username: str, account: Account = Depends(require("admin")),
                       townships: str = Form("", max_length=_FIELD)):
    return _changed(request, lambda: set_townships(engine(request), username, _townships(townships),
                                                   by=account.username),
                    f"已修改属地范围 · township scope changed: {username}")


# ---------------------------------------------------------------------------------------------
# Audit (supervisor and admin)
# ---------------------------------------------------------------------------------------------

AUDIT_PAGE_SIZE = 100


@router.get("/audit")
def audit_page(request: Request, account: Account = Depends(require("supervisor")),
               actor: str = Query("", max_length=128), action: str = Query("", max_length=64),
               target_kind: str = Query("", max_length=32), page: int = Query(1, ge=1, le=100_000)):
    filters = {"actor": actor.strip() or None, "action": action.strip() or None,
               "target_kind": target_kind.strip() or None}
    rows = audit_frame(engine(request), limit=AUDIT_PAGE_SIZE + 1, offset=(page - 1) * AUDIT_PAGE_SIZE,
                       townships=account.townships, **filters)
    return render(request, "audit.html", {
        "rows": rows.head(AUDIT_PAGE_SIZE).to_dict("records"), "page": page,
        "has_next": len(rows) > AUDIT_PAGE_SIZE, "filters": {k: v or "" for k, v in filters.items()}})
