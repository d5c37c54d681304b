"""Scoring-side database tables (on :data:`features.schema.metadata`) and their small I/O functions.

Manual tier overrides (人工调整) carry who, why and until when, and every change is audited:

- ``manual_overrides`` — one row per override: enterprise, tier, reason, created_by / created_at,
  ``valid_from`` .. ``valid_until`` (both inclusive), and when revoked or expired, by whom and when.
- ``manual_override_audit`` — one row per action (``create``, ``revoke``, ``expire``) with the actor, the time
  and a note. Rows are only ever inserted.

Each of these actions also writes its row of the general ``audit_log`` (:mod:`scoring.results.audit`: actions
``override.add`` / ``override.revoke`` / ``override.expire``, with before and after) in the same transaction.

Time semantics of :func:`overrides_active_at` (``as_of`` a date): an override is active when
``valid_from <= as_of <= valid_until``, it was created on or before ``as_of`` (``created_at`` date), and it was
not revoked on or before ``as_of`` (so re-running an old date gives the old answer). Expiry needs no action to
take effect; :func:`expire_overrides` (called by the nightly batch) records it in the audit trail once.

The outputs of the nightly batch (:mod:`scoring.results.batch`) and of the planner (DESIGN.md §10):

- ``batch_runs`` — one row per run: status, as-of date, model, policy hash, data watermark, counts, timings, error;
- ``scores_history`` — one row per (as-of date, enterprise): probability, points, tiers, overrides, reasons,
  supervision limits, rank (a re-run of a date replaces its rows: :func:`scores_frame`, :func:`previous_tiers`);
- ``tier_changes`` — one row per (as-of date, enterprise) whose final tier changed since the previous run;
- ``plans`` / ``plan_items`` — every stored monthly plan and its visits (:func:`store_plan`, :func:`load_plan`);
- ``batch_lock`` — who is running the batch (:mod:`scoring.results.lock`).

:func:`current_limits` (what ``riskgrade plan`` plans from) reads the nightly run of the date when there is one.

Timestamps are stored as naive UTC.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Collection
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.errors import DataError
from features.schema import create_tables, metadata
from scoring.domain.tiers import TIERS, ManualOverridePolicy
from scoring.results.audit import audit_log, record_audit

__all__ = [
    "manual_overrides",
    "manual_override_audit",
    "create_scoring_tables",
    "add_override",
    "revoke_override",
    "expire_overrides",
    "overrides_active_at",
    "override_audit_trail",
    "current_limits",
    "batch_runs",
    "scores_history",
    "tier_changes",
    "plans",
    "plan_items",
    "batch_lock",
    "latest_run",
    "runs_frame",
    "scores_frame",
    "scores_row",
    "previous_tiers",
    "refresh_statistics",
    "RecordRows",
    "enterprise_history",
    "enterprise_history_rows",
    "enterprise_changes",
    "enterprise_changes_rows",
    "record_frame",
    "store_plan",
    "drawn_ids",
    "enterprise_values",
    "insert_plan",
    "plan_records",
    "load_plan",
]

manual_overrides = sa.Table(
    "manual_overrides",
    metadata,
    sa.Column("override_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("enterprise_id", sa.String(64), nullable=False),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),
    sa.Column("revoked_by", sa.String(128), nullable=True),
    sa.Column("revoked_at", sa.DateTime, nullable=True),
    sa.Column("revoke_reason", sa.Text, nullable=True),
    sa.Column("expired_at", sa.DateTime, nullable=True),
    sa.CheckConstraint("valid_until >= valid_from", name="ck_manual_overrides_period"),
    sa.Index("ix_manual_overrides_enterprise_id", "enterprise_id"),
    comment="Manual tier overrides: who, why, until when (audited in manual_override_audit).",
)

manual_override_audit = sa.Table(
    "manual_override_audit",
    metadata,
    sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("override_id", sa.Integer, sa.ForeignKey("manual_overrides.override_id"), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # create / revoke / expire
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Index("ix_manual_override_audit_override_id", "override_id"),
    comment="Every create / revoke / expire of a manual override, with who and when.",
)

_TABLES = [manual_overrides, manual_override_audit, audit_log]


_UPGRADED: "weakref.WeakKeyDictionary[sa.Engine, bool]" = weakref.WeakKeyDictionary()


def create_scoring_tables(engine: sa.Engine) -> None:
    """Create the scoring-side tables that do not exist yet, and bring older ones up to date (idempotent)."""
    if engine in _UPGRADED:  # once per engine: the workbench calls this on every page
        return
    create_tables(engine, _TABLES)
    _upgrade_output_tables(engine)
    _UPGRADED[engine] = True


def _upgrade_output_tables(engine: sa.Engine) -> None:
    """Databases made before the workbench: the ranked list's indexes on ``scores_history`` and the plan columns
    ``version``, ``status``, ``approved_by``, ``approved_at`` (older plans numbered per period, as drafts); made
    before issue 16: the expected-finds columns of ``scores_history`` (``expected_hazards``,
    ``expected_major_hazards``, ``finds_model_version``; NULL in older runs' rows) — in one transaction."""
    inspector = sa.inspect(engine)
    missing_indexes = []
    for table in (scores_history, plans):
        have_indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        missing_indexes += [i for i in table.indexes if i.name not in have_indexes]
    missing_columns = []  # (table, column): every added column is nullable
    for table in (plans, scores_history):
        have_columns = {c["name"] for c in inspector.get_columns(table.name)}
        missing_columns += [(table, c) for c in table.columns if c.name not in have_columns]
    if not missing_indexes and not missing_columns:
        return
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table, column in missing_columns:
            conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} "
                                 f"{column.type.compile(dialect=conn.dialect)}"))
        missing_columns = [c for t, c in missing_columns if t is plans]
        if "version" in {c.name for c in missing_columns}:
            conn.execute(sa.text(
                "UPDATE plans SET version = numbered.n FROM (SELECT plan_id, row_number() OVER "
                "(PARTITION BY period ORDER BY plan_id) AS n FROM plans) AS numbered "
                "WHERE plans.plan_id = numbered.plan_id"))
        if "status" in {c.name for c in missing_columns}:
            conn.execute(sa.text("UPDATE plans SET status = 'draft'"))
        for index in missing_indexes:
            index.create(conn)
        if any(i.name == "ix_scores_history_as_of_rank_id" for i in missing_indexes):
            conn.execute(sa.text("DROP INDEX IF EXISTS ix_scores_history_as_of_rank"))  # (as_of, rank): superseded


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _as_date(value: date | str | pd.Timestamp) -> date:
    return pd.Timestamp(value).date()


