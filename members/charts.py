"""A small inline SVG line chart for the admin (no JavaScript, no CDN)."""

from __future__ import annotations

from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Distinguishable on white and for most colour-blind readers (Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 28


def _nice_max(value: int) -> int:
    if value <= 0:
        return 1
    step = 10 ** (len(str(value)) - 1)
    return ((value + step - 1) // step) * step


def line_chart(*, days: list[date], series: list[tuple[str, list[int | None]]], title: str):
    """An SVG with one line per series over `days` (None = no value that day), a y axis from
    0, the first and last day labelled, and a legend under it."""
    if not days:
        return SafeString("")
    top_value = _nice_max(max((v for _n, values in series for v in values if v), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top_value

    ticks = [top_value * i // 4 for i in range(5)]
    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">{}</text>',
        (
            (
                LEFT,
                f"{y(tick):.1f}",
                WIDTH - RIGHT,
                f"{y(tick):.1f}",
                LEFT - 6,
                f"{y(tick) + 4:.1f}",
                f"{tick:,}",
            )
            for tick in ticks
        ),
    )
    lines, legend = [], []
    for number, (name, values) in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
        lines.append(
            format_html(
                '<polyline points="{}" fill="none" stroke="{}" stroke-width="2">'
                "<title>{}</title></polyline>",
                points,
                colour,
                name,
            )
        )
        latest = next((v for v in reversed(values) if v is not None), 0)
        legend.append(
            format_html(
                '<span style="display:inline-block;margin-right:14px">'
                '<span style="display:inline-block;width:12px;height:12px;background:{};'
                'vertical-align:middle;margin-right:4px"></span>{} ({})</span>',
                colour,
                name,
                f"{latest:,}",
            )
        )
    labels = format_html(
        '<text x="{}" y="{}" font-size="11" fill="#666">{}</text>'
        '<text x="{}" y="{}" font-size="11" fill="#666" text-anchor="end">{}</text>',
        LEFT,
        HEIGHT - 8,
        days[0].isoformat(),
        WIDTH - RIGHT,
        HEIGHT - 8,
        days[-1].isoformat(),
    )
    svg = format_html(
        '<svg role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'style="max-width:{}px" xmlns="http://www.w3.org/2000/svg">{}{}{}</svg>',
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        grid,
        mark_safe("".join(lines)),  # each line was built with format_html
        labels,
    )
    return format_html(
        '<figure class="segment-chart"><figcaption><strong>{}</strong></figcaption>{}'
        "<div>{}</div></figure>",
        title,
        svg,
        mark_safe("".join(legend)),  # each item was built with format_html
    )
