"""一公开 Public disclosure (no login): per period, the enterprises drawn at random and by which department.

Answers 404 unless the operator turned it on (``riskgrade serve --public-disclosure`` or ``[web]
public_disclosure = true``). Shows the approved plans' draws only, and nothing else: no tier, score, reason or
stratum; a month appears once it is over.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from scoring.results.overview import disclosed_draws
from scoring.web.pages import engine, render, settings

router = APIRouter()


@router.get("/public/draws")
def public_draws(request: Request):
    config = settings(request)
    if not config.disclosure_enabled:
        raise HTTPException(status_code=404)
    periods = disclosed_draws(engine(request), before_period=config.now().strftime("%Y-%m"))
    return render(request, "disclosure.html", {"periods": periods})
