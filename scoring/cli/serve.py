"""``riskgrade serve``: the planners' workbench over HTTP (uvicorn). The web modules are imported only here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from scoring.cli import DbOption, PolicyOption, console, err_console

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
AUTO_WORKERS_MAX = 8
"""``[web] workers = 0`` means one server process per core, up to this many: each process keeps its own copy of the
run's cached results (about 100 MB at 200k enterprises), and a bureau's planners rarely keep more than 8 busy."""


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: this computer only; 0.0.0.0 for "
                                      "every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    db: DbOption = None,
    policy: PolicyOption = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Server processes (default: [web] workers in the policy file; 0 there: one per "
        "CPU core, up to 8).")] = None,
    public_disclosure: Annotated[bool, typer.Option(
        "--public-disclosure", help="Publish the random draws without login at /public/draws (一公开); also "
        "[web] public_disclosure in the policy file.")] = False,
) -> None:
    """Serve the workbench (overview, ranked list, enterprise files, overrides, plans, runs) in a browser.

    Sessions are signed with $RISKGRADE_SECRET_KEY when set (so a restart keeps them), else with a random key
    shared by the server processes.
    """
    import uvicorn
    import sqlalchemy as sa

    from features.db import connect, database_url
    from scoring.domain.policy import load_policy
    from scoring.results.accounts import accounts_frame
    from scoring.web.app import create_app
    from scoring.web.settings import WebSettings

    rules = load_policy(policy)
    url = database_url(db)
    engine = connect(url)
    overrides = {"disclosure_enabled": public_disclosure or rules.web.public_disclosure}
    if os.environ.get("RISKGRADE_SECRET_KEY"):
        overrides["secret_key"] = os.environ["RISKGRADE_SECRET_KEY"]
    app = create_app(engine, settings=WebSettings.from_policy(rules.web, **overrides), policy=rules)
    shown = sa.engine.make_url(engine.url).render_as_string(hide_password=True)
    console.print(f"riskgrade workbench: http://{'[' + host + ']' if ':' in host else host}:{port}/ "
                  f"(database {shown}; public disclosure {'on' if overrides['disclosure_enabled'] else 'off'})",
                  highlight=False, soft_wrap=True)
    accounts = accounts_frame(engine)
    if not (~accounts["disabled"] & (accounts["role"] == "admin")).any():
        err_console.print("[yellow]note:[/] no active admin account yet: riskgrade users add NAME --role admin "
                          f"--db {shown}", highlight=False, soft_wrap=True)
    if host not in _LOCAL_HOSTS:
        err_console.print(f"[yellow]note:[/] listening on {host}: other computers can reach the workbench; serve it "
                          "behind HTTPS and set [web] secure_cookie = true", highlight=False, soft_wrap=True)
    processes = workers or rules.web.workers or min(os.cpu_count() or 1, AUTO_WORKERS_MAX)
    options = {"host": host, "port": port, "log_level": "info", "server_header": False, "proxy_headers": False}
    if processes == 1:
        uvicorn.run(app, **options)
        return
    # several processes: each builds its own app from what this one checked (uvicorn starts them afresh)
    engine.dispose()
    os.environ["RISKGRADE_DB"] = url
    if policy:
        os.environ["RISKGRADE_POLICY"] = str(Path(policy).resolve())
    os.environ["RISKGRADE_SECRET_KEY"] = app.state.settings.secret_key
    os.environ["RISKGRADE_PUBLIC_DISCLOSURE"] = "1" if overrides["disclosure_enabled"] else "0"
    console.print(f"{processes} server processes", highlight=False)
    from scoring.web.processes import balanced_by_kernel, serve_processes

    if not balanced_by_kernel():  # uvicorn's workers: one shared socket (see scoring.web.processes)
        uvicorn.run("scoring.web.app:app_from_environment", factory=True, workers=processes, **options)
        return
    try:
        status = serve_processes(processes, host=host, port=port, options=options)
    except OSError as exc:
        err_console.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc.strerror or exc}", highlight=False,
                          soft_wrap=True)
        raise typer.Exit(1) from None
    if status:
        err_console.print("[red]error:[/] a server process could not start (its log is above)", highlight=False)
        raise typer.Exit(status)
