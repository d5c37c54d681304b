"""`riskgrade report` end to end: sections, embedded charts, Chinese text, stored monitoring runs, injected drift.

One synthetic world (1 000 enterprises, December 2018 – November 2024) and one champion trained on it as of
2024-06-01 with a 182-day horizon (its training as-of dates, December 2022 – November 2023, have full 1 095-day
windows). Nightly runs every three months from 2024-06-01 to 2024-12-01 — not in January, when every yearly
commitment lapses until it is signed again.
"""

from __future__ import annotations

import base64
import re
import warnings
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from scoring.cli import app

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")]

AS_OF = date(2024, 12, 1)
TRAINED_AS_OF = date(2024, 6, 1)
NIGHTLY_DATES = (date(2024, 6, 1), date(2024, 9, 1), AS_OF)
HORIZON_DAYS = 182
N_ENTERPRISES = 1000
runner = CliRunner()


@pytest.fixture(scope="module")
def world():
    from data_samples.world import generate_world

    return generate_world(N_ENTERPRISES, 6, 17, start=date(2018, 12, 1))


@pytest.fixture(scope="module")
def champion(world, tmp_path_factory):
    """(tracking URI, training result): a boosting champion, registered and promoted, without a logged
    reference distribution (the first report computes it from the training rows)."""
    from models import TrainingConfig, train_and_evaluate

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    config = TrainingConfig(step_days=61, warmup_days=180, n_test_dates=3, max_as_of_dates=8, min_group_rows=10)
    result = train_and_evaluate(world, TRAINED_AS_OF, ("boosting",), config=config, horizon_days=HORIZON_DAYS, log=True,
                                promote=True, tracking_uri=uri)
    assert result.promotion.promoted
    return uri, result


def _write(tables, directory: Path) -> Path:
    from data_samples.world import write_world

    write_world({name: frame for name, frame in tables.items() if name != "truth"}, directory)
    return directory


@pytest.fixture(scope="module")
def world_dir(world, tmp_path_factory):
    return _write(world, tmp_path_factory.mktemp("world"))


def _database(url: str, directory: Path, uri: str, dates=NIGHTLY_DATES):
    """An engine on ``url`` with the world imported and the nightly batch run on ``dates``."""
    from features.db import connect
    from features.importer import import_directory
    from scoring.results.batch import run_nightly

    engine = connect(url)
    import_directory(engine, directory, today=AS_OF)
    for day in dates:
        run = run_nightly(engine, day, tracking_uri=uri)
        assert run.model_source == "champion"
    return engine


def _report(args: list[str]):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    glyphs = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert not glyphs, glyphs[:3]  # no tofu: every Chinese label found its glyphs
    return result


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<figure id="fig-([\w-]+)"><img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
                       page)
    return {name: base64.b64decode(data) for name, data in found}


