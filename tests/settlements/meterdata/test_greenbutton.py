"""Green Button XML: linking, units, directions, the shared samples and hostile XML."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET  # noqa: S405 - trusted sample files, independent check
from pathlib import Path

import pandas as pd
import pytest

from settlements.meterdata import SCOPE_FILE, SCOPE_SERIES, parse

from .conftest import read_all, utc

SAMPLES = Path("/work/shared/data/greenbutton")
ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"


def _entry(self_href: str, up: str, related: list[str], title: str, content: str) -> str:
    links = "".join(f'<link rel="related" href="{href}"/>' for href in related)
    return (
        f'<entry><link rel="self" href="{self_href}"/><link rel="up" href="{up}"/>{links}'
        f"<title>{title}</title><content>{content}</content></entry>"
    )


def _reading_type(uom: str, multiplier: str, flow: str, extra: str = "") -> str:
    return (
        f'<ReadingType xmlns="{ESPI}"><flowDirection>{flow}</flowDirection>'
        f"<intervalLength>900</intervalLength><powerOfTenMultiplier>{multiplier}"
        f"</powerOfTenMultiplier><uom>{uom}</uom>{extra}</ReadingType>"
    )


def _block(readings: list[tuple[int, int, str]]) -> str:
    body = "".join(
        f"<IntervalReading><ReadingQuality><quality>8</quality></ReadingQuality>"
        f"<timePeriod><duration>{duration}</duration><start>{start}</start></timePeriod>"
        f"<value>{value}</value></IntervalReading>"
        for start, duration, value in readings
    )
    return f'<IntervalBlock xmlns="{ESPI}">{body}</IntervalBlock>'


def _feed(*entries: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<feed xmlns="{ATOM}">' + "".join(entries) + "</feed>").encode()


T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _two_direction_feed() -> bytes:
    """One usage point with delivered Wh and received kWh, blocks before their metadata."""
    return _feed(
        _entry(
            "UP/1/MR/1/IB/1",
            "UP/1/MR/1/IB",
            [],
            "",
            _block([(T0, 900, "1500"), (T0 + 900, 900, "2500")]),
        ),
        _entry(
            "UP/1/MR/2/IB/1", "UP/1/MR/2/IB", [], "", _block([(T0, 900, "7"), (T0 + 900, 900, "x")])
        ),
        _entry("UP/1", "UP", ["UP/1/MR"], "Main St 1", f'<UsagePoint xmlns="{ESPI}"/>'),
        _entry("UP/1/MR/1", "UP/1/MR", ["UP/1/MR/1/IB", "RT/wh"], "", "<MeterReading/>"),
        _entry("UP/1/MR/2", "UP/1/MR", ["UP/1/MR/2/IB", "RT/kwh"], "", "<MeterReading/>"),
        _entry("RT/wh", "RT", [], "", _reading_type("72", "0", "1")),
        _entry("RT/kwh", "RT", [], "", _reading_type("72", "3", "19")),
    )


def test_it_links_entries_in_any_order_and_converts_units_and_directions():
    file = parse(io.BytesIO(_two_direction_feed()))
    rows = read_all(file)
    assert file.format == "greenbutton"
    assert [(s.key, s.direction, s.kwh_per_unit, s.readings) for s in file.series] == [
        ("UP/1#RT/wh", "delivered", 0.001, 2),
        ("UP/1#RT/kwh", "received", 1.0, 2),
    ]
    assert file.series[0].usage_point_title == "Main St 1"
    assert file.interval_minutes == 15
    delivered = rows[rows.direction == "delivered"]
    received = rows[rows.direction == "received"]
    assert delivered.kwh.tolist() == [1.5, 2.5]
    assert received.kwh.tolist() == [7.0]
    assert list(delivered.interval_start) == [utc("2026-01-01T00:00Z"), utc("2026-01-01T00:15Z")]
    assert set(rows.quality) == {"8"}
    assert rows.interval_minutes.tolist() == [15, 15, 15]
    assert [(p.line, p.code) for p in file.problems] == [(2, "invalid_value")]


def test_gas_usage_points_are_skipped_series_not_kwh():
    feed = _feed(
        _entry(
            "UP/2",
            "UP",
            ["UP/2/MR"],
            "Gas meter",
            f'<UsagePoint xmlns="{ESPI}"><ServiceCategory><kind>1</kind></ServiceCategory>'
            "</UsagePoint>",
        ),
        _entry("UP/2/MR/1", "UP/2/MR", ["UP/2/MR/1/IB", "RT/therm"], "", "<MeterReading/>"),
        _entry("RT/therm", "RT", [], "", _reading_type("169", "0", "1")),
        _entry("UP/2/MR/1/IB/1", "UP/2/MR/1/IB", [], "", _block([(T0, 900, "3")])),
    )
    file = parse(io.BytesIO(feed))
    assert read_all(file).empty
    assert "gas" in file.series[0].skipped_reason
    assert [(p.code, p.scope) for p in file.problems] == [("skipped_series", SCOPE_SERIES)]


def test_a_block_linked_to_nothing_is_reported_with_its_line():
    feed = _two_direction_feed().replace(
        b'<link rel="self" href="UP/1/MR/2/IB/1"/><link rel="up" href="UP/1/MR/2/IB"/>',
        b'<link rel="self" href="X/1"/><link rel="up" href="X"/>',
    )
    file = parse(io.BytesIO(feed))
    rows = read_all(file)
    assert set(rows.meter_ref) == {"UP/1#RT/wh"}
    assert "unlinked_interval_block" in [p.code for p in file.problems]


def test_reading_problems_carry_their_xml_line():
    feed = _feed(
        _entry("UP/1", "UP", ["UP/1/MR"], "", "<UsagePoint/>"),
        _entry("UP/1/MR/1", "UP/1/MR", ["UP/1/MR/1/IB", "RT/1"], "", "<MeterReading/>"),
        _entry("RT/1", "RT", [], "", _reading_type("72", "0", "1")),
    ).replace(b"</feed>", b"")
    block = (
        f'\n<entry><link rel="up" href="UP/1/MR/1/IB"/><content><IntervalBlock xmlns="{ESPI}">\n'
        f"<IntervalReading><timePeriod><duration>900</duration><start>{T0}</start></timePeriod>"
        "<value>1</value></IntervalReading>\n"
        f"<IntervalReading><timePeriod><duration>900</duration><start>{T0 + 30}</start>"
        "</timePeriod><value>1</value></IntervalReading>\n"
        f"<IntervalReading><timePeriod><duration>900</duration><start>{T0 + 600}</start>"
        "</timePeriod><value>1</value></IntervalReading>\n"
        "</IntervalBlock></content></entry></feed>"
    ).encode()
    file = parse(io.BytesIO(feed + block))
    rows = read_all(file)
    assert rows.line.tolist() == [4]
    assert [(p.line, p.code) for p in file.problems] == [
        (5, "not_on_minute"),
        (6, "misaligned_interval"),
    ]


def test_a_feed_larger_than_one_chunk_gives_the_same_rows():
    one = read_all(parse(io.BytesIO(_two_direction_feed())))
    many = read_all(parse(io.BytesIO(_two_direction_feed()), chunk_rows=1))
    pd.testing.assert_frame_equal(one, many)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&lol4;</title></feed>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&secret;</title></feed>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE feed SYSTEM "http://127.0.0.1:9/evil.dtd">
<feed xmlns="http://www.w3.org/2005/Atom"><entry><title>x</title></entry></feed>
"""


