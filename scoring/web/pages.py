"""Rendering pages: the Jinja2 templates (autoescaped), the navigation, the request's engine, policy and settings.

Routes call :func:`render`::

    return render(request, "overview.html", {"overview": facts})

Every template gets ``request``, ``account`` (or ``None``), ``nav`` (the links this account may follow),
``csrf_field()`` (the hidden field every ``<form method="post">`` must contain) and the filters ``tier_zh``,
``fmt_dt``, ``fmt_num``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from scoring.domain.tiers import TIER_LABELS_ZH
from scoring.web.auth import current_account
from scoring.web.routing import app_routes
from scoring.web.security import csrf_token

__all__ = ["NAV", "NavLink", "engine", "error_response", "fmt_dt", "fmt_num", "policy", "render", "settings",
           "templates", "tier_zh"]

TEMPLATE_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")


@dataclass(frozen=True)
class NavLink:
    path: str
    zh: str
    en: str
    role: str | None  # None: shown without login (only when the route exists and is enabled)


# The navigation, in order. A link shows when the app has a GET route at ``path`` and the account's role allows it.
NAV: tuple[NavLink, ...] = (
    NavLink("/", "首页", "Overview", "viewer"),
    NavLink("/list", "风险清单", "Ranked list", "viewer"),
    NavLink("/plans", "检查计划", "Plans", "viewer"),
    NavLink("/runs", "运行记录", "Runs", "viewer"),
    NavLink("/audit", "审计日志", "Audit", "supervisor"),
    NavLink("/admin/users", "账户管理", "Accounts", "admin"),
    NavLink("/public/draws", "一公开", "Public draws", None),
)


def _csrf_field(context: jinja2.runtime.Context) -> Markup:
    token = csrf_token(context["request"])
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)


def tier_zh(tier: Any) -> str:
    """``高风险 high`` for ``high`` (the ``tier_zh`` filter)."""
    return f"{TIER_LABELS_ZH.get(str(tier), '')} {tier}".strip() if tier is not None else ""


def fmt_dt(value: Any) -> str:
    """A date (or date and time) as ISO text, ``—`` when missing (the ``fmt_dt`` filter)."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fmt_num(value: Any, digits: int = 0) -> str:
    """A number with thousands separators and ``digits`` decimals, ``—`` when missing (the ``fmt_num`` filter)."""
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "—"
    return f"{number:,.{digits}f}"


@functools.lru_cache(maxsize=64)
def _escaped_options(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((value, str(Markup('<option value="{0}">{0}</option>').format(value))) for value in values)


def select_options(values, selected: str | None) -> Markup:
    """The ``<option>`` elements of a long drop-down (a province's run has hundreds of townships), escaped once per
    list of values and reused on every page; ``selected`` is marked."""
    parts = [html.replace("<option ", "<option selected ", 1) if value == selected else html
             for value, html in _escaped_options(tuple(values))]
    return Markup("".join(parts))


def _environment() -> jinja2.Environment:
    # auto_reload off: the templates ship with the package, and checking each one's mtime on every render cost
    # a third of a list page's server time under load (a stat releases and re-takes the interpreter lock)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True, auto_reload=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["csrf_field"] = jinja2.pass_context(_csrf_field)
    env.globals["select_options"] = select_options
    env.filters.update(tier_zh=tier_zh, fmt_dt=fmt_dt, fmt_num=fmt_num)
    return env


templates = Jinja2Templates(env=_environment())


def engine(request: Request) -> sa.Engine:
    """The application's database engine."""
    return request.app.state.engine


def policy(request: Request):
    """The application's :class:`scoring.domain.policy.Policy`."""
    return request.app.state.policy


def settings(request: Request):
    """The application's :class:`scoring.web.settings.WebSettings`."""
    return request.app.state.settings


def _get_paths(app) -> frozenset[str]:
    paths = getattr(app.state, "get_paths", None)
    if paths is None:  # the routes are fixed once the app serves
        paths = app.state.get_paths = frozenset(r.path for r in app_routes(app) if "GET" in r.methods)
    return paths


def _nav(request: Request, account) -> list[NavLink]:
    paths = _get_paths(request.app)
    shown = []
    for link in NAV:
        if link.path not in paths:
            continue
        if link.role is None:
            if link.path == "/public/draws" and not request.app.state.settings.disclosure_enabled:
                continue
        elif account is None or not account.can(link.role):
            continue
        shown.append(link)
    return shown


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    """The template ``name`` rendered with ``context`` (plus the common variables) as an HTML response."""
    account = current_account(request)
    common = {"request": request, "account": account, "nav": _nav(request, account),
              "current_path": request.url.path}
    return templates.TemplateResponse(request, name, {**common, **(context or {})}, status_code=status_code)


ERROR_TITLES: dict[int, tuple[str, str]] = {
    400: ("请求无效", "Bad request"),
    403: ("无权访问", "Forbidden"),
    404: ("页面不存在", "Not found"),
    405: ("不支持的请求方式", "Method not allowed"),
    413: ("提交的内容过大", "Request too large"),
    414: ("网址过长", "URI too long"),
    500: ("服务器内部错误", "Internal server error"),
}


def error_response(request: Request, status_code: int, message: str | None = None) -> HTMLResponse:
    """The error page for ``status_code`` with an optional message (escaped; never a traceback)."""
    zh, en = ERROR_TITLES.get(status_code, ("出错了", "Error"))
    return render(request, "error.html", {"status_code": status_code, "title_zh": zh, "title_en": en,
                                          "message": message}, status_code=status_code)
