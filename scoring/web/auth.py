"""Who is asking: the account of a request's session, role checks, and login throttling.

The session (Starlette's signed cookie, HttpOnly, SameSite=Lax; see :func:`scoring.web.app.create_app`) holds
the account name, the account's ``session_version`` at login, the login time and the CSRF token. Every request
reloads the account from the database, so a disabled account, a changed role or scope, or a logout elsewhere
takes effect at once; a session older than ``session_max_age_seconds`` (by the settings' clock) is refused.

Use in a route::

    @router.get("/list")
    def ranked_list(request: Request, account: Account = Depends(require("viewer"))):
        rows = query(engine(request), townships=account.townships)

No session → :class:`LoginRequired` (the app answers 303 to ``/login``); a role too low → 403.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from scoring.results.accounts import (
    ROLE_LABELS,
    ROLES,
    AccountRecord,
    forget_login_failures,
    get_account,
    recent_login_failures,
    record_login_failure,
    role_at_least,
)

__all__ = ["Account", "LoginRequired", "LoginThrottle", "current_account", "end_session", "require",
           "start_session"]

_USER, _VERSION, _LOGIN_AT, _CSRF = "user", "ver", "login_at", "csrf"
_UNKNOWN = object()


@dataclass(frozen=True)
class Account:
    """The logged-in account of a request. ``townships`` is ``None`` for every township, else the scope (属地管理)
    to hand to every query and action function (``townships=account.townships``)."""

    username: str
    role: str
    townships: frozenset[str] | None = None

    def can(self, role: str) -> bool:
        """Whether this account may do what ``role`` may (viewer < planner < supervisor < admin)."""
        return role_at_least(self.role, role)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @classmethod
    def from_record(cls, record: AccountRecord) -> Account:
        return cls(username=record.username, role=record.role, townships=record.townships)


class LoginRequired(Exception):
    """The request has no valid session; the app redirects to ``/login?next=<path>``."""

    def __init__(self, next_path: str = "/"):
        super().__init__(next_path)
        self.next_path = next_path


def start_session(request: Request, record: AccountRecord) -> None:
    """A fresh session for ``record`` (new CSRF token; nothing of an earlier session survives)."""
    settings = request.app.state.settings
    request.session.clear()
    request.session.update({_USER: record.username, _VERSION: record.session_version,
                            _LOGIN_AT: float(settings.clock()), _CSRF: secrets.token_urlsafe(32)})


def end_session(request: Request) -> None:
    request.session.clear()


def current_account(request: Request) -> Account | None:
    """The request's account, or ``None`` (no session, expired, disabled, or ended by a logout / change)."""
    known = getattr(request.state, "account", _UNKNOWN)
    if known is not _UNKNOWN:
        return known
    account = _load_account(request)
    request.state.account = account
    return account


def _load_account(request: Request) -> Account | None:
    session = request.session
    username, login_at = session.get(_USER), session.get(_LOGIN_AT)
    if not isinstance(username, str) or not isinstance(login_at, int | float):
        return None
    settings = request.app.state.settings
    age = settings.clock() - login_at
    if age < 0 or age > settings.session_max_age_seconds:
        end_session(request)
        return None
    record = get_account(request.app.state.engine, username)
    if record is None or record.disabled or record.session_version != session.get(_VERSION):
        end_session(request)
        return None
    return Account.from_record(record)


def require(role: str) -> Callable[[Request], Account]:
    """A dependency: the request's account if its role is at least ``role``; else a redirect to the login page
    (no session) or a 403 page (a role too low)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")

    def dependency(request: Request) -> Account:
        account = current_account(request)
        if account is None:
            raise LoginRequired(_next_path(request))
        if not account.can(role):
            raise HTTPException(status_code=403, detail=f"需要 {ROLE_LABELS[role]} 或更高权限 · "
                                                        f"needs the {role} role or higher")
        return account

    dependency.minimal_role = role  # read by the permission-matrix test and the navigation
    return dependency


def _next_path(request: Request) -> str:
    return request.url.path if request.method == "GET" else "/"


def safe_next(value: str | None) -> str:
    """A local path to go to after logging in: only ``/...`` (never ``//host`` or a scheme), else ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 512:
        return "/"
    return value


class LoginThrottle:
    """Failed logins counted per account name and per client address in a sliding window, in the database
    (``login_failures``), so that every process of ``riskgrade serve --workers N`` counts the same failures. After
    ``max_failures`` failures of one name (``max_per_address`` of one address) within ``window`` seconds,
    :meth:`allowed` is false — whatever the password — until the oldest failure leaves the window.

    ``clock`` gives seconds; failures older than the window are deleted whenever one is recorded, so a flood of
    invented names cannot grow the table beyond one window's attempts.
    """

    def __init__(self, engine, *, max_failures: int, max_per_address: int, window: float,
                 clock: Callable[[], float]):
        self.engine = engine
        self.max_failures, self.max_per_address, self.window = max_failures, max_per_address, window
        self.clock = clock

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return "user:" + str(username).strip().casefold()[:128], "address:" + str(address)[:128]

    def allowed(self, username: str, address: str) -> bool:
        user_key, address_key = self._keys(username, address)
        counts = recent_login_failures(self.engine, (user_key, address_key), self.clock() - self.window)
        return counts[user_key] < self.max_failures and counts[address_key] < self.max_per_address

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        record_login_failure(self.engine, self._keys(username, address), now, forget_before=now - self.window)

    def succeeded(self, username: str) -> None:
        """A right password: the name's failures are forgotten (the address's are not)."""
        forget_login_failures(self.engine, self._keys(username, "")[0])
