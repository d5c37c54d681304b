"""The workbench in a real browser (Chromium through Playwright), as a planner uses it: log in, filter and page the
ranked list, open an enterprise file, set and revoke an override and find both in the audit trail, generate,
approve, export and verify a plan, log out. Screenshots of the main pages go to docs/screenshots/.

Every test starts from a fresh browser context (no cookie) and follows links and forms as a person would; only the
first page of a flow is typed as an address. Expectations come from the database through the same query functions
the pages call (``scoring.results``), never from the HTML the page produced.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from browser_world import AS_OF, PERIOD, screenshot

pytestmark = pytest.mark.slow


def log_in(page, user) -> None:
    """Through the login form, as ``user``; lands on the overview (or the page the login was asked for)."""
    if "/login" not in page.url:
        page.goto("/login")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", user.password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def log_out(page) -> None:
    page.click("form[action='/logout'] button[type=submit]")
    page.wait_for_url(re.compile(r"/login"))


def nav(page, label_zh: str) -> None:
    """Follow the main navigation's link whose Chinese label is ``label_zh``."""
    page.locator("header nav a", has_text=label_zh).click()
    page.wait_for_load_state()


_LIST_ROWS = """() => Array.from(document.querySelectorAll("main table tbody tr"))
    .map(tr => Array.from(tr.querySelectorAll("td")))
    .filter(cells => cells.length >= 8)
    .map(cells => ({rank: cells[0].innerText, enterprise_id: cells[1].innerText, township: cells[3].innerText,
                    probability: cells[5].innerText, tier: cells[7].className}))"""


def list_rows(page) -> list[dict]:
    """The ranked list's rows on the page: rank, enterprise id, township, probability, tier (the cell's class)."""
    return [{"rank": int(r["rank"]), "enterprise_id": r["enterprise_id"].strip(), "township": r["township"].strip(),
             "probability": float(r["probability"]), "tier": r["tier"].removeprefix("tier-")}
            for r in page.evaluate(_LIST_ROWS)]


def total_shown(page) -> int:
    """The "共 N 家企业" count above the list."""
    text = page.locator("main p", has_text="家企业").first.inner_text()
    return int(re.search(r"共\s*([\d,]+)\s*家企业", text).group(1).replace(",", ""))


def scored(world, *, tier: str | None = None, township: str | None = None) -> list[str]:
    """The enterprise ids of the latest run (of ``tier`` / ``township`` when given), highest risk first: what
    ``scoring.results.ranking.ranked_list`` — the function behind ``riskgrade rank`` — answers."""
    from scoring.results.ranking import ranked_list

    _, frame = ranked_list(world.engine)
    if tier is not None:
        frame = frame.loc[frame["tier"] == tier]
    if township is not None:
        frame = frame.loc[frame["township"] == township]
    return frame["enterprise_id"].tolist()


def test_login_refuses_a_wrong_password_then_lands_on_the_overview(page, world):
    admin = world.users["admin"]
    page.goto("/list")
    assert "/login" in page.url  # not logged in: a page leads to the login form

    page.fill("input[name=username]", admin.username)
    page.fill("input[name=password]", admin.password + "x")
    page.click("form[action='/login'] button[type=submit]")
    assert "用户名或密码错误" in page.locator("[role=alert]").inner_text()
    assert "/login" in page.url

    page.goto("/")
    log_in(page, admin)
    assert page.url.endswith("/")
    assert "首页" in page.locator("h1").inner_text()
    assert str(AS_OF) in page.locator("main").inner_text()  # the latest run's date
    assert admin.username in page.locator("header").inner_text()
    screenshot(page, "overview")