def add_override(
    engine: sa.Engine,
    *,
    enterprise_id: str,
    tier: str,
    reason: str,
    by: str,
    valid_until: date | str,
    valid_from: date | str | None = None,
    policy: ManualOverridePolicy,
    now: datetime | None = None,
) -> int:
    """Record a manual override (and its ``create`` audit row); returns its ``override_id``.

    Refused (:class:`DataError`) without a reason or an author, with an unknown tier, an expiry before the
    start, or lasting longer than ``policy.max_days``.
    """
    moment = _now(now)
    start = _as_date(valid_from) if valid_from is not None else moment.date()
    until = _as_date(valid_until)
    if tier not in TIERS:
        raise DataError(f"manual override: tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if not str(reason or "").strip():
        raise DataError("manual override: a reason (why) is required")
    if not str(by or "").strip():
        raise DataError("manual override: the author (who) is required")
    if until < start:
        raise DataError(f"manual override: valid_until {until} is before valid_from {start}")
    if (until - start).days + 1 > policy.max_days:
        raise DataError(f"manual override: {(until - start).days + 1} days is longer than the policy allows "
                        f"(overrides.manual.max_days = {policy.max_days}); renew it instead")
    create_scoring_tables(engine)
    values = dict(enterprise_id=str(enterprise_id), tier=tier, reason=reason.strip(), created_by=by.strip(),
                  created_at=moment, valid_from=start, valid_until=until)
    note = f"{enterprise_id} -> {tier} from {start} until {until}: {reason.strip()}"
    with engine.begin() as conn:
        override_id = conn.execute(manual_overrides.insert().values(**values)).inserted_primary_key[0]
        conn.execute(manual_override_audit.insert().values(
            override_id=override_id, action="create", actor=by.strip(), at=moment, note=note))
        record_audit(conn, actor=by, action="override.add", target_kind="override", target_id=override_id,
                     enterprise_id=str(enterprise_id), after=values, note=note, now=moment)
    return int(override_id)


def revoke_override(engine: sa.Engine, override_id: int, *, by: str, reason: str,
                    now: datetime | None = None) -> None:
    """Revoke an override (and write the ``revoke`` audit row). Refused if unknown or already revoked."""
    moment = _now(now)
    if not str(by or "").strip() or not str(reason or "").strip():
        raise DataError("revoking a manual override needs who (by) and why (reason)")
    create_scoring_tables(engine)
    with engine.begin() as conn:
        row = conn.execute(sa.select(manual_overrides.c.revoked_at, manual_overrides.c.enterprise_id,
                                     manual_overrides.c.revoked_by, manual_overrides.c.revoke_reason).where(
            manual_overrides.c.override_id == override_id)).first()
        if row is None:
            raise DataError(f"manual override {override_id} does not exist")
        if row.revoked_at is not None:
            raise DataError(f"manual override {override_id} was already revoked on {row.revoked_at:%Y-%m-%d}")
        change = dict(revoked_by=by.strip(), revoked_at=moment, revoke_reason=reason.strip())
        conn.execute(manual_overrides.update().where(manual_overrides.c.override_id == override_id).values(**change))
        conn.execute(manual_override_audit.insert().values(
            override_id=override_id, action="revoke", actor=by.strip(), at=moment, note=reason.strip()))
        record_audit(conn, actor=by, action="override.revoke", target_kind="override", target_id=override_id,
                     enterprise_id=row.enterprise_id, before={k: getattr(row, k) for k in change}, after=change,
                     note=reason.strip(), now=moment)


def expire_overrides(engine: sa.Engine, as_of: date | str, *, by: str = "riskgrade batch",
                     now: datetime | None = None) -> int:
    """Mark overrides whose ``valid_until`` is before ``as_of`` (not revoked, not yet marked) as expired, one
    ``expire`` audit row each; returns how many. Idempotent."""
    moment = _now(now)
    day = _as_date(as_of)
    create_scoring_tables(engine)
    with engine.begin() as conn:
        due = conn.execute(sa.select(manual_overrides.c.override_id, manual_overrides.c.valid_until,
                                     manual_overrides.c.enterprise_id).where(
            manual_overrides.c.valid_until < day,
            manual_overrides.c.revoked_at.is_(None),
            manual_overrides.c.expired_at.is_(None),
        )).all()
        for override_id, until, enterprise_id in due:
            conn.execute(manual_overrides.update().where(manual_overrides.c.override_id == override_id)
                         .values(expired_at=moment))
            conn.execute(manual_override_audit.insert().values(
                override_id=override_id, action="expire", actor=by, at=moment, note=f"valid until {until}"))
            record_audit(conn, actor=by, action="override.expire", target_kind="override", target_id=override_id,
                         enterprise_id=enterprise_id, before={"expired_at": None}, after={"expired_at": moment},
                         note=f"valid until {until}", now=moment)
    return len(due)


_ACTIVE_COLUMNS = ["override_id", "enterprise_id", "tier", "reason", "created_by", "created_at", "valid_from",
                   "valid_until"]


def overrides_active_at(engine: sa.Engine, as_of: date | str, *, enterprise_id: str | None = None) -> pd.DataFrame:
    """The overrides in force on ``as_of`` (see the module docstring) — of every enterprise, or of
    ``enterprise_id`` — as the frame :func:`scoring.domain.tiers.assign_tiers` takes (``manual=``)."""
    day = _as_date(as_of)
    next_day = datetime.combine(day + timedelta(days=1), datetime.min.time())
    create_scoring_tables(engine)
    t = manual_overrides
    query = sa.select(*(t.c[name] for name in _ACTIVE_COLUMNS)).where(
        t.c.valid_from <= day,
        t.c.valid_until >= day,
        t.c.created_at < next_day,
        sa.or_(t.c.revoked_at.is_(None), t.c.revoked_at >= next_day),
    ).order_by(t.c.override_id)
    if enterprise_id is not None:
        query = query.where(t.c.enterprise_id == str(enterprise_id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=_ACTIVE_COLUMNS)
    frame["override_id"] = frame["override_id"].astype("Int64")
    for column in ("enterprise_id", "tier", "reason", "created_by"):
        frame[column] = frame[column].astype("str")
    for column in ("created_at", "valid_from", "valid_until"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame


def override_audit_trail(engine: sa.Engine, override_id: int | None = None) -> pd.DataFrame:
    """The audit rows (all, or one override's), oldest first."""
    create_scoring_tables(engine)
    a, t = manual_override_audit, manual_overrides
    query = (sa.select(a.c.audit_id, a.c.override_id, t.c.enterprise_id, a.c.action, a.c.actor, a.c.at, a.c.note)
             .join(t, t.c.override_id == a.c.override_id).order_by(a.c.audit_id))
    if override_id is not None:
        query = query.where(a.c.override_id == override_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["audit_id", "override_id", "enterprise_id", "action", "actor", "at",
                                        "note"])
    frame["at"] = pd.to_datetime(frame["at"]).astype("datetime64[ns]")
    return frame


# ---------------------------------------------------------------------------------------------
# Current supervision limits (what `riskgrade plan` plans from)
# ---------------------------------------------------------------------------------------------


def current_limits(engine: sa.Engine, as_of: date | str, policy, *, tracking_uri: str | None = None) -> pd.DataFrame:
    """Supervision limits of every enterprise active at ``as_of`` (``policy``: a :class:`scoring.domain.policy.Policy`).

    - When a **succeeded nightly run of that date** exists, its stored rows are read (no model, no recomputation):
      the plan then uses exactly the tiers and limits the batch published. Column ``run_id`` names the run.
    - Otherwise they are **computed on the fly** like the batch does, without writing anything: contract tables
      from ``engine`` → features as of ``as_of`` → calibrated probability of the MLflow ``champion`` model
      (:class:`~features.errors.NoChampionError` if none) → :func:`~scoring.domain.tiers.assign_tiers` with hysteresis
      from the latest stored run before ``as_of`` and the manual overrides active at ``as_of`` →
      :func:`~scoring.domain.supervision.supervision_limits`. Column ``run_id`` is then missing (NA).

    Same columns either way (those of :func:`~scoring.domain.supervision.supervision_limits`, plus ``name``, ``model``
    and ``run_id``).
    """
    day = pd.Timestamp(_as_date(as_of))
    run = latest_run(engine, day.date())
    if run is not None:
        return _stored_limits(engine, run, policy)
    return _limits_on_the_fly(engine, day, policy, tracking_uri)


def _stored_limits(engine: sa.Engine, run: dict, policy) -> pd.DataFrame:
    names = [c.name for c in scores_history.columns if c.name not in ("reasons", "last_model_high_on",
                                                                     "expected_major_hazards")]
    return limits_from_rows(scores_frame(engine, run["as_of"], columns=names), policy, run_id=int(run["run_id"]))


def limits_from_rows(rows: pd.DataFrame, policy, *, run_id: int | None) -> pd.DataFrame:
    """The supervision limits a plan is made from, out of one run's ``scores_history`` rows (read back, or
    :attr:`scoring.results.batch.NightlyResult.scores` before they are written): the columns of
    :func:`~scoring.domain.supervision.supervision_limits` plus ``name``, ``model`` and ``run_id``.

    The typical team's expected finds the run stored come as ``stored_expected_hazards`` and
    ``stored_finds_model``, not as ``expected_hazards``: a limits column of that name would take over the plan's
    ranking (:func:`scoring.domain.planning.plan_inspections`), NULLs included, whatever the policy says; the plan
    decides whether to rank by them (:func:`scoring.results.plans.plan_from_limits`)."""
    from features.contract import SECTOR_BY_CODE
    from scoring.domain.supervision import MODES

    frame = rows.drop(columns=[c for c in ("reasons", "last_model_high_on", "expected_major_hazards")
                               if c in rows.columns])
    frame = frame.rename(columns={"rank": "list_rank", "score_rank": "rank", "next_allowed_visit": "next_routine_on",
                                  "model_version": "model", "expected_hazards": "stored_expected_hazards",
                                  "finds_model_version": "stored_finds_model"})
    for column in ("enterprise_id", "name", "sector", "township", "model_tier", "final_tier", "mode", "cap_class",
                   "class_basis", "followup_department", "override_codes", "override_cause", "eligibility"):
        frame[column] = frame[column].astype("str")
    for column in ("override_codes", "override_cause", "eligibility"):
        frame[column] = frame[column].fillna("")
    for column in ("yearly_cap", "visits_used", "visits_left", "open_major_hazards", "overdue_major_hazards",
                   "rank", "list_rank"):
        frame[column] = frame[column].astype("Int64")
    for column in ("veto", "special_assistance"):
        frame[column] = frame[column].astype("boolean")
    frame["cap_group"] = frame["sector"].map(lambda s: SECTOR_BY_CODE[s].cap_group if s in SECTOR_BY_CODE else pd.NA)
    frame["mode_zh"] = frame["mode"].map(MODES).astype("str")
    frame["quiet_period"] = frame["final_tier"].isin(policy.supervision.quiet_period.tiers)
    frame["min_inspectors"] = policy.supervision.inspectors.min
    frame["max_inspectors"] = policy.supervision.inspectors.max
    frame["run_id"] = pd.NA if run_id is None else int(run_id)
    return frame


def _limits_on_the_fly(engine: sa.Engine, day: pd.Timestamp, policy, tracking_uri: str | None) -> pd.DataFrame:
    from features import build_features
    from features.store import load_tables
    from models.registry import load_champion
    from scoring.results.batch import hysteresis_history
    from scoring.domain.supervision import supervision_limits
    from scoring.domain.tiers import assign_tiers

    tables = load_tables(engine)
    champion = load_champion(tracking_uri)
    features = build_features(tables, [day])
    ids = features.index.get_level_values("enterprise_id").astype("str")
    scores = pd.DataFrame({"enterprise_id": ids, "probability": champion.model.predict_proba(features)[:, 1]})
    tiers = assign_tiers(scores, tables, as_of=day, tiers=policy.tiers, overrides=policy.overrides,
                         history=hysteresis_history(previous_tiers(engine, day)),
                         manual=overrides_active_at(engine, day)).tiers
    limits = supervision_limits(tiers, tables, as_of=day, policy=policy.supervision)
    names = tables["enterprises"].set_index("enterprise_id")["name"]
    limits.insert(1, "name", limits["enterprise_id"].map(names))
    limits["model"] = f"{champion.name} v{champion.version} ({champion.kind})"
    limits["run_id"] = pd.NA
    return limits


# ---------------------------------------------------------------------------------------------
# Output tables of the nightly batch and the planner (DESIGN.md §10)
# ---------------------------------------------------------------------------------------------
#
# batch_runs      one row per nightly run: status running → succeeded | failed (| superseded when a later run of
#                 the same as-of date replaced its rows), model, policy hash, data watermark, counts, timings.
# scores_history  one row per (as_of, enterprise): what the run decided — probability, points, tiers, overrides,
#                 reasons, supervision limits, rank. Exactly one row per key: a re-run of a date replaces them.
# tier_changes    one row per (as_of, enterprise) whose final tier differs from the previous run's.
# plans           one row per stored monthly plan (period, seed, the run its limits came from, draws, unmet).
# plan_items      the plan's visits.
# batch_lock      at most one row per lock name: who runs the batch (see scoring.results.lock).

RUN_STATUSES = ("running", "succeeded", "failed", "superseded")

batch_runs = sa.Table(
    "batch_runs",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("owner", sa.String(200), nullable=True),  # the batch lock owner (host:pid:token)
    sa.Column("model_name", sa.String(64), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("model_kind", sa.String(32), nullable=True),
    sa.Column("model_source", sa.String(32), nullable=True),  # champion / expert_card (fallback)
    sa.Column("policy_hash", sa.String(32), nullable=True),
    sa.Column("data_watermark", sa.JSON, nullable=True),  # per table: rows, latest recorded_on
    sa.Column("n_scored", sa.Integer, nullable=True),
    sa.Column("n_low", sa.Integer, nullable=True),
    sa.Column("n_general", sa.Integer, nullable=True),
    sa.Column("n_high", sa.Integer, nullable=True),
    sa.Column("n_vetoes", sa.Integer, nullable=True),
    sa.Column("n_special_assistance", sa.Integer, nullable=True),
    sa.Column("n_manual", sa.Integer, nullable=True),
    sa.Column("n_changes", sa.Integer, nullable=True),
    sa.Column("timings", sa.JSON, nullable=True),  # seconds per stage
    sa.Column("warning", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("superseded_by", sa.Integer, nullable=True),
    sa.Index("ix_batch_runs_as_of_status", "as_of", "status"),
    comment="Nightly batch runs: status, as-of date, model, policy hash, data watermark, counts, duration, error.",
)

scores_history = sa.Table(
    "scores_history",
    metadata,
    sa.Column("as_of", sa.Date, primary_key=True),
    sa.Column("enterprise_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("batch_runs.run_id"), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("sector", sa.String(32), nullable=True),
    sa.Column("township", sa.Text, nullable=True),
    sa.Column("probability", sa.Float, nullable=False),  # calibrated
    sa.Column("points", sa.Float, nullable=True),  # the model's points (higher = safer)
    sa.Column("score_rank", sa.Integer, nullable=True),  # by probability alone (1 = riskiest, ties share)
    sa.Column("rank", sa.Integer, nullable=False),  # the ranked list: final tier first, then probability
    sa.Column("model_tier", sa.String(16), nullable=False),
    sa.Column("eligibility", sa.Text, nullable=True),  # why not low ("" / NULL: eligible)
    sa.Column("final_tier", sa.String(16), nullable=False),
    sa.Column("veto", sa.Boolean, nullable=False),
    sa.Column("special_assistance", sa.Boolean, nullable=False),
    sa.Column("override_codes", sa.Text, nullable=True),
    sa.Column("override_cause", sa.Text, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=True),  # top reasons: [{feature, text_zh, text_en, value, contribution}]
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("cap_class", sa.String(16), nullable=True),
    sa.Column("class_basis", sa.Text, nullable=True),
    sa.Column("yearly_cap", sa.Integer, nullable=True),
    sa.Column("visits_used", sa.Integer, nullable=True),
    sa.Column("visits_left", sa.Integer, nullable=True),
    sa.Column("last_visit_on", sa.Date, nullable=True),
    sa.Column("next_allowed_visit", sa.Date, nullable=True),  # next counted visit allowed (spacing, cap, quiet)
    sa.Column("floor_due_on", sa.Date, nullable=True),
    sa.Column("open_major_hazards", sa.Integer, nullable=True),
    sa.Column("overdue_major_hazards", sa.Integer, nullable=True),
    sa.Column("followup_due_on", sa.Date, nullable=True),
    sa.Column("followup_department", sa.Text, nullable=True),
    sa.Column("last_model_high_on", sa.Date, nullable=True),  # hysteresis: the last run whose model tier was high
    # expected finds of one visit by a typical team (scoring.results.batch.typical_team_finds): hazards of every
    # level and the major ones among them; NULL when no expected-finds champion is registered (issue 16, item 4)
    sa.Column("expected_hazards", sa.Float, nullable=True),
    sa.Column("expected_major_hazards", sa.Float, nullable=True),
    sa.Column("finds_model_version", sa.String(64), nullable=True),  # the expected-finds model behind them
    sa.Index("ix_scores_history_enterprise_as_of", "enterprise_id", "as_of"),
    # the ranked list's sort keys and filters (scoring.results.ranking.SORT_KEYS), each with its tie-breakers and
    # ending in enterprise_id, so that a page of keys is read from the index alone (deep OFFSETs stay cheap)
    sa.Index("ix_scores_history_as_of_rank_id", "as_of", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_probability", "as_of", "probability", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_points", "as_of", "points", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_name", "as_of", "name", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_township", "as_of", "township", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_sector", "as_of", "sector", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_tier", "as_of", "final_tier", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_visits", "as_of", "visits_used", "rank", "enterprise_id"),
    sa.Index("ix_scores_history_as_of_overrides", "as_of", "override_codes", "rank", "enterprise_id"),
    comment="What each nightly run decided per enterprise (one row per as-of date and enterprise).",
)

tier_changes = sa.Table(
    "tier_changes",
    metadata,
    sa.Column("as_of", sa.Date, primary_key=True),
    sa.Column("enterprise_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("batch_runs.run_id"), nullable=False),
    sa.Column("previous_as_of", sa.Date, nullable=True),
    sa.Column("from_tier", sa.String(16), nullable=True),  # NULL: not scored by the previous run
    sa.Column("to_tier", sa.String(16), nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Index("ix_tier_changes_enterprise_id", "enterprise_id"),
    comment="Final-tier changes from one run to the next, with their cause.",
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("plan_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("period", sa.String(7), nullable=False),  # YYYY-MM
    sa.Column("as_of", sa.Date, nullable=False),  # the limits' date (first day of the period)
    sa.Column("seed", sa.BigInteger, nullable=False),  # the double-random draw's seed
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=True),
    sa.Column("source_run_id", sa.Integer, nullable=True),  # the nightly run the limits came from (NULL: on the fly)
    sa.Column("limits_source", sa.Text, nullable=True),
    sa.Column("policy_hash", sa.String(32), nullable=True),
    sa.Column("n_items", sa.Integer, nullable=False),
    sa.Column("capacity", sa.JSON, nullable=True),  # per department: capacity, used, left
    sa.Column("draws", sa.JSON, nullable=True),  # the double-random strata (pool digest, ids drawn)
    sa.Column("unmet", sa.JSON, nullable=True),  # mandatory visits that did not fit
    sa.Column("version", sa.Integer, nullable=True),  # 1, 2, … per period (scoring.results.plans)
    sa.Column("status", sa.String(16), nullable=True),  # draft / approved (an approved plan is frozen)
    sa.Column("approved_by", sa.String(128), nullable=True),
    sa.Column("approved_at", sa.DateTime, nullable=True),
    sa.Index("ix_plans_period", "period"),
    sa.Index("ux_plans_period_version", "period", "version", unique=True),
    comment="Stored monthly inspection plans (every planning run against the database).",
)

plan_items = sa.Table(
    "plan_items",
    metadata,
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("plans.plan_id"), primary_key=True),
    sa.Column("priority", sa.Integer, primary_key=True),
    sa.Column("enterprise_id", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("township", sa.Text, nullable=True),
    sa.Column("sector", sa.String(32), nullable=True),
    sa.Column("final_tier", sa.String(16), nullable=True),
    sa.Column("mode", sa.String(16), nullable=True),
    sa.Column("departments", sa.Text, nullable=True),
    sa.Column("joint", sa.Boolean, nullable=True),
    sa.Column("kind", sa.String(32), nullable=True),
    sa.Column("stages", sa.Text, nullable=True),
    sa.Column("counts_toward_cap", sa.Boolean, nullable=True),
    sa.Column("window_start", sa.Date, nullable=True),
    sa.Column("window_end", sa.Date, nullable=True),
    sa.Column("n_inspectors", sa.Integer, nullable=True),
    sa.Column("reason_codes", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("expected_hazards", sa.Float, nullable=True),
    sa.Column("probability", sa.Float, nullable=True),
    sa.Column("visits_used", sa.Integer, nullable=True),
    sa.Column("yearly_cap", sa.Integer, nullable=True),
    sa.Index("ix_plan_items_enterprise_id", "enterprise_id"),
    comment="The visits of a stored plan.",
)

batch_lock = sa.Table(
    "batch_lock",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),  # host:pid:token
    sa.Column("host", sa.String(128), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
    comment="Who runs the nightly batch right now (one row per lock; see scoring/results/lock.py).",
)

OUTPUT_TABLES = [batch_runs, scores_history, tier_changes, plans, plan_items, batch_lock]
_TABLES.extend(OUTPUT_TABLES)


SQLITE_ANALYSIS_ROWS = 10_000
"""Rows of each index that SQLite's ANALYZE samples (``PRAGMA analysis_limit``): enough for the planner to tell a
township (a few hundred rows of a run) from a tier (a third of it), in well under a second at 1M rows."""


def refresh_statistics(engine: sa.Engine, tables: Collection[sa.Table]) -> None:
    """The query planner's statistics of ``tables`` brought up to date after a bulk write. SQLite keeps none until
    asked, and then reads a township's few hundred rows of the ranked list through the index of a tier's tens of
    thousands; PostgreSQL's autovacuum would get there later."""
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA analysis_limit={SQLITE_ANALYSIS_ROWS}")
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {quote(table.name)}")


def latest_run(engine: sa.Engine, as_of: date | str | None = None, *, on_or_before: bool = False) -> dict | None:
    """The latest succeeded run (``as_of`` None), the succeeded run of ``as_of`` (exactly), or with
    ``on_or_before`` the latest succeeded run dated on or before ``as_of``; ``None`` when there is none."""
    create_scoring_tables(engine)
    query = sa.select(batch_runs).where(batch_runs.c.status == "succeeded")
    if as_of is not None:
        day = _as_date(as_of)
        query = query.where(batch_runs.c.as_of <= day if on_or_before else batch_runs.c.as_of == day)
    query = query.order_by(batch_runs.c.as_of.desc(), batch_runs.c.run_id.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def runs_frame(engine: sa.Engine, limit: int | None = None) -> pd.DataFrame:
    """The batch runs, newest first."""
    create_scoring_tables(engine)
    query = sa.select(batch_runs).order_by(batch_runs.c.run_id.desc())
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in batch_runs.columns])


_DATE_COLUMNS = ("as_of", "last_visit_on", "next_allowed_visit", "floor_due_on", "followup_due_on",
                 "last_model_high_on", "previous_as_of", "window_start", "window_end")


def _typed_frame(rows, columns: list[str]) -> pd.DataFrame:
    rows = [tuple(r) for r in rows]
    values = dict(zip(columns, (list(v) for v in zip(*rows)), strict=True)) if rows else {c: [] for c in columns}
    for column in columns:
        if column in _DATE_COLUMNS:
            # dates, ISO text (see _selected) or None: numpy parses all three in one call, in C
            values[column] = np.array(values[column], dtype="datetime64[D]").astype("datetime64[ns]")
    return pd.DataFrame(values, columns=columns)


def _selected(table: sa.Table, names: list[str]) -> list:
    """Columns to select, dates as ISO text: parsed in one vectorised call instead of one Python call per value."""
    return [sa.cast(table.c[n], sa.String).label(n) if isinstance(table.c[n].type, sa.Date) else table.c[n]
            for n in names]


def scores_frame(engine: sa.Engine, as_of: date | str, *, columns: list[str] | None = None,
                 where=None) -> pd.DataFrame:
    """The stored scores of the run of ``as_of`` (all columns, or ``columns``), ordered by rank."""
    create_scoring_tables(engine)
    names = columns or [c.name for c in scores_history.columns]
    query = sa.select(*_selected(scores_history, names)).where(scores_history.c.as_of == _as_date(as_of))
    if where is not None:
        query = query.where(*where)
    query = query.order_by(scores_history.c.rank, scores_history.c.enterprise_id)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return _typed_frame(rows, names)


_SCORES_ROW = sa.select(scores_history).where(scores_history.c.as_of == sa.bindparam("as_of"),
                                              scores_history.c.enterprise_id == sa.bindparam("enterprise_id"))


def scores_row(engine: sa.Engine, as_of: date | str, enterprise_id: str) -> dict[str, Any] | None:
    """One enterprise's stored row of the run of ``as_of`` (every column; dates as :class:`pandas.Timestamp`, as
    :func:`scores_frame` gives them), or None when that run did not score it. One index lookup, no frame: the
    enterprise file reads it on every page."""
    create_scoring_tables(engine)
    with engine.connect() as conn:
        row = conn.execute(_SCORES_ROW, {"as_of": _as_date(as_of), "enterprise_id": str(enterprise_id)}
                           ).mappings().first()
    if row is None:
        return None
    return {name: (pd.Timestamp(value) if name in _DATE_COLUMNS and value is not None else value)
            for name, value in row.items()}


RecordRows = tuple[tuple[str, ...], list[tuple]]
"""Rows as read, with their column names: ``(columns, rows)``."""

_HISTORY_COLUMNS = ("as_of", "run_id", "probability", "points", "rank", "model_tier", "final_tier", "override_codes",
                    "special_assistance", "model_version")
_CHANGE_COLUMNS = ("as_of", "previous_as_of", "from_tier", "to_tier", "cause", "run_id")


def _enterprise_rows(engine: sa.Engine, table: sa.Table, columns: tuple[str, ...], enterprise_id: str
                     ) -> RecordRows:
    create_scoring_tables(engine)
    with engine.connect() as conn:
        return columns, [tuple(r) for r in conn.execute(_enterprise_query(table, columns),
                                                        {"enterprise_id": str(enterprise_id)})]


@functools.cache
def _enterprise_query(table: sa.Table, columns: tuple[str, ...]) -> sa.Select:
    # built once: the enterprise file reads these on every page, and building a statement costs about what
    # running it does
    return (sa.select(*(table.c[n] for n in columns)).where(table.c.enterprise_id == sa.bindparam("enterprise_id"))
            .order_by(table.c.as_of))


def enterprise_history_rows(engine: sa.Engine, enterprise_id: str) -> RecordRows:
    """One enterprise's rows of the scores history, oldest first, as read (dates as :class:`datetime.date`)."""
    return _enterprise_rows(engine, scores_history, _HISTORY_COLUMNS, enterprise_id)


def enterprise_changes_rows(engine: sa.Engine, enterprise_id: str) -> RecordRows:
    """One enterprise's tier changes, oldest first, as read."""
    return _enterprise_rows(engine, tier_changes, _CHANGE_COLUMNS, enterprise_id)


def record_frame(rows: RecordRows) -> pd.DataFrame:
    """``(columns, rows)`` as a frame, the date columns as ``datetime64``."""
    columns, values = rows
    return _typed_frame(values, list(columns))


def enterprise_history(engine: sa.Engine, enterprise_id: str) -> pd.DataFrame:
    """One enterprise's rows of the scores history, oldest first."""
    return record_frame(enterprise_history_rows(engine, enterprise_id))


def enterprise_changes(engine: sa.Engine, enterprise_id: str) -> pd.DataFrame:
    """One enterprise's tier changes, oldest first."""
    return record_frame(enterprise_changes_rows(engine, enterprise_id))


def previous_tiers(engine: sa.Engine, as_of: date | str) -> pd.DataFrame:
    """The stored rows of the latest run dated strictly before ``as_of`` (what hysteresis and the tier changes
    compare with): ``enterprise_id, as_of, model_tier, final_tier, last_model_high_on``; empty when none."""
    create_scoring_tables(engine)
    names = ["enterprise_id", "as_of", "model_tier", "final_tier", "last_model_high_on"]
    day = _as_date(as_of)
    with engine.connect() as conn:
        previous = conn.execute(sa.select(sa.func.max(scores_history.c.as_of))
                                .where(scores_history.c.as_of < day)).scalar()
        rows = [] if previous is None else conn.execute(
            sa.select(*_selected(scores_history, names)).where(scores_history.c.as_of == previous)).all()
    frame = _typed_frame(rows, names)
    for column in ("enterprise_id", "model_tier", "final_tier"):
        frame[column] = frame[column].astype("str")
    return frame


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------

_PLAN_ITEM_COLUMNS = [c.name for c in plan_items.columns if c.name != "plan_id"]


def drawn_ids(text: Any) -> list[str]:
    """The enterprise ids of a recorded draw (``drawn_ids``: ids joined by ``;``)."""
    return [i for i in text.split(";") if i] if isinstance(text, str) else []


def enterprise_values(engine: sa.Engine, ids: Collection[str], column: str) -> dict[str, Any]:
    """``{enterprise_id: value of column}`` from the enterprises table, for the ids that exist (read in chunks, so
    a long list stays within the databases' parameter limits)."""
    from features.schema import CONTRACT_TABLES

    enterprises = CONTRACT_TABLES["enterprises"]
    wanted = sorted({str(i) for i in ids if i})
    found: dict[str, Any] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            found.update(conn.execute(sa.select(enterprises.c.enterprise_id, enterprises.c[column])
                                      .where(enterprises.c.enterprise_id.in_(chunk))).all())
    return found


def store_plan(engine: sa.Engine, plan, *, as_of: date | str, source_run_id: int | None = None,
               limits_source: str | None = None, policy_hash: str | None = None, created_by: str | None = None,
               now: datetime | None = None) -> int:
    """Store a :class:`scoring.domain.planning.Plan` (its items, draws, unmet visits and capacity) in one transaction;
    returns the new ``plan_id``. Every planning run is kept (re-planning a period adds a plan: the next
    ``version`` of the period, a ``draft``; the latest wins in :func:`load_plan`)."""
    create_scoring_tables(engine)
    records = plan_records(plan)
    with engine.begin() as conn:
        plan_id = insert_plan(conn, plan, records, as_of=as_of, source_run_id=source_run_id,
                              limits_source=limits_source, policy_hash=policy_hash, created_by=created_by, now=now)
    return plan_id


def plan_records(plan) -> list[dict]:
    """The plan's items as rows of ``plan_items`` (without ``plan_id``)."""
    from scoring.exports import json_records

    items = plan.items.copy()
    for column in _PLAN_ITEM_COLUMNS:
        if column not in items:
            items[column] = None
    records = json_records(items[_PLAN_ITEM_COLUMNS])
    for record in records:
        for column in ("window_start", "window_end"):
            if record[column] is not None:
                record[column] = date.fromisoformat(record[column])
    return records


def insert_plan(conn: sa.Connection, plan, records: list[dict] | None = None, *, as_of: date | str,
                source_run_id: int | None = None, limits_source: str | None = None, policy_hash: str | None = None,
                created_by: str | None = None, now: datetime | None = None) -> int:
    """Insert a plan inside the caller's transaction as the next version of its period (a draft); its id."""
    from scoring.exports import json_records

    records = plan_records(plan) if records is None else records
    version = conn.execute(sa.select(sa.func.coalesce(sa.func.max(plans.c.version), 0))
                           .where(plans.c.period == plan.period)).scalar_one() + 1
    plan_id = conn.execute(plans.insert().values(
        period=plan.period, as_of=_as_date(as_of), seed=int(plan.seed), created_at=_now(now),
        created_by=created_by, source_run_id=source_run_id, limits_source=limits_source,
        policy_hash=policy_hash, n_items=len(records), capacity=json_records(plan.capacity),
        draws=json_records(plan.draws), unmet=json_records(plan.unmet), version=int(version), status="draft",
    )).inserted_primary_key[0]
    if records:
        conn.execute(plan_items.insert(), [{"plan_id": plan_id, **r} for r in records])
    return int(plan_id)


def load_plan(engine: sa.Engine, *, plan_id: int | None = None, period: str | None = None) -> tuple[dict, pd.DataFrame]:
    """A stored plan (by id, or the latest of ``period``, or the latest of all): its ``plans`` row and items."""
    create_scoring_tables(engine)
    query = sa.select(plans)
    if plan_id is not None:
        query = query.where(plans.c.plan_id == plan_id)
    elif period is not None:
        query = query.where(plans.c.period == period)
    query = query.order_by(plans.c.plan_id.desc()).limit(1)
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
        if row is None:
            what = f"plan {plan_id}" if plan_id is not None else f"plan for {period}" if period else "plan"
            raise DataError(f"no stored {what}: run riskgrade plan --period YYYY-MM")
        items = conn.execute(sa.select(*(plan_items.c[n] for n in _PLAN_ITEM_COLUMNS))
                             .where(plan_items.c.plan_id == row["plan_id"]).order_by(plan_items.c.priority)).all()
    return dict(row), _typed_frame(items, _PLAN_ITEM_COLUMNS)
