"""The workbench's permission matrix and hostile input, over every route the app has.

:data:`EXPECTED` declares, for every route (method, path template), the minimal role that may use it (``None``:
no login needed) and, when the path has parameters, a sample path. The tests walk the app's routes
(:func:`scoring.web.routing.app_routes`, so a router added to ``ROUTERS`` is covered as soon as it is merged):

- a route missing from :data:`EXPECTED` (or declared there but gone) fails;
- the role a route requires in code (its ``require(...)`` dependency) must be the one declared here;
- every role (anonymous, viewer, planner, supervisor, admin, a viewer limited to one township) is allowed exactly
  where its role reaches the declared one: refused = 303 to ``/login`` (anonymous) or 403, and a refused request
  changes nothing in the database;
- hostile strings (quotes, ``' OR 1=1 --``, ``<script>``, path traversal, 10 kB) in every query parameter, path
  parameter and form field: never a 500, never reflected unescaped, and no data change except a free-text
  field (``Expect.free_text``) storing the string verbatim.

A new route adds one line to :data:`EXPECTED` (with ``data``: a valid form, so that hostile values reach past
the first validation).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from features.schema import CONTRACT_TABLES, metadata
from scoring.results.accounts import ROLES
from scoring.web.routing import app_routes

from batch_world import world_csv  # noqa: F401  (fixture)
from web_helpers import (  # noqa: F401  (fast_hashes, township and world are fixtures)
    FakeClock,
    csrf_token,
    fast_hashes,
    login,
    make_accounts,
    township,
    web_client,
    world,
)


@dataclass(frozen=True)
class Expect:
    """What a route allows: ``role`` (minimal; ``None`` = no login), a sample ``path`` for its parameters, a
    valid ``data`` form, the ``free_text`` fields that may store any string, whether the request ends the
    session (``ends_session``: the matrix logs in again afterwards), where it redirects on success when that
    is the login page (``success_location``), and the query or form ``fields`` a handler reads by itself (the
    declared ones are found from the route)."""

    role: str | None
    path: str | None = None
    data: dict = field(default_factory=dict)
    free_text: frozenset[str] = frozenset()
    ends_session: bool = False
    success_location: str | None = None
    fields: tuple[str, ...] = ()  # parameters the handler reads itself (request.query_params / request.form())


LIST_FIELDS = ("tier", "township", "sector", "q", "changed", "override", "sort", "desc", "page")
NEW_ACCOUNT = {"username": "newcomer", "role": "viewer", "townships": "", "password": "a new long passphrase",
               "password_again": "a new long passphrase"}

EXPECTED: dict[tuple[str, str], Expect] = {
    # wb-shell: overview, runs, disclosure, login, accounts, audit
    ("GET", "/"): Expect("viewer"),
    ("GET", "/runs"): Expect("viewer"),
    ("GET", "/public/draws"): Expect(None),
    ("GET", "/login"): Expect(None),
    ("POST", "/login"): Expect(None, data={"username": "nobody", "password": "not the password", "next": "/"}),
    ("POST", "/logout"): Expect(None, ends_session=True, success_location="/login"),
    ("GET", "/admin/users"): Expect("admin"),
    ("POST", "/admin/users"): Expect("admin", data=NEW_ACCOUNT, free_text=frozenset({"password", "password_again"})),
    ("POST", "/admin/users/{username}/disable"): Expect("admin", path="/admin/users/nobody/disable"),
    ("POST", "/admin/users/{username}/role"): Expect("admin", path="/admin/users/nobody/role",
                                                     data={"role": "planner"}),
    ("POST", "/admin/users/{username}/townships"): Expect("admin", path="/admin/users/nobody/townships",
                                                          data={"townships": ""}),
    ("GET", "/audit"): Expect("supervisor"),
    # wb-flows: ranked list, enterprise file, overrides, plans
    ("GET", "/list"): Expect("viewer", fields=LIST_FIELDS),
    ("GET", "/list/export.csv"): Expect("viewer", fields=LIST_FIELDS),
    ("GET", "/list/export.xlsx"): Expect("viewer", fields=LIST_FIELDS),
    ("GET", "/enterprise/{enterprise_id}"): Expect("viewer", path="/enterprise/E000001"),
    ("POST", "/enterprise/{enterprise_id}/override"): Expect(
        "supervisor", path="/enterprise/E000001/override", fields=("tier", "reason", "valid_from", "valid_until"),
        data={"tier": "high", "reason": "复查发现问题", "valid_until": "2025-03-01"}, free_text=frozenset({"reason"})),
    ("POST", "/override/{override_id:int}/revoke"): Expect(
        "supervisor", path="/override/1/revoke", fields=("reason",), data={"reason": "已整改"},
        free_text=frozenset({"reason"})),
    ("GET", "/plans"): Expect("viewer"),
    ("GET", "/plans/new"): Expect("planner"),
    ("POST", "/plans"): Expect("planner", fields=("period", "seed", "department", "visits"),
                               data={"period": "2025-03", "seed": "", "department": "应急", "visits": "5"},
                               # a department the policy does not list is allowed (the form's blank rows): stored
                               # with the plan's capacity, shown escaped
                               free_text=frozenset({"department"})),
    ("GET", "/plans/{plan_id:int}"): Expect("viewer", path="/plans/1"),
    ("POST", "/plans/{plan_id:int}/approve"): Expect("supervisor", path="/plans/1/approve"),
    ("GET", "/plans/{plan_id:int}/verify"): Expect("viewer", path="/plans/1/verify"),
    ("GET", "/plans/{plan_id:int}/export.csv"): Expect("viewer", path="/plans/1/export.csv"),
    ("GET", "/plans/{plan_id:int}/export.xlsx"): Expect("viewer", path="/plans/1/export.xlsx"),
}

ROLE_OF_CLIENT = {"anonymous": None, "viewer": "viewer", "planner": "planner", "supervisor": "supervisor",
                  "admin": "admin", "scoped": "viewer"}

HOSTILE = (
    "\"'><script>alert(1)</script>{{ 7 * 7 }}",
    "' OR 1=1; DROP TABLE accounts; --",
    "../../etc/passwd",
    "\" onfocus=\"alert(1)",
    "中文😀\u202e..%2F",
    "x" * 10_000,
)
_RAW_MARKERS = ("<script>", "\" onfocus=\"")  # what must never come back unescaped


def _routes(app) -> dict[tuple[str, str], object]:
    return {(method, info.path): info.route for info in app_routes(app) for method in info.methods
            if method in ("GET", "POST")}


def _declared_role(route) -> str | None:
    roles = [getattr(d.call, "minimal_role", None) for d in route.dependant.dependencies]
    roles = [r for r in roles if r is not None]
    return roles[0] if roles else None


# The tables a workbench action writes: compared row by row (the others, by their row counts).
ACTION_TABLES = frozenset({"accounts", "audit_log", "manual_overrides", "manual_override_audit", "plans"})


def _fingerprint(engine) -> str:
    """A digest of every row of the tables workbench actions write and of the row counts of all the others
    (a refused request must leave it unchanged). ``login_failures`` is left out: counting a failed login is what
    the throttle must do."""
    digest = hashlib.sha256()
    names = set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "login_failures":
                continue
            digest.update(table.name.encode() + (b"+" if table.name in names else b"-"))
            if table.name not in names:
                continue
            if table.name not in ACTION_TABLES:
                rows = [conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()]
            else:
                keys = list(table.primary_key.columns) or list(table.columns)
                rows = [list(r) for r in conn.execute(sa.select(table).order_by(*keys)).all()]
            digest.update(json.dumps(rows, default=str, ensure_ascii=False).encode())
    return digest.hexdigest()


class Clients:
    """One logged-in test client per role (and an anonymous one), re-logged-in on demand."""

    def __init__(self, engine, township: str):
        self.engine, self.clock = engine, FakeClock()
        self.clock.at(datetime(2025, 2, 3, 9, 0))  # January's draw is then published
        make_accounts(engine, township=township)
        self.clients = {name: self._client(name) for name in ROLE_OF_CLIENT}

    def _client(self, name):
        client, _ = web_client(self.engine, clock=self.clock, disclosure_enabled=True)
        if name != "anonymous":
            assert login(client, name).status_code == 303, name
        return client

    def renew(self, name):
        self.clients[name] = self._client(name)

    def __getitem__(self, name):
        return self.clients[name]


def _request(client, method: str, path: str, data: dict):
    if method == "GET":
        return client.get(path)
    if not hasattr(client, "csrf"):
        client.csrf = csrf_token(client)  # one token per session
    return client.post(path, data={**data, "csrf_token": client.csrf})


def _refused(response, client_name: str, expect: Expect) -> bool:
    if client_name == "anonymous" and response.status_code == 303:
        location = response.headers["location"]
        return location.startswith("/login") and location != expect.success_location
    return response.status_code == 403


@pytest.fixture
def clients(world, township):
    """Logged-in clients per role; the accounts are removed afterwards (the world is shared by the module)."""
    from scoring.results.accounts import accounts
    from scoring.results.audit import audit_log

    with world.begin() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.target_kind == "account"))
        conn.execute(accounts.delete())
    return Clients(world, township=township)


def test_every_route_is_declared_and_declares_its_role(clients):
    routes = _routes(clients["admin"].app)
    assert sorted(set(routes) - set(EXPECTED)) == [], "routes missing from EXPECTED"
    assert sorted(set(EXPECTED) - set(routes)) == [], "EXPECTED names routes the app does not have"
    for key, route in routes.items():
        assert _declared_role(route) == EXPECTED[key].role, key
    assert {e.role for e in EXPECTED.values()} <= {None, *ROLES}


def test_permission_matrix_role_by_route(world, clients):
    failures = []
    for (method, template), expect in sorted(_routes(clients["admin"].app).items()):
        if (method, template) not in EXPECTED:
            continue  # reported by the test above
        expect = EXPECTED[(method, template)]
        path = expect.path or template
        for name, role in ROLE_OF_CLIENT.items():
            allowed = expect.role is None or (role is not None and ROLES.index(role) >= ROLES.index(expect.role))
            before = None if allowed else _fingerprint(world)
            response = _request(clients[name], method, path, {})
            if response.status_code >= 500:
                failures.append(f"{method} {path} as {name}: {response.status_code}")
            elif allowed and _refused(response, name, expect):
                failures.append(f"{method} {path} as {name}: refused ({response.status_code}), should be allowed")
            elif not allowed and not _refused(response, name, expect):
                failures.append(f"{method} {path} as {name}: {response.status_code}, should be refused")
            elif not allowed and _fingerprint(world) != before:
                failures.append(f"{method} {path} as {name}: refused but the database changed")
            if expect.ends_session:
                clients.renew(name)  # a fresh session for the next route
    assert failures == []


def _fields(route) -> tuple[list[str], list[str], list[str]]:
    """Names of a route's query parameters, path parameters and form fields."""
    dependant = route.dependant
    form = []
    for param in dependant.body_params:
        annotation = getattr(param.field_info, "annotation", None)
        model_fields = getattr(annotation, "model_fields", None)
        form.extend(model_fields if model_fields else [param.alias])
    return ([p.alias for p in dependant.query_params], [p.alias for p in dependant.path_params], form)


