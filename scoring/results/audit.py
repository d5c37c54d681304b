"""The audit trail of every change made through riskgrade (审计日志): who, when, what, before and after.

``audit_log`` (on :data:`features.schema.metadata`) holds one row per change — a manual override added, revoked
or expired, a plan generated or approved, a capacity edited, an account created or changed:

- ``audit_id``; ``at`` (naive UTC); ``actor`` (an account's username, or ``riskgrade batch``);
- ``action`` (``override.add``, ``override.revoke``, ``account.disable``, …: ``<kind>.<verb>``);
- ``target_kind`` / ``target_id`` (``override`` / ``17``, ``account`` / ``wang``, ``plan`` / ``3``);
- ``enterprise_id``: the enterprise the change is about, when there is one (the audit page of an account
  limited to some townships shows only rows whose enterprise lies in them);
- ``before`` / ``after``: JSON of what changed (``None`` for a creation's ``before``); ``note``: free text.

Rows are only ever inserted. :func:`record_audit` takes the *connection of the change's own transaction*, so a
change and its audit row are committed together or not at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pandas as pd
import sqlalchemy as sa

from features.schema import CONTRACT_TABLES, metadata

__all__ = ["AUDIT_COLUMNS", "audit_frame", "audit_log", "create_audit_table", "record_audit"]

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),  # naive UTC
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),  # <kind>.<verb>: override.add, account.set_role, ...
    sa.Column("target_kind", sa.String(32), nullable=False),  # override, plan, account, capacity, ...
    sa.Column("target_id", sa.String(128), nullable=True),
    sa.Column("enterprise_id", sa.String(64), nullable=True),  # the enterprise concerned, if any (township scope)
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Index("ix_audit_log_target", "target_kind", "target_id"),
    sa.Index("ix_audit_log_actor", "actor"),
    sa.Index("ix_audit_log_enterprise_id", "enterprise_id"),
    comment="Every change made through riskgrade: who, when, what, before and after (insert only).",
)

AUDIT_COLUMNS: tuple[str, ...] = tuple(c.name for c in audit_log.columns)


def create_audit_table(bind: sa.Engine | sa.Connection) -> None:
    """Create ``audit_log`` if it does not exist yet (idempotent)."""
    metadata.create_all(bind, tables=[audit_log], checkfirst=True)


def _utcnow(now: datetime | None) -> datetime:
    moment = now or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: dates as ISO text, sets sorted into lists, dataclasses as mappings,
    NaN / NA as ``None``, numpy scalars as Python numbers."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return jsonable(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def record_audit(conn: sa.Connection, *, actor: str, action: str, target_kind: str, target_id: Any,
                 before: Any = None, after: Any = None, note: str | None = None, enterprise_id: str | None = None,
                 now: datetime | None = None) -> int:
    """Write one ``audit_log`` row on ``conn`` — the connection of the change's own transaction — and return its
    ``audit_id``. ``before`` / ``after`` are stored as JSON (see :func:`jsonable`).

    The table must exist (:func:`create_audit_table`; :func:`scoring.results.tables.create_scoring_tables` creates
    it too): no DDL runs inside the change's transaction. Raises ``ValueError`` without an actor, an action or a
    target kind: an audit row must say who did what.
    """
    if not str(actor or "").strip():
        raise ValueError("audit: the actor (who) is required")
    if not str(action or "").strip() or not str(target_kind or "").strip():
        raise ValueError("audit: the action and the target kind (what) are required")
    row = conn.execute(audit_log.insert().values(
        at=_utcnow(now), actor=str(actor).strip(), action=str(action), target_kind=str(target_kind),
        target_id=None if target_id is None else str(target_id),
        enterprise_id=None if enterprise_id is None else str(enterprise_id),
        before=jsonable(before), after=jsonable(after), note=note,
    ))
    return int(row.inserted_primary_key[0])


def audit_frame(engine: sa.Engine, *, limit: int | None = None, offset: int = 0, actor: str | None = None,
                action: str | None = None, target_kind: str | None = None, target_id: Any = None,
                enterprise_id: str | None = None, since: datetime | None = None,
                townships: Collection[str] | None = None) -> pd.DataFrame:
    """The audit rows matching every filter given, newest first (columns :data:`AUDIT_COLUMNS`).

    ``townships`` (``None`` = all): only rows about an enterprise (``enterprise_id``) whose township, in the
    ``enterprises`` table, is one of them; rows about no enterprise (accounts, plans) are then left out.
    ``since``: rows at or after that moment (naive UTC).
    """
    create_audit_table(engine)
    a = audit_log
    query = sa.select(a)
    filters = {"actor": actor, "action": action, "target_kind": target_kind,
               "target_id": None if target_id is None else str(target_id), "enterprise_id": enterprise_id}
    for name, value in filters.items():
        if value is not None:
            query = query.where(a.c[name] == value)
    if since is not None:
        query = query.where(a.c.at >= _utcnow(since))
    if townships is not None:
        enterprises = CONTRACT_TABLES["enterprises"]
        query = query.where(a.c.enterprise_id.in_(
            sa.select(enterprises.c.enterprise_id).where(enterprises.c.township.in_(sorted(townships)))))
    query = query.order_by(a.c.audit_id.desc())
    if limit is not None:
        query = query.limit(int(limit))
    if offset:
        query = query.offset(int(offset))
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(AUDIT_COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"]).astype("datetime64[ns]")
    return frame
