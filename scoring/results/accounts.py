"""Local accounts of the workbench (账户): username, role, township scope, argon2 password hash.

``accounts`` (on :data:`features.schema.metadata`): one row per account —

- ``username`` (unique; letters, digits and ``. _ @ -``, at most 64 characters);
- ``role``: one of :data:`ROLES`, ordered: a higher role may do everything a lower one may;
- ``townships``: JSON list of the townships (乡镇/街道) the account is limited to (属地管理), or NULL for all;
- ``password_hash``: an argon2id hash (argon2-cffi's defaults, the RFC 9106 low-memory profile); a password is
  never stored, logged or audited in clear;
- ``disabled``; ``session_version`` (raised on logout, disabling, a role, scope or password change: every session
  cookie issued before is refused from then on); ``created_at`` / ``created_by``, ``changed_at`` / ``changed_by``.

There is no default account: the first admin is created with ``riskgrade users add NAME --role admin``.
Every change writes an ``audit_log`` row (:mod:`scoring.results.audit`) in its own transaction; the audit row
never holds the password or its hash. The CLI (``riskgrade users``) and the workbench's accounts page call these
same functions.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from features.errors import DataError
from features.schema import CONTRACT_TABLES, metadata
from scoring.results.audit import audit_log, record_audit

__all__ = [
    "ROLES",
    "ROLE_LABELS",
    "AccountRecord",
    "accounts",
    "accounts_frame",
    "add_account",
    "bump_session_version",
    "create_account_tables",
    "disable_account",
    "get_account",
    "known_townships",
    "role_at_least",
    "set_password",
    "set_role",
    "set_townships",
    "verify_password",
]

ROLES: tuple[str, ...] = ("viewer", "planner", "supervisor", "admin")
ROLE_LABELS: dict[str, str] = {
    "viewer": "查看 viewer",
    "planner": "计划 planner",
    "supervisor": "审核 supervisor",
    "admin": "管理 admin",
}

USERNAME_PATTERN = re.compile(r"[\w.@-]{1,64}")
MAX_PASSWORD_LENGTH = 1024  # hashing longer inputs is work an attacker could ask for; no real password is this long

# argon2-cffi's defaults (RFC 9106 "low memory": argon2id, t=3, m=64 MiB, p=4). Tests swap in a cheaper hasher.
PASSWORD_HASHER = PasswordHasher()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("townships", sa.JSON(none_as_null=True), nullable=True),  # NULL: every township
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("session_version", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.CheckConstraint("role IN ('viewer', 'planner', 'supervisor', 'admin')", name="ck_accounts_role"),
    comment="Workbench accounts: role, township scope, argon2 password hash (never the password).",
)


login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("failure_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), nullable=False),  # "user:<name>" or "address:<client address>"
    sa.Column("at", sa.Float, nullable=False),  # seconds since the epoch, by the workbench's clock
    sa.Index("ix_login_failures_key_at", "key", "at"),
    comment="Failed workbench logins within the throttling window (shared by every server process).",
)


def recent_login_failures(engine: sa.Engine, keys: Collection[str], since: float) -> dict[str, int]:
    """How many failed logins each of ``keys`` has at or after ``since``."""
    create_account_tables(engine)
    f = login_failures.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(f.key, sa.func.count()).where(f.key.in_(list(keys)), f.at >= since)
                            .group_by(f.key)).all()
    found = {str(key): int(n) for key, n in rows}
    return {key: found.get(key, 0) for key in keys}


def record_login_failure(engine: sa.Engine, keys: Collection[str], at: float, *, forget_before: float) -> None:
    """A failed login counted against each of ``keys``; failures older than ``forget_before`` are dropped (the
    table holds one window's failures, however many are tried)."""
    create_account_tables(engine)
    with engine.begin() as conn:
        conn.execute(login_failures.delete().where(login_failures.c.at < forget_before))
        conn.execute(login_failures.insert(), [{"key": key, "at": float(at)} for key in keys])


def forget_login_failures(engine: sa.Engine, key: str) -> None:
    """The failures of ``key`` forgotten (a right password)."""
    create_account_tables(engine)
    with engine.begin() as conn:
        conn.execute(login_failures.delete().where(login_failures.c.key == key))


@dataclass(frozen=True)
class AccountRecord:
    """An account as stored, without its password hash."""

    username: str
    role: str
    townships: frozenset[str] | None
    disabled: bool
    session_version: int
    created_at: datetime
    created_by: str
    changed_at: datetime
    changed_by: str


_CREATED: "weakref.WeakKeyDictionary[sa.Engine, bool]" = weakref.WeakKeyDictionary()


def create_account_tables(engine: sa.Engine) -> None:
    """Create ``accounts``, ``audit_log`` and ``login_failures`` if they do not exist yet (idempotent; checked once
    per engine: the workbench reads the account on every request)."""
    if engine in _CREATED:
        return
    metadata.create_all(engine, tables=[accounts, audit_log, login_failures], checkfirst=True)
    _CREATED[engine] = True


def role_at_least(role: str, minimal: str) -> bool:
    """Whether ``role`` may do what ``minimal`` may (viewer < planner < supervisor < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(minimal)


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _check_username(username: str) -> str:
    name = str(username or "").strip()
    if not USERNAME_PATTERN.fullmatch(name):
        raise DataError(f"account name {name[:80]!r}: expected 1 to 64 letters, digits or . _ @ -")
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise DataError(f"role must be one of {', '.join(ROLES)}, got {str(role)[:80]!r}")
    return role


def _check_password(password: str, min_length: int) -> str:
    if not isinstance(password, str) or not password.strip():
        raise DataError("the password is empty")
    if len(password) < min_length:
        raise DataError(f"the password has {len(password)} characters; at least {min_length} are required "
                        f"(web.password_min_length)")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise DataError(f"the password is longer than {MAX_PASSWORD_LENGTH} characters")
    return password


def known_townships(engine: sa.Engine) -> list[str]:
    """The townships of the imported enterprises, sorted."""
    enterprises = CONTRACT_TABLES["enterprises"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(enterprises.c.township).where(enterprises.c.township.is_not(None))
                            .distinct()).all()
    return sorted(str(r[0]) for r in rows if str(r[0]).strip())


def _check_townships(engine: sa.Engine, townships: Iterable[str] | None) -> list[str] | None:
    """The scope cleaned and sorted; refused when empty or naming a township no imported enterprise is in (a typo
    would silently hide everything). Before any import every name is accepted."""
    if townships is None:
        return None
    cleaned = sorted({str(t).strip() for t in townships if str(t).strip()})
    if not cleaned:
        raise DataError("a township scope needs at least one township (leave it out for all townships)")
    known = known_townships(engine)
    unknown = [t for t in cleaned if t not in known]
    if known and unknown:
        shown = "、".join(known[:20]) + (" …" if len(known) > 20 else "")
        raise DataError(f"unknown township {unknown[0][:80]!r} (townships of the imported enterprises: {shown})")
    too_long = next((t for t in cleaned if len(t) > 128), None)
    if too_long is not None:
        raise DataError(f"township {too_long[:40]!r}…: longer than 128 characters")
    return cleaned


def _record(row) -> AccountRecord:
    townships = row.townships
    return AccountRecord(
        username=row.username, role=row.role, townships=None if townships is None else frozenset(townships),
        disabled=bool(row.disabled), session_version=int(row.session_version), created_at=row.created_at,
        created_by=row.created_by, changed_at=row.changed_at, changed_by=row.changed_by)


def _public(row) -> dict:
    """The audited view of an account row (never the hash)."""
    return {"role": row.role, "townships": row.townships, "disabled": bool(row.disabled)}


def _account_row(conn: sa.Connection, username: str):
    row = conn.execute(sa.select(accounts).where(accounts.c.username == username)).first()
    if row is None:
        raise DataError(f"no account named {username[:80]!r} (riskgrade users list shows them)")
    return row


def add_account(engine: sa.Engine, *, username: str, role: str, password: str,
                townships: Collection[str] | None = None, by: str, min_password_length: int,
                now: datetime | None = None) -> AccountRecord:
    """Create an account (audited as ``account.add``). Refused (:class:`DataError`) for a name already taken or
    malformed, an unknown role, a password that is empty, shorter than ``min_password_length`` or absurdly long,
    or an empty township scope."""
    name = _check_username(username)
    _check_role(role)
    _check_password(password, min_password_length)
    create_account_tables(engine)
    scope = _check_townships(engine, townships)
    moment = _now(now)
    password_hash = PASSWORD_HASHER.hash(password)
    values = dict(username=name, role=role, townships=scope, password_hash=password_hash, disabled=False,
                  session_version=1, created_at=moment, created_by=str(by), changed_at=moment, changed_by=str(by))
    try:
        with engine.begin() as conn:
            if conn.execute(sa.select(accounts.c.account_id).where(accounts.c.username == name)).first():
                raise DataError(f"an account named {name!r} already exists")
            conn.execute(accounts.insert().values(**values))
            record_audit(conn, actor=by, action="account.add", target_kind="account", target_id=name,
                         after={"role": role, "townships": scope, "disabled": False}, now=moment)
    except sa.exc.IntegrityError as exc:  # two creations racing for one name
        raise DataError(f"an account named {name!r} already exists") from exc
    return get_account(engine, name)


def _change(engine: sa.Engine, username: str, *, action: str, by: str, values: dict,
            now: datetime | None, note: str | None = None) -> AccountRecord:
    name = str(username or "").strip()
    moment = _now(now)
    create_account_tables(engine)
    with engine.begin() as conn:
        row = _account_row(conn, name)
        before = _public(row)
        conn.execute(accounts.update().where(accounts.c.username == name).values(
            **values, session_version=accounts.c.session_version + 1, changed_at=moment, changed_by=str(by)))
        after = _public(_account_row(conn, name))
        if before["role"] == "admin" and not before["disabled"] and _active_admins(conn) == 0:
            raise DataError(f"{name!r} is the last active admin: create another admin first")
        record_audit(conn, actor=by, action=action, target_kind="account", target_id=name, before=before,
                     after=after, note=note, now=moment)
    return get_account(engine, name)


def _active_admins(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(accounts).where(
        accounts.c.role == "admin", accounts.c.disabled.is_(False))).scalar_one()


def disable_account(engine: sa.Engine, username: str, *, by: str, now: datetime | None = None) -> AccountRecord:
    """Disable an account (its sessions end at once; it can no longer log in). Audited as ``account.disable``."""
    return _change(engine, username, action="account.disable", by=by, values={"disabled": True}, now=now)


def set_role(engine: sa.Engine, username: str, role: str, *, by: str, now: datetime | None = None) -> AccountRecord:
    """Change an account's role (audited as ``account.set_role``; its sessions end)."""
    return _change(engine, username, action="account.set_role", by=by, values={"role": _check_role(role)}, now=now)


def set_townships(engine: sa.Engine, username: str, townships: Collection[str] | None, *, by: str,
                  now: datetime | None = None) -> AccountRecord:
    """Limit an account to ``townships`` (``None``: every township). Audited as ``account.set_townships``."""
    return _change(engine, username, action="account.set_townships", by=by,
                   values={"townships": _check_townships(engine, townships)}, now=now)


def set_password(engine: sa.Engine, username: str, password: str, *, by: str, min_password_length: int,
                 now: datetime | None = None) -> AccountRecord:
    """Replace an account's password (audited as ``account.set_password``, without the password)."""
    _check_password(password, min_password_length)
    return _change(engine, username, action="account.set_password", by=by,
                   values={"password_hash": PASSWORD_HASHER.hash(password)}, now=now, note="password replaced")


def bump_session_version(engine: sa.Engine, username: str) -> None:
    """End every session of the account (logout). Not audited: it changes no permission."""
    create_account_tables(engine)
    with engine.begin() as conn:
        conn.execute(accounts.update().where(accounts.c.username == str(username))
                     .values(session_version=accounts.c.session_version + 1))


def get_account(engine: sa.Engine, username: str) -> AccountRecord | None:
    """The account named ``username`` (disabled or not), or ``None``."""
    create_account_tables(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.username == str(username))).first()
    return None if row is None else _record(row)


