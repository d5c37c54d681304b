"""Charts drawn on the server as inline SVG (no script, no chart library, nothing downloaded: bureau intranets are
offline and the pages' Content-Security-Policy allows no inline script or style — only presentation attributes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from markupsafe import Markup, escape

__all__ = ["TIER_COLOURS", "history_svg"]

TIER_COLOURS = {"high": "#b3261e", "general": "#9a6700", "low": "#1a7f37"}


def history_svg(points: Sequence[tuple[date, float, str]], *, width: int = 720, height: int = 240) -> Markup:
    """The enterprise's calibrated probability over the stored runs (a line), each run a dot in the colour of its
    final tier; axes with the dates of the first and last run and the probability scale. ``points``: ``(as_of,
    probability, final_tier)`` of each stored run (as :func:`scoring.results.tables.enterprise_history_rows` reads
    them)."""
    if not points:
        return Markup('<p class="muted">尚无评分记录 <span class="en">no stored score yet</span></p>')
    points = sorted(((_as_date(day), float(p), tier) for day, p, tier in points), key=lambda point: point[0])
    left, right, top, bottom = 56, 16, 14, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    first, last = points[0][0], points[-1][0]
    span = max((last - first).days, 1)
    peak = max(p for _, p, _ in points)
    ceiling = max(0.05, min(1.0, _nice(peak * 1.1)))

    def x(day: date) -> float:
        return left + (plot_w / 2 if len(points) == 1 else plot_w * (day - first).days / span)

    def y(p: float) -> float:
        return top + plot_h * (1 - min(max(p, 0.0), ceiling) / ceiling)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" aria-labelledby="history-title">',
             '<title id="history-title">风险概率与等级历史 probability and tier history</title>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#d5dbe2"/>']
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = ceiling * fraction
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#eef2f6"/>')
        parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#5d6b7a">{value:.2f}</text>')
    line = " ".join(f"{x(d):.1f},{y(p):.1f}" for d, p, _ in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#0b5cad" stroke-width="1.5"/>')
    for day, probability, tier in points:
        colour = TIER_COLOURS.get(str(tier), "#5d6b7a")
        label = escape(f"{day:%Y-%m-%d}: {probability:.4f} {tier}")
        parts.append(f'<circle cx="{x(day):.1f}" cy="{y(probability):.1f}" r="3.5" fill="{colour}">'
                     f'<title>{label}</title></circle>')
    baseline = top + plot_h + 16
    parts.append(f'<text x="{left}" y="{baseline}" font-size="11" fill="#5d6b7a">{_day(first)}</text>')
    if len(points) > 1:
        parts.append(f'<text x="{left + plot_w}" y="{baseline}" text-anchor="end" font-size="11" '
                     f'fill="#5d6b7a">{_day(last)}</text>')
    legend_x = left
    for tier, zh in (("high", "高风险 high"), ("general", "一般 general"), ("low", "低风险 low")):
        parts.append(f'<circle cx="{legend_x + 140}" cy="{baseline + 10}" r="4" fill="{TIER_COLOURS[tier]}"/>'
                     f'<text x="{legend_x + 148}" y="{baseline + 14}" font-size="11" fill="#1d2733">{zh}</text>')
        legend_x += 110
    parts.append("</svg>")
    return Markup("".join(parts))


def _nice(value: float) -> float:
    """A round upper bound for the probability axis (0.05, 0.1, 0.2, 0.25, 0.5, 1)."""
    for bound in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0):
        if value <= bound:
            return bound
    return 1.0


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _day(value: date) -> str:
    return value.isoformat()
