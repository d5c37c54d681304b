"""Results kept per nightly run: computed once, even when many server threads ask at the same moment."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from scoring.results.run_cache import CACHE_SIZE, clear_run_cache, run_cached


@pytest.fixture
def memory_engine():
    clear_run_cache()
    yield sa.create_engine("sqlite://")
    clear_run_cache()


def test_threads_asking_together_share_one_computation(memory_engine):
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return len(calls)

    results = []
    threads = [threading.Thread(target=lambda: results.append(run_cached(memory_engine, {"run_id": 1}, "n", slow)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and results == [1] * 8
    assert run_cached(memory_engine, {"run_id": 2}, "n", slow) == 2  # another run: its own result


def test_a_failed_computation_is_not_kept_and_the_oldest_results_go_first(memory_engine):
    def broken():
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        run_cached(memory_engine, {"run_id": 1}, "k", broken)
    assert run_cached(memory_engine, {"run_id": 1}, "k", lambda: "computed") == "computed"
    for i in range(CACHE_SIZE):
        run_cached(memory_engine, {"run_id": 1}, ("filler", i), lambda: 0)
    assert run_cached(memory_engine, {"run_id": 1}, "k", lambda: "again") == "again"
