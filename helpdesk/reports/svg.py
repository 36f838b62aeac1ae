"""A small server-side SVG chart builder: stacked bars per day, with accessible names.

Charts are plain SVG markup (no script, no inline style, so the inbox's strict CSP holds):
`role="img"` with a <title> and <desc> naming what is drawn, a <title> on every bar (the
browser shows it as a tooltip and screen readers read it), axis labels as text, and
colours from CSS classes. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 34


@dataclass(frozen=True)
class Series:
    """One stacked layer: a name (legend, tooltips), a CSS class and a value per day."""

    name: str
    css_class: str
    values: Sequence[float | None]


def nice_ceiling(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
) -> str:
    """An SVG bar chart with one (stacked) bar per label; empty values draw nothing."""
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>',
    ]
    parts += _grid(top, plot_w, plot_h, unit)
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = float(TOP + plot_h)
        for layer in series:
            value = layer.values[i]
            if not value:
                continue
            height = plot_h * value / top
            base -= height
            tip = f"{label}: {layer.name} {_number(value)}{unit}"
            parts.append(
                f'<rect class="bar {escape(layer.css_class)}" x="{x:.1f}" y="{base:.1f}" '
                f'width="{bar_w:.1f}" height="{height:.1f}"><title>{escape(tip)}</title></rect>'
            )
    parts += _day_labels(labels, slot, plot_h)
    parts.append("</svg>")
    return "".join(parts)


def _grid(top: float, plot_w: float, plot_h: float, unit: str) -> list[str]:
    lines = []
    for step in range(5):
        value = top * step / 4
        y = TOP + plot_h - plot_h * step / 4
        lines.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        lines.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value) + unit)}</text>"
        )
    return lines


def _day_labels(labels: Sequence[str], slot: float, plot_h: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / 12))  # at most a dozen labels fit
    texts = []
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + i * slot + slot / 2
            texts.append(
                f'<text class="axis" x="{x:.1f}" y="{TOP + plot_h + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return texts


def legend(series: Sequence[Series]) -> list[tuple[str, str]]:
    """(name, CSS class) of each layer, for an HTML legend next to the chart."""
    return [(s.name, s.css_class) for s in series]
