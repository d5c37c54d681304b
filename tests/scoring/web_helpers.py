"""Helpers for the workbench's HTTP tests: a fake clock, cheap password hashes, accounts per role, logging in.

Use in a test module::

    from web_helpers import FakeClock, fast_hashes, login, make_accounts, web_client  # noqa: F401 (fixture)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

import scoring.results.accounts as accounts_module
from scoring.results.accounts import add_account
from scoring.web.app import create_app
from scoring.web.settings import WebSettings

PASSWORD = "a long enough test passphrase"

# (role, townships) per test account; the township-scoped viewer's township is filled in by make_accounts.
ROLE_ACCOUNTS: dict[str, tuple[str, object]] = {
    "viewer": ("viewer", None),
    "planner": ("planner", None),
    "supervisor": ("supervisor", None),
    "admin": ("admin", None),
    "scoped": ("viewer", "SCOPE"),
    "scoped_supervisor": ("supervisor", "SCOPE"),
}


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    """argon2 with minimal cost (the real parameters take ~0.5 s a hash on this machine)."""
    monkeypatch.setattr(accounts_module, "PASSWORD_HASHER",
                        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16))


@dataclass
class FakeClock:
    """Seconds since the epoch, advanced by hand."""

    now: float = field(default_factory=lambda: datetime(2025, 1, 2, 8, 0, tzinfo=timezone.utc).timestamp())

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def at(self, moment: datetime) -> None:
        self.now = moment.replace(tzinfo=timezone.utc).timestamp()


def make_accounts(engine, *, township: str | None = None, roles=ROLE_ACCOUNTS) -> dict[str, str]:
    """One account per entry of ``roles`` (named after the key), password :data:`PASSWORD`; the scoped ones
    limited to ``township``. Returns name → role."""
    made = {}
    for name, (role, scope) in roles.items():
        if scope == "SCOPE" and township is None:
            continue
        add_account(engine, username=name, role=role, password=PASSWORD, by="test", min_password_length=8,
                    townships=None if scope is None else [township])
        made[name] = role
    return made


def web_client(engine, *, clock: FakeClock | None = None, policy=None, **settings) -> tuple[TestClient, FakeClock]:
    """A test client on a fresh app (and its clock)."""
    clock = clock or FakeClock()
    app = create_app(engine, settings=WebSettings(clock=clock, secret_key="test secret key", **settings),
                     policy=policy)
    return TestClient(app, follow_redirects=False), clock


CSRF_PATTERN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: TestClient) -> str:
    """The session's CSRF token (from the login page's form, which every session can open)."""
    response = client.get("/login")
    assert response.status_code == 200, response.text
    return CSRF_PATTERN.search(response.text).group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, *, next_path: str = "/"):
    """Log in through the form; returns the POST response (303 on success)."""
    return client.post("/login", data={"username": username, "password": password, "next": next_path,
                                       "csrf_token": csrf_token(client)})


def post(client: TestClient, path: str, data: dict | None = None, **kwargs):
    """A POST with the session's CSRF token added."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client)}, **kwargs)


def day_after(clock: FakeClock, days: float = 1) -> None:
    clock.advance(timedelta(days=days).total_seconds())


def insert_enterprises(engine, townships: dict[str, str]) -> None:
    """Minimal ``enterprises`` rows (id → township; other required columns filled with placeholders)."""
    import sqlalchemy as sa

    from features.schema import CONTRACT_TABLES

    table = CONTRACT_TABLES["enterprises"]
    required = [c for c in table.columns if not c.nullable and not c.primary_key and c.name != "township"]
    rows = [{"enterprise_id": eid, "township": township,
             **{c.name: "x" if isinstance(c.type, sa.String | sa.Text) else 0 for c in required}}
            for eid, township in townships.items()]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def scored_world(url: str, world_csv, policy, tmp_path):
    """The small batch world on ``url`` with two nightly runs (a month apart, so tier changes exist), a manual
    override and a stored plan for January 2025 (its random draws feed the disclosure page). Returns the engine."""
    from scoring.domain.planning import plan_inspections
    from scoring.results.batch import run_nightly
    from scoring.results.tables import add_override, current_limits, store_plan

    from batch_world import AS_OF, import_world, no_mlflow

    engine = import_world(url, world_csv)
    tracking = no_mlflow(tmp_path)
    run_nightly(engine, AS_OF - timedelta(days=31), policy=policy, tracking_uri=tracking)
    add_override(engine, enterprise_id="E000003", tier="high", reason="约谈后仍未整改", by="王科长",
                 valid_from=AS_OF - timedelta(days=3), valid_until=AS_OF + timedelta(days=60),
                 policy=policy.overrides.manual, now=datetime(2024, 12, 28))
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=tracking)
    limits = current_limits(engine, AS_OF, policy)
    plan = plan_inspections(limits, None, "2025-01", supervision=policy.supervision, planning=policy.planning,
                            seed=202501)
    store_plan(engine, plan, as_of=AS_OF, source_run_id=run.run_id, limits_source="test")
    return engine
