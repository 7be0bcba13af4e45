"""The cast of the statement, dispute and settlement console tests (no tests here).

Two organizations in one July run of ``july_program`` ($8/kW-month with the linear
factor, $0.50/kWh), with hand-computed amounts:

- Acme (site "Acme Plant", 100 kW): event 1 at 80 kW / 160 kWh (ratio 0.8), event 2 at
  60 kW / 120 kWh (ratio 0.6). Capacity 100 kW × $8 × (0.8 + 0.6) / 2 = $560.00; energy
  160 × $0.50 = $80.00 and 120 × $0.50 = $60.00; Acme's statement total $700.00.
- Birch (site "Birch Mill", 50 kW): event 1 at 50 kW / 100 kWh (ratio 1.0). Capacity
  50 × $8 × 1.0 = $400.00; energy $50.00; Birch's total $450.00.

Each performance carries interval data (a flat 180 kW day, cut to the measured load
during the event), so the statement can draw the event's chart.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
import zlib

from dr_platform.models import Membership
from events.models import Event
from settlements.models import EventPerformance, SettlementLine, SettlementRun
from tests.enrollment.factories import SiteFactory
from tests.factories import MembershipFactory, OrganizationFactory, staff_user
from tests.settlements.settlement_helpers import (
    ZONE,
    approved,
    calculated,
    enroll,
    event,
    participate,
)

BASELINE_KW = 180.0


@dataclasses.dataclass
class Cast:
    program: object
    run: SettlementRun
    acme: object
    birch: object
    events: list[Event]
    manager: object  # Program managers: calculated the run
    clerk: object  # Billing: approved it

    def lines(self, organization) -> list[SettlementLine]:
        return list(self.run.lines.filter(organization=organization).order_by("sequence"))


def draw(performance: EventPerformance) -> EventPerformance:
    """Give ``performance`` the interval data the chart reads: 96 quarter-hours of the local
    event day at 180 kW, and the measured reduction inside the event window."""
    event_ = performance.participation.event
    day = event_.starts_at.astimezone(ZONE).date()
    midnight = dt.datetime.combine(day, dt.time(), ZONE)
    actual_kw = BASELINE_KW - performance.average_reduction_kw
    day_actual, intervals = [], []
    for index in range(96):
        start = (midnight + dt.timedelta(minutes=15 * index)).astimezone(dt.UTC)
        inside = event_.starts_at <= start < event_.ends_at
        kw = actual_kw if inside else BASELINE_KW
        day_actual.append([start.isoformat(), kw])
        if inside:
            intervals.append([start.isoformat(), BASELINE_KW, BASELINE_KW / 1.05, kw])
    performance.day_actual = day_actual
    performance.intervals = intervals
    performance.parameters = {
        "adjustment": "multiplicative",
        "adjustment_hours": 2,
        "adjustment_gap_hours": 1,
    }
    performance.save(update_fields=["day_actual", "intervals", "parameters"])
    return performance


def make_cast(program) -> Cast:
    """The two organizations' July run, calculated by a manager and approved by a clerk."""
    acme = OrganizationFactory(legal_name="Acme Cold Storage LLC", billing_account_number="BA-7001")
    birch = OrganizationFactory(legal_name="Birch Paper Mill", billing_account_number="BA-7002")
    acme_enrollment = enroll(program, "100", site=SiteFactory(organization=acme, name="Acme Plant"))
    birch_enrollment = enroll(
        program, "50", site=SiteFactory(organization=birch, name="Birch Mill")
    )
    first = event(program, dt.date(2026, 7, 14))
    second = event(program, dt.date(2026, 7, 21))
    for participation in (
        participate(first, acme_enrollment, average_kw="80", kwh="160"),
        participate(second, acme_enrollment, average_kw="60", kwh="120"),
        participate(first, birch_enrollment, average_kw="50", kwh="100"),
    ):
        draw(participation.performances.get(is_current=True))
    manager = staff_user("Program managers")
    clerk = staff_user("Billing")
    run = approved(calculated(program, by=manager), by=clerk)
    return Cast(
        program=program,
        run=run,
        acme=acme,
        birch=birch,
        events=[first, second],
        manager=manager,
        clerk=clerk,
    )


def member(organization, role: str = Membership.Role.OPERATOR):
    """A participant user of ``organization`` with ``role``."""
    return MembershipFactory(organization=organization, role=role).user


def pdf_text(content: bytes) -> str:
    """The drawing operators of a PDF's streams, decoded (reportlab writes them ASCII85 then
    Flate encoded), enough to find the strings it wrote with a standard font: ``(text) Tj``."""
    parts = []
    for raw in re.findall(rb"stream\r?\n(.*?)endstream", content, re.S):
        data = raw.strip()
        if data.endswith(b"~>"):
            data = base64.a85decode(data, adobe=True)
        try:
            data = zlib.decompress(data)
        except zlib.error:
            pass
        parts.append(data.decode("latin-1"))
    return "\n".join(parts)


#: Asset references that would load something from another host.
FOREIGN_ASSET = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""",
    re.I,
)


def assert_phone_ready(html: str) -> None:
    """Every table sits in the stylesheet's sideways-scrolling ``table-wrap``, and nothing
    is loaded from another host (an inline SVG's namespace is not a load)."""
    tables = len(re.findall(r"<table\b", html))
    wrapped = len(re.findall(r'<div class="table-wrap"><table\b', html))
    assert tables == wrapped, f"{tables - wrapped} of {tables} tables are not in .table-wrap"
    assert not FOREIGN_ASSET.search(html), FOREIGN_ASSET.search(html)
    assert 'name="viewport" content="width=device-width' in html
