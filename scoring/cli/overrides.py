"""``riskgrade override add|revoke|list``: manual tier overrides (人工调整) from the command line.

The same functions as the workbench's enterprise file (:mod:`scoring.results.overrides`): who, why, until when,
audited; the next nightly run applies what is in force on its date.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer

from scoring.cli import DbOption, ExportFormatOption, ExportOutOption, PolicyOption, _parse_date

app = typer.Typer(help="Manual tier overrides 人工调整: add, revoke, list (who, why, until when; audited).",
                  no_args_is_help=True)

ByOption = Annotated[str, typer.Option("--by", help="Who decides (recorded in the audit trail).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]


@app.command("add")
def add(
    enterprise_id: Annotated[str, typer.Argument(help="The enterprise whose tier is set.")],
    tier: Annotated[str, typer.Option("--tier", help="high, general or low.")],
    reason: ReasonOption,
    until: Annotated[str, typer.Option("--until", help="Last day in force, YYYY-MM-DD (inclusive).")],
    by: ByOption,
    valid_from: Annotated[Optional[str], typer.Option("--from", help="First day in force, YYYY-MM-DD (default: "
                          "today).", show_default=False)] = None,
    db: DbOption = None,
    policy: PolicyOption = None,
) -> None:
    """Set an enterprise's tier by hand until a date (the policy limits how long: overrides.manual.max_days)."""
    from features.db import connect
    from scoring.cli import console
    from scoring.domain.policy import load_policy
    from scoring.results.overrides import set_override

    if tier not in ("high", "general", "low"):
        raise typer.BadParameter(f"expected high, general or low, got {tier!r}", param_hint="--tier")
    last = _parse_date(until, "--until")
    first = _parse_date(valid_from, "--from") if valid_from else None
    rules = load_policy(policy)
    override_id = set_override(connect(db), enterprise_id, tier=tier, reason=reason, by=by, valid_until=last,
                               valid_from=first, policy=rules.overrides.manual)
    console.print(f"override {override_id}: {enterprise_id} → {tier} from {first or date.today()} until {last} "
                  f"by {by} (applied by the next nightly run) 人工调整已记录", highlight=False)


@app.command("revoke")
def revoke(
    override_id: Annotated[int, typer.Argument(help="The override to revoke (see riskgrade override list).")],
    reason: ReasonOption,
    by: ByOption,
    db: DbOption = None,
) -> None:
    """Revoke an override (from the next nightly run on, the enterprise's tier follows its score again)."""
    from features.db import connect
    from scoring.cli import console
    from scoring.results.overrides import lift_override

    enterprise_id = lift_override(connect(db), override_id, by=by, reason=reason)
    console.print(f"override {override_id} of {enterprise_id} revoked by {by} 人工调整已撤销", highlight=False)


@app.command("list")
def list_(
    enterprise_id: Annotated[Optional[str], typer.Option("--enterprise", help="Only this enterprise's overrides.",
                             show_default=False)] = None,
    active_on: Annotated[Optional[str], typer.Option("--active-on", help="Only those in force on this day, "
                         "YYYY-MM-DD.", show_default=False)] = None,
    output_format: ExportFormatOption = "table",
    out: ExportOutOption = None,
    db: DbOption = None,
) -> None:
    """The manual overrides, newest first, with their status (active, scheduled, expired, revoked)."""
    from features.db import connect
    from scoring.cli import _check_format, _print_frame, err_console
    from scoring.exports import write_csv, write_json, write_xlsx
    from scoring.results.overrides import override_list

    _check_format(output_format, out, "list")
    day = _parse_date(active_on, "--active-on") if active_on else None
    frame = override_list(connect(db), enterprise_id=enterprise_id, active_on=day)
    say = err_console.print
    if output_format == "table":
        shown = ["override_id", "enterprise_id", "name", "tier", "status", "valid_from", "valid_until", "created_by",
                 "reason"]
        scope = f" in force on {day}" if day else ""
        _print_frame(f"Manual overrides{scope}: {len(frame):,}", frame[shown], max_width={"reason": 40})
        if out is not None:
            write_csv(frame, out, what="overrides", say=say)
    elif output_format == "csv":
        write_csv(frame, out, what="overrides", say=say)
    elif output_format == "json":
        write_json(frame, out, what="overrides", say=say)
    else:
        write_xlsx({"overrides": frame}, out, what="overrides", say=say)
