"""The admin's server-side SVG charts."""

import re

from portal.admin.charts import Series, _nice_ceiling, bar_chart


def bars(svg):
    return [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)"', svg)]


def test_bars_are_proportional_to_their_values_and_titled():
    svg = bar_chart(
        title="deleted <per> day",
        labels=["a", "b", "c"],
        series=[Series("deleted", (0, 50, 100), "#000")],
    )

    low, mid, high = bars(svg)
    assert low == 0 and abs(high - 2 * mid) < 0.2
    assert "<title>b: deleted 50</title>" in svg
    assert "deleted &lt;per&gt; day" in svg and "<per>" not in svg


def test_an_empty_month_still_draws_an_axis():
    svg = bar_chart(title="t", labels=["x"] * 30, series=[Series("s", (0,) * 30, "#000")])

    assert svg.startswith("<svg") and bars(svg) == [0] * 30


def test_axis_top_is_a_round_number_at_least_the_largest_value():
    assert [_nice_ceiling(v) for v in (0, 1, 7, 12, 430, 2600)] == [1, 1, 10, 20, 500, 5000]
