"""The planners' workbench (``riskgrade serve``): server-rendered pages on the nightly batch's tables.

- :mod:`scoring.web.app` — :func:`~scoring.web.app.create_app`, the FastAPI application factory;
- :mod:`scoring.web.settings` — :class:`~scoring.web.settings.WebSettings` (from the policy file's ``[web]``);
- :mod:`scoring.web.auth` — accounts in sessions, roles (:func:`~scoring.web.auth.require`), login throttling;
- :mod:`scoring.web.security` — CSRF on every POST, input guard, security headers;
- :mod:`scoring.web.pages` — templates, :func:`~scoring.web.pages.render`, the request's engine and policy;
- :mod:`scoring.web.routes` — one router per area, listed in ``ROUTERS``.

The pages only read what the batch stored and call the same query and action functions as the CLI
(:mod:`scoring.results`); no query logic lives here. Importing this package imports no web framework: the CLI
imports it only inside ``riskgrade serve``.
"""
