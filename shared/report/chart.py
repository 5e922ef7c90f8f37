"""The 30-day chart of the ``/reports`` page: one server-rendered SVG, no script, no ``style`` attribute or
element (presentation attributes only), so it fits a strict Content-Security-Policy (``default-src 'none';
img-src 'self'``, no ``'unsafe-inline'``) and renders without JavaScript.

Three panels share the x axis (one slot per report date): users over time (a line), users created per day
(bars), members and guests (stacked bars). Text is escaped; numbers are formatted by Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from shared.core.records import Record

WIDTH = 720
PANEL = 150
GAP = 46
LEFT, RIGHT, TOP = 64, 16, 28
MEMBERS, GUESTS, LINE, BARS, GRID, TEXT = "#0f6cbd", "#c239b3", "#0f6cbd", "#107c10", "#e1e1e1", "#424242"


class DayPoint(Record):
    date: str
    users: int
    created: int
    members: int
    guests: int


def points_from_summaries(summaries: Sequence[dict[str, Any]]) -> list[DayPoint]:
    """One point per completed report, oldest first (``created`` is the report's created-in-24-h count)."""
    out = []
    for summary in summaries:
        totals = summary.get("totals") or {}
        out.append(
            DayPoint(
                date=str(summary.get("reportDate", "")),
                users=int(totals.get("users", 0)),
                created=int(totals.get("createdLast24h", 0)),
                members=int(totals.get("members", 0)),
                guests=int(totals.get("guests", 0)),
            )
        )
    return out


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def render_svg(points: Sequence[DayPoint]) -> str:
    """The chart as an ``<svg>`` element (a fragment for the page's HTML)."""
    height = TOP + 3 * PANEL + 2 * GAP + 56
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title" '
        f'font-family="Segoe UI, Arial, sans-serif" font-size="12" fill="{TEXT}">',
        f'<title id="chart-title">Users over the last {len(points)} reports</title>',
    ]
    if not points:
        parts.append(f'<text x="{WIDTH // 2}" y="{TOP + 40}" text-anchor="middle">No report yet</text></svg>')
        return "".join(parts)
    inner = WIDTH - LEFT - RIGHT
    slot = inner / len(points)
    panels = [
        ("Users", [p.users for p in points], "line"),
        ("Created per day", [p.created for p in points], "bars"),
        ("Members and guests", [p.members + p.guests for p in points], "stack"),
    ]
    for index, (title, values, kind) in enumerate(panels):
        top = TOP + index * (PANEL + GAP)
        bottom = top + PANEL
        # An even top keeps the middle grid line on a whole number (a top of 1 labelled 0, 0, 1 before).
        high = max(max(values), 2)
        high += high % 2
        parts.append(
            f'<text x="{LEFT}" y="{top - 8}" font-size="13" font-weight="600">{escape(title)}</text>'
        )
        for fraction in (0.0, 0.5, 1.0):
            y = bottom - fraction * PANEL
            parts.append(
                f'<line x1="{LEFT}" y1="{_fmt(y)}" x2="{WIDTH - RIGHT}" y2="{_fmt(y)}" stroke="{GRID}" '
                f'stroke-width="1"/>'
                f'<text x="{LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end">{int(high * fraction)}</text>'
            )

        def y_of(value: float, high: int = high, bottom: float = bottom) -> float:
            return bottom - value / high * PANEL

        if kind == "line":
            coords = " ".join(
                f"{_fmt(LEFT + slot * (i + 0.5))},{_fmt(y_of(v))}" for i, v in enumerate(values)
            )
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{LINE}" stroke-width="2"/>')
            for i, v in enumerate(values):
                parts.append(
                    f'<circle cx="{_fmt(LEFT + slot * (i + 0.5))}" cy="{_fmt(y_of(v))}" r="3" fill="{LINE}">'
                    f"<title>{escape(points[i].date)}: {v} users</title></circle>"
                )
        elif kind == "bars":
            for i, v in enumerate(values):
                x, w = LEFT + slot * i + slot * 0.15, slot * 0.7
                top_y = y_of(v)
                parts.append(
                    f'<rect x="{_fmt(x)}" y="{_fmt(top_y)}" width="{_fmt(w)}" '
                    f'height="{_fmt(bottom - top_y)}" '
                    f'fill="{BARS}"><title>{escape(points[i].date)}: {v} created</title></rect>'
                )
        else:
            for i, point in enumerate(points):
                x, w = LEFT + slot * i + slot * 0.15, slot * 0.7
                member_top, guest_top = y_of(point.members), y_of(point.members + point.guests)
                parts.append(
                    f'<rect x="{_fmt(x)}" y="{_fmt(member_top)}" width="{_fmt(w)}" '
                    f'height="{_fmt(bottom - member_top)}" fill="{MEMBERS}"><title>{escape(point.date)}: '
                    f"{point.members} members</title></rect>"
                    f'<rect x="{_fmt(x)}" y="{_fmt(guest_top)}" width="{_fmt(w)}" '
                    f'height="{_fmt(member_top - guest_top)}" fill="{GUESTS}"><title>{escape(point.date)}: '
                    f"{point.guests} guests</title></rect>"
                )
    axis_y = TOP + 3 * PANEL + 2 * GAP + 18
    step = max(1, len(points) // 6)
    for i in range(0, len(points), step):
        parts.append(
            f'<text x="{_fmt(LEFT + slot * (i + 0.5))}" y="{axis_y}" text-anchor="middle">'
            f"{escape(points[i].date[5:])}</text>"
        )
    legend_y = axis_y + 18
    parts.append(
        f'<rect x="{LEFT}" y="{legend_y - 10}" width="10" height="10" fill="{MEMBERS}"/>'
        f'<text x="{LEFT + 14}" y="{legend_y}">members</text>'
        f'<rect x="{LEFT + 90}" y="{legend_y - 10}" width="10" height="10" fill="{GUESTS}"/>'
        f'<text x="{LEFT + 104}" y="{legend_y}">guests</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