def test_hostile_strings_in_every_parameter_and_field(world, clients):
    failures = []
    for (method, template), route in sorted(_routes(clients["admin"].app).items()):
        expect = EXPECTED.get((method, template))
        if expect is None:
            continue
        queries, paths, forms = _fields(route)
        extra = [f for f in expect.fields if f not in queries + forms]
        if method == "GET":
            queries = queries + extra
        else:
            forms = forms + extra
        name = "anonymous" if expect.role is None else "admin"
        for hostile in HOSTILE:
            attempts = []
            for query in queries:
                attempts.append((query, f"{expect.path or template}?{query}={quote(hostile)}", dict(expect.data)))
            for param in paths:
                path = re.sub(r"\{" + param + r"(:\w+)?\}", quote(hostile, safe=""), template)
                path = re.sub(r"\{\w+(:\w+)?\}", "x", path)
                attempts.append((param, path, dict(expect.data)))
            for form_field in forms:
                attempts.append((form_field, expect.path or template, {**expect.data, form_field: hostile}))
            before_all = before = _fingerprint(world)
            for what, path, data in attempts:
                response = _request(clients[name], method, path, data)
                where = f"{method} {template} {what}={hostile[:30]!r}"
                if response.status_code >= 500:
                    failures.append(f"{where}: {response.status_code}")
                if any(marker in hostile and hostile in response.text for marker in _RAW_MARKERS):
                    failures.append(f"{where}: reflected unescaped")
                if "Traceback" in response.text:
                    failures.append(f"{where}: a traceback")
                if method == "POST":  # each attempt compared with the state just before it (one digest each)
                    after = _fingerprint(world)
                    if after != before and what not in expect.free_text:
                        failures.append(f"{where}: the database changed")
                    before = after
                if expect.ends_session:
                    clients.renew(name)
            if method == "GET" and _fingerprint(world) != before_all:
                failures.append(f"GET {template} {hostile[:30]!r}: the database changed")
    assert failures == []
