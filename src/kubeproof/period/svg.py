"""Inline SVG charts for the period report: no scripts, no external assets, readable in a
browser and in WeasyPrint's PDF alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from kubeproof.period.model import ABSENT, Segment, WeekPoint

COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "not_evaluated": "#ef8f00",
    "excepted": "#1565c0",
    ABSENT: "#d9d9d9",
}
STATE_LABELS = {
    "pass": "passing",
    "fail": "failing",
    "not_evaluated": "not evaluated",
    "excepted": "excepted",
    ABSENT: "no evidence",
}
_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _rate_colour(rate: float) -> str:
    if rate >= 0.95:
        return COLOURS["pass"]
    if rate >= 0.8:
        return "#9e9d24"
    return COLOURS["fail"]


def weekly_chart(weeks: Sequence[WeekPoint], title: str) -> str:
    """Bars of the pass rate (pass of pass + fail) per week, with a y axis in percent and
    week labels; a week without any evidence is shaded and marked."""
    width, height = 680, 190
    left, right, top, bottom = 46, 10, 22, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    count = max(len(weeks), 1)
    slot = plot_w / count
    bar = max(min(slot * 0.7, 28), 1.5)
    parts = [
        f'<svg class="chart weekly" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {_FONT} font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="13" font-size="11" font-weight="bold" fill="#222">'
        f"{escape(title)}</text>",
    ]
    for percent in (0, 25, 50, 75, 100):
        y = top + plot_h * (1 - percent / 100)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e0e0e0" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 3.5:.1f}" text-anchor="end" fill="#555">'
            f"{percent}%</text>"
        )
    label_every = max(1, round(count / 10))
    for index, week in enumerate(weeks):
        x = left + slot * index + (slot - bar) / 2
        rate = week.pass_rate
        judged = week.counts["pass"] + week.counts["fail"]
        if not sum(week.counts.values()):
            parts.append(
                f'<rect class="no-evidence" x="{left + slot * index:.1f}" y="{top}" '
                f'width="{slot:.1f}" height="{plot_h}" fill="#fbe3e3">'
                f"<title>week of {week.week.isoformat()}: no evidence</title></rect>"
            )
        elif rate is not None:
            bar_h = max(plot_h * rate, 1)
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar:.1f}" '
                f'height="{bar_h:.1f}" fill="{_rate_colour(rate)}">'
                f"<title>week of {week.week.isoformat()}: {rate:.1%} of {judged} judged results "
                f"passed</title></rect>"
            )
        else:  # only not_evaluated or excepted results: evidence, but nothing judged
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - 4}" width="{bar:.1f}" height="4" '
                f'fill="{COLOURS["not_evaluated"]}"><title>week of {week.week.isoformat()}: '
                f"nothing could be judged</title></rect>"
            )
        if index % label_every == 0:
            cx = left + slot * index + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 13}" text-anchor="middle" fill="#555">'
                f"{week.week.strftime('%m-%d')}</text>"
            )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#555"/>'
        f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="#555"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" fill="#333">'
        f"week starting (Monday, UTC)</text>"
        f'<text transform="translate(11 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" fill="#333">pass rate</text>'
        "</svg>"
    )
    return "".join(parts)


def calendar(days: Sequence[date], present: set[date], title: str) -> str:
    """One square per day, a column per week: a day without a scan stands out in red."""
    if not days:
        return ""
    cell, gap = 10, 2
    first_monday = days[0] - timedelta(days=days[0].weekday())
    columns = (days[-1] - first_monday).days // 7 + 1
    left, top = 28, 14
    width = max(left + columns * (cell + gap) + 4, 240)
    height = top + 7 * (cell + gap) + 22
    parts = [
        f'<svg class="chart calendar" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {_FONT} font-size="9">',
        f"<title>{escape(title)}</title>",
    ]
    for row, name in ((0, "Mon"), (3, "Thu"), (6, "Sun")):
        y = top + row * (cell + gap) + cell - 1
        parts.append(f'<text x="0" y="{y}" fill="#555">{name}</text>')
    for day in days:
        column = (day - first_monday).days // 7
        x = left + column * (cell + gap)
        y = top + day.weekday() * (cell + gap)
        scanned = day in present
        fill = COLOURS["pass"] if scanned else COLOURS["fail"]
        label = "evidence collected" if scanned else "NO SCAN"
        css = "day" if scanned else "day missing"
        parts.append(
            f'<rect class="{css}" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}">'
            f"<title>{day.isoformat()}: {label}</title></rect>"
        )
        if day.day == 1 or (day == days[0] and day.day <= 20):
            parts.append(f'<text x="{x}" y="{top - 4}" fill="#555">{day.strftime("%b")}</text>')
    legend_y = height - 6
    parts.append(
        f'<rect x="{left}" y="{legend_y - 8}" width="8" height="8" fill="{COLOURS["pass"]}"/>'
        f'<text x="{left + 11}" y="{legend_y}" fill="#333">scan recorded</text>'
        f'<rect x="{left + 90}" y="{legend_y - 8}" width="8" height="8" fill="{COLOURS["fail"]}"/>'
        f'<text x="{left + 101}" y="{legend_y}" fill="#333">no scan that day</text>'
        "</svg>"
    )
    return "".join(parts)


def timeline(segments: Sequence[Segment], total_days: int, label: str) -> str:
    """A workload's days as one strip: a rectangle per run of days in the same state."""
    width, height = 300, 12
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">'
    ]
    days = max(total_days, 1)
    offset = 0
    for segment in segments:
        length = (segment.last_day - segment.first_day).days + 1
        x = width * offset / days
        w = max(width * length / days, 0.6)
        parts.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" '
            f'fill="{COLOURS.get(segment.state, COLOURS[ABSENT])}">'
            f"<title>{segment.first_day.isoformat()} to {segment.last_day.isoformat()}: "
            f"{STATE_LABELS.get(segment.state, segment.state)}</title></rect>"
        )
        offset += length
    parts.append("</svg>")
    return "".join(parts)


def legend() -> str:
    items = "".join(
        f'<span class="key"><span class="swatch" style="background:{COLOURS[state]}"></span>'
        f"{escape(label)}</span>"
        for state, label in STATE_LABELS.items()
    )
    return f'<p class="legend">{items}</p>'
