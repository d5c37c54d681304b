"""The workbench's settings: the policy file's ``[web]`` section plus what must not be in a file (the secret key)
and the clock (injected by tests)."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timezone

from scoring.domain.policy import WebPolicy

__all__ = ["WebSettings"]


@dataclasses.dataclass(frozen=True)
class WebSettings:
    """What :func:`scoring.web.app.create_app` needs besides the engine and the policy.

    - ``secret_key`` signs the session cookie: random per start unless given (``RISKGRADE_SECRET_KEY`` for
      ``riskgrade serve``), so a restart ends every session;
    - ``session_max_age_seconds``: a session ends this long after its login, whatever happens in between;
    - ``login_max_failures`` (per account name), ``login_max_failures_per_address`` (per client address) within
      ``login_window_seconds``: further login attempts are refused until the oldest failure leaves the window;
    - ``disclosure_enabled``: the login-free page of the random draws (一公开, ``/public/draws``); off by default;
    - ``clock``: seconds since the epoch (``time.time``); tests pass a fake one.

    Defaults are those of :class:`~scoring.domain.policy.WebPolicy` (the shipped ``policy.toml``'s ``[web]``).
    """

    secret_key: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    session_max_age_seconds: int = WebPolicy.session_max_age_seconds
    disclosure_enabled: bool = WebPolicy.public_disclosure
    login_max_failures: int = WebPolicy.login_max_failures
    login_max_failures_per_address: int = WebPolicy.login_max_failures_per_address
    login_window_seconds: int = WebPolicy.login_window_seconds
    password_min_length: int = WebPolicy.password_min_length
    stale_run_hours: int = WebPolicy.stale_run_hours
    secure_cookie: bool = WebPolicy.secure_cookie
    threads: int = WebPolicy.threads
    clock: Callable[[], float] = dataclasses.field(default=time.time, repr=False, compare=False)

    @classmethod
    def from_policy(cls, web: WebPolicy, **overrides) -> WebSettings:
        """Settings from the policy file's ``[web]`` section; ``overrides`` (``secret_key``, ``clock``,
        ``disclosure_enabled``, …) win."""
        values = dict(session_max_age_seconds=web.session_max_age_seconds, disclosure_enabled=web.public_disclosure,
                      login_max_failures=web.login_max_failures,
                      login_max_failures_per_address=web.login_max_failures_per_address,
                      login_window_seconds=web.login_window_seconds, password_min_length=web.password_min_length,
                      stale_run_hours=web.stale_run_hours, secure_cookie=web.secure_cookie, threads=web.threads)
        return cls(**{**values, **overrides})

    def now(self) -> datetime:
        """The clock's time as naive UTC (how the database stores moments)."""
        return datetime.fromtimestamp(self.clock(), timezone.utc).replace(tzinfo=None)
