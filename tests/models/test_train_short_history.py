"""Training adapts to a short history: as many honest test dates as the records allow, down to one, said in the
output and the report; refused only when not even one exists, saying how many more days would give one."""

from __future__ import annotations

import json
import re
import sys
from datetime import date

import pandas as pd
import pytest

from features.errors import DataError
from models.config import TrainingConfig
from models.train import backtest_test_dates, train_and_evaluate, training_as_of_dates

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                                        "ignore::UserWarning")

HORIZON = 365


@pytest.fixture(scope="module")
def world():
    """300 enterprises over 4 years (2022–2025): the first inspection is on 2022-01-02."""
    from data_samples.world import generate_world

    return generate_world(300, 4, 3, start=date(2022, 1, 1))


def _test_dates(world, as_of, config=TrainingConfig()):
    dates = training_as_of_dates(world, pd.Timestamp(as_of), HORIZON, config)
    return dates, backtest_test_dates(dates, HORIZON, config.n_test_dates)


def test_every_test_date_has_two_complete_training_dates_before_it(world):
    for as_of in ("2026-01-01", "2025-10-01", "2025-07-02"):
        dates, tests = _test_dates(world, as_of)
        assert tests == dates[len(dates) - len(tests):]  # the latest ones
        for t in tests:
            assert sum(d + pd.Timedelta(days=HORIZON) < t for d in dates) >= 2
        earlier = [d for d in dates if d < tests[0]]
        if len(tests) < 3 and earlier:  # fewer than configured: the date before the first could not be one
            assert sum(d + pd.Timedelta(days=HORIZON) < earlier[-1] for d in dates) < 2


def test_as_many_test_dates_as_the_history_allows(world):
    assert len(_test_dates(world, "2026-01-01")[1]) == 3  # a full four years: the configured three
    assert len(_test_dates(world, "2025-10-01")[1]) == 2
    assert len(_test_dates(world, "2025-07-02")[1]) == 1


def test_refused_only_without_one_honest_date_saying_how_many_days_more(world):
    message = (r"training as of 2025-06-01 with a 365-day horizon: no honest test date — one needs two earlier as-of "
               r"dates \(every 91 days, the first at least 365 warm-up days after the first inspection, 2022-01-02\) "
               r"whose outcomes were complete before it; found 6 as-of date\(s\) and none qualifies; the history is "
               r"too short by 31 days: records from 2021-12-02 on, or training 31 days later")
    with pytest.raises(DataError, match=message):
        training_as_of_dates(world, pd.Timestamp("2025-06-01"), HORIZON)
    # The count is exact: 31 days later one test date exists, 30 days later none.
    assert len(_test_dates(world, pd.Timestamp("2025-06-01") + pd.Timedelta(days=31))[1]) == 1
    with pytest.raises(DataError, match="too short by 1 day: records from 2022-01-01 on, or training 1 day later"):
        training_as_of_dates(world, pd.Timestamp("2025-06-01") + pd.Timedelta(days=30), HORIZON)


def test_refused_when_the_grid_can_never_hold_a_test_date(world):
    config = TrainingConfig(max_as_of_dates=5, n_test_dates=1)  # 5 quarters cannot span a year's horizon + 2
    with pytest.raises(DataError, match=r"\[training\] max_as_of_dates = 5 is too few for this horizon"):
        training_as_of_dates(world, pd.Timestamp("2026-01-01"), HORIZON, config)


@pytest.fixture(scope="module")
def short(world, expert_rules):
    return train_and_evaluate(world, pd.Timestamp("2025-07-02"), ("expert", "scorecard"), expert_rules=expert_rules,
                              log=False)


def test_one_test_date_is_used_and_said(short):
    report = short.report
    assert len(short.test_dates) == 1 and report["test_dates"] == [str(short.test_dates[0].date())]
    assert report["short_history"] is True and report["n_test_dates_wanted"] == 3
    assert report["notes"][0].startswith(f"short history: backtested on 1 test date(s) ({report['test_dates'][0]}) "
                                         f"instead of the 3 of [training] n_test_dates")
    assert set(short.backtest.folds["test_date"]) == set(short.test_dates)
    assert 0.0 <= report["models"]["scorecard"]["roc_auc"] <= 1.0
    json.dumps(report)


def test_a_full_history_says_nothing_about_it(world, expert_rules):
    full = train_and_evaluate(world, pd.Timestamp("2026-01-01"), ("expert",), expert_rules=expert_rules, log=False)
    assert full.report["short_history"] is False and len(full.test_dates) == 3
    assert not any(note.startswith("short history") for note in full.report["notes"])


@pytest.fixture(scope="module")
def imported(world, tmp_path_factory):
    from data_samples.world import write_world
    from features.db import connect
    from features.importer import import_directory

    directory = tmp_path_factory.mktemp("short")
    write_world(world, directory / "world")
    url = f"sqlite:///{directory / 'riskgrade.db'}"
    engine = connect(url)
    import_directory(engine, directory / "world", today=date(2026, 1, 1))
    engine.dispose()
    return url, directory


def test_cli_trains_on_a_short_history_and_says_so(imported, capsys, monkeypatch):
    from scoring.cli import main

    url, directory = imported
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = directory / "report.json"
    monkeypatch.setattr(sys, "argv", ["riskgrade", "train", "--as-of", "2025-10-01", "--model", "expert", "--db", url,
                                      "--mlflow-uri", f"sqlite:///{directory / 'mlflow.db'}", "--report", str(report)])
    with pytest.raises(SystemExit) as stopped:
        main()
    out, err = capsys.readouterr()
    assert stopped.value.code in (0, None), err
    assert "(2 test dates, horizon 365 days)" in out
    assert re.search(r"• short history: backtested on 2 test date\(s\)", out)
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["short_history"] is True and len(written["test_dates"]) == 2
    assert written["notes"][0].startswith("short history: backtested on 2 test date(s)")


def test_cli_refusal_is_one_line_with_the_days_needed(imported, capsys, monkeypatch):
    from scoring.cli import main

    url, directory = imported
    monkeypatch.setattr(sys, "argv", ["riskgrade", "train", "--as-of", "2025-06-01", "--db", url,
                                      "--mlflow-uri", f"sqlite:///{directory / 'mlflow.db'}"])
    with pytest.raises(SystemExit) as stopped:
        main()
    _, err = capsys.readouterr()
    assert stopped.value.code == 3
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "the history is too short by 31 days" in lines[0] and "Traceback" not in err
