"""Firm-service-level programs: a settlement run charges the energy used above each site's
firm service level during events (the level in effect at each event's start), with amounts
computed by hand."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dr_platform.models import Membership
from enrollment.services import enrollment_firm_service_level_set
from settlements.billing import billing_export_create
from settlements.runs import calculation, settlement_run_restate
from tests.enrollment.factories import SiteFactory
from tests.factories import OrganizationFactory, staff_user
from tests.settlements.settlement_helpers import (
    ZONE,
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


SINCE_JANUARY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _firm(enrollment, level: str | None, *, effective_from: dt.datetime = SINCE_JANUARY):
    """Record ``enrollment``'s firm service level (None: none) from ``effective_from``, as
    a program manager does on the console; in effect since January 2026 unless given."""
    enrollment_firm_service_level_set(
        enrollment=enrollment,
        firm_kw=None if level is None else Decimal(level),
        effective_from=effective_from,
        by=staff_user("Program managers"),
    )
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
        f"Site {without.site_id} (Birch Mill, enrollment {without.pk}): no firm service level "
        f"in effect at the event's start; no excess energy charge (event {the_event.pk} on "
        "2026-07-14)."
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


def test_a_program_without_an_excess_rate_reads_no_intervals_or_levels_and_keeps_its_lines(
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

    with CaptureQueriesContext(connection) as queries:
        run = calculated(july_program)

    assert asked == [False]
    assert not [query for query in queries if "firmservicelevel" in query["sql"].lower()]
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


def test_a_level_changed_mid_season_applies_to_each_event_by_its_start(excess_program):
    enrollment = _firm(enroll(excess_program, "100"), "50")
    # From August 1 (local midnight) the level is 60 kW.
    _firm(enrollment, "60", effective_from=dt.datetime(2026, 8, 1, tzinfo=ZONE))
    july, august = (
        event(excess_program, dt.date(2026, 7, 14)),
        event(excess_program, dt.date(2026, 8, 11)),
    )
    _measured(july, enrollment)
    _measured(august, enrollment)

    run = calculated(excess_program, period_kind="season", start=dt.date(2026, 6, 1))

    # July 14, level 50 kW: (62 - 50) + (58 - 50) + (70 - 50) + (50.5 - 50) = 40.5 kW over
    # 4 quarter-hours = 40.5 × 15 / 60 = 10.125 kWh × -$2.00 = -$20.25.
    # August 11, level 60 kW: (62 - 60) + (70 - 60) = 12 kW over 2 quarter-hours
    # = 12 × 15 / 60 = 3 kWh × -$2.00 = -$6.00.
    excess = {
        line.event_id: (line.quantity, line.amount)
        for line in run.lines.filter(kind="excess_energy")
    }
    assert excess == {
        july.pk: (Decimal("10.125"), Decimal("-20.25")),
        august.pk: (Decimal("3"), Decimal("-6.00")),
    }
    assert "Firm service level 50.000 kW: actual load above it in 4 of 7 intervals" in (
        run.lines.get(kind="excess_energy", event=july).explanation
    )
    assert "Firm service level 60.000 kW: actual load above it in 2 of 7 intervals" in (
        run.lines.get(kind="excess_energy", event=august).explanation
    )
    assert "firm service level" not in run.notes


def test_events_before_a_sites_first_level_or_after_it_is_cleared_are_not_charged(
    excess_program,
):
    enrollment = enroll(excess_program, "100", name="Birch Mill")
    _firm(enrollment, "50", effective_from=dt.datetime(2026, 7, 15, tzinfo=ZONE))
    _firm(enrollment, None, effective_from=dt.datetime(2026, 7, 29, tzinfo=ZONE))
    before, during, after = (event(excess_program, dt.date(2026, 7, day)) for day in (14, 21, 30))
    for the_event in (before, during, after):
        _measured(the_event, enrollment)

    run = calculated(excess_program)

    # Only July 21 has a level in effect at its start (50 kW): 10.125 kWh × -$2.00.
    assert [(line.event_id, line.amount) for line in run.lines.filter(kind="excess_energy")] == [
        (during.pk, Decimal("-20.25"))
    ]
    assert (
        f"Site {enrollment.site_id} (Birch Mill, enrollment {enrollment.pk}): no firm service "
        f"level in effect at the event's start; no excess energy charge (event {before.pk} on "
        f"2026-07-14, event {after.pk} on 2026-07-30)."
    ) in run.notes.splitlines()


def test_a_restatement_keeps_each_events_level_after_a_later_change(
    excess_program, manager, billing_clerk
):
    enrollment = _firm(enroll(excess_program, "100"), "50")
    the_event = event(excess_program, dt.date(2026, 7, 14))
    _measured(the_event, enrollment)
    july = approved(calculated(excess_program, by=manager), by=billing_clerk)
    assert ("excess_energy", the_event.pk, "-20.25") in amounts(july)
    # In October the level becomes 60 kW from September 1: July's event keeps 50 kW.
    _firm(enrollment, "60", effective_from=dt.datetime(2026, 9, 1, tzinfo=ZONE))

    assert settlement_run_restate(run=july, by=manager) is None

    # A level back-dated into July, before the event, is what a restatement applies:
    # 60 kW from July 1 gives 3 kWh × -$2.00 = -$6.00, was -$20.25: +$14.25 for
    # 7.125 kWh less.
    _firm(enrollment, "60", effective_from=dt.datetime(2026, 7, 1, tzinfo=ZONE))

    restatement = settlement_run_restate(run=july, by=manager)

    assert restatement is not None
    assert amounts(restatement) == [("excess_energy", the_event.pk, "14.25")]
    delta = restatement.lines.get()
    assert delta.quantity == Decimal("-7.125")
    assert "Firm service level 60.000 kW" in delta.explanation