def test_ranked_list_filters_sorts_and_pages(page, world):
    log_in(page, world.users["supervisor"])
    nav(page, "风险清单")
    everyone = scored(world)
    assert total_shown(page) == len(everyone)
    first = list_rows(page)
    assert [r["enterprise_id"] for r in first] == everyone[:50]  # highest risk first, 50 a page
    screenshot(page, "ranked-list")

    page.locator("nav.pager a", has_text="下一页").click()
    page.wait_for_url(re.compile(r"page=2"))
    assert [r["enterprise_id"] for r in list_rows(page)] == everyone[50:100]
    page.locator("nav.pager a", has_text="末页").click()
    last_page = -(-len(everyone) // 50)
    page.wait_for_url(re.compile(rf"page={last_page}"))
    assert [r["enterprise_id"] for r in list_rows(page)] == everyone[(last_page - 1) * 50:]

    # The filter form: high tier in the largest township (the form keeps what was chosen)
    townships = [r["township"] for r in list_rows(page)]
    township = max(set(townships), key=townships.count)
    page.select_option("select[name=tier]", "high")
    page.select_option("select[name=township]", township)
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"tier=high"))
    expected = scored(world, tier="high", township=township)
    rows = list_rows(page)
    assert [r["enterprise_id"] for r in rows] == expected and expected
    assert {r["tier"] for r in rows} == {"high"} and {r["township"] for r in rows} == {township}
    assert total_shown(page) == len(expected)
    assert page.locator("select[name=township]").input_value() == township

    # A column header sorts (by probability, lowest first), then the other way round
    page.click("a[href='/list']")  # clear
    page.locator("thead a", has_text="风险概率").click()
    page.wait_for_url(re.compile(r"sort=probability"))
    ascending = [r["probability"] for r in list_rows(page)]
    assert ascending == sorted(ascending)
    page.locator("thead a", has_text="风险概率").click()
    page.wait_for_url(re.compile(r"desc=1"))
    descending = [r["probability"] for r in list_rows(page)]
    assert descending == sorted(descending, reverse=True) and descending[0] >= ascending[-1]

    # Search by the whole enterprise id finds exactly that enterprise
    wanted = everyone[137]
    page.fill("input[name=q]", f"  {wanted} ")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"q="))
    assert [r["enterprise_id"] for r in list_rows(page)] == [wanted]


def test_an_account_limited_to_a_township_sees_and_exports_only_it(page, world):
    viewer = world.users["viewer"]
    (township,) = viewer.townships
    log_in(page, viewer)
    nav(page, "风险清单")
    expected = scored(world, township=township)
    assert total_shown(page) == len(expected)
    assert {r["township"] for r in list_rows(page)} == {township}
    options = page.locator("select[name=township] option").all_inner_texts()
    assert [o for o in options if o.strip() != "全部 all"] == [township]

    with page.expect_download() as download:
        page.locator("main a", has_text="CSV").first.click()
    text = download.value.path().read_bytes().decode("utf-8-sig")
    lines = text.splitlines()
    assert len(lines) == len(expected) + 1  # the header and one line per enterprise of the township
    assert all(township in line for line in lines[1:])
    assert all(e not in text for e in set(scored(world)) - set(expected))


def test_override_set_and_revoked_on_the_enterprise_file_both_in_the_audit_trail(page, world):
    from scoring.results.overrides import override_list

    supervisor = world.users["supervisor"]
    log_in(page, supervisor)
    nav(page, "风险清单")
    link = page.locator("main table tbody tr").nth(2).locator("td").nth(1).locator("a")
    enterprise_id = link.inner_text().strip()
    link.click()
    page.wait_for_url(re.compile(r"/enterprise/"))
    assert enterprise_id in page.locator("h1").inner_text()
    assert page.locator("h2", has_text="等级与概率历史").count() == 1
    assert page.locator("figure svg").count() == 1  # the tier and probability history chart
    screenshot(page, "enterprise-file")

    cause = f"复查确认重大隐患已整改 rectified on re-inspection ({uuid.uuid4().hex[:8]})"
    until = date.today() + timedelta(days=30)
    form = page.locator("form.stacked", has_text="设置人工调整")
    form.locator("select[name=tier]").select_option("low")
    form.locator("textarea[name=reason]").fill(cause)
    form.locator("input[name=valid_until]").fill(until.isoformat())
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"#overrides$"))
    row = page.locator("h2#overrides + table tbody tr", has_text=cause)
    assert row.count() == 1 and "低风险" in row.inner_text()
    (override_id,) = override_list(world.engine, enterprise_id=enterprise_id).query(
        "reason == @cause")["override_id"].tolist()
    assert str(override_id) == row.locator("td").first.inner_text().strip()

    row.locator("input[name=reason]").fill("整改材料不实 rectification evidence was false")
    row.locator("button", has_text="撤销").click()
    page.wait_for_url(re.compile(r"#overrides$"))
    row = page.locator("h2#overrides + table tbody tr", has_text=cause)
    assert "整改材料不实" in row.inner_text()  # revoked: who and why shown, no revoke button any more
    assert row.locator("button", has_text="撤销").count() == 0
    stored = override_list(world.engine, override_id=override_id).iloc[0]
    assert stored["status"] == "revoked" and stored["revoked_by"] == supervisor.username

    nav(page, "审计日志")
    page.fill("input[name=target_kind]", "override")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"target_kind=override"))  # .all() does not wait: read the filtered page
    trail = [row.inner_text() for row in page.locator("main table tbody tr").all()
             if f"override {override_id}" in row.inner_text()]
    assert len(trail) == 2, trail
    assert "override.revoke" in trail[0] and "override.add" in trail[1]  # newest first
    assert all(supervisor.username in line and enterprise_id in line for line in trail)


