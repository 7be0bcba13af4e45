"""Firm-service-level programs: a settlement run charges the energy used above each site's
firm service level during events, with amounts computed by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from dr_platform.models import Membership
from settlements.billing import billing_export_create
from settlements.runs import calculation
from tests.enrollment.factories import SiteFactory
from tests.factories import OrganizationFactory
from tests.settlements.settlement_helpers import (
    amounts,
    approved,
    calculated,
    enroll,
    event,
    make_program,
    measure_intervals,
    participate,
)
from tests.settlements.statement_cast import draw, member

#: Actual kW of the eight quarter-hours of a two-hour event, one without a reading. Against
#: a firm level of 50 kW: 62, 58, 70 and 50.5 are above it (4 of the 7 with a reading).
ACTUAL_KW = [40.0, 50.0, 62.0, 58.0, 70.0, None, 45.0, 50.5]


def _firm(enrollment, level: str | None):
    enrollment.firm_service_level_kw = None if level is None else Decimal(level)
    enrollment.save(update_fields=["firm_service_level_kw"])
    return enrollment


def _measured(the_event, enrollment, actual_kw=ACTUAL_KW, *, average_kw="80", kwh="160"):
    participation = participate(the_event, enrollment, average_kw=average_kw, kwh=kwh)
    return measure_intervals(participation.performances.get(is_current=True), actual_kw)


@pytest.fixture
def excess_program(db):
    """$8/kW-month capacity (linear factor), $0.50/kWh energy, $2/kWh above the firm level."""
    return make_program(capacity_rate="8", energy_rate="0.50", excess_energy_rate="2")


def test_energy_above_the_firm_level_is_charged_with_a_line_a_participant_can_check(
    excess_program,
):
    enrollment = _firm(enroll(excess_program, "100"), "50")
    the_event = event(excess_program, dt.date(2026, 7, 14))
    performance = _measured(the_event, enrollment)

    run = calculated(excess_program)

    # Capacity: 100 kW × 1 month × $8 × factor 0.8 (80 kW of 100) = $640.00.
    # Energy: 160 kWh × $0.50 = $80.00.
    # Excess: (62 - 50) + (58 - 50) + (70 - 50) + (50.5 - 50) = 40.5 kW over 4 quarter-hours
    # = 40.5 × 15 / 60 = 10.125 kWh × -$2.00 = -$20.25.
    assert amounts(run) == [
        ("capacity", None, "640.00"),
        ("energy", the_event.pk, "80.00"),
        ("excess_energy", the_event.pk, "-20.25"),
    ]
    excess = run.lines.get(kind="excess_energy")
    assert (excess.quantity, excess.unit, excess.rate) == (
        Decimal("10.125"),
        "kWh",
        Decimal("-2"),
    )
    assert excess.performance_id == performance.pk
    assert excess.site_id == enrollment.site_id
    assert excess.explanation == (
        "Excess 10.125 kWh above the firm service level × $2.00/kWh charge = -$20.25. "
        "Firm service level 50.000 kW: actual load above it in 4 of 7 intervals of 15 min "
        "(performance v1)."
    )
    # The energy line keeps its own measurement sentence.
    energy = run.lines.get(kind="energy")
    assert "Baseline caiso_10_of_10 (performance v1)" in energy.explanation
    assert "firm service level" not in run.notes


def test_the_excess_charge_follows_the_per_interval_treatment_of_reductions(db):
    program = make_program(
        capacity_rate="8",
        energy_rate="0.50",
        excess_energy_rate="2",
        negative_reductions="floor_interval",
    )
    enrollment = _firm(enroll(program, "100"), "50")
    the_event = event(program, dt.date(2026, 7, 14))
    _measured(the_event, enrollment)

    run = calculated(program)

    # Reductions from the 180 kW baseline: 140 + 130 + 118 + 122 + 110 + 135 + 129.5
    # = 884.5 kW over 7 quarter-hours = 221.125 kWh × $0.50 = $110.5625 → $110.56; their
    # mean 126.36 kW of 100 committed caps the linear factor at 1: 100 × $8 = $800.00.
    # Excess as above: 10.125 kWh × -$2.00 = -$20.25.
    assert amounts(run) == [
        ("capacity", None, "800.00"),
        ("energy", the_event.pk, "110.56"),
        ("excess_energy", the_event.pk, "-20.25"),
    ]


def test_a_site_that_stays_at_or_below_its_firm_level_gets_no_excess_line(excess_program):
    enrollment = _firm(enroll(excess_program, "100"), "70")
    the_event = event(excess_program, dt.date(2026, 7, 14))
    _measured(the_event, enrollment)  # at most 70 kW: at the level, never above it

    run = calculated(excess_program)

    # The library writes no line for 0 kWh above the level (not a $0.00 one).
    assert amounts(run) == [
        ("capacity", None, "640.00"),
        ("energy", the_event.pk, "80.00"),
    ]


def test_a_site_without_a_firm_level_is_named_in_the_notes_and_not_charged(excess_program):
    with_level = _firm(enroll(excess_program, "100"), "50")
    without = enroll(excess_program, "100", name="Birch Mill")
    the_event = event(excess_program, dt.date(2026, 7, 14))
    _measured(the_event, with_level)
    _measured(the_event, without)

    run = calculated(excess_program)

    charged = run.lines.filter(kind="excess_energy")
    assert [(line.site_id, line.amount) for line in charged] == [
        (with_level.site_id, Decimal("-20.25"))
    ]
    assert (
        f"Site {without.site_id} (Birch Mill, enrollment {without.pk}): no firm service level; "
        "no excess energy charge."
    ) in run.notes.splitlines()
    assert f"Site {with_level.site_id} (" not in run.notes


def test_a_performance_without_interval_data_is_noted_not_charged(excess_program):
    enrollment = _firm(enroll(excess_program, "100"), "50")
    the_event = event(excess_program, dt.date(2026, 7, 14))
    participation = participate(the_event, enrollment, average_kw="80", kwh="160")

    run = calculated(excess_program)

    assert [kind for kind, _, _ in amounts(run)] == ["capacity", "energy"]
    assert (
        f"Participation {participation.pk} (site {enrollment.site_id}, event {the_event.pk} on "
        "2026-07-14): performance v1 has no interval data; no excess energy charge."
    ) in run.notes.splitlines()


def test_a_program_without_an_excess_rate_reads_no_intervals_and_keeps_its_lines(
    july_program, monkeypatch
):
    # Two sites measured alike; only the first has a firm level and load above it.
    above = _firm(enroll(july_program, "100"), "50")
    plain = enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    _measured(the_event, above)
    participate(the_event, plain, average_kw="80", kwh="160")
    asked = []
    reads = calculation.participations_measured

    def spy(event_ids, *, with_intervals=False):
        asked.append(with_intervals)
        return reads(event_ids, with_intervals=with_intervals)

    monkeypatch.setattr(calculation, "participations_measured", spy)

    run = calculated(july_program)

    assert asked == [False]
    assert amounts(run) == [
        ("capacity", None, "640.00"),
        ("energy", the_event.pk, "80.00"),
        ("capacity", None, "640.00"),
        ("energy", the_event.pk, "80.00"),
    ]
    first, second = (
        list(run.lines.filter(site_id=enrollment.site_id).order_by("sequence"))
        for enrollment in (above, plain)
    )
    for mine, theirs in zip(first, second, strict=True):
        assert (mine.kind, mine.quantity, mine.rate, mine.amount, mine.details) == (
            theirs.kind,
            theirs.quantity,
            theirs.rate,
            theirs.amount,
            theirs.details,
        )
        assert mine.explanation == theirs.explanation
    assert "firm service level" not in run.notes


def test_the_statement_and_the_billing_csv_show_the_excess_line(
    excess_program, client, billing_clerk
):
    acme = OrganizationFactory(legal_name="Acme Cold Storage LLC")
    enrollment = _firm(
        enroll(excess_program, "100", site=SiteFactory(organization=acme, name="Acme Plant")),
        "50",
    )
    the_event = event(excess_program, dt.date(2026, 7, 14))
    _measured(the_event, enrollment)
    run = approved(calculated(excess_program), by=billing_clerk)
    client.force_login(member(acme, Membership.Role.VIEWER))

    page = client.get(reverse("portal:statement", args=[acme.pk, run.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Excess energy charge" in html
    assert "Excess 10.125 kWh above the firm service level × $2.00/kWh charge = -$20.25." in html
    assert "Firm service level 50.000 kW: actual load above it in 4 of 7 intervals" in html

    export = billing_export_create(run=run, by=billing_clerk)

    rows = list(csv.DictReader(io.StringIO(bytes(export.content).decode("utf-8"))))
    assert [(row["line_kind"], row["amount"]) for row in rows] == [
        ("capacity", "640.00"),
        ("energy", "80.00"),
        ("excess_energy", "-20.25"),
    ]
    excess = rows[2]
    assert (excess["event_id"], excess["quantity"], excess["unit"], excess["rate"]) == (
        str(the_event.pk),
        "10.125",
        "kWh",
        "-2",
    )


def test_the_statement_draws_an_events_chart_once_above_its_energy_and_excess_lines(
    excess_program, client, billing_clerk
):
    acme = OrganizationFactory(legal_name="Acme Cold Storage LLC")
    enrollment = _firm(enroll(excess_program, "100", site=SiteFactory(organization=acme)), "50")
    participation = participate(
        event(excess_program, dt.date(2026, 7, 14)), enrollment, average_kw="80", kwh="160"
    )
    # The day at 180 kW, 100 kW in the event's 8 quarter-hours: 50 kW above the firm level
    # in each, 8 × 50 kW × 0.25 h = 100 kWh × $2 = -$200.00.
    draw(participation.performances.get(is_current=True))
    run = approved(calculated(excess_program), by=billing_clerk)
    assert [(kind, amount) for kind, _, amount in amounts(run)] == [
        ("capacity", "640.00"),
        ("energy", "80.00"),
        ("excess_energy", "-200.00"),
    ]
    client.force_login(member(acme, Membership.Role.VIEWER))

    html = client.get(reverse("portal:statement", args=[acme.pk, run.pk])).content.decode()

    # Both event lines point at the same performance: one chart, so no element id twice.
    assert html.count("<svg") == 1
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