@pytest.mark.parametrize("attack", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
def test_hostile_xml_is_refused_with_a_clear_problem(attack: bytes):
    file = parse(io.BytesIO(attack))
    assert file.format == "greenbutton"
    assert read_all(file).empty
    assert [(p.line, p.code, p.scope) for p in file.problems] == [(2, "xml_forbidden", SCOPE_FILE)]
    assert "refused for safety" in file.problems[0].message


def test_malformed_xml_is_a_file_problem_with_its_line():
    file = parse(io.BytesIO(b'<?xml version="1.0"?>\n<feed>\n<entry>\n</feed>'))
    assert [(p.line, p.code) for p in file.problems] == [(4, "xml_syntax")]


# --- the shared samples ---------------------------------------------------------------------


def _samples() -> list[Path]:
    if not SAMPLES.is_dir():
        pytest.skip(f"Green Button samples not available at {SAMPLES}")
    return sorted(SAMPLES.glob("*.xml"))


def _independent_kwh(path: Path) -> float:
    """Sum value x 10^multiplier (Wh -> kWh) over every IntervalReading, by plain ElementTree.

    Every sample has one ReadingType, so the multiplier and unit are read once for the file.
    """
    root = ET.parse(path).getroot()  # noqa: S314 - trusted sample files
    espi = {"espi": ESPI}
    reading_type = root.find(".//espi:ReadingType", espi)
    assert reading_type is not None
    assert reading_type.findtext("espi:uom", namespaces=espi) == "72"
    multiplier = int(reading_type.findtext("espi:powerOfTenMultiplier", namespaces=espi) or 0)
    values = [int(v.text or 0) for v in root.iterfind(".//espi:IntervalReading/espi:value", espi)]
    return sum(values) * 10**multiplier / 1000


@pytest.mark.parametrize(
    ("name", "readings"),
    [
        ("Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml", 8760),
        ("TestGBDataHourlyNineDaysBinnedDaily.xml", 216),
        ("electric_containerized.xml", 8),
    ],
)
def test_electric_samples_total_the_same_kwh_as_an_independent_sum(name: str, readings: int):
    paths = {path.name: path for path in _samples()}
    if name not in paths:
        pytest.skip(f"sample {name} not present")
    file = parse(paths[name])
    rows = read_all(file)
    assert file.problems == []
    assert len(rows) == readings
    assert [s.skipped_reason for s in file.series] == [""]
    assert file.series[0].usage_point_href.startswith("https://")
    assert rows.kwh.sum() == pytest.approx(_independent_kwh(paths[name]), rel=1e-12)
    assert (rows.interval_minutes == 60).all()
    assert set(rows.direction) == {"delivered"}
    assert rows.interval_start.is_unique


def test_the_gas_sample_is_reported_as_a_skipped_series():
    paths = {path.name: path for path in _samples()}
    name = "ngma_gas_provider_2024-07-16.xml"
    if name not in paths:
        pytest.skip(f"sample {name} not present")
    file = parse(paths[name])
    assert read_all(file).empty
    assert len(file.series) == 1
    assert file.series[0].skipped_reason
    assert file.series[0].readings == 36
    assert [(p.code, p.scope) for p in file.problems] == [("skipped_series", SCOPE_SERIES)]
