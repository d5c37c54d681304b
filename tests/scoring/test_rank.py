"""`riskgrade rank`, `explain` and `plan` reading the nightly batch's results: filters, formats, Chinese text."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from scoring.results.batch import run_nightly
from scoring.cli import app
from scoring.results.ranking import RANK_COLUMNS, ranked_list
from scoring.results.tables import add_override, current_limits, load_plan, scores_frame

from batch_world import AS_OF, import_world, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

runner = CliRunner()


@pytest.fixture(scope="module")
def scored(tmp_path_factory, world_csv, policy):
    """One SQLite database with one nightly run as of AS_OF (and a manual override in force)."""
    directory = tmp_path_factory.mktemp("ranked")
    url = f"sqlite:///{directory / 'riskgrade.db'}"
    engine = import_world(url, world_csv)
    add_override(engine, enterprise_id="E000003", tier="high", reason="约谈后仍未整改", by="王科长",
                 valid_from=AS_OF - timedelta(days=3), valid_until=AS_OF + timedelta(days=60),
                 policy=policy.overrides.manual, now=datetime(2024, 12, 28))
    run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(directory))
    yield url, engine, run
    engine.dispose()


def _code(result) -> int:
    """The exit code ``riskgrade`` (``scoring.cli.main``) gives: riskgrade errors mapped by ``EXIT_CODES``."""
    from features.errors import RiskgradeError
    from scoring.cli import EXIT_CODES

    if isinstance(result.exception, RiskgradeError):
        return next((code for kind, code in EXIT_CODES.items() if isinstance(result.exception, kind)), 1)
    return result.exit_code


def _message(result) -> str:
    return result.output + (str(result.exception) if result.exception else "")


def _rank(url, *args):
    result = runner.invoke(app, ["rank", "--db", url, *args])
    assert result.exit_code == 0, result.output
    return result


def test_json_is_the_ranked_list_with_exact_keys(scored):
    url, engine, run = scored
    items = json.loads(_rank(url, "--format", "json").stdout)
    assert len(items) == run.counts["n_scored"]
    assert all(list(item) == list(RANK_COLUMNS) for item in items)
    assert [i["rank"] for i in items] == sorted(i["rank"] for i in items) and items[0]["rank"] == 1
    order = {"high": 0, "general": 1, "low": 2}
    assert [order[i["tier"]] for i in items] == sorted(order[i["tier"]] for i in items)  # highest risk first
    top = items[0]
    assert 0 < top["score"] <= 1 and isinstance(top["points"], float) and top["mode"] == "focused"
    assert top["reasons"] and {"feature", "text_zh", "text_en", "value", "contribution"} <= set(top["reasons"][0])
    assert any("\u4e00" <= ch <= "\u9fff" for ch in top["name"])  # Chinese, not escaped
    assert all(len(i["next_allowed_visit"]) == 10 for i in items if i["next_allowed_visit"])
    manual = next(i for i in items if i["enterprise_id"] == "E000003")
    assert manual["tier"] == "high" and "manual override to high by 王科长" in manual["override"]
    assert all(i["override"] is None for i in items if i["tier"] == "general")


def test_filters_and_top(scored):
    url, engine, run = scored
    _, full = ranked_list(engine)
    township = full["township"].mode().iloc[0]
    sector = full["sector"].mode().iloc[0]
    high = json.loads(_rank(url, "--tier", "high", "--format", "json").stdout)
    assert len(high) == run.counts["n_high"] and {i["tier"] for i in high} == {"high"}
    local = json.loads(_rank(url, "--township", township, "--top", "5", "--format", "json").stdout)
    assert len(local) == 5 and {i["township"] for i in local} == {township}
    assert [i["enterprise_id"] for i in local] == list(full.loc[full["township"] == township, "enterprise_id"][:5])
    from features.contract import SECTOR_BY_CODE

    by_label = json.loads(_rank(url, "--sector", SECTOR_BY_CODE[sector].label_zh, "--format", "json").stdout)
    by_code = json.loads(_rank(url, "--sector", sector, "--format", "json").stdout)
    assert by_label == by_code and len(by_code) == int((full["sector"] == sector).sum())
    assert json.loads(_rank(url, "--as-of", str(AS_OF), "--top", "3", "--format", "json").stdout) == \
        json.loads(_rank(url, "--top", "3", "--format", "json").stdout)

    bad = runner.invoke(app, ["rank", "--db", url, "--as-of", "2020-01-01"])
    assert _code(bad) == 3 and "no succeeded nightly run as of 2020-01-01" in _message(bad)
    bad = runner.invoke(app, ["rank", "--db", url, "--tier", "medium"])
    assert bad.exit_code == 2 and "expected high, general or low" in bad.output
    bad = runner.invoke(app, ["rank", "--db", url, "--sector", "mining"])
    assert _code(bad) == 3 and "unknown sector 'mining'" in _message(bad)


def test_csv_has_a_bom_and_xlsx_keeps_chinese(scored, tmp_path):
    url, engine, run = scored
    csv_path = tmp_path / "rank.csv"
    _rank(url, "--top", "20", "--format", "csv", "--out", str(csv_path))
    raw = csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only with a BOM
    frame = pd.read_csv(csv_path, encoding="utf-8-sig")
    assert list(frame.columns) == list(RANK_COLUMNS) and len(frame) == 20
    _, expected = ranked_list(engine, top=20)
    assert list(frame["name"]) == list(expected["name"])
    assert frame["reasons"].str.contains("1. ").all()
    first = expected["reasons"].iloc[0][0]
    assert f"{first['text_zh']} {first['text_en']}" in frame["reasons"].iloc[0]  # both languages

    piped = _rank(url, "--top", "2", "--format", "csv").stdout
    assert not piped.startswith("\ufeff") and piped.splitlines()[0] == ",".join(RANK_COLUMNS)

    xlsx = tmp_path / "rank.xlsx"
    _rank(url, "--tier", "high", "--format", "xlsx", "--out", str(xlsx))
    from openpyxl import load_workbook

    sheet = load_workbook(xlsx).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(RANK_COLUMNS) and len(rows) == run.counts["n_high"] + 1
    _, high = ranked_list(engine, tier="high")
    assert [r[2] for r in rows[1:]] == list(high["name"])
    assert rows[1][13] is None or hasattr(rows[1][13], "year")  # next_allowed_visit is a date cell

    table = _rank(url, "--top", "3")
    assert high["name"].iloc[0][:4] in table.output and "Ranked list as of 2025-01-01" in table.output
    assert runner.invoke(app, ["rank", "--db", url, "--format", "xlsx"]).exit_code == 2  # needs --out


def test_explain_one_enterprise(scored):
    url, engine, run = scored
    result = runner.invoke(app, ["explain", "E000003", "--db", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["enterprise"]["enterprise_id"] == "E000003" and report["run_id"] == run.run_id
    current = report["current"]
    assert current["final_tier"] == "high" and current["tier_zh"] == "高风险"
    assert "manual override to high by 王科长" in current["override_cause"]
    assert {"mode", "yearly_cap", "visits_used", "next_allowed_visit", "reasons"} <= set(current)
    assert [o["created_by"] for o in report["manual_overrides"]] == ["王科长"]
    assert report["history"] == [{"from": str(AS_OF), "to": str(AS_OF), "final_tier": "high", "runs": 1,
                                  "max_probability": current["probability"], "overrides": "manual"}]
    assert set(report["events"]) == {"inspections", "hazards", "violations", "accidents", "penalties",
                                     "credit_records", "complaints"}
    inspections = report["events"]["inspections"]
    assert all("2024-01-01" <= i["inspected_on"] < "2025-01-01" for i in inspections)

    table = runner.invoke(app, ["explain", "E000003", "--db", url])
    assert table.exit_code == 0 and "高风险" in table.output and "why" in table.output
    assert "Tier history" in table.output

    unknown = runner.invoke(app, ["explain", "NOPE", "--db", url])
    assert _code(unknown) == 3 and "unknown enterprise 'NOPE'" in _message(unknown)


def test_plan_reads_the_nightly_run_and_is_stored(scored, policy):
    url, engine, run = scored
    limits = current_limits(engine, AS_OF, policy)
    stored = scores_frame(engine, AS_OF)
    assert set(limits["run_id"]) == {run.run_id} and len(limits) == len(stored)
    assert dict(zip(limits["enterprise_id"], limits["final_tier"])) == \
        dict(zip(stored["enterprise_id"], stored["final_tier"]))

    result = runner.invoke(app, ["plan", "--period", f"{AS_OF:%Y-%m}", "--db", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    header, items = load_plan(engine, period=f"{AS_OF:%Y-%m}")
    assert header["source_run_id"] == run.run_id and header["limits_source"] == f"nightly run {run.run_id}"
    assert header["seed"] == plan["seed"] and header["n_items"] == len(plan["items"]) == len(items) > 0
    assert list(items["enterprise_id"]) == [i["enterprise_id"] for i in plan["items"]]
    assert header["draws"] == plan["draws"]
    assert header["policy_hash"] == run.policy_hash


def test_rank_reads_back_on_every_backend(db_url, world_csv, tmp_path, policy):
    engine = import_world(db_url, world_csv)
    try:
        with pytest.raises(Exception, match="no succeeded nightly run in this database yet"):
            ranked_list(engine)
        run = run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(tmp_path))
        got, frame = ranked_list(engine, tier="high", top=5)
        assert got["run_id"] == run.run_id and len(frame) == 5 and (frame["tier"] == "high").all()
        assert isinstance(frame["reasons"].iloc[0], list) and frame["reasons"].iloc[0][0]["text_zh"]
        assert frame["rank"].is_monotonic_increasing
        _list_pages_on(engine, run)
    finally:
        engine.dispose()


def _list_pages_on(engine, run):
    """list_page on this backend: both paging paths, every sort, search, override kinds, scope."""
    import scoring.results.ranking as ranking
    from scoring.results.ranking import ListFilter, list_page
    from scoring.results.run_cache import clear_run_cache

    _, full = ranked_list(engine)
    original = ranking.SORTED_KEYS_LIMIT, ranking.DEEP_PAGE_OFFSET
    for limits in (original, (0, 10**9), (0, 0)):  # sorted ids, offsets, deep pages' sorted ids
        clear_run_cache()
        ranking.SORTED_KEYS_LIMIT, ranking.DEEP_PAGE_OFFSET = limits
        try:
            assert [r["enterprise_id"] for r in _all_pages(engine)] == list(full["enterprise_id"])
            for key in ranking.SORT_KEYS:
                got = _all_pages(engine, sort=key, descending=True)
                assert {r["enterprise_id"] for r in got} == set(full["enterprise_id"]), key
                # the workbench's rows: the same rows, without the reasons it does not show
                lean = _all_pages(engine, sort=key, descending=True, reasons=False)
                assert lean == [{k: v for k, v in r.items() if k != "reasons"} for r in got], key
        finally:
            ranking.SORTED_KEYS_LIMIT, ranking.DEEP_PAGE_OFFSET = original
    target = full.iloc[3]
    found = list_page(engine, ListFilter(search=target["name"][1:5]))
    assert target["enterprise_id"] in [r["enterprise_id"] for r in found.rows]
    assert list_page(engine, ListFilter(search="' OR 1=1 --")).total == 0
    vetoed = list_page(engine, ListFilter(override="veto"), page_size=500)
    assert vetoed.total == int(scores_frame(engine, run.as_of)["veto"].sum())
    changed = list_page(engine, ListFilter(changed=True), page_size=500)
    assert changed.total == run.counts["n_changes"]
    township = full["township"].mode().iloc[0]
    scoped = list_page(engine, townships=[township], page_size=500)
    assert scoped.total == int((full["township"] == township).sum())
    assert {r["township"] for r in scoped.rows} == {township}


# ---------------------------------------------------------------------------------------------
# The workbench's list: filters, sorts, pages, scope (scoring.results.ranking.list_page)
# ---------------------------------------------------------------------------------------------


def _all_pages(engine, filters=None, **options):
    from scoring.results.ranking import ListFilter, list_page

    rows, page = [], 1
    while True:
        got = list_page(engine, filters or ListFilter(), page=page, page_size=7, **options)
        rows += got.rows
        if page >= got.pages:
            assert got.total == len(rows)
            return rows
        page += 1


@pytest.mark.parametrize(("narrow_limit", "deep_offset"), [(20_000, 2_000), (0, 10**9), (0, 0)],
                         ids=["sorted-ids", "offset", "deep-pages"])
def test_pages_follow_every_sort_key_both_ways(scored, monkeypatch, narrow_limit, deep_offset):
    import scoring.results.ranking as ranking
    from scoring.results.run_cache import clear_run_cache

    url, engine, run = scored
    monkeypatch.setattr(ranking, "SORTED_KEYS_LIMIT", narrow_limit)
    monkeypatch.setattr(ranking, "DEEP_PAGE_OFFSET", deep_offset)
    clear_run_cache()
    _, full = ranked_list(engine)
    rows = _all_pages(engine)
    assert [r["enterprise_id"] for r in rows] == list(full["enterprise_id"])
    assert list(rows[0]) == list(ranking.PAGE_COLUMNS)
    columns = {"probability": "score", "visits": "visits_used"}
    for key in ranking.SORT_KEYS:
        for descending in (False, True):
            got = _all_pages(engine, sort=key, descending=descending)
            values = [r[columns.get(key, key)] for r in got]
            present = [v for v in values if v is not None]
            assert present == sorted(present, reverse=descending), (key, descending)
            assert {r["enterprise_id"] for r in got} == set(full["enterprise_id"])
    with pytest.raises(Exception, match="sort must be one of rank, probability"):
        ranking.list_page(engine, sort="name; DROP TABLE scores_history")
    assert ranking.list_page(engine, page=10_000).rows == []


def test_search_in_memory_finds_what_the_database_substring_test_finds(scored, monkeypatch):
    import scoring.results.ranking as ranking
    from scoring.results.ranking import ListFilter
    from scoring.results.run_cache import clear_run_cache

    url, engine, run = scored
    _, full = ranked_list(engine)
    names = [str(n) for n in full["name"]]
    needles = [names[0][1:4], names[3][-3:], names[7][:2], names[11], full["enterprise_id"].iloc[4], "公司", "有限",
               names[0][1:4] + "不存在", "%", "_"]

    def found(needle):
        rows = _all_pages(engine, ListFilter(search=needle), townships=sorted(set(full["township"]))[:3])
        return [r["enterprise_id"] for r in rows]

    settings = [(ranking.SEARCH_ID_LIMIT, ranking.NAME_INDEX_MAX_ROWS),  # names in memory, an IN list
                (ranking.SEARCH_ID_LIMIT, 0),                          # the database finds the names
                (2, ranking.NAME_INDEX_MAX_ROWS)]                      # broad: the condition on every row
    results = []
    for limit, max_rows in settings:
        monkeypatch.setattr(ranking, "SEARCH_ID_LIMIT", limit)
        monkeypatch.setattr(ranking, "NAME_INDEX_MAX_ROWS", max_rows)
        clear_run_cache()
        results.append([found(n) for n in needles])
    assert results[0] == results[1] == results[2]
    assert any(len(r) > 2 for r in results[0]) and results[0][-3] == []
    in_scope = full[full["township"].isin(sorted(set(full["township"]))[:3])]
    expected = [list(in_scope.loc[[n in str(name) or n == eid for name, eid in zip(in_scope["name"],
                                                                            in_scope["enterprise_id"])],
                                  "enterprise_id"]) for n in needles]
    assert results[0] == expected


def test_filters_search_changed_override_and_scope(scored):
    from features.schema import CONTRACT_TABLES
    from scoring.results.ranking import ListFilter, list_page

    url, engine, run = scored
    _, full = ranked_list(engine)
    with engine.connect() as conn:
        uscc = dict(conn.execute(CONTRACT_TABLES["enterprises"].select().with_only_columns(
            CONTRACT_TABLES["enterprises"].c.enterprise_id, CONTRACT_TABLES["enterprises"].c.uscc)).all())
    target = full.iloc[5]
    by_name = list_page(engine, ListFilter(search=f"  {target['name'][2:6]} "))
    assert target["enterprise_id"] in [r["enterprise_id"] for r in by_name.rows]
    assert all(target["name"][2:6] in r["name"] for r in by_name.rows)
    assert [r["enterprise_id"] for r in list_page(engine, ListFilter(search=target["enterprise_id"])).rows] == \
        [target["enterprise_id"]]
    code = uscc.get(target["enterprise_id"])
    if code:
        assert [r["enterprise_id"] for r in list_page(engine, ListFilter(search=code.lower())).rows] == \
            [target["enterprise_id"]]
    for hostile in ("' OR 1=1 --", "%", "_", "\\", "<script>alert(1)</script>", "../../etc/passwd"):
        assert list_page(engine, ListFilter(search=hostile)).total == 0
    with pytest.raises(Exception, match="search text is 10,000 characters long"):
        list_page(engine, ListFilter(search="x" * 10_000))

    manual = list_page(engine, ListFilter(override="manual"))
    assert [r["enterprise_id"] for r in manual.rows] == ["E000003"]
    vetoed = list_page(engine, ListFilter(override="veto"), page_size=500)
    assert vetoed.total == int(scores_frame(engine, AS_OF)["veto"].sum()) and all(r["veto"] for r in vetoed.rows)
    anything = {r["enterprise_id"] for r in list_page(engine, ListFilter(override="any"), page_size=500).rows}
    assert {"E000003"} | {r["enterprise_id"] for r in vetoed.rows} <= anything
    with pytest.raises(Exception, match="override must be one of any, manual, veto, hold"):
        list_page(engine, ListFilter(override="' OR 1=1 --"))
    changed = list_page(engine, ListFilter(changed=True), page_size=500)
    assert changed.total == run.counts["n_changes"] and all(r["from_tier"] for r in changed.rows)

    township, other = full["township"].value_counts().index[:2]
    mine = _all_pages(engine, townships=[township])
    assert {r["township"] for r in mine} == {township} and len(mine) == int((full["township"] == township).sum())
    assert list_page(engine, ListFilter(township=f" {township}\t")).total == len(mine)  # trimmed
    with pytest.raises(Exception, match=f"unknown township '{other}': the run of 2025-01-01 knows {township}$"):
        list_page(engine, ListFilter(township=other), townships=[township])
    with pytest.raises(Exception, match="unknown township '无此镇': the run of 2025-01-01 knows "):
        ranked_list(engine, township="无此镇")
    _, scoped = ranked_list(engine, townships=[township], search=target["enterprise_id"])
    assert scoped.empty or target["township"] == township
    assert ranked_list(engine, townships=[])[1].empty


def test_cli_rank_new_filters_and_unknown_township(scored):
    url, engine, run = scored
    items = json.loads(_rank(url, "--override", "manual", "--format", "json").stdout)
    assert [i["enterprise_id"] for i in items] == ["E000003"]
    by_name = json.loads(_rank(url, "--sort", "name", "--descending", "--top", "5", "--format", "json").stdout)
    assert [i["name"] for i in by_name] == sorted((i["name"] for i in by_name), reverse=True)
    bad = runner.invoke(app, ["rank", "--db", url, "--township", "无此镇"])
    assert _code(bad) == 3 and "unknown township '无此镇'" in _message(bad)
    trimmed = json.loads(_rank(url, "--tier", " high ", "--top", "2", "--format", "json").stdout)
    assert {i["tier"] for i in trimmed} == {"high"}


def test_latest_run_not_after_today(scored):
    from datetime import date

    from scoring.results.ranking import enterprise_report, resolve_run

    url, engine, run = scored
    assert resolve_run(engine, today=AS_OF)["run_id"] == run.run_id
    with pytest.raises(Exception, match=r"no succeeded nightly run dated on or before today \(2024-12-31\); the "
                                        r"only runs are later \(the latest as of 2025-01-01\)"):
        ranked_list(engine, today=date(2024, 12, 31))
    report = enterprise_report(engine, "E000003", today=date(2024, 12, 31))
    assert report.run is None and report.current is None
    assert enterprise_report(engine, "E000003", today=AS_OF).current["final_tier"] == "high"
    township = enterprise_report(engine, "E000003").enterprise["township"]
    with pytest.raises(Exception, match="unknown enterprise 'E000003'"):
        enterprise_report(engine, "E000003", townships=[f"not {township}"])


def test_the_latest_run_is_warmed_for_the_first_pages(scored, monkeypatch):
    import scoring.results.ranking as ranking
    from features.db import connect
    from scoring.results.ranking import ListFilter, list_page, warm_run_cache
    from scoring.results.run_cache import clear_run_cache

    url, engine, run = scored
    clear_run_cache()
    assert warm_run_cache(engine, today=AS_OF + timedelta(days=1))["run_id"] == run.run_id
    built = []
    monkeypatch.setattr(ranking._NameIndex, "of_run", classmethod(lambda cls, *a: built.append(1)))
    name = ranked_list(engine)[1]["name"].iloc[0]
    assert list_page(engine, ListFilter(search=name[1:4]), today=AS_OF + timedelta(days=1)).total >= 1
    assert built == []  # the names were read by the warm-up, not by the first search
    assert warm_run_cache(connect(url.replace("riskgrade.db", "empty.db"))) is None  # no run: nothing to warm
