"""The load chart is plain inline SVG: scaled by hand-checkable arithmetic, marked up for
screen readers, and self-contained (nothing fetched from anywhere)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from settlements.charts import Series, load_chart, nice_ceiling

UTC = ZoneInfo("UTC")


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 7, 15, hour, minute, tzinfo=dt.UTC)


def chart(**overrides) -> str:
    arguments = {
        "series": [
            Series(
                label="Actual",
                points=[(at(12), 0.0), (at(14), 50.0), (at(16), 100.0)],
                colour="#b3261e",
                key="actual",
            ),
            Series(
                label="Baseline",
                points=[(at(13), 100.0), (at(14), 100.0)],
                colour="#0b5cad",
                key="baseline",
            ),
        ],
        "start": at(12),
        "end": at(16),
        "zone": UTC,
        "title": "Baseline and actual load",
        "description": "Four hours of load.",
        "event_window": (at(13), at(14)),
        "adjustment_window": (at(12), at(13)),
    }
    arguments.update(overrides)
    return str(load_chart(**arguments))


def test_it_scales_time_and_kw_onto_the_plot_area():
    svg = chart()
    # Plot area: x 56..624 (568 wide) over 4 hours, y 276 (0 kW) .. 28 (100 kW), 248 high.
    # 12:00 -> 56, 14:00 -> 56 + 568/2 = 340, 16:00 -> 624; 0 kW -> 276, 50 -> 152, 100 -> 28.
    assert '<polyline points="56,276 340,152 624,28"' in svg
    # 13:00 -> 56 + 568/4 = 198.
    assert '<polyline points="198,28 340,28"' in svg


def test_it_shades_the_event_window_and_marks_the_adjustment_window():
    svg = chart()
    assert '<rect class="event-window" x="198" y="28" width="142" height="248"' in svg
    assert '<g class="adjustment-window" data-start="56" data-end="198">' in svg
    assert "Adjustment window 12:00–13:00 UTC" in svg
    assert "Event 13:00–14:00 UTC" in svg


def test_each_series_is_one_group_with_one_polyline_when_unbroken():
    svg = chart()
    groups = re.findall(r'<g class="series" data-series="(\w+)">(.*?)</g>', svg)
    assert [key for key, _ in groups] == ["actual", "baseline"]
    assert [body.count("<polyline") for _, body in groups] == [1, 1]


def test_a_missing_value_breaks_the_line_instead_of_bridging_it():
    svg = chart(
        series=[
            Series(
                label="Actual",
                points=[(at(12), 10.0), (at(13), None), (at(14), 10.0), (at(15), 10.0)],
                colour="#000",
            )
        ]
    )
    assert svg.count("<polyline") == 2


def test_it_is_accessible_and_scales_with_its_container():
    svg = chart(title="Load <of> Harbor & Co", description="What it shows.")
    assert 'viewBox="0 0 640 320"' in svg and 'width="100%"' in svg
    assert 'role="img"' in svg and 'aria-labelledby="load-chart-title load-chart-desc"' in svg
    assert '<title id="load-chart-title">Load &lt;of&gt; Harbor &amp; Co</title>' in svg
    assert '<desc id="load-chart-desc">What it shows.</desc>' in svg
    # Axis labels: local time and kW.
    assert ">kW</text>" in svg and ">12:00</text>" in svg and ">16:00</text>" in svg


def test_time_labels_are_local_wall_clock_times():
    new_york = ZoneInfo("America/New_York")
    svg = chart(zone=new_york)  # 12:00 UTC is 08:00 EDT
    assert ">08:00</text>" in svg and ">12:00</text>" in svg
    assert "Local time (EDT, 2026-07-15)" in svg


def test_it_references_nothing_outside_itself():
    svg = chart()
    assert "<script" not in svg and "<image" not in svg and "<use" not in svg
    assert not re.search(r"\b(?:href|src)\s*=", svg)
    assert "url(" not in svg and "@import" not in svg
    # The only URL anywhere is the SVG namespace, which is a name, not a fetch.
    assert re.findall(r"https?://[^\s\"<]+", svg) == ["http://www.w3.org/2000/svg"]


def test_text_from_the_database_cannot_inject_markup():
    svg = chart(title='"><script src="https://evil.example/x.js"></script>')
    assert "<script" not in svg
    assert "&lt;script src=&quot;https://evil.example/x.js&quot;&gt;" in svg


def test_the_axis_top_is_a_round_number_above_the_largest_value():
    assert nice_ceiling(100) == (100, 20)
    assert nice_ceiling(87) == (100, 20)
    assert nice_ceiling(437) == (500, 100)
    assert nice_ceiling(12.5) == (12.5, 2.5)
