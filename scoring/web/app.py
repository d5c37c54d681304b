"""The application factory of the workbench: :func:`create_app` (served by ``riskgrade serve`` through uvicorn).

Layers of a request, outermost first: Starlette's error middleware (a 500 page, never a traceback) → the signed
session cookie (``riskgrade_session``: HttpOnly, SameSite=Lax, Secure when ``secure_cookie``) →
:class:`~scoring.web.security.GuardMiddleware` (CSRF on every POST, hostile input, security headers) → the
routers of :data:`scoring.web.routes.ROUTERS` and ``/static``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

import anyio.to_thread

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from scoring.domain.policy import Policy, load_policy
from scoring.results.accounts import create_account_tables
from scoring.results.monitoring_tables import create_monitoring_tables
from scoring.results.tables import create_scoring_tables
from scoring.web.auth import LoginRequired, LoginThrottle
from scoring.web.pages import STATIC_DIR, error_response
from scoring.web.security import GuardMiddleware
from scoring.web.settings import WebSettings

__all__ = ["SESSION_COOKIE", "app_from_environment", "create_app"]

SESSION_COOKIE = "riskgrade_session"
log = logging.getLogger("riskgrade.web")


def create_app(engine: sa.Engine, *, settings: WebSettings | None = None, policy: Policy | None = None) -> FastAPI:
    """The workbench on ``engine``: ``policy`` (default: :func:`~scoring.domain.policy.load_policy`) and
    ``settings`` (default: from the policy's ``[web]`` section, with a random secret key)."""
    from scoring.web.routes import ROUTERS

    policy = policy or load_policy()
    settings = settings or WebSettings.from_policy(policy.web)
    create_scoring_tables(engine)
    create_account_tables(engine)
    create_monitoring_tables(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # Pages are CPU-bound Python: a few threads per process serve them faster than anyio's default forty,
        # which only take turns at the interpreter lock (and hold forty database connections).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # the latest run's counts, townships and names computed while the first login is typed
        threading.Thread(target=_warm, args=(engine, settings), name="warm-run-cache", daemon=True).start()
        yield

    app = FastAPI(title="riskgrade workbench", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.engine = engine
    app.state.policy = policy
    app.state.settings = settings
    app.state.throttle = LoginThrottle(engine, max_failures=settings.login_max_failures,
                                       max_per_address=settings.login_max_failures_per_address,
                                       window=settings.login_window_seconds, clock=settings.clock)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)

    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _server_error)
    app.add_middleware(GuardMiddleware, error=error_response)
    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie=SESSION_COOKIE,
                       max_age=settings.session_max_age_seconds, same_site="lax", https_only=settings.secure_cookie)
    return app


def _warm(engine: sa.Engine, settings: WebSettings) -> None:
    from scoring.results.ranking import warm_run_cache

    try:
        warm_run_cache(engine, today=settings.now().date())
    except Exception:  # noqa: BLE001 - an unreadable run shows on the pages themselves; nothing to do here
        log.warning("could not compute the latest run's counts in advance", exc_info=True)


def app_from_environment() -> FastAPI:
    """The app of one server process of ``riskgrade serve --workers N`` (uvicorn starts each process with this
    factory): the database ``$RISKGRADE_DB``, the policy file ``$RISKGRADE_POLICY`` (else the shipped one), the
    session key ``$RISKGRADE_SECRET_KEY`` shared by every process (a session started on one is valid on all) and
    public disclosure when ``$RISKGRADE_PUBLIC_DISCLOSURE`` is 1 — as ``riskgrade serve`` set them."""
    from features.db import connect, database_url

    rules = load_policy()
    settings = WebSettings.from_policy(rules.web, secret_key=os.environ["RISKGRADE_SECRET_KEY"],
                                       disclosure_enabled=os.environ.get("RISKGRADE_PUBLIC_DISCLOSURE") == "1")
    return create_app(connect(database_url()), settings=settings, policy=rules)


async def _login_required(request: Request, exc: LoginRequired):
    from urllib.parse import urlencode

    target = "/login" + ("?" + urlencode({"next": exc.next_path}) if exc.next_path != "/" else "")
    return RedirectResponse(target, status_code=303)


async def _http_error(request: Request, exc: StarletteHTTPException):
    message = exc.detail if exc.status_code in (400, 403) and isinstance(exc.detail, str) else None
    response = error_response(request, exc.status_code, message)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


async def _invalid_request(request: Request, exc: RequestValidationError):
    # The offending values are not repeated back: only which parameters were refused.
    names = sorted({".".join(str(p) for p in error.get("loc", ())[1:]) or "?" for error in exc.errors()})
    return error_response(request, 400, "参数无效 · invalid value for: " + ", ".join(names)[:300])


async def _server_error(request: Request, exc: Exception):
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "出错了，已记录在服务器日志中 · something went wrong; the server log has the "
                                        "details")
