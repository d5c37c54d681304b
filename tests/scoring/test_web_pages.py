"""The shell's pages on a scored world: overview, runs, public disclosure, accounts admin, audit — and their
township scope."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from features.schema import CONTRACT_TABLES
from scoring.results.accounts import accounts, get_account
from scoring.results.audit import audit_frame, audit_log
from scoring.results.monitoring_tables import monitoring_runs
from scoring.results.overview import tier_counts
from scoring.results.tables import batch_runs, latest_run, plans

from batch_world import AS_OF, world_csv  # noqa: F401  (fixture)
from web_helpers import (  # noqa: F401  (fast_hashes, township and world are fixtures)
    FakeClock,
    fast_hashes,
    login,
    make_accounts,
    post,
    township,
    web_client,
    world,
)


@pytest.fixture
def setup(world, township):
    """Accounts per role (removed with their audit rows afterwards) and a clock an hour after the latest run."""
    make_accounts(world, township=township)
    clock = FakeClock()
    clock.at(latest_run(world)["finished_at"] + timedelta(hours=1))
    yield clock
    with world.begin() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.target_kind == "account"))
        conn.execute(accounts.delete())


def _client(world, clock, name, **settings):
    client, _ = web_client(world, clock=clock, **settings)
    if name is not None:
        assert login(client, name).status_code == 303
    return client


def _townships(world) -> list[str]:
    with world.connect() as conn:
        return sorted(r[0] for r in conn.execute(sa.select(CONTRACT_TABLES["enterprises"].c.township).distinct()))


def _cells(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", html, flags=re.S)]


def test_overview_shows_the_latest_run_counts_changes_vetoes_and_clusters(world, setup):
    page = _client(world, setup, "viewer").get("/")
    assert page.status_code == 200
    text = page.text
    assert "2025-01-01" in text and "succeeded" in text and "expert_card" in text
    assert "notice warning" not in text  # an hour old, succeeded
    counts = tier_counts(world, AS_OF, by="township")
    run = latest_run(world)
    assert int(counts["total"].sum()) == run["n_scored"]
    cells = _cells(text)
    for name, row in counts.iterrows():  # each township's row: name, high, general, low, total
        at = cells.index(name)
        assert cells[at + 1:at + 5] == [f"{row['high']:,}", f"{row['general']:,}", f"{row['low']:,}",
                                       f"{row['total']:,}"]
    assert "较上次运行的等级变化" in text and "Tier changes since the previous run" in text
    assert "一票否决" in text and "专项帮扶" in text
    if run["n_changes"]:
        assert "/enterprise/" in text


def test_overview_is_limited_to_the_township_scope(world, setup, township):
    text = _client(world, setup, "scoped").get("/").text
    others = [t for t in _townships(world) if t != township]
    assert township in text and others and not [t for t in others if t in text]
    counts = tier_counts(world, AS_OF, by="sector", townships={township})
    cells = _cells(text)
    assert str(f"{int(counts['total'].sum()):,}") in cells


def test_overview_warns_when_the_latest_run_is_stale_or_failed(world, setup):
    setup.advance(36 * 3600)
    text = _client(world, setup, "viewer").get("/").text
    assert "超过 36 小时" in text and "the latest nightly run is 37 hours old" in text
    run = latest_run(world)
    with world.begin() as conn:
        failed = conn.execute(batch_runs.insert().values(
            as_of=AS_OF + timedelta(days=1), status="failed", started_at=run["finished_at"] + timedelta(days=1),
            finished_at=run["finished_at"] + timedelta(days=1, seconds=5), error="<b>disk full</b>",
        )).inserted_primary_key[0]
    try:
        setup.at(run["finished_at"] + timedelta(days=1, hours=1))
        text = _client(world, setup, "viewer").get("/").text
        assert "最近一次夜间运行失败" in text and "&lt;b&gt;disk full&lt;/b&gt;" in text and "<b>disk" not in text
        assert f"#{run['run_id']}" in text  # the pages still show the succeeded run
        assert "2025-01-01" in text
    finally:
        with world.begin() as conn:
            conn.execute(batch_runs.delete().where(batch_runs.c.run_id == failed))


def test_runs_page_lists_runs_with_stages_and_the_latest_monitoring_figures(world, setup):
    with world.begin() as conn:
        monitoring = conn.execute(monitoring_runs.insert().values(
            as_of=AS_OF, created_at=datetime(2025, 1, 1, 3), nightly_run_id=latest_run(world)["run_id"],
            model_version="expert card", n_metrics=0,
            summary={"counts": {"high": 24, "general": 144, "low": 72}, "score_psi": 0.0123,
                     "significant_features": ["penalties_365d"], "fairness_flags": 2,
                     "high_tier_accident_share": 0.456})).inserted_primary_key[0]
    try:
        text = _client(world, setup, "viewer").get("/runs").text
        assert text.count("succeeded") >= 2 and "features" in text and "score" in text
        assert "0.012" in text and "penalties_365d" in text and "45.6 %" in text and "公平性提示" in text
        scoped = _client(world, setup, "scoped").get("/runs").text
        assert scoped.count("succeeded") >= 2 and "penalties_365d" not in scoped and "高/一般/低" not in scoped
    finally:
        with world.begin() as conn:
            conn.execute(monitoring_runs.delete().where(monitoring_runs.c.monitoring_run_id == monitoring))


def _drawn(world) -> dict[str, str]:
    """enterprise id → name of every enterprise of the stored plan's random draws."""
    with world.connect() as conn:
        draws = conn.execute(sa.select(plans.c.draws).where(plans.c.period == "2025-01")).scalar_one()
        ids = [e for stratum in draws for e in (stratum["drawn_ids"] or "").split(";") if e]
        table = CONTRACT_TABLES["enterprises"]
        return dict(conn.execute(sa.select(table.c.enterprise_id, table.c.name)
                                 .where(table.c.enterprise_id.in_(ids))).all())