def test_report_has_its_sections_charts_and_stores_what_a_later_run_compares(db_url, world_dir, champion, tmp_path):
    from scoring.results.monitoring_tables import monitoring_metrics, monitoring_runs
    from scoring.report import SECTIONS

    uri, _ = champion
    engine = _database(db_url, world_dir, uri)
    first, second = tmp_path / "2024-09.html", tmp_path / "latest.html"
    _report(["--out", str(first), "--as-of", "2024-09-01", "--db", db_url, "--mlflow-uri", uri])
    result = _report(["--out", str(second), "--db", db_url, "--mlflow-uri", uri])
    assert "monitoring report as of 2024-12-01" in result.output and "compared with 2024-09-01" in result.output

    page = second.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page and 'lang="zh-CN"' in page
    ids = re.findall(r'<section id="(\w+)">', page)
    assert ids == list(SECTIONS)
    images = _images(page)
    assert {"tiers_by_township", "tiers_by_sector", "migration", "score_distribution", "feature_psi", "calibration",
            "lift", "capture", "fairness_township"} <= set(images)
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000 for png in images.values())
    assert "src=\"http" not in page and "<script" not in page  # self-contained, nothing fetched
    townships = pd.read_sql(sa.text("SELECT DISTINCT township FROM enterprises"), engine)["township"]
    assert all(str(t) in page for t in townships)  # every township of the bureau is in the tier table
    for text in ("高风险", "等级迁移", "显著漂移", "Backtest calibration of the champion", "漏报率",
                 "与 2024-09-01 的监测结果"):
        assert text in page

    def section(name: str) -> str:
        return page.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]

    assert "与 2024-09-01 的夜间评分相比" in section("migration")
    assert "2024-06-01 夜间评分的等级" in section("capture")  # its 182-day window closed before 2024-12-01
    assert "ROC-AUC" in section("backtest") and "<img" in section("backtest")
    assert "probability" in section("stability")

    with engine.connect() as conn:
        runs = conn.execute(sa.select(monitoring_runs).order_by(monitoring_runs.c.as_of)).mappings().all()
        metrics = pd.DataFrame(conn.execute(sa.select(monitoring_metrics).where(
            monitoring_metrics.c.monitoring_run_id == runs[-1]["monitoring_run_id"])).mappings().all())
    assert [r["as_of"] for r in runs] == [date(2024, 9, 1), AS_OF]
    assert runs[1]["compared_with"] == runs[0]["monitoring_run_id"] and runs[1]["previous_as_of"] == date(2024, 9, 1)
    assert runs[1]["evaluated_as_of"] == date(2024, 6, 1) and runs[1]["evaluated_days"] == HORIZON_DAYS
    assert runs[1]["champion_version"] == "1" and runs[1]["report_path"] == str(second)
    sections = set(metrics["section"])
    assert {"tiers", "migration", "stability", "segment_stability", "backtest", "capture", "fairness"} <= sections
    score = metrics[(metrics["section"] == "stability") & (metrics["feature"] == "probability")]
    assert len(score) == 1 and score["band"].item() in ("stable", "moderate", "significant")
    assert set(metrics.loc[metrics["section"] == "fairness", "group_by"]) == {"", "township", "sector", "size_band"}

    # Re-running a date replaces its monitoring run: still two, and the later one still compares with 2024-09-01.
    _report(["--out", str(second), "--db", db_url, "--mlflow-uri", uri])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(monitoring_runs)).scalar() == 2
    engine.dispose()


def test_the_reference_is_computed_from_the_training_rows_when_missing_and_then_read_back(world_dir, champion,
                                                                                        tmp_path):
    from models.registry import load_champion
    from scoring.domain.monitoring import training_reference
    from scoring.report import build_report, load_reference

    uri, trained = champion
    engine = _database(f"sqlite:///{tmp_path / 'riskgrade.db'}", world_dir, uri, dates=(AS_OF,))
    report = build_report(engine, tracking_uri=uri, store=False)
    logged = load_reference(trained.versions["boosting"].run_id, uri)
    assert logged is not None  # computed (by this or an earlier report) and cached in the champion's run
    assert report.champion["reference_source"].startswith(("computed from the training rows", "MLflow artifact"))
    direct = training_reference(trained.features, load_champion(uri).model)
    assert logged.n_rows == direct.n_rows == len(trained.features)
    for name in direct.variables:  # rebuilt point-in-time from the database: the very training distribution
        assert logged.bins[name] == direct.bins[name], name
        assert logged.counts[name].tolist() == direct.counts[name].tolist(), name
    assert build_report(engine, tracking_uri=uri, store=False).champion["reference_source"] == \
        "MLflow artifact monitoring/reference.json"
    engine.dispose()


def _hazard_sources() -> set[str]:
    """Features computed from the hazards table (directly or as the numerator of a rate)."""
    from features.catalog import CATALOG

    return {f.name for f in CATALOG if f.source == "hazards" or (f.per is not None and f.per.source == "hazards")}


