"""The workbench in a real browser (Chromium through Playwright), as a planner uses it: log in, filter and page the
ranked list, open an enterprise file, set and revoke an override and find both in the audit trail, generate,
approve, export and verify a plan, log out. Screenshots of the main pages go to docs/screenshots/.
"""

from __future__ import annotations

import re

import pytest

from browser_world import AS_OF, PERIOD, screenshot

pytestmark = pytest.mark.slow


def log_in(page, user) -> None:
    page.goto("/login")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", user.password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def test_login_refuses_a_wrong_password_then_lands_on_the_overview(page, world):
    admin = world.users["admin"]
    page.goto("/")
    assert "/login" in page.url  # not logged in: every page leads to the login form

    page.fill("input[name=username]", admin.username)
    page.fill("input[name=password]", admin.password + "x")
    page.click("form[action='/login'] button[type=submit]")
    assert page.locator("[role=alert]").inner_text().strip().startswith("用户名或密码错误")
    assert "/login" in page.url

    log_in(page, admin)
    assert page.url.rstrip("/").endswith(page.url.split("/")[2])  # the overview, /
    body = page.locator("main").inner_text()
    assert str(AS_OF) in body
    assert admin.username in page.locator("header").inner_text()
    screenshot(page, "overview")
