"""Results kept in memory per nightly run: what depends only on a succeeded run's stored rows never changes (a
re-run of a date is a new run id), so the workbench's pages compute it once per server process.

    from scoring.results.run_cache import run_cached

    total = run_cached(engine, run, ("count", filters), lambda: count_rows(...))

At most :data:`CACHE_SIZE` results are kept (the least recently used go first); the server's threads share them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import sqlalchemy as sa

__all__ = ["CACHE_SIZE", "clear_run_cache", "run_cached"]

CACHE_SIZE = 512
T = TypeVar("T")

_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_LOCK = threading.Lock()
_PENDING: dict[tuple, threading.Lock] = {}


def run_cached(engine: sa.Engine, run: dict, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` for the run ``run`` of the database ``engine`` and ``key``, computed once and then kept.
    Threads asking for the same key meanwhile wait for that one computation (twenty planners opening the list
    after the nightly run start one count, not twenty)."""
    full = (str(engine.url), run["run_id"], key)
    with _LOCK:
        if full in _CACHE:
            _CACHE.move_to_end(full)
            return _CACHE[full]
        pending = _PENDING.setdefault(full, threading.Lock())
    with pending:
        with _LOCK:
            if full in _CACHE:  # computed by the thread this one waited for
                return _CACHE[full]
        try:
            value = compute()
        except BaseException:
            with _LOCK:
                _PENDING.pop(full, None)
            raise
        with _LOCK:
            _CACHE[full] = value
            _PENDING.pop(full, None)
            while len(_CACHE) > CACHE_SIZE:
                _CACHE.popitem(last=False)
    return value


def clear_run_cache() -> None:
    """Forget every kept result (tests that rewrite a run's rows in place)."""
    with _LOCK:
        _CACHE.clear()
