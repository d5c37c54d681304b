"""Fixtures of the real-browser tests: a small world served by uvicorn on loopback, and Debian's Chromium driven by
Playwright (never a downloaded browser).

The tests skip only when the browser or the driver is missing, saying which; under CI (``CI`` set) a missing one
fails them instead, so that a CI run cannot pass without the browser tests having run.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 860}

N_ENTERPRISES = 240
PREVIOUS_AS_OF = date(2024, 12, 1)
AS_OF = date(2025, 1, 1)  # the night after the world's last simulated month
PERIOD = "2025-01"


def missing_browser() -> list[str]:
    """What the browser tests need and this machine lacks (empty when nothing)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium fonts-noto-cjk)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (pip install -e '.[dev]')")
    return missing


@dataclass(frozen=True)
class User:
    username: str
    password: str
    role: str
    townships: tuple[str, ...] | None = None


@dataclass(frozen=True)
class World:
    url: str
    engine: object
    townships: tuple[str, ...]
    users: dict[str, User]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """A 240-enterprise world imported into SQLite, two nightly runs (so tier changes exist), and one account per
    role created through the real account functions, each with a random password."""
    import sqlalchemy as sa

    from data_samples.world import generate_world, write_world
    from features.db import connect
    from features.importer import import_directory
    from features.schema import CONTRACT_TABLES
    from scoring.results.accounts import add_account
    from scoring.results.batch import run_nightly

    directory = tmp_path_factory.mktemp("browser-world")
    tables = generate_world(N_ENTERPRISES, 3, 11, start=date(2022, 1, 1))
    write_world({name: frame for name, frame in tables.items() if name != "truth"}, directory / "csv")
    url = f"sqlite:///{directory / 'riskgrade.db'}"
    engine = connect(url)
    import_directory(engine, directory / "csv", today=AS_OF)
    no_mlflow = f"sqlite:///{directory / 'no-mlflow.db'}"  # no champion: the expert card scores
    for day in (PREVIOUS_AS_OF, AS_OF):
        run_nightly(engine, day, tracking_uri=no_mlflow)
    enterprises = CONTRACT_TABLES["enterprises"]
    with engine.connect() as conn:
        townships = tuple(conn.execute(sa.select(enterprises.c.township).distinct()
                                       .order_by(enterprises.c.township)).scalars())
    users = {
        "admin": User("admin-zhang", secrets.token_urlsafe(15), "admin"),
        "supervisor": User("supervisor-li", secrets.token_urlsafe(15), "supervisor"),
        "planner": User("planner-wang", secrets.token_urlsafe(15), "planner"),
        "viewer": User("viewer-zhao", secrets.token_urlsafe(15), "viewer", (townships[0],)),
    }
    for user in users.values():
        add_account(engine, username=user.username, role=user.role, password=user.password,
                    townships=user.townships, by="tests/browser", min_password_length=15)
    return World(url=url, engine=engine, townships=townships, users=users)


@pytest.fixture(scope="session")
def base_url(world) -> Iterator[str]:
    """The workbench (``create_app`` on the world's database) served by uvicorn on 127.0.0.1 and a free port."""
    import uvicorn

    from scoring.web.app import create_app

    app = create_app(world.engine)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # bound before uvicorn starts: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start serving the workbench within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def browser():
    """Chromium from Debian's package, headless, driven by Playwright; skipped (failed under CI) when missing."""
    missing = missing_browser()
    if missing:
        message = "real-browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run them: .ci/run installs Chromium)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def page(browser, base_url):
    """A fresh browser context (no cookies) per test, downloads accepted, Chinese first."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, accept_downloads=True, locale="zh-CN")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


def screenshot(page, name: str) -> Path:
    """The visible part of the page as ``docs/screenshots/<name>.png`` (linked from the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