def test_public_disclosure_lists_the_draws_of_past_months_only_and_nothing_else(world, setup):
    assert _client(world, setup, None).get("/public/draws").status_code == 404  # off by default
    from scoring.results.plans import approve_plan

    drawn = _drawn(world)
    assert drawn
    client = _client(world, setup, None, disclosure_enabled=True)
    setup.at(datetime(2025, 2, 1, 0, 5))
    assert "2025-01" not in client.get("/public/draws").text  # a draft plan is not published
    with world.connect() as conn:
        plan_id = conn.execute(sa.select(plans.c.plan_id).where(plans.c.period == "2025-01")).scalar_one()
    approve_plan(world, plan_id, by="审核员")
    setup.at(datetime(2025, 1, 20, 9))  # during January: not published yet
    text = client.get("/public/draws").text
    assert "2025-01" not in text and not [n for n in drawn.values() if n in text]
    setup.at(datetime(2025, 2, 1, 0, 5))
    text = client.get("/public/draws").text
    assert "2025-01" in text and all(name in text for name in drawn.values())
    for secret in ("高风险", "一般风险", "低风险", "high", "general", "probability", "score", "reason"):
        assert secret not in text.lower(), secret
    names = re.findall(r"<li>(.*?)</li>", text)
    assert len(names) == len(drawn)
    assert "href=\"/login\"" in text  # the page needs no login


def test_accounts_page_adds_disables_and_changes_roles_and_scope(world, setup, township):
    admin = _client(world, setup, "admin")
    assert _client(world, setup, "supervisor").get("/admin/users").status_code == 403
    form = {"username": "li", "role": "planner", "townships": township, "password": "li's long passphrase",
            "password_again": "li's long passphrase"}
    added = post(admin, "/admin/users", form)
    assert added.status_code == 200 and "已创建账户" in added.text
    record = get_account(world, "li")
    assert (record.role, record.townships) == ("planner", frozenset({township}))
    duplicate = post(admin, "/admin/users", form)
    assert duplicate.status_code == 400 and "an account named &#39;li&#39; already exists" in duplicate.text
    differ = post(admin, "/admin/users", {**form, "username": "zhao", "password_again": "other"})
    assert differ.status_code == 400 and "the two passwords differ" in differ.text
    short = post(admin, "/admin/users", {**form, "username": "zhao", "password": "short", "password_again": "short"})
    assert short.status_code == 400 and "at least 15 are required" in short.text
    assert post(admin, "/admin/users/li/role", {"role": "supervisor"}).status_code == 200
    unknown = post(admin, "/admin/users/li/townships", {"townships": "火星乡"})
    assert unknown.status_code == 400 and "unknown township &#39;火星乡&#39;" in unknown.text
    assert post(admin, "/admin/users/li/townships", {"townships": ""}).status_code == 200
    assert post(admin, "/admin/users/li/disable").status_code == 200
    record = get_account(world, "li")
    assert (record.role, record.townships, record.disabled) == ("supervisor", None, True)
    assert list(audit_frame(world, target_id="li")["action"])[::-1] == [
        "account.add", "account.set_role", "account.set_townships", "account.disable"]
    assert set(audit_frame(world, target_id="li")["actor"]) == {"admin"}
    assert get_account(world, "zhao") is None


def test_audit_page_and_its_township_scope(world, setup, township, policy):
    from scoring.results.tables import add_override, revoke_override

    enterprises = CONTRACT_TABLES["enterprises"]
    with world.connect() as conn:
        inside, outside = (conn.execute(sa.select(sa.func.min(enterprises.c.enterprise_id))
                                        .where(condition)).scalar_one()
                           for condition in (enterprises.c.township == township, enterprises.c.township != township))
    overrides = [add_override(world, enterprise_id=e, tier="high", reason="复查", by="审核员", valid_from=AS_OF,
                              valid_until=AS_OF + timedelta(days=30), policy=policy.overrides.manual)
                 for e in (inside, outside)]
    cells = _cells(_client(world, setup, "supervisor").get("/audit").text)
    assert {"override.add", "E000003", "王科长", "account.add"} <= set(cells)
    filtered = _cells(_client(world, setup, "admin").get("/audit", params={"action": "account.add"}).text)
    assert "account.add" in filtered and "override.add" not in filtered
    assert _client(world, setup, "planner").get("/audit").status_code == 403
    scoped = _cells(_client(world, setup, "scoped_supervisor").get("/audit").text)
    assert "account.add" not in scoped  # accounts are about no enterprise of the township
    assert inside in scoped and outside not in scoped
    for override_id in overrides:
        revoke_override(world, override_id, by="审核员", reason="测试结束")