def test_a_sector_whose_hazards_double_shows_psi_above_025_on_the_hazard_features_only(world, world_dir, champion,
                                                                                      tmp_path):
    from features.catalog import CATALOG

    uri, trained = champion
    last_training_day = max(trained.as_of_dates)
    enterprises = world["enterprises"]
    sector = enterprises["sector"].value_counts().index[0]  # the largest sector
    ids = set(enterprises.loc[enterprises["sector"] == sector, "enterprise_id"])
    hazards = world["hazards"]
    # The drift: in the scoring period (after the champion's last training date) the sector's hazard rate doubles.
    again = hazards[hazards["enterprise_id"].isin(ids) & (hazards["found_on"] >= last_training_day)
                    & (hazards["found_on"] < pd.Timestamp(AS_OF))].copy()
    assert len(again) > 50
    again["hazard_id"] = "DUP" + again["hazard_id"].astype(str)
    drifted = _write({**world, "hazards": pd.concat([hazards, again], ignore_index=True)}, tmp_path / "drifted")
    url = f"sqlite:///{tmp_path / 'drifted.db'}"
    engine = _database(url, drifted, uri, dates=(AS_OF,))
    out = tmp_path / "drift.html"
    _report(["--out", str(out), "--db", url, "--mlflow-uri", uri])

    from scoring.results.monitoring_tables import monitoring_metrics

    with engine.connect() as conn:
        metrics = pd.DataFrame(conn.execute(sa.select(monitoring_metrics)).mappings().all())
    segment = metrics[(metrics["section"] == "segment_stability") & (metrics["group_value"] == sector)]
    psi = segment.set_index("feature")["value"]
    for name in ("general_hazards_90d", "general_hazards_365d"):  # < 0.25 without the drift: see the next test
        assert psi[name] > 0.25, (name, psi[name])
    # Features that do not read the hazards table stay below 0.25, overall and in the drifted sector
    # (peer-accident context features are shown without a band: see scoring.domain.monitoring).
    hazard_features = _hazard_sources()
    context = {f.name for f in CATALOG if f.group_by}
    overall = metrics[metrics["section"] == "stability"].set_index("feature")
    unrelated = [n for n in overall.index if n not in hazard_features | context | {"probability"}]
    assert len(unrelated) > 40
    assert overall.loc[unrelated, "value"].fillna(0).max() < 0.25, overall.loc[unrelated, "value"].nlargest(3)
    assert psi.reindex(unrelated).fillna(0).max() < 0.25, psi.reindex(unrelated).nlargest(3)
    # …and the report lists the drifted sector's hazard features under "significant drift within a sector".
    page = out.read_text(encoding="utf-8")
    stability = page.split('<section id="stability">', 1)[1].split("</section>", 1)[0]
    from features.contract import SECTOR_BY_CODE

    within = stability.split("分行业显著漂移", 1)[1]
    assert SECTOR_BY_CODE[sector].label_zh in within and "general_hazards_365d" in within
    engine.dispose()


def test_without_the_drift_the_sector_hazard_counts_are_stable(world, champion):
    """The baseline of the drift test: the same report date on the untouched world."""
    from features import build_features
    from models.registry import load_champion
    from scoring.domain.monitoring import segment_stability, training_reference

    uri, trained = champion
    reference = training_reference(trained.features, load_champion(uri).model)
    current = build_features({k: v for k, v in world.items() if k != "truth"}, [pd.Timestamp(AS_OF)])
    current = current.reset_index(level="as_of", drop=True)
    sector = world["enterprises"]["sector"].value_counts().index[0]
    table = segment_stability(reference, current, current[["sector"]].astype("object"))
    psi = table[table["segment"] == sector].set_index("variable")["psi"]
    assert psi["general_hazards_90d"] < 0.25 and psi["general_hazards_365d"] < 0.25


