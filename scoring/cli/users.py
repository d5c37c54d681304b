"""``riskgrade users``: the workbench's accounts (账户) — the same functions as its accounts page.

The password is read from a hidden prompt (asked twice) on a terminal, else as one line of standard input
(``printf '%s\\n' "$PASSWORD" | riskgrade users add wang --role planner``); it is never an option (options end up
in shell histories and process lists). Exit codes: 2 usage (unknown role, bad option), 3 refused (a name taken or
unknown, an empty or short password, an unknown township).
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated, Optional

import typer

from features.errors import DataError
from scoring.cli import DbOption, PolicyOption, console

app = typer.Typer(help="Workbench accounts (账户): add, disable, list, set-role, set-townships, set-password.",
                  no_args_is_help=True)

_ROLES = ("viewer", "planner", "supervisor", "admin")  # scoring.results.accounts.ROLES (checked by a test)


def _role(value: str) -> str:
    if value not in _ROLES:
        raise typer.BadParameter(f"expected one of {', '.join(_ROLES)}, got {value!r}")
    return value


RoleOption = Annotated[str, typer.Option("--role", callback=_role, help="viewer < planner < supervisor < admin.")]
TownshipOption = Annotated[
    Optional[list[str]],
    typer.Option("--township", help="Limit the account to this township (repeat for several; none: all).",
                 show_default=False),
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment
        return "cli"


def _engine(db: str | None):
    from features.db import connect

    return connect(db)


def _min_length(policy) -> int:
    from scoring.domain.policy import load_policy

    return load_policy(policy).web.password_min_length


def read_password(*, confirm: bool = True) -> str:
    """The new password: a hidden prompt (twice) on a terminal, else one line of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("密码 password: ")
        if confirm and getpass.getpass("再次输入 again: ") != first:
            raise DataError("the two passwords differ")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Account name (letters, digits, . _ @ -).")],
    role: RoleOption,
    township: TownshipOption = None,
    db: DbOption = None,
    policy: PolicyOption = None,
) -> None:
    """Create an account; the password comes from a prompt or standard input (never an option)."""
    from scoring.results.accounts import add_account

    minimum = _min_length(policy)
    engine = _engine(db)
    record = add_account(engine, username=name, role=role, password=read_password(), townships=township or None,
                         by=_actor(), min_password_length=minimum)
    console.print(f"account {record.username} created: {record.role}, townships "
                  f"{_scope(record.townships)}", highlight=False)


@app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="Account name.")], db: DbOption = None) -> None:
    """Disable an account: it can no longer log in and its sessions end at once."""
    from scoring.results.accounts import disable_account

    disable_account(_engine(db), name, by=_actor())
    console.print(f"account {name} disabled", highlight=False)


@app.command("set-role")
def set_role_(
    name: Annotated[str, typer.Argument(help="Account name.")],
    role: Annotated[str, typer.Argument(callback=_role, help="viewer, planner, supervisor or admin.")],
    db: DbOption = None,
) -> None:
    """Change an account's role (its sessions end)."""
    from scoring.results.accounts import set_role

    record = set_role(_engine(db), name, role, by=_actor())
    console.print(f"account {record.username}: role {record.role}", highlight=False)


@app.command("set-townships")
def set_townships_(
    name: Annotated[str, typer.Argument(help="Account name.")],
    township: TownshipOption = None,
    db: DbOption = None,
) -> None:
    """Limit an account to the townships given (none given: every township)."""
    from scoring.results.accounts import set_townships

    record = set_townships(_engine(db), name, township or None, by=_actor())
    console.print(f"account {record.username}: townships {_scope(record.townships)}", highlight=False)


@app.command("set-password")
def set_password_(name: Annotated[str, typer.Argument(help="Account name.")], db: DbOption = None,
                  policy: PolicyOption = None) -> None:
    """Replace an account's password (prompt or standard input, as for add); its sessions end."""
    from scoring.results.accounts import get_account, set_password

    minimum = _min_length(policy)
    engine = _engine(db)
    if get_account(engine, name) is None:
        raise DataError(f"no account named {name[:80]!r} (riskgrade users list shows them)")
    set_password(engine, name, read_password(), by=_actor(), min_password_length=minimum)
    console.print(f"account {name}: password replaced", highlight=False)


@app.command("list")
def list_(
    db: DbOption = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Every account: name, role, townships, state, last change (never a password or hash)."""
    from scoring.results.accounts import accounts_frame

    if output_format not in ("table", "json"):
        raise typer.BadParameter(f"expected table or json, got {output_format!r}", param_hint="--format")
    frame = accounts_frame(_engine(db))
    if output_format == "json":
        records = [{"username": r.username, "role": r.role, "townships": r.townships, "disabled": bool(r.disabled),
                    "changed_at": r.changed_at.isoformat(sep=" ", timespec="seconds"), "changed_by": r.changed_by}
                   for r in frame.itertuples()]
        typer.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    from rich.table import Table

    table = Table(title=f"{len(frame)} accounts 账户")
    for column in ("name", "role", "townships", "state", "changed"):
        table.add_column(column)
    for r in frame.itertuples():
        table.add_row(r.username, r.role, _scope(r.townships), "disabled" if r.disabled else "active",
                      f"{r.changed_at:%Y-%m-%d %H:%M} {r.changed_by}")
    console.print(table)


def _scope(townships) -> str:
    return "all" if townships is None else "、".join(sorted(townships))
