"""The application's routes as a flat list (path, methods, route), whatever way the framework nests routers.

FastAPI 0.16x keeps each included router as one nested entry of ``app.routes``; older releases copied its routes
into the app. :func:`app_routes` walks either, so the navigation and the permission-matrix test see every route.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["RouteInfo", "app_routes"]


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    route: object  # the framework's route (``endpoint``, ``dependant``, ...)


def app_routes(app) -> list[RouteInfo]:
    """Every HTTP route of ``app`` with its full path (mounts such as ``/static`` are left out)."""
    return list(_walk(app.routes, ""))


def _walk(routes: Iterable, prefix: str) -> Iterator[RouteInfo]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(nested.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif getattr(route, "methods", None) and hasattr(route, "path"):
            yield RouteInfo(prefix + route.path, frozenset(route.methods), route)
