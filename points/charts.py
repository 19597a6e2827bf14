"""Inline SVG chart of the liability forecast: a P10-P90 band, the P50 line and the
deterministic projection (server-side, no JavaScript, no vendored library)."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 12, 48
BAND, MEDIAN, PLAIN = "#56B4E9", "#0072B2", "#D55E00"


def _nice_max(value: float) -> int:
    if value <= 0:
        return 1
    step = 10 ** (len(str(int(value))) - 1)
    return int(((int(value) + step - 1) // step) * step) or 1


def band_chart(
    *,
    labels: list[str],
    low: list[int],
    mid: list[int],
    high: list[int],
    plain: list[int],
    names: tuple[str, str, str],
    title: str,
) -> SafeString:
    """`names`: (band, median line, deterministic line) for the legend."""
    if not labels:
        return SafeString("")
    top_value = _nice_max(max([*high, *plain, 1]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (len(labels) - 1) if len(labels) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top_value

    ticks = [top_value * i // 4 for i in range(5)]
    grid = format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666">{}</text>',
        (
            (LEFT, f"{y(t):.1f}", WIDTH - RIGHT, f"{y(t):.1f}", LEFT - 6, f"{y(t) + 4:.1f}", t)
            for t in ticks
        ),
    )
    upper = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(high)]
    lower = [f"{x(i):.1f},{y(v):.1f}" for i, v in reversed(list(enumerate(low)))]
    band = format_html(
        '<polygon class="band" points="{}" fill="{}" fill-opacity="0.35" stroke="none">'
        "<title>{}</title></polygon>",
        " ".join(upper + lower),
        BAND,
        names[0],
    )

    def line(values: list[int], colour: str, name: str, dash: str, css: str) -> SafeString:
        return format_html(
            '<polyline class="{}" points="{}" fill="none" stroke="{}" stroke-width="2" '
            'stroke-dasharray="{}"><title>{}</title></polyline>',
            css,
            " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values)),
            colour,
            dash,
            name,
        )

    month_labels = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666">{}</text>',
        ((f"{x(i):.1f}", HEIGHT - BOTTOM + 16, label) for i, label in enumerate(labels)),
    )
    legend = format_html_join(
        "",
        '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>'
        '<text x="{}" y="{}" font-size="12" fill="#333">{}</text>',
        (
            (LEFT + n * 230, HEIGHT - 18, colour, LEFT + n * 230 + 16, HEIGHT - 8, name)
            for n, (colour, name) in enumerate(zip((BAND, MEDIAN, PLAIN), names, strict=True))
        ),
    )
    return format_html(
        '<svg class="forecast-chart" viewBox="0 0 {} {}" width="100%" role="img" '
        'aria-label="{}" xmlns="http://www.w3.org/2000/svg">{}{}{}{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        title,
        grid,
        band,
        line(mid, MEDIAN, names[1], "none", "p50"),
        line(plain, PLAIN, names[2], "6 4", "deterministic"),
        month_labels,
        mark_safe(legend),  # built by format_html_join: already escaped
    )
