"""The nightly batch lock: one run at a time per database, on SQLite and PostgreSQL alike.

Design — a row in the ``batch_lock`` table (:data:`scoring.results.tables.batch_lock`), not a database session lock:

- **acquire**: ``INSERT`` the row ``name = 'nightly'`` with our owner token (``host:pid:random``) in its own
  short transaction. The primary key makes a second ``INSERT`` fail on both backends, whatever the isolation
  level: the second run gets :class:`~features.errors.BatchLockedError` (exit code 6) with the holder's host,
  pid, start and last heartbeat.
- **stale locks**: a run killed with ``SIGKILL`` (or a lost machine) leaves its row. The row is *stale* when its
  holder's process is gone (same host, ``os.kill(pid, 0)`` fails) or its heartbeat is older than
  ``stale_after`` (default 30 minutes; the batch beats at every stage, a 200k-enterprise run takes about a
  minute). A stale row is taken over with ``UPDATE … WHERE name = ? AND owner = <the stale owner>``: if two
  runs race for it, exactly one update matches. The taker marks the dead holder's ``running`` batch runs as
  failed ("abandoned").
- **fencing**: inside the results transaction the batch re-checks that it still owns the row
  (``UPDATE batch_lock SET heartbeat_at … WHERE owner = me``, which must match one row). On PostgreSQL that
  update also row-locks the lock until the commit, so a takeover cannot slip in between; on SQLite the write
  transaction serialises everything. A run that was paused past ``stale_after`` and lost its lock therefore
  writes nothing.
- **release**: ``DELETE … WHERE owner = me`` in ``finally`` (also after a failure).

Why not the databases' own locks: PostgreSQL advisory locks vanish with a crash (good) but SQLite has none;
SQLite's ``BEGIN IMMEDIATE`` for the whole run would block every other writer (imports, manual overrides) for the
run's duration and turn a second run into a ``database is locked`` timeout rather than a clear refusal. One table
row behaves the same on both, is visible to operators (``SELECT * FROM batch_lock``), and can be cleared by hand
(``DELETE FROM batch_lock``) if ever needed. Times are the runs' own UTC clocks (hosts sharing a database are
assumed to keep time within minutes of each other).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from features.db import write_transaction
from features.errors import BatchLockedError
from scoring.results.tables import batch_lock, batch_runs, create_scoring_tables

__all__ = ["DEFAULT_STALE_AFTER", "BatchLock", "pid_alive"]

DEFAULT_STALE_AFTER = timedelta(minutes=30)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


class BatchLock:
    """The ``batch_lock`` row ``name`` of ``engine``'s database (see the module docstring).

    Use as a context manager (``with BatchLock(engine): ...``) or call :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, engine: sa.Engine, name: str = "nightly", *, stale_after: timedelta = DEFAULT_STALE_AFTER):
        self.engine = engine
        self.name = name
        self.stale_after = stale_after
        self.host = socket.gethostname()[:128]
        self.pid = os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self.took_over_from: str | None = None

    # -- acquire / release -------------------------------------------------------------------

    def acquire(self) -> BatchLock:
        create_scoring_tables(self.engine)
        for _ in range(3):  # the holder may release between our INSERT and our SELECT: try again
            now = _utcnow()
            try:
                with write_transaction(self.engine, what="the nightly run") as conn:  # waits for an import
                    conn.execute(batch_lock.insert().values(name=self.name, owner=self.owner, host=self.host,
                                                            pid=self.pid, acquired_at=now, heartbeat_at=now))
                self.held = True
                return self
            except sa.exc.IntegrityError:
                pass
            except sa.exc.OperationalError:  # SQLite: another run is writing its results (busy past the timeout)
                if self._holder() is None:
                    raise
            holder = self._holder()
            if holder is None:
                continue
            if not self._stale(holder, now):
                raise BatchLockedError(
                    f"another nightly run holds the batch lock of this database: {holder['owner']} (host "
                    f"{holder['host']}, pid {holder['pid']}) since {holder['acquired_at']:%Y-%m-%d %H:%M:%S} UTC, "
                    f"last heartbeat {holder['heartbeat_at']:%Y-%m-%d %H:%M:%S} UTC. Wait for it to finish; a lock "
                    f"whose process is gone, or without heartbeat for {_minutes(self.stale_after)}, is taken over "
                    f"automatically")
            if self._take_over(holder):
                return self
        raise BatchLockedError(f"could not acquire the batch lock {self.name!r}: other runs keep taking it")

    def release(self) -> None:
        if not self.held:
            return
        with self.engine.begin() as conn:
            conn.execute(batch_lock.delete().where(batch_lock.c.name == self.name,
                                                   batch_lock.c.owner == self.owner))
        self.held = False

    def __enter__(self) -> BatchLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- while held ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        """Tell other runs we are alive (own short transaction)."""
        with self.engine.begin() as conn:
            self.verify(conn)

    def verify(self, conn: sa.Connection) -> None:
        """Inside a transaction: refresh the heartbeat, failing if the lock is no longer ours (fencing)."""
        updated = conn.execute(batch_lock.update()
                               .where(batch_lock.c.name == self.name, batch_lock.c.owner == self.owner)
                               .values(heartbeat_at=_utcnow())).rowcount
        if updated != 1:
            self.held = False
            raise BatchLockedError(
                f"this run lost the batch lock {self.name!r} (no heartbeat for {_minutes(self.stale_after)}, taken "
                f"over by another run): nothing was written")

    # -- helpers ---------------------------------------------------------------------------------

    def _holder(self) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(batch_lock).where(batch_lock.c.name == self.name)).mappings().first()
        return None if row is None else dict(row)

    def _stale(self, holder: dict, now: datetime) -> bool:
        if holder["host"] == self.host and holder["pid"] != self.pid and not pid_alive(int(holder["pid"])):
            return True
        return now - holder["heartbeat_at"] > self.stale_after

    def _take_over(self, holder: dict) -> bool:
        now = _utcnow()
        with self.engine.begin() as conn:
            taken = conn.execute(batch_lock.update()
                                 .where(batch_lock.c.name == self.name, batch_lock.c.owner == holder["owner"])
                                 .values(owner=self.owner, host=self.host, pid=self.pid, acquired_at=now,
                                         heartbeat_at=now)).rowcount
            if taken != 1:
                return False
            conn.execute(batch_runs.update()
                         .where(batch_runs.c.owner == holder["owner"], batch_runs.c.status == "running")
                         .values(status="failed", finished_at=now,
                                 error=f"abandoned: its process ({holder['owner']}) stopped without finishing; "
                                       f"lock taken over by {self.owner}"))
        self.held = True
        self.took_over_from = holder["owner"]
        return True


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} minutes"
