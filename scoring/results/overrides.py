"""Manual tier overrides (人工调整) as planners set, revoke and list them — behind ``riskgrade override`` and the
workbench's enterprise file.

The rows and their audit live in :mod:`scoring.results.tables` (:func:`~scoring.results.tables.add_override`,
:func:`~scoring.results.tables.revoke_override`); these functions add what an interface needs around them: the
enterprise must exist, and an account limited to some townships (``townships``; None = all) can neither see nor
set nor revoke an override of an enterprise outside them — such an enterprise or override is "unknown", exactly
like one that does not exist. The next nightly run applies what is in force on its date.

Status of an override on a day (:func:`override_status`): ``revoked`` (revoked on or before it), ``expired``
(``valid_until`` before it), ``scheduled`` (``valid_from`` after it), else ``active``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

import pandas as pd
import sqlalchemy as sa

from features.errors import DataError
from scoring.domain.tiers import ManualOverridePolicy
from scoring.results.ranking import find_enterprise, in_scope
from scoring.results.tables import (
    _typed_frame,
    add_override,
    create_scoring_tables,
    manual_overrides,
    revoke_override,
)

__all__ = ["OVERRIDE_STATUSES", "LIST_COLUMNS", "set_override", "lift_override", "override_list", "override_records",
           "override_status"]

OVERRIDE_STATUSES = {"active": "生效中 active", "scheduled": "待生效 scheduled", "expired": "已到期 expired",
                     "revoked": "已撤销 revoked"}

LIST_COLUMNS = ["override_id", "enterprise_id", "name", "township", "tier", "reason", "created_by", "created_at",
                "valid_from", "valid_until", "status", "revoked_by", "revoked_at", "revoke_reason"]


def _unknown(enterprise_id: str) -> DataError:
    return DataError(f"unknown enterprise {str(enterprise_id)!r}: it is neither in the enterprises table nor in any "
                     f"nightly run (check the id, e.g. with riskgrade rank)")


def set_override(engine: sa.Engine, enterprise_id: str, *, tier: str, reason: str, by: str,
                 valid_until: date | str, valid_from: date | str | None = None, policy: ManualOverridePolicy,
                 townships: Collection[str] | None = None, now: datetime | None = None) -> int:
    """Record a manual override of a known enterprise in scope (see :func:`~scoring.results.tables.add_override`
    for the rules); its ``override_id``."""
    eid = str(enterprise_id or "").strip()
    found = find_enterprise(engine, eid) if eid else None
    if found is None or not in_scope(engine, eid, townships, row=found):
        raise _unknown(eid)
    return add_override(engine, enterprise_id=eid, tier=str(tier or "").strip(), reason=reason, by=by,
                        valid_until=valid_until, valid_from=valid_from, policy=policy, now=now)


def lift_override(engine: sa.Engine, override_id: int, *, by: str, reason: str,
                  townships: Collection[str] | None = None, now: datetime | None = None) -> str:
    """Revoke an override (see :func:`~scoring.results.tables.revoke_override`) whose enterprise is in scope;
    returns that enterprise's id."""
    create_scoring_tables(engine)
    with engine.connect() as conn:
        eid = conn.execute(sa.select(manual_overrides.c.enterprise_id)
                           .where(manual_overrides.c.override_id == int(override_id))).scalar()
    if eid is None or not in_scope(engine, eid, townships):
        raise DataError(f"manual override {override_id} does not exist")
    revoke_override(engine, int(override_id), by=by, reason=reason, now=now)
    return str(eid)


def override_status(frame: pd.DataFrame, day: date) -> pd.Series:
    """Each override's status on ``day`` (see the module docstring)."""
    return pd.Series([_status(row, day) for row in frame.to_dict("records")], index=frame.index, dtype="str")


def _status(row: dict, day: date) -> str:
    def moment(value):
        return None if value is None or pd.isna(value) else pd.Timestamp(value)

    stamp = pd.Timestamp(day)
    revoked = moment(row["revoked_at"])
    if revoked is not None and revoked < stamp + pd.Timedelta(days=1):
        return "revoked"
    until, start = moment(row["valid_until"]), moment(row["valid_from"])
    if until is not None and until < stamp:
        return "expired"
    if start is not None and start > stamp:
        return "scheduled"
    return "active"


def override_records(engine: sa.Engine, *, enterprise_id: str | None = None, active_on: date | str | None = None,
                     override_id: int | None = None, townships: Collection[str] | None = None,
                     today: date | None = None) -> list[dict]:
    """The manual overrides as dicts with the keys :data:`LIST_COLUMNS` (newest first): see
    :func:`override_list`, whose rows these are (without a frame: the enterprise file lists them on every view)."""
    from features.schema import CONTRACT_TABLES

    create_scoring_tables(engine)
    o = manual_overrides.c
    enterprises = CONTRACT_TABLES["enterprises"]
    e = enterprises.c
    query = (sa.select(o.override_id, o.enterprise_id, e.name, e.township, o.tier, o.reason, o.created_by,
                       o.created_at, o.valid_from, o.valid_until, o.revoked_by, o.revoked_at, o.revoke_reason)
             .outerjoin(enterprises, e.enterprise_id == o.enterprise_id).order_by(o.override_id.desc()))
    if enterprise_id is not None:
        query = query.where(o.enterprise_id == str(enterprise_id).strip())
    if override_id is not None:
        query = query.where(o.override_id == int(override_id))
    if townships is not None:
        query = query.where(e.township.in_(sorted({str(t) for t in townships})))
    day = pd.Timestamp(active_on if active_on is not None else today or date.today()).date()
    if active_on is not None:
        next_day = datetime.combine(day, datetime.min.time()) + pd.Timedelta(days=1)
        query = query.where(o.valid_from <= day, o.valid_until >= day, o.created_at < next_day,
                            sa.or_(o.revoked_at.is_(None), o.revoked_at >= next_day))
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    return [{column: (_status(row, day) if column == "status" else row[column]) for column in LIST_COLUMNS}
            for row in rows]


def override_list(engine: sa.Engine, *, enterprise_id: str | None = None, active_on: date | str | None = None,
                  override_id: int | None = None, townships: Collection[str] | None = None,
                  today: date | None = None) -> pd.DataFrame:
    """The manual overrides (:data:`LIST_COLUMNS`, newest first) — of one enterprise, those in force on
    ``active_on``, one by id —, within the township scope; ``status`` as of ``active_on`` (else ``today``)."""
    records = override_records(engine, enterprise_id=enterprise_id, active_on=active_on, override_id=override_id,
                               townships=townships, today=today)
    frame = _typed_frame([tuple(r.values()) for r in records], LIST_COLUMNS)
    for column in ("valid_from", "valid_until", "created_at", "revoked_at"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    frame["override_id"] = frame["override_id"].astype("Int64")
    frame["status"] = frame["status"].astype("str")
    return frame[LIST_COLUMNS]
