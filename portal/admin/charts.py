"""Small server-side SVG bar charts for the admin: no JavaScript, nothing fetched.

The admin must work offline, so charts are drawn here as inline SVG, with the
values in each bar's ``<title>`` (shown on hover and read by screen readers).
"""

from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 440, 170
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 52, 6, 10, 26


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]
    color: str  # a CSS colour


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^n that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def bar_chart(*, title, labels, series, format_value=str, label_every=5) -> SafeString:
    """Grouped bars, one group per label, one bar per series; ``format_value`` renders
    the axis and hover values (e.g. a duration formatter)."""
    top = _nice_ceiling(max((v for s in series for v in s.values), default=0))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.8 / max(len(series), 1), 1)
    parts = [
        f'<svg class="portal-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = MARGIN_TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'class="grid"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(format_value(top * fraction))}</text>"
        )
    for index, label in enumerate(labels):
        x0 = MARGIN_LEFT + index * slot + slot * 0.1
        for number, one in enumerate(series):
            value = one.values[index]
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + number * bar_w:.1f}" y="{MARGIN_TOP + plot_h - h:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}" fill="{escape(one.color)}">'
                f"<title>{escape(label)}: {escape(one.name)} {escape(format_value(value))}"
                "</title></rect>"
            )
        last = index == len(labels) - 1
        if index % label_every == 0 or last:
            # The last label ends at the plot's edge instead of running past it.
            x, anchor = (WIDTH - MARGIN_RIGHT, "end") if last else (x0 + slot * 0.4, "middle")
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every value above is escaped