def test_plan_generated_approved_exported_and_its_draws_verified(page, world, tmp_path):
    import openpyxl

    from scoring.results.tables import load_plan

    planner, supervisor = world.users["planner"], world.users["supervisor"]
    log_in(page, planner)
    nav(page, "检查计划")
    page.locator("main a[href='/plans/new']").first.click()
    page.wait_for_url(re.compile(r"/plans/new"))
    page.fill("input[name=period]", PERIOD)
    departments = page.locator("input[name=department]").all()
    visits = page.locator("input[name=visits]").all()
    assert departments[0].input_value()  # the policy's departments, with their capacity, to edit
    visits[0].fill(str(int(visits[0].input_value()) + 5))
    page.locator("form[action='/plans'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/plans/\d+$"))
    plan_id = int(page.url.rsplit("/", 1)[1])
    header, items = load_plan(world.engine, plan_id=plan_id)
    assert header["period"] == PERIOD and header["status"] == "draft" and len(items) > 0
    assert page.locator("form[action$='/approve']").count() == 0  # a planner cannot approve
    log_out(page)

    log_in(page, supervisor)
    page.goto(f"/plans/{plan_id}")
    page.locator("form[action$='/approve'] button").click()
    page.wait_for_url(re.compile(rf"/plans/{plan_id}$"))
    assert "已批准" in page.locator(".notice.ok").inner_text()
    header, items = load_plan(world.engine, plan_id=plan_id)
    assert header["status"] == "approved" and header["approved_by"] == supervisor.username
    screenshot(page, "plan")

    visits_table = page.locator("h2", has_text="检查安排").locator("xpath=following-sibling::table[1]")
    shown = [(int(r.locator("td").nth(0).inner_text()), r.locator("td").nth(1).locator(".muted").inner_text())
             for r in visits_table.locator("tbody tr").all()]
    stored = list(zip(items["priority"].astype(int), items["enterprise_id"], strict=True))
    assert shown == stored

    with page.expect_download() as download:
        page.locator("main a", has_text="Excel xlsx").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".xlsx" and PERIOD in saved.name
    book = openpyxl.load_workbook(saved, read_only=True)
    sheet = book["plan"]
    header_row, *rows = list(sheet.iter_rows(values_only=True))
    at = {name: i for i, name in enumerate(header_row)}
    exported = [(int(r[at["priority"]]), str(r[at["enterprise_id"]])) for r in rows]
    assert exported == stored
    assert {r[at["period"]] for r in rows} == {PERIOD}

    page.locator("main a", has_text="验证随机抽取").click()
    page.wait_for_url(re.compile(rf"/plans/{plan_id}/verify$"))
    assert "已重现" in page.locator("[role=status]").inner_text()
    results = page.locator("main table tbody tr").all_inner_texts()
    assert results and all("已重现" in r for r in results)
    screenshot(page, "verify-draws")


def test_after_logout_every_page_leads_back_to_the_login(page, world):
    log_in(page, world.users["planner"])
    nav(page, "风险清单")
    log_out(page)
    for path in ("/", "/list", "/plans", f"/plans/new"):
        page.goto(path)
        assert "/login" in page.url, path
        assert page.locator("input[name=password]").count() == 1
