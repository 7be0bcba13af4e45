"""Settlement runs through the services: every payment path with amounts computed by hand."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from enrollment.models import Nomination
from events.models import Event, Participation
from settlements.models import SettlementRun
from settlements.payments import PaymentRules
from settlements.runs import (
    SettlementError,
    payment_rules_add,
    rules_for,
    settlement_run_calculate,
    settlement_run_create,
    settlement_run_restate,
)
from tests.factories import staff_user
from tests.settlements.settlement_helpers import (
    JULY,
    ZONE,
    amounts,
    approved,
    calculated,
    enroll,
    event,
    installment,
    make_program,
    measure_intervals,
    participate,
)


def test_capacity_is_paid_with_the_linear_factor_and_energy_per_event(july_program):
    enrollment = enroll(july_program, "100")
    first, second = (
        event(july_program, dt.date(2026, 7, 14)),
        event(july_program, dt.date(2026, 7, 21)),
    )
    participate(first, enrollment, average_kw="80", kwh="160")  # ratio 0.8
    participate(second, enrollment, average_kw="60", kwh="120")  # ratio 0.6

    run = calculated(july_program)

    # Capacity: 100 kW × 1 month × $8 × factor (0.8 + 0.6) / 2 = 0.7 → $560.00.
    # Energy: 160 kWh × $0.50 = $80.00; 120 kWh × $0.50 = $60.00.
    assert amounts(run) == [
        ("capacity", None, "560.00"),
        ("energy", first.pk, "80.00"),
        ("energy", second.pk, "60.00"),
    ]
    assert run.status == SettlementRun.Status.CALCULATED
    assert run.total == Decimal("700.00")
    capacity, energy, _ = run.lines.order_by("sequence")
    assert capacity.quantity == Decimal("100") and capacity.unit == "kW-month"
    assert capacity.rate == Decimal("8") and capacity.details["factor"] == "0.7"
    assert "factor 0.700" in capacity.explanation
    assert energy.performance.participation.event_id == first.pk
    # The formula and the measurement read as two sentences.
    assert "= $80.00. Baseline caiso_10_of_10 (performance v1)" in energy.explanation
    assert "selected days 2026-07-14, 2026-07-13; adjustment 1.050" in energy.explanation
    assert "performance ratio 0.800" in energy.explanation
    assert energy.performance.version == 1
    # The line's own inputs; the rules once on the run, the measurement on its row.
    assert energy.details == {
        "committed_kw": "100.000",
        "treatment": "counted",
        "reduction_kwh": "160.0",
        "average_kw": "80.0",
        "performance_ratio": "0.8",
    }
    assert run.rules["energy_rate"] == "0.50" and run.rules["capacity_rate"] == "8"
    assert run.rules["effective_from"] == "2026-01-01"
    assert energy.organization_id == enrollment.site.organization_id
    assert energy.site_id == enrollment.site_id


def test_a_program_without_stored_rules_settles_on_its_simple_rates(db):
    program = make_program()  # ProgramFactory: $8/kW-month, $0.50/kWh
    enrollment = enroll(program, "50")
    the_event = event(program, dt.date(2026, 7, 14))
    participate(the_event, enrollment, average_kw="25", kwh="50")  # ratio 0.5

    run = calculated(program)

    # 50 kW × $8 × 0.5 = $200.00; 50 kWh × $0.50 = $25.00.
    assert amounts(run) == [("capacity", None, "200.00"), ("energy", the_event.pk, "25.00")]
    assert rules_for(program, JULY).version == "program rates"
    assert run.notes.startswith("Payment rules program rates")


def test_an_event_below_the_threshold_voids_its_month_and_its_energy(db):
    program = make_program(
        capacity_rate="8", energy_rate="0.50", factor_method="threshold", threshold_ratio="0.5"
    )
    enrollment = enroll(program, "100")
    july, august = event(program, dt.date(2026, 7, 14)), event(program, dt.date(2026, 8, 11))
    participate(july, enrollment, average_kw="40", kwh="80")  # ratio 0.4 < 0.5
    participate(august, enrollment, average_kw="90", kwh="180")  # ratio 0.9

    run = calculated(program, period_kind="season", start=dt.date(2026, 6, 1))

    # Season June–September: July is voided, so 100 kW × 3 of 4 months × $8 = $2,400.00.
    # July's energy is not paid; August's is 180 kWh × $0.50 = $90.00.
    assert amounts(run) == [
        ("capacity", None, "2400.00"),
        ("energy", july.pk, "0.00"),
        ("energy", august.pk, "90.00"),
    ]
    assert run.period_end == dt.date(2026, 9, 30)
    assert run.lines.get(kind="energy", event=july).details["voided_by_threshold"] is True


def test_opted_out_and_test_events_follow_the_program_rules(db):
    program = make_program(
        capacity_rate="8",
        energy_rate="0.50",
        opted_out_events="zero_performance",
        test_events="exclude",
    )
    enrollment = enroll(program, "100")
    normal = event(program, dt.date(2026, 7, 14))
    opted = event(program, dt.date(2026, 7, 15))
    drill = event(program, dt.date(2026, 7, 16), kind=Event.Kind.TEST)
    participate(normal, enrollment, average_kw="80", kwh="160")
    # Opted out but the meter shows 50 kW: the rules count it as 0 kW.
    participate(
        opted, enrollment, average_kw="50", kwh="100", status=Participation.Status.OPTED_OUT
    )
    participate(drill, enrollment, average_kw="90", kwh="180")  # excluded entirely

    run = calculated(program)

    # Ratios 0.8 and 0 → factor 0.4: 100 kW × $8 × 0.4 = $320.00. Energy $80.00 and $0.00.
    assert amounts(run) == [
        ("capacity", None, "320.00"),
        ("energy", normal.pk, "80.00"),
        ("energy", opted.pk, "0.00"),
    ]
    capacity = run.lines.get(kind="capacity")
    assert {"event_key": drill.pk, "note": "test event, excluded by the program's rules"} in (
        capacity.details["excluded_events"]
    )


def test_a_line_settled_on_floored_intervals_states_the_ratio_the_capacity_factor_uses(db):
    program = make_program(
        capacity_rate="8", energy_rate="0.25", negative_reductions="floor_interval"
    )
    enrollment = enroll(program, "50")
    the_event = event(program, dt.date(2026, 7, 14))
    participation = participate(the_event, enrollment, average_kw="5", kwh="10")
    # Reductions from the 180 kW baseline: 30, -10, 20, -20, 10, -10, 10, 10 kW. Measured
    # (net, as the performance row has it): 40 kW / 8 = 5 kW, ratio 5 / 50 = 0.1. Settled
    # (3 negative intervals floored at 0): 80 kW / 8 = 10 kW, ratio 10 / 50 = 0.2;
    # 80 × 15 / 60 = 20 kWh.
    measure_intervals(
        participation.performances.get(is_current=True),
        [150.0, 190.0, 160.0, 200.0, 170.0, 190.0, 170.0, 170.0],
    )

    run = calculated(program)

    # Capacity: 50 kW × 1 month × $8 × factor 0.2 = $80.00. Energy: 20 kWh × $0.25 = $5.00.
    assert amounts(run) == [("capacity", None, "80.00"), ("energy", the_event.pk, "5.00")]
    capacity, energy = run.lines.order_by("sequence")
    assert energy.explanation == (
        "Reduction 20.000 kWh (8 intervals of 15 min; 3 negative interval(s) floored at 0 kW; "
        "performance ratio 0.200 as settled) × $0.25/kWh = $5.00. "
        "Baseline caiso_10_of_10 (performance v1): selected days 2026-07-14, 2026-07-13; "
        "adjustment 1.050; performance ratio 0.100."
    )
    # The capacity line's ratio for the event is the one the energy line says it settled at.
    assert capacity.details["event_ratios"] == [
        {"event_key": the_event.pk, "performance_ratio": energy.details["performance_ratio"]}
    ]
    assert Decimal(energy.details["performance_ratio"]) == Decimal("0.2")
    assert (
        f"average performance ratio 0.200 over 1 event: event {the_event.pk}: 0.200"
        in capacity.explanation
    )


def test_enablement_installments_and_clawbacks_due_in_the_period_are_lines(july_program):
    enrollment = enroll(july_program, "100")
    paid = installment(enrollment.site, july_program, amount="5000.00")
    clawback = installment(enrollment.site, july_program, amount="-1250.00", kind="clawback")
    installment(enrollment.site, july_program, amount="999.00", due=dt.date(2026, 8, 3))

    run = calculated(july_program)

    # No events: capacity at factor 1, 100 kW × $8 = $800.00.
    assert amounts(run) == [
        ("capacity", None, "800.00"),
        ("enablement", None, "5000.00"),
        ("clawback", None, "-1250.00"),
    ]
    enablement, negative = run.lines.filter(kind__in=["enablement", "clawback"]).order_by(
        "sequence"
    )
    assert (enablement.installment, enablement.reference) == (paid, f"installment:{paid.pk}")
    assert (negative.installment, negative.quantity, negative.rate) == (
        clawback,
        Decimal("1"),
        Decimal("-1250"),
    )
    assert run.total == Decimal("4550.00")


def test_amounts_are_rounded_half_up_at_each_line_and_the_total_is_their_sum(db):
    program = make_program(capacity_rate="8.45", energy_rate="0.125")
    first = enroll(program, "33.3")
    second = enroll(program, "33.3")
    the_event = event(program, dt.date(2026, 7, 14))
    # 100.2 kWh × $0.125 = $12.525 → $12.53 (half up; banker's rounding would give 12.52).
    participate(the_event, first, average_kw="33.3", kwh="100.2")

    run = calculated(program)

    # 33.3 kW × $8.45 = $281.385 → $281.39 for each site (factor 1: ratio 1.0 and no event).
    assert sorted(amount for _, _, amount in amounts(run)) == ["12.53", "281.39", "281.39"]
    # The total is the sum of rounded lines ($575.31), not the rounded sum ($575.30).
    assert run.total == Decimal("575.31")
    assert second.site_id in set(run.lines.values_list("site_id", flat=True))


def test_a_nomination_changed_mid_month_is_time_weighted(july_program):
    enrollment = enroll(july_program, "100")
    Nomination.objects.create(
        enrollment=enrollment,
        committed_kw=Decimal("200"),
        effective_from=dt.datetime(2026, 7, 16, tzinfo=ZONE),
        created_by=enrollment.applied_by,
    )

    run = calculated(july_program)

    # (100 kW × 15 days + 200 kW × 16 days) / 31 days = 151.612903… kW × $8 = $1,212.90.
    capacity = run.lines.get()
    assert capacity.quantity == Decimal("151.612903")
    assert capacity.amount == Decimal("1212.90")


def test_an_event_uses_the_nomination_in_effect_at_its_start(july_program):
    enrollment = enroll(july_program, "100")
    Nomination.objects.create(
        enrollment=enrollment,
        committed_kw=Decimal("50"),
        effective_from=dt.datetime(2026, 7, 10, tzinfo=ZONE),
        created_by=enrollment.applied_by,
    )
    the_event = event(july_program, dt.date(2026, 7, 14))
    participate(the_event, enrollment, average_kw="40", kwh="80")

    run = calculated(july_program)

    energy = run.lines.get(kind="energy")
    # Committed at the event: 50 kW, so the ratio is 40 / 50 = 0.8.
    assert energy.details["committed_kw"] == "50.000"
    assert energy.details["performance_ratio"] == "0.8"


def test_a_participation_without_performance_is_left_out_and_noted(july_program):
    enrollment = enroll(july_program, "100")
    measured, unmeasured = (
        event(july_program, dt.date(2026, 7, 14)),
        event(july_program, dt.date(2026, 7, 15)),
    )
    participate(measured, enrollment, average_kw="100", kwh="200")
    participation = participate(unmeasured, enrollment)

    run = calculated(july_program)

    assert amounts(run) == [("capacity", None, "800.00"), ("energy", measured.pk, "100.00")]
    assert f"Participation {participation.pk}" in run.notes
    assert "no performance computed yet" in run.notes


def test_recalculating_a_calculated_run_replaces_its_lines(july_program):
    enrollment = enroll(july_program, "100")
    run = calculated(july_program)
    assert amounts(run) == [("capacity", None, "800.00")]
    the_event = event(july_program, dt.date(2026, 7, 14))
    participate(the_event, enrollment, average_kw="50", kwh="100")

    run = settlement_run_calculate(run=run, by=run.calculated_by)

    assert amounts(run) == [("capacity", None, "400.00"), ("energy", the_event.pk, "50.00")]


def test_an_approved_run_cannot_be_recalculated(july_program):
    enroll(july_program, "100")
    run = approved(calculated(july_program))
    with pytest.raises(SettlementError, match="restate it"):
        settlement_run_calculate(run=run, by=staff_user("Billing"))


def test_overlapping_and_malformed_periods_are_refused(july_program):
    manager = staff_user("Program managers")
    settlement_run_create(program=july_program, period_kind="month", period_start=JULY, by=manager)
    with pytest.raises(SettlementError, match="still draft"):
        settlement_run_create(
            program=july_program, period_kind="month", period_start=JULY, by=manager
        )
    with pytest.raises(SettlementError, match="still draft"):
        settlement_run_create(
            program=july_program,
            period_kind="season",
            period_start=dt.date(2026, 6, 1),
            by=manager,
        )
    with pytest.raises(SettlementError, match="starts on the 1st"):
        settlement_run_create(
            program=july_program, period_kind="month", period_start=dt.date(2026, 8, 2), by=manager
        )
    with pytest.raises(SettlementError, match="covers .*'s season"):
        settlement_run_create(
            program=july_program,
            period_kind="season",
            period_start=dt.date(2026, 5, 1),
            by=manager,
        )


@pytest.mark.parametrize(
    ("rules", "paid"),
    [
        ({"capacity_rate": "40", "capacity_unit": "kW-season"}, r"capacity in \$/kW-season"),
        ({"season_rate": "10"}, "a season pay-for-performance rate"),
    ],
)
def test_rules_paying_by_the_season_are_settled_by_the_season_not_the_month(db, rules, paid):
    """A month run would pay the season's capacity rate once per month (4x over June to
    September), or a season payment on one month's events alone: refused, at creation and
    (for rules added after the run was created) at calculation."""
    manager = staff_user("Program managers")
    program = make_program(**rules)
    enrollment = enroll(program, "100")
    participate(event(program, dt.date(2026, 7, 14)), enrollment, average_kw="80", kwh="160")
    participate(event(program, dt.date(2026, 8, 11)), enrollment, average_kw="60", kwh="120")

    with pytest.raises(SettlementError, match=f"pays {paid} .*one season run, 2026-06-01 to"):
        settlement_run_create(program=program, period_kind="month", period_start=JULY, by=manager)
    assert not SettlementRun.objects.filter(program=program).exists()

    run = calculated(program, by=manager, period_kind="season", start=dt.date(2026, 6, 1))
    if "season_rate" in rules:
        # Once for the season: the mean of 80 and 60 kW = 70 kW-season x $10 = $700.00.
        assert amounts(run) == [("season", None, "700.00")]
    else:
        # Once for the season: 100 kW x $40 x factor (0.8 + 0.6) / 2 = 0.7 = $2,800.00.
        assert amounts(run) == [("capacity", None, "2800.00")]


def test_a_month_run_refuses_to_calculate_under_season_rules_added_after_it(db):
    manager = staff_user("Program managers")
    program = make_program()  # no stored rules yet: its simple rates
    enroll(program, "100")
    run = settlement_run_create(program=program, period_kind="month", period_start=JULY, by=manager)
    payment_rules_add(
        program=program,
        rules=PaymentRules(effective_from=dt.date(2026, 1, 1), season_rate=Decimal("10")),
        by=manager,
    )

    with pytest.raises(SettlementError, match="settle it with one season run"):
        settlement_run_calculate(run=run, by=manager)
    run.refresh_from_db()
    assert (run.status, run.line_count) == (SettlementRun.Status.DRAFT, 0)


def test_a_month_approved_before_season_rules_can_still_be_restated(db):
    """A month settled before season rules took effect for it (or before such months were
    refused) stays correctable: its restatement is calculated, not refused."""
    manager, clerk = staff_user("Program managers"), staff_user("Billing")
    program = make_program()  # its simple rates: capacity by the month
    enrollment = enroll(program, "100")
    july = approved(calculated(program, by=manager), by=clerk)
    payment_rules_add(
        program=program,
        rules=PaymentRules(effective_from=dt.date(2026, 1, 1), season_rate=Decimal("10")),
        by=manager,
    )
    participate(event(program, dt.date(2026, 7, 14)), enrollment, average_kw="80", kwh="160")

    restatement = settlement_run_restate(run=july, by=manager)

    assert restatement is not None and restatement.status == SettlementRun.Status.CALCULATED
    assert ("season", None, "800.00") in amounts(restatement)  # 80 kW-season x $10


def test_a_settled_period_is_restated_not_settled_again(july_program):
    enroll(july_program, "100")
    approved(calculated(july_program))
    with pytest.raises(SettlementError, match="restate that run"):
        calculated(july_program)


def test_lines_are_ordered_by_organization_site_kind_and_event(july_program):
    sites = [enroll(july_program, "100") for _ in range(3)]
    events = [event(july_program, dt.date(2026, 7, day)) for day in (21, 14)]
    for enrollment in reversed(sites):
        for the_event in events:
            participate(the_event, enrollment, average_kw="50", kwh="100")

    run = calculated(july_program)

    lines = list(run.lines.order_by("sequence"))
    assert [line.sequence for line in lines] == list(range(1, 10))
    keys = [
        (line.organization_id, line.site_id, line.kind != "capacity", line.event_id)
        for line in lines
    ]
    starts = {the_event.pk: the_event.starts_at for the_event in events}
    assert keys == sorted(keys, key=lambda key: (key[0], key[1], key[2], starts.get(key[3])))
