"""Restatements: a correction is version n+1 of the run, holding only the differences
against the approved versions; accepted disputes become adjustment lines of the next run.

Amounts are computed by hand in each test. The program pays $8/kW-month capacity times
the linear performance factor (the mean performance ratio of the month's events; 1 with
no event) and $0.50/kWh of energy per event.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from enrollment.models import Nomination
from events.models import Participation
from settlements.disputes import dispute_accept, dispute_raise, dispute_reject
from settlements.models import Dispute, DisputeEntry, SettlementLine, SettlementRun
from settlements.runs import (
    SettlementError,
    settlement_run_approve,
    settlement_run_calculate,
    settlement_run_create,
    settlement_run_restate,
)
from tests.factories import MembershipFactory
from tests.settlements.settlement_helpers import (
    ZONE,
    amounts,
    approved,
    calculated,
    enroll,
    event,
    participate,
    perform,
)

AUGUST = dt.date(2026, 8, 1)


def lines_of(run: SettlementRun) -> list[tuple[str, int | None, str, str]]:
    """(kind, site id, quantity, amount) of each line in sequence; asserts the run total."""
    amounts(run)  # the total and the line count equal those of the stored lines
    return [
        (line.kind, line.site_id, f"{line.quantity.normalize():f}", f"{line.amount:.2f}")
        for line in run.lines.order_by("sequence")
    ]


def period_total(run: SettlementRun) -> Decimal:
    """What the period pays over all its locked versions (what a statement shows)."""
    return sum(
        (
            version.total
            for version in SettlementRun.objects.filter(
                program_id=run.program_id,
                period_start=run.period_start,
                status__in=SettlementRun.LOCKED_STATUSES,
            )
        ),
        Decimal("0.00"),
    )


@pytest.fixture
def two_sites(july_program):
    """Sites A and B, 100 kW each, in the event of July 14.

    A: 80 kW, 160 kWh (ratio 0.8): capacity 100 × $8 × 0.8 = $640.00, energy $80.00.
    B: 50 kW, 100 kWh (ratio 0.5): capacity 100 × $8 × 0.5 = $400.00, energy $50.00.
    """
    a, b = enroll(july_program, "100"), enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    return {
        "a": a,
        "b": b,
        "event": the_event,
        "a_part": participate(the_event, a, average_kw="80", kwh="160"),
        "b_part": participate(the_event, b, average_kw="50", kwh="100"),
    }


@pytest.fixture
def july_v1(july_program, two_sites, manager, billing_clerk):
    """Version 1 of July, calculated by the manager and approved by the clerk."""
    run = approved(calculated(july_program, by=manager), by=billing_clerk)
    a, b = two_sites["a"].site_id, two_sites["b"].site_id
    assert lines_of(run) == [
        ("capacity", a, "100", "640.00"),
        ("energy", a, "160", "80.00"),
        ("capacity", b, "100", "400.00"),
        ("energy", b, "100", "50.00"),
    ]
    assert run.total == Decimal("1170.00")
    return run


def test_late_meter_data_restates_only_the_changed_lines(july_v1, two_sites, billing_clerk):
    a = two_sites["a"].site_id
    # A corrected meter import: A did 90 kW, 180 kWh (ratio 0.9). B is unchanged.
    perform(two_sites["a_part"], average_kw="90", kwh="180")

    restatement = settlement_run_restate(run=july_v1, by=billing_clerk)

    assert restatement is not None
    assert (restatement.version, restatement.restates_id) == (2, july_v1.pk)
    assert restatement.status == SettlementRun.Status.CALCULATED
    # Capacity 100 × $8 × 0.9 = $720.00, was $640.00: +$80.00 (same kW-months: 0).
    # Energy 180 kWh × $0.50 = $90.00, was $80.00: +$10.00 for 20 more kWh.
    # B's lines did not change: they are not in the restatement.
    assert lines_of(restatement) == [("capacity", a, "0", "80.00"), ("energy", a, "20", "10.00")]
    assert restatement.total == Decimal("90.00")
    energy = restatement.lines.get(kind="energy")
    assert energy.event_id == two_sites["event"].pk
    assert energy.details["restatement"] == "delta"
    assert "now $90.00" in energy.explanation and "was $80.00" in energy.explanation
    assert energy.performance.version == 2
    # Version 1 is untouched until the restatement is approved.
    july_v1.refresh_from_db()
    assert (july_v1.status, july_v1.total) == (SettlementRun.Status.APPROVED, Decimal("1170.00"))


def test_approving_a_restatement_supersedes_the_restated_version(
    july_v1, two_sites, billing_clerk, manager
):
    perform(two_sites["a_part"], average_kw="90", kwh="180")
    restatement = settlement_run_restate(run=july_v1, by=billing_clerk)

    with pytest.raises(PermissionDenied, match="Four eyes"):
        settlement_run_approve(run=restatement, by=billing_clerk)
    restatement = settlement_run_approve(run=restatement, by=manager)

    july_v1.refresh_from_db()
    assert july_v1.status == SettlementRun.Status.SUPERSEDED
    assert restatement.status == SettlementRun.Status.APPROVED
    assert set(restatement.lines.values_list("locked", flat=True)) == {True}
    # The period now pays A $720 + $90 and B $400 + $50.
    assert period_total(july_v1) == Decimal("1260.00")


def test_a_removed_participation_is_reversed_and_its_capacity_factor_recomputed(
    july_v1, two_sites, manager
):
    b = two_sites["b"].site_id
    # An event modification took B out of the event after the month was approved.
    Participation.objects.filter(pk=two_sites["b_part"].pk).update(removed_at=timezone.now())

    restatement = settlement_run_restate(run=july_v1, by=manager)

    # B's energy line is gone: negated, -100 kWh, -$50.00. B has no event left, so its
    # capacity factor is 1: 100 × $8 = $800.00, was $400.00: +$400.00. A is unchanged.
    assert lines_of(restatement) == [
        ("capacity", b, "0", "400.00"),
        ("energy", b, "-100", "-50.00"),
    ]
    assert restatement.total == Decimal("350.00")
    reversal = restatement.lines.get(kind="energy")
    assert reversal.details["restatement"] == "reversal"
    assert reversal.event_id == two_sites["event"].pk
    assert reversal.explanation.startswith("Restatement: reverses $50.00")


def test_a_nomination_changed_after_approval_restates_the_capacity(
    july_program, manager, billing_clerk
):
    a, b = enroll(july_program, "100"), enroll(july_program, "100")
    v1 = approved(calculated(july_program, by=manager), by=billing_clerk)
    # No events: factor 1, 100 kW × $8 = $800.00 each.
    assert lines_of(v1) == [
        ("capacity", a.site_id, "100", "800.00"),
        ("capacity", b.site_id, "100", "800.00"),
    ]
    # A nomination entered late: A committed 200 kW from July 16 (local midnight).
    Nomination.objects.create(
        enrollment=a,
        committed_kw=Decimal("200"),
        effective_from=dt.datetime(2026, 7, 16, tzinfo=ZONE),
        created_by=a.applied_by,
    )

    restatement = settlement_run_restate(run=v1, by=manager)

    # (100 kW × 15 days + 200 kW × 16 days) / 31 days = 151.612903 kW-months × $8
    # = $1,212.90, was $800.00: +$412.90 for 51.612903 more kW-months. B is absent.
    assert restatement.version == 2
    assert lines_of(restatement) == [("capacity", a.site_id, "51.612903", "412.90")]
    assert restatement.total == Decimal("412.90")


def test_a_participation_measured_late_enters_as_a_new_line(july_program, manager, billing_clerk):
    a = enroll(july_program, "100")
    the_event = event(july_program, dt.date(2026, 7, 14))
    participation = participate(the_event, a)  # no performance yet
    v1 = approved(calculated(july_program, by=manager), by=billing_clerk)
    # Left out: factor 1, $800.00, and no energy line.
    assert lines_of(v1) == [("capacity", a.site_id, "100", "800.00")]
    assert "no performance computed yet" in v1.notes

    perform(participation, average_kw="80", kwh="160")
    restatement = settlement_run_restate(run=v1, by=manager)

    # Capacity now 100 × $8 × 0.8 = $640.00: -$160.00. Energy is new: 160 kWh × $0.50.
    assert lines_of(restatement) == [
        ("capacity", a.site_id, "0", "-160.00"),
        ("energy", a.site_id, "160", "80.00"),
    ]
    assert restatement.total == Decimal("-80.00")
    assert "restatement" not in restatement.lines.get(kind="energy").details


def test_stacked_restatements_difference_against_every_approved_version(
    july_v1, two_sites, manager, billing_clerk
):
    a = two_sites["a"].site_id
    perform(two_sites["a_part"], average_kw="90", kwh="180")
    v2 = settlement_run_approve(
        run=settlement_run_restate(run=july_v1, by=billing_clerk), by=manager
    )
    # The meter correction was itself wrong: back to 80 kW, 160 kWh.
    perform(two_sites["a_part"], average_kw="80", kwh="160")

    v3 = settlement_run_restate(run=july_v1, by=billing_clerk)

    # Against v1 + v2 (A: $720.00 capacity, $90.00 energy for 180 kWh), not v2 alone.
    assert (v3.version, v3.restates_id) == (3, v2.pk)
    assert lines_of(v3) == [("capacity", a, "0", "-80.00"), ("energy", a, "-20", "-10.00")]
    assert v3.total == Decimal("-90.00")
    settlement_run_approve(run=v3, by=manager)
    statuses = dict(
        SettlementRun.objects.filter(pk__in=[july_v1.pk, v2.pk, v3.pk]).values_list(
            "version", "status"
        )
    )
    assert statuses == {1: "superseded", 2: "superseded", 3: "approved"}
    # $1,170.00 + $90.00 - $90.00: what version 1 paid.
    assert period_total(july_v1) == Decimal("1170.00")
    # Nothing differs any more: no version 4, and nothing is left behind.
    assert settlement_run_restate(run=july_v1, by=billing_clerk) is None
    assert not SettlementRun.objects.filter(program=july_v1.program, version=4).exists()


def test_a_restatement_with_no_differences_is_not_created(july_v1, manager):
    assert settlement_run_restate(run=july_v1, by=manager) is None
    assert list(
        SettlementRun.objects.filter(program=july_v1.program).values_list("version", "status")
    ) == [(1, "approved")]


def test_restating_is_refused_while_a_version_is_open(july_program, two_sites, manager):
    v1 = calculated(july_program, by=manager)
    with pytest.raises(SettlementError, match="Version 1 .* still calculated; finish it"):
        settlement_run_restate(run=v1, by=manager)

    approved(v1)
    perform(two_sites["a_part"], average_kw="90", kwh="180")
    settlement_run_restate(run=v1, by=manager)
    with pytest.raises(SettlementError, match="Version 2 .* still calculated; finish it"):
        settlement_run_restate(run=v1, by=manager)


def test_a_restatement_is_recalculated_against_the_same_approved_lines(july_v1, two_sites, manager):
    perform(two_sites["a_part"], average_kw="90", kwh="180")
    restatement = settlement_run_restate(run=july_v1, by=manager)
    # More data arrives before anyone approves it: 95 kW, 190 kWh (ratio 0.95).
    perform(two_sites["a_part"], average_kw="95", kwh="190")

    restatement = settlement_run_calculate(run=restatement, by=manager)

    # Capacity 100 × $8 × 0.95 = $760.00 - $640.00; energy $95.00 - $80.00.
    a = two_sites["a"].site_id
    assert lines_of(restatement) == [("capacity", a, "0", "120.00"), ("energy", a, "30", "15.00")]
    assert restatement.version == 2


# --- disputes --------------------------------------------------------------------------------


def _accepted_dispute(line: SettlementLine, manager, amount: str) -> Dispute:
    participant = MembershipFactory(organization=line.organization, role="admin").user
    dispute = dispute_raise(
        line=line, by=participant, comment="Our meter 3 was misread.", claimed_amount="105.00"
    )
    return dispute_accept(
        dispute=dispute, by=manager, adjustment_amount=amount, reason="Meter 3 re-read."
    )


def test_an_accepted_dispute_is_an_adjustment_line_of_the_restatement(
    july_v1, two_sites, manager, billing_clerk
):
    disputed = july_v1.lines.get(kind="energy", site_id=two_sites["a"].site_id)
    dispute = _accepted_dispute(disputed, manager, "25.00")
    assert dispute.adjustment_line is None

    restatement = settlement_run_restate(run=july_v1, by=billing_clerk)

    # Nothing else changed: the only line is the $25.00 adjustment, at A, for the event.
    assert lines_of(restatement) == [("adjustment", two_sites["a"].site_id, "1", "25.00")]
    line = restatement.lines.get()
    assert (line.reference, line.event_id, line.rate) == (
        f"dispute:{dispute.pk}",
        two_sites["event"].pk,
        Decimal("25.00"),
    )
    assert line.details["dispute_id"] == dispute.pk
    assert f"Accepted dispute {dispute.pk} of line {disputed.pk}" in line.explanation
    dispute.refresh_from_db()
    assert dispute.adjustment_line == line

    settlement_run_approve(run=restatement, by=manager)
    carried = DisputeEntry.objects.get(dispute=dispute, action="carried")
    assert carried.text == f"Paid as line {line.pk} of run {restatement.pk} v2."
    # Paid once: a later restatement and the next month's run do not carry it again.
    assert settlement_run_restate(run=july_v1, by=billing_clerk) is None
    august = calculated(july_v1.program, by=manager, start=AUGUST)
    assert not august.lines.filter(kind="adjustment").exists()


def test_an_accepted_dispute_is_carried_once_by_the_next_run_of_the_program(
    july_v1, two_sites, manager, billing_clerk
):
    disputed = july_v1.lines.get(kind="capacity", site_id=two_sites["b"].site_id)
    dispute = _accepted_dispute(disputed, manager, "-30.00")  # money recovered

    august = calculated(july_v1.program, by=manager, start=AUGUST)

    # August has no event: 100 kW × $8 = $800.00 per site, and B's -$30.00 adjustment.
    a, b = two_sites["a"].site_id, two_sites["b"].site_id
    assert lines_of(august) == [
        ("capacity", a, "100", "800.00"),
        ("capacity", b, "100", "800.00"),
        ("adjustment", b, "1", "-30.00"),
    ]
    assert august.total == Decimal("1570.00")
    adjustment = august.lines.get(kind="adjustment")
    assert adjustment.event_id is None
    dispute.refresh_from_db()
    assert dispute.adjustment_line == adjustment
    # July has nothing left to restate: the adjustment is August's.
    assert settlement_run_restate(run=july_v1, by=billing_clerk) is None
    settlement_run_approve(run=august, by=billing_clerk)
    assert DisputeEntry.objects.filter(dispute=dispute, action="carried").count() == 1


def test_a_rejected_dispute_adjusts_nothing(july_v1, two_sites, manager):
    line = july_v1.lines.get(kind="energy", site_id=two_sites["a"].site_id)
    participant = MembershipFactory(organization=line.organization, role="operator").user
    dispute = dispute_raise(line=line, by=participant, comment="Too low.")
    dispute_reject(dispute=dispute, by=manager, reason="The meter data is complete.")

    assert settlement_run_restate(run=july_v1, by=manager) is None
    august = settlement_run_create(
        program=july_v1.program, period_kind="month", period_start=AUGUST, by=manager
    )
    august = settlement_run_calculate(run=august, by=manager)
    assert not august.lines.filter(kind="adjustment").exists()