def test_without_a_champion_or_an_earlier_run_the_report_says_so_and_shows_the_rest(world_dir, tmp_path):
    from features.db import connect
    from features.importer import import_directory
    from scoring.results.batch import run_nightly
    from scoring.report import SECTIONS

    url, no_store = f"sqlite:///{tmp_path / 'riskgrade.db'}", f"sqlite:///{tmp_path / 'no-mlflow.db'}"
    engine = connect(url)
    import_directory(engine, world_dir, today=AS_OF)
    assert run_nightly(engine, AS_OF, tracking_uri=no_store).model_source == "expert_card"
    out = tmp_path / "report.html"
    _report(["--out", str(out), "--db", url, "--mlflow-uri", no_store])
    page = out.read_text(encoding="utf-8")
    assert re.findall(r'<section id="(\w+)">', page) == list(SECTIONS)
    assert {"tiers_by_township", "tiers_by_sector", "fairness_township"} <= set(_images(page))
    for section, text in (("stability", "没有冠军模型的训练分布"), ("backtest", "没有冠军模型的回测结果"),
                          ("migration", "这是第一次夜间评分"), ("capture", "尚无足够早的夜间评分"),
                          ("changes", "这是第一次监测")):
        assert text in page.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0], section
    assert "本次夜间评分未使用冠军模型" in page  # the run scored with the expert card: said in the notes
    assert not (tmp_path / "no-mlflow.db").exists()  # the report created no MLflow store
    engine.dispose()


def test_report_refuses_a_database_without_a_nightly_run(tmp_path):
    from features.db import connect

    connect(f"sqlite:///{tmp_path / 'empty.db'}").dispose()  # an imported-into but never scored database
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "r.html"), "--db",
                                 f"sqlite:///{tmp_path / 'empty.db'}", "--mlflow-uri",
                                 f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code != 0
    assert "no succeeded nightly run" in str(result.exception) or "no succeeded nightly run" in result.output
    bad = runner.invoke(app, ["report", "--out", str(tmp_path / "r.pdf")])
    assert bad.exit_code == 2 and "expected an .html file" in bad.output


# ---------------------------------------------------------------------------------------------
# The CJK font
# ---------------------------------------------------------------------------------------------


def _render(text: str, rc: dict) -> list[str]:
    import matplotlib
    from matplotlib.figure import Figure

    with warnings.catch_warnings(record=True) as caught, matplotlib.rc_context(rc):
        warnings.simplefilter("always")
        figure = Figure(figsize=(3, 1))
        figure.text(0.1, 0.5, text)
        figure.savefig(Path("/dev/null"), format="png")
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_chinese_labels_use_the_bundled_noto_sans_cjk_font(tmp_path):
    from matplotlib import font_manager

    from scoring.report import CJK_FONT_FAMILY, _figure, _png, cjk_font_path, register_cjk_font

    path = cjk_font_path()
    assert path.name == "NotoSansCJKsc-Regular.otf" and "mplfonts" in path.parts  # inside the wheel
    assert register_cjk_font() == CJK_FONT_FAMILY == "Noto Sans CJK SC"
    rc = {"font.family": "sans-serif", "font.sans-serif": [CJK_FONT_FAMILY, "DejaVu Sans"]}
    import matplotlib

    with matplotlib.rc_context(rc):
        resolved = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]), fallback_to_default=False)
    # the CJK family is the one resolved (the bundled file, or the same family's system file where Debian's
    # fonts-noto-cjk is installed), never a font without Chinese glyphs
    assert font_manager.FontProperties(fname=resolved).get_name() == CJK_FONT_FAMILY
    text = "东城街道 高风险 重大隐患 ≥0.25 → 承诺式监管"
    assert _render(text, rc) == []
    # The check can fail: DejaVu Sans alone has no CJK glyphs (tofu) and matplotlib says so.
    assert _render(text, {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]})
    with _figure(2, 1) as figure:  # what the report draws with
        figure.text(0.1, 0.5, text)
        png = _png(figure)
    (tmp_path / "cjk.png").write_bytes(png)
    assert png.startswith(b"\x89PNG")
