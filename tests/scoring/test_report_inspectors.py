"""The monitoring report's inspector-consistency section (issue 16, item 7), on SQLite and PostgreSQL: each
inspector's shrunk finding rate with its interval, lenient / strict ones flagged, numbers from the policy's
``[monitoring]``, text escaped; absent with a line saying why when the data record no inspectors."""

from __future__ import annotations

import dataclasses
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features.db import connect
from features.importer import import_directory
from features.store import load_tables
from features.visits import inspector_consistency
from scoring.report import SECTIONS, build_report, render_html
from scoring.results.batch import run_nightly

from batch_world import AS_OF, no_mlflow, world_csv  # noqa: F401  (world_csv is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def _section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]


def _scored(url: str, directory, policy, tmp_path):
    engine = connect(url)
    import_directory(engine, directory, today=AS_OF)
    run_nightly(engine, AS_OF, policy=policy, tracking_uri=no_mlflow(tmp_path))
    return engine


def test_each_inspectors_shrunk_rate_and_interval_with_the_outliers_flagged(db_url, world_csv, policy,  # noqa: F811
                                                                            tmp_path):
    engine = _scored(db_url, world_csv, policy, tmp_path)
    roster = load_tables(engine, ["inspectors"])["inspectors"]
    marked = str(roster["inspector_id"].iloc[0])
    with engine.begin() as conn:  # a name that would be markup if it were not escaped
        conn.execute(sa.text("UPDATE inspectors SET name = :name WHERE inspector_id = :id"),
                     {"name": "<b>张三</b>", "id": marked})
    report = build_report(engine, policy=policy, tracking_uri=no_mlflow(tmp_path))
    settings = policy.monitoring
    expected = inspector_consistency(load_tables(engine), AS_OF, shrinkage_strength=settings.inspector_shrinkage_strength,
                                     level=settings.inspector_level)
    table = report.tables["inspectors"]
    pd.testing.assert_frame_equal(table, expected)
    assert len(table) > 10 and (table["low"] <= table["stringency"]).all() and (table["stringency"] <= table["high"]).all()
    flags = set(table["flag"])
    assert {"lenient", "strict"} <= flags, flags  # the world's inspectors differ in stringency (≥ 3× spread)
    assert report.facts["inspectors"]["lenient"] == int((table["flag"] == "lenient").sum())

    page = render_html(report)
    assert re.findall(r'<section id="(\w+)">', page) == list(SECTIONS)
    section = _section(page, "inspectors")
    assert "执法人员一致性 Inspector consistency" in page and "偏松 lenient" in section and "偏严 strict" in section
    assert "收缩发现率 shrunk rate" in section and "区间下限 low" in section
    assert "&lt;b&gt;张三&lt;/b&gt;" in section and "<b>张三</b>" not in page
    assert section.count('<tr class="flagged">') == int((table["flag"] != "").sum())

    # what is stored for the next report to compare with
    stored = report.metrics[report.metrics["section"] == "inspectors"]
    per_inspector = stored[stored["metric"] == "stringency"]
    assert len(per_inspector) == len(table)
    np.testing.assert_allclose(per_inspector.set_index("group_value")["value"].sort_index(),
                               table.set_index("inspector_id")["stringency"].sort_index())
    engine.dispose()


def test_the_strength_and_level_come_from_the_policy_file(world_csv, policy, tmp_path):  # noqa: F811
    engine = _scored(f"sqlite:///{tmp_path / 'riskgrade.db'}", world_csv, policy, tmp_path)
    loose = dataclasses.replace(policy.monitoring, inspector_level=0.5, inspector_shrinkage_strength=0.0)
    report = build_report(engine, policy=dataclasses.replace(policy, monitoring=loose),
                          tracking_uri=no_mlflow(tmp_path), store=False)
    expected = inspector_consistency(load_tables(engine), AS_OF, shrinkage_strength=0.0, level=0.5)
    pd.testing.assert_frame_equal(report.tables["inspectors"], expected)
    shipped = build_report(engine, policy=policy, tracking_uri=no_mlflow(tmp_path), store=False)
    assert (report.tables["inspectors"]["flag"] != "").sum() > (shipped.tables["inspectors"]["flag"] != "").sum()
    assert "50%" in _section(render_html(report), "inspectors")
    engine.dispose()


def test_without_inspectors_the_section_says_why_and_shows_no_table(db_url, world_csv, policy,  # noqa: F811
                                                                    tmp_path):
    directory = tmp_path / "no-inspectors"
    shutil.copytree(world_csv, directory)
    for name in ("inspectors.csv", "inspection_inspectors.csv", "truth_inspectors.csv"):
        (directory / name).unlink(missing_ok=True)
    engine = _scored(db_url, directory, policy, tmp_path)
    report = build_report(engine, policy=policy, tracking_uri=no_mlflow(tmp_path))
    assert "inspectors" not in report.tables
    section = _section(render_html(report), "inspectors")
    assert "<table" not in section and "the data record no inspectors" in section
    assert not (report.metrics["section"] == "inspectors").any()
    engine.dispose()
