"""The workbench's routers, one module per area; :func:`scoring.web.app.create_app` includes every router of
:data:`ROUTERS`. A new area adds its module name here (one line) and defines ``router = APIRouter()``."""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

_MODULES: tuple[str, ...] = (
    "overview",
    "runs",
    "disclosure",
    "accounts",
    "ranking",
    "enterprise",
    "plans",
)

ROUTERS: list[APIRouter] = [import_module(f"{__name__}.{name}").router for name in _MODULES]