_DUMMY_HASHES: dict[str, str] = {}


def _dummy_hash() -> str:
    """A hash made with the current parameters: an unknown name costs the same verification time as a known one."""
    key = repr((PASSWORD_HASHER.time_cost, PASSWORD_HASHER.memory_cost, PASSWORD_HASHER.parallelism))
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = PASSWORD_HASHER.hash("riskgrade: no such account")
    return _DUMMY_HASHES[key]


def verify_password(engine: sa.Engine, username: str, password: str) -> AccountRecord | None:
    """The account if ``password`` is its password and it is not disabled, else ``None`` (an unknown name, a
    wrong password and a disabled account are not told apart). Rehashes a hash made with older parameters."""
    name = str(username or "").strip()
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    create_account_tables(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.username == name)).first()
    try:
        PASSWORD_HASHER.verify(row.password_hash if row is not None else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    if PASSWORD_HASHER.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.username == name)
                         .values(password_hash=PASSWORD_HASHER.hash(password)))
    return _record(row)


def accounts_frame(engine: sa.Engine) -> pd.DataFrame:
    """Every account, by name (no hashes): username, role, townships (list or None), disabled, created / changed."""
    create_account_tables(engine)
    columns = ["username", "role", "townships", "disabled", "created_at", "created_by", "changed_at", "changed_by"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*(accounts.c[c] for c in columns)).order_by(accounts.c.username)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    frame["disabled"] = frame["disabled"].astype(bool)
    return frame
