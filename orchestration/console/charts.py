"""Inline SVG charts, drawn on the server: the console needs no JavaScript."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup


def line_chart(
    points: Sequence[tuple[date, int]], width: int = 640, height: int = 180, label: str = "members"
) -> Markup:
    """A step line of ``points`` (day, value), with the first and last day and the maximum on
    the axes; an empty chart says there is no history yet."""
    if not points:
        return Markup('<p class="empty">No membership history yet.</p>')
    pad_left, pad_bottom, pad_top = 56, 24, 10
    inner_w, inner_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max(value for _, value in points) or 1
    first, last = points[0][0], points[-1][0]
    span = max((last - first).days, 1)

    def x(day: date) -> float:
        return pad_left + inner_w * (day - first).days / span

    def y(value: int) -> float:
        return pad_top + inner_h * (1 - value / top)

    path = []
    previous = None
    for day, value in points:
        if previous is not None:
            path.append(f"L{x(day):.1f},{y(previous):.1f}")
        path.append(f"{'M' if previous is None else 'L'}{x(day):.1f},{y(value):.1f}")
        previous = value
    if len(points) == 1:
        path.append(f"L{pad_left + inner_w:.1f},{y(points[0][1]):.1f}")
    title = escape(f"{label} per day, {first} to {last}")
    return Markup(
        f'<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{title}</title>'
        f'<line x1="{pad_left}" y1="{pad_top + inner_h}" x2="{pad_left + inner_w}" '
        f'y2="{pad_top + inner_h}" class="axis"/>'
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + inner_h}" '
        'class="axis"/>'
        f'<text x="{pad_left - 6}" y="{pad_top + 4}" text-anchor="end">{top:,}</text>'
        f'<text x="{pad_left - 6}" y="{pad_top + inner_h}" text-anchor="end">0</text>'
        f'<text x="{pad_left}" y="{height - 6}">{first}</text>'
        f'<text x="{pad_left + inner_w}" y="{height - 6}" text-anchor="end">{last}</text>'
        f'<path d="{" ".join(path)}" class="line"/></svg>'
    )


def share(part: int, whole: int) -> float:
    """``part`` of ``whole`` as a percentage (0 when there is no whole)."""
    return 100.0 * part / whole if whole else 0.0
