"""The workbench shell over HTTP: login, logout, throttling, session expiry, CSRF, error pages, headers."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from scoring.results.accounts import get_account, set_role
from scoring.results.audit import audit_frame
from scoring.web.app import SESSION_COOKIE
from scoring.web.routing import app_routes

from web_helpers import (  # noqa: F401
    PASSWORD,
    FakeClock,
    csrf_token,
    fast_hashes,
    login,
    make_accounts,
    post,
    web_client,
)


@pytest.fixture
def client(engine):
    make_accounts(engine)
    client, clock = web_client(engine)
    client.clock = clock
    return client


def test_pages_need_a_login_and_the_login_page_leads_back(client):
    response = client.get("/runs")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fruns"
    page = client.get("/login?next=/runs")
    assert 'name="next" value="/runs"' in page.text and "登录" in page.text and "Log in" in page.text
    response = login(client, "viewer", next_path="/runs")
    assert response.status_code == 303 and response.headers["location"] == "/runs"
    cookie = response.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "max-age=28800" in cookie.lower() and PASSWORD not in cookie
    page = client.get("/runs")
    assert page.status_code == 200 and "viewer" in page.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client, target):
    response = login(client, "viewer", next_path=target)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_wrong_password_unknown_name_and_disabled_account_are_refused_alike(client, engine):
    from scoring.results.accounts import disable_account

    disable_account(engine, "planner", by="test")
    for name, password in (("viewer", "wrong password here"), ("nobody", PASSWORD), ("planner", PASSWORD)):
        response = login(client, name, password)
        assert response.status_code == 401 and "用户名或密码错误" in response.text, name
        assert client.get("/").status_code == 303


def test_logout_ends_the_session_and_a_copied_cookie_with_it(client):
    login(client, "viewer")
    copied = client.cookies.get(SESSION_COOKIE)
    assert client.get("/").status_code == 200
    response = post(client, "/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/").status_code == 303
    client.cookies.set(SESSION_COOKIE, copied)  # a stolen copy of the cookie from before the logout
    assert client.get("/").status_code == 303


def test_a_role_change_takes_effect_at_once(client, engine):
    login(client, "supervisor")
    assert client.get("/audit").status_code == 200
    set_role(engine, "supervisor", "viewer", by="admin")
    assert client.get("/audit").status_code == 303  # the session of the old role ended


def test_throttling_refuses_the_right_password_after_too_many_failures_until_the_window_passes(client):
    for _ in range(5):
        assert login(client, "viewer", "wrong password here").status_code == 401
    refused = login(client, "viewer", PASSWORD)  # the 6th attempt: refused whatever the password
    assert refused.status_code == 429 and "登录失败次数过多" in refused.text and "15 minutes" in refused.text
    assert client.get("/").status_code == 303
    assert login(client, "planner", PASSWORD).status_code == 303  # another name from the address still may
    post(client, "/logout")
    client.clock.advance(899)
    assert login(client, "viewer", PASSWORD).status_code == 429  # the window has not passed yet
    client.clock.advance(2)
    assert login(client, "viewer", PASSWORD).status_code == 303
    assert client.get("/").status_code == 200


def test_throttling_per_client_address(engine):
    make_accounts(engine)
    client, clock = web_client(engine, login_max_failures_per_address=3)
    for name in ("a1", "a2", "a3"):  # three names, one address
        assert login(client, name, "wrong password here").status_code == 401
    assert login(client, "viewer", PASSWORD).status_code == 429
    clock.advance(901)
    assert login(client, "viewer", PASSWORD).status_code == 303


def test_throttling_counts_the_failures_of_every_server_process(engine):
    # riskgrade serve --workers N: each process has its own app; the failures are counted in the database
    make_accounts(engine)
    clock = FakeClock()
    first, _ = web_client(engine, clock=clock)
    second, _ = web_client(engine, clock=clock)
    for attempt in range(5):
        assert login(first if attempt % 2 else second, "viewer", "wrong password here").status_code == 401
    assert login(first, "viewer", PASSWORD).status_code == 429
    assert login(second, "viewer", PASSWORD).status_code == 429
    clock.advance(901)
    assert login(second, "viewer", PASSWORD).status_code == 303


def test_failed_logins_of_invented_names_do_not_pile_up(engine):
    import sqlalchemy as sa

    from scoring.results.accounts import login_failures

    make_accounts(engine)
    client, clock = web_client(engine, login_max_failures_per_address=10_000)
    for i in range(30):
        login(client, f"invented{i}", "wrong password here")
    clock.advance(901)  # the window has passed: the next failure clears what is older than it
    login(client, "invented-last", "wrong password here")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(login_failures)).scalar_one() == 2


def test_a_session_expires_its_max_age_after_the_login(client):
    login(client, "viewer")
    client.clock.advance(8 * 3600 - 1)
    assert client.get("/").status_code == 200
    client.clock.advance(2)
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"


def _post_routes(app) -> list[str]:
    return sorted({route.path for route in app_routes(app) if "POST" in route.methods})


def _sample_path(path: str) -> str:
    return path.replace("{username}", "viewer").replace("{", "").replace("}", "")


def test_every_post_route_refuses_a_missing_or_wrong_csrf_token(client, engine):
    login(client, "admin")
    routes = _post_routes(client.app)
    assert {"/login", "/logout", "/admin/users", "/admin/users/{username}/disable"} <= set(routes)
    before = audit_frame(engine)
    for path in routes:
        url = _sample_path(path)
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
            response = client.post(url, data={**data, "username": "x", "role": "admin", "password": PASSWORD})
            assert response.status_code == 403, (path, data, response.status_code)
            assert "security token is missing or wrong" in response.text
        response = client.post(url, json={"csrf_token": csrf_token(client)})  # JSON carries no form token
        assert response.status_code == 403, path
    assert client.get("/").status_code == 200  # still logged in: logout was refused too
    assert len(audit_frame(engine)) == len(before) and not get_account(engine, "viewer").disabled


def test_error_pages_403_404_405_and_500_without_a_traceback(engine):
    make_accounts(engine)
    client, _ = web_client(engine)
    boom = APIRouter()

    @boom.get("/boom")
    def explode():
        raise RuntimeError("secret internal detail")

    client.app.include_router(boom)
    login(client, "viewer")
    forbidden = client.get("/admin/users")
    assert forbidden.status_code == 403 and "无权访问" in forbidden.text and "Forbidden" in forbidden.text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "页面不存在" in missing.text and "text/html" in missing.headers["content-type"]
    assert client.get("/public/draws").status_code == 404  # disclosure off by default
    assert client.put("/runs").status_code == 405
    quiet = TestClient(client.app, raise_server_exceptions=False, cookies=client.cookies)
    broken = quiet.get("/boom")
    assert broken.status_code == 500 and "服务器内部错误" in broken.text
    assert "Traceback" not in broken.text and "secret internal detail" not in broken.text


def test_security_headers_on_pages_and_static_files(client):
    for path, cached in (("/login", False), ("/static/riskgrade.css", True), ("/no/such/page", False)):
        response = client.get(path)
        headers = response.headers
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert ("cache-control" in headers) != cached, path


@pytest.mark.parametrize("query", ["?next=" + "x" * 10_000, "?next=%00", "?next=%ff%fe", "?next=' OR 1=1 --",
                                   "?" + "a=1&" * 5000, "?next=" + "y" * 20_000])
def test_hostile_query_strings_never_produce_a_server_error(client, query):
    response = client.get("/login" + query)
    assert response.status_code in (200, 400, 414), response.status_code
    assert "Traceback" not in response.text


def test_oversized_and_unreadable_forms_are_refused(client):
    token = csrf_token(client)
    big = client.post("/login", data={"csrf_token": token, "username": "x" * 1_100_000})
    assert big.status_code == 413
    control = client.post("/login", data={"csrf_token": token, "username": "vie\x00wer", "password": PASSWORD})
    assert control.status_code == 400


def test_the_web_section_of_the_policy_file(policy):
    import dataclasses

    from features.errors import PolicyError
    from scoring.domain.policy import policy_from_mapping, read_policy_mapping
    from scoring.results.batch import policy_fingerprint
    from scoring.web.settings import WebSettings

    mapping, _ = read_policy_mapping()
    shipped = WebSettings.from_policy(policy.web, secret_key="k")
    assert dataclasses.replace(WebSettings(secret_key="k"), clock=shipped.clock) == shipped  # one set of defaults
    assert (shipped.session_max_age_seconds, shipped.login_max_failures, shipped.disclosure_enabled) == (28800, 5,
                                                                                                      False)
    changed = policy_from_mapping({**mapping, "web": {**mapping["web"], "session_max_age_seconds": 60,
                                                      "public_disclosure": True}})
    settings = WebSettings.from_policy(changed.web)
    assert settings.session_max_age_seconds == 60 and settings.disclosure_enabled
    assert policy_fingerprint(changed) == policy_fingerprint(policy)  # the batch's policy hash ignores [web]
    assert WebSettings().secret_key != WebSettings().secret_key  # random per start
    with pytest.raises(PolicyError, match=r"web.login_max_failures: expected a whole number of at least 1, got 0"):
        policy_from_mapping({**mapping, "web": {**mapping["web"], "login_max_failures": 0}})
    with pytest.raises(PolicyError, match=r"web.session_lifetime: unknown key"):
        policy_from_mapping({**mapping, "web": {**mapping["web"], "session_lifetime": 1}})
