"""``riskgrade plan-score FILE`` and models.expected_finds.score_draft (issue 16, item 4): a draft plan edited by
hand, scored per visit and in total for the inspectors named (ids or Chinese names), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.contract import TABLES
from features.store import load_tables
from models import registry
from models.expected_finds import score_draft, train_expected_finds
from scoring.cli import app, main

from batch_world import AS_OF, import_world, world_csv  # noqa: F401  (world_csv is a fixture)

runner = CliRunner()


@pytest.fixture
def scored_world(db_url, world_csv, tmp_path, monkeypatch):
    from threadpoolctl import threadpool_limits

    engine = import_world(db_url, world_csv)
    tables = load_tables(engine, [t.name for t in TABLES])
    with threadpool_limits(1):
        model = train_expected_finds(tables, pd.Timestamp(AS_OF), months=12, test_months=3,
                                     params={"max_iter": 20}, register=False).model

    def load_champion(given=None, *, model_name=registry.MODEL_NAME):
        assert model_name == registry.FINDS_MODEL_NAME
        return registry.ChampionModel(model=model, name=model_name, version="3", run_id="r", kind="expected_finds",
                                      as_of=None)

    monkeypatch.setattr(registry, "load_champion", load_champion)
    yield engine, tables, model
    engine.dispose()


def _draft(tables, n=6):
    roster = tables["inspectors"]
    eids = tables["enterprises"]["enterprise_id"].astype(str).head(n).tolist()
    ids = roster["inspector_id"].astype(str).tolist()
    unique_names = roster["name"][~roster["name"].duplicated(keep=False)].tolist()
    rows = [{"enterprise_id": e, "date": "2025-01-15", "inspectors": f"{ids[2 * i]};{ids[2 * i + 1]}"}
            for i, e in enumerate(eids[:-1])]
    rows.append({"enterprise_id": eids[-1], "date": "2025-01-20",
                 "inspectors": f"{unique_names[0]}、{unique_names[1]}", "kind": "focused"})
    return pd.DataFrame(rows)


def test_the_draft_is_scored_per_visit_for_the_team_named(scored_world):
    _, tables, model = scored_world
    draft = _draft(tables)
    scored = score_draft(model, tables, draft)
    assert len(scored) == len(draft) and (scored["expected_finds"] > 0).all()
    roster = tables["inspectors"].set_index("name")
    names = draft["inspectors"].iloc[-1].split("、")
    assert scored["inspectors"].iloc[-1] == ";".join(roster.loc[names, "inspector_id"].astype(str))
    # the same visit by another team: another figure
    swapped = draft.assign(inspectors=draft["inspectors"].iloc[::-1].to_numpy())
    assert not score_draft(model, tables, swapped)["expected_finds"].equals(scored["expected_finds"])


def test_dates_are_read_in_the_forms_the_import_reads(scored_world):
    _, tables, model = scored_world
    draft = _draft(tables)
    chinese = draft.assign(date=["2025年1月15日", "2025/1/15", "2025.1.15", "20250115", "45672", "2025年1月20日"])
    assert score_draft(model, tables, chinese)["expected_finds"].equals(
        score_draft(model, tables, draft)["expected_finds"])


def test_unknown_enterprises_inspectors_and_dates_are_refused_with_the_row(scored_world):
    _, tables, model = scored_world
    draft = _draft(tables)
    with pytest.raises(ValueError, match="row 4: inspector '无此人' is not in the roster"):
        score_draft(model, tables, draft.assign(inspectors=["", "", "无此人", "", "", ""]))
    with pytest.raises(ValueError, match="unknown enterprise_id 'X1' \\(rows 2\\)"):
        score_draft(model, tables, pd.concat([draft.assign(enterprise_id=["X1"] + draft["enterprise_id"][1:]
                                                            .tolist())]))
    with pytest.raises(ValueError, match="row 2: date 'soon' is not a date"):
        score_draft(model, tables, draft.assign(date=["soon"] + draft["date"][1:].tolist()))
    with pytest.raises(ValueError, match="no column 'inspectors'"):
        score_draft(model, tables, draft.drop(columns="inspectors"))


def test_cli_prints_every_visit_and_the_total(scored_world, db_url, tmp_path, capsys, monkeypatch):
    _, tables, _ = scored_world
    path = tmp_path / "draft.csv"
    _draft(tables).to_csv(path, index=False, encoding="gb18030")  # Chinese Excel's "CSV"
    result = runner.invoke(app, ["plan-score", str(path), "--format", "json", "--db", db_url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == {"name": registry.FINDS_MODEL_NAME, "version": "3"}
    assert report["n_visits"] == 6
    assert report["total_expected_finds"] == pytest.approx(sum(v["expected_finds"] for v in report["visits"]))
    table = runner.invoke(app, ["plan-score", str(path), "--db", db_url])
    assert table.exit_code == 0 and "total expected finds" in table.stdout

    bad = tmp_path / "bad.csv"
    bad.write_text("enterprise_id,date\nE1,2025-01-01\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["riskgrade", "plan-score", str(bad), "--db", db_url])
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "no column 'inspectors'" in err and "Traceback" not in err


def test_explain_names_who_inspected_and_the_inspectors_contribution(scored_world, db_url):
    _, tables, _ = scored_world
    links = tables["inspection_inspectors"].merge(tables["inspections"], on="inspection_id")
    eid = str(links.sort_values("inspected_on")["enterprise_id"].iloc[-1])
    result = runner.invoke(app, ["explain", eid, "--as-of", str(AS_OF), "--format", "json", "--db", db_url])
    assert result.exit_code == 0, result.output
    inspectors = json.loads(result.stdout)["inspectors"]
    assert inspectors["visits"] and all(v["names"] for v in inspectors["visits"])
    assert inspectors["hazards_found"] == sum(v["hazards_found"] for v in inspectors["visits"])
    table = runner.invoke(app, ["explain", eid, "--as-of", str(AS_OF), "--db", db_url])
    assert table.exit_code == 0 and "inspectors' contribution" in table.stdout
