"""Payment rules of a program: stored effective-dated versions, or its simple rates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from enrollment.models import Program
from settlements.models import PaymentRuleVersion
from settlements.payments import PaymentRules, rules_in_effect
from settlements.runs.access import require_settlement_staff
from settlements.runs.errors import SettlementError

#: ``PaymentRules.version`` of rules derived from a program's simple rates.
PROGRAM_RATES = "program rates"


def payment_rules_add(
    *, program: Program, rules: PaymentRules, by: AbstractBaseUser
) -> PaymentRuleVersion:
    """Store ``rules`` (already validated by ``PaymentRules``) as a version of ``program``'s
    payment rules, in effect from ``rules.effective_from``.

    Raises ``PermissionDenied`` unless ``by`` is in Billing or Program managers, and
    ``SettlementError`` when the program already has a version taking effect that day.
    """
    require_settlement_staff(by)
    try:
        with transaction.atomic():
            return PaymentRuleVersion.objects.create(
                program=program,
                effective_from=rules.effective_from,
                rules=rules.to_dict(),
                created_by=by,
            )
    except IntegrityError:
        raise SettlementError(
            f"{program} already has payment rules taking effect on {rules.effective_from}; "
            "add a version with another date."
        ) from None


def program_rates_rules(program: Program) -> PaymentRules:
    """Rules derived from the program's simple rates, for programs with no stored version.

    Capacity at ``capacity_rate_per_kw_month`` $/kW-month with the linear performance
    factor; energy at ``energy_rate_per_kwh`` $/kWh; a zero rate means no such line. Every
    other setting is the ``PaymentRules`` default (opt-outs and test events as measured).
    """
    capacity = program.capacity_rate_per_kw_month or Decimal(0)
    energy = program.energy_rate_per_kwh or Decimal(0)
    return PaymentRules(
        effective_from=dt.date.min,
        version=PROGRAM_RATES,
        capacity_rate=capacity if capacity > 0 else None,
        capacity_unit="kW-month",
        factor_method="linear",
        energy_rate=energy if energy > 0 else None,
    )


def stored_rules(program: Program) -> list[PaymentRules]:
    """The program's stored rule versions, oldest first (the row's date is authoritative)."""
    return [
        PaymentRules.from_dict({**version.rules, "effective_from": version.effective_from})
        for version in PaymentRuleVersion.objects.filter(program=program).order_by("effective_from")
    ]


def rules_for(program: Program, on: dt.date) -> PaymentRules:
    """The payment rules of ``program`` in effect on ``on`` (a run uses its first day).

    The stored version with the latest ``effective_from`` on or before ``on``; with no
    stored version at all, :func:`program_rates_rules`. Raises ``SettlementError`` when the
    program has versions but none in effect yet on ``on``.
    """
    versions = stored_rules(program)
    if not versions:
        return program_rates_rules(program)
    try:
        return rules_in_effect(versions, on)
    except LookupError:
        first = versions[0].effective_from
        raise SettlementError(
            f"{program} has no payment rules in effect on {on}: its first version takes "
            f"effect on {first}."
        ) from None


def rules_for_period(program: Program, period_kind: str, period_start: dt.date) -> PaymentRules:
    """The rules a run of ``period_kind`` starting ``period_start`` settles with
    (:func:`rules_for` its first day). Raises ``SettlementError`` as ``rules_for`` does, and
    as :func:`refuse_month_run_of_season_rules`."""
    rules = rules_for(program, period_start)
    refuse_month_run_of_season_rules(program, period_kind, rules)
    return rules


def refuse_month_run_of_season_rules(
    program: Program, period_kind: str, rules: PaymentRules
) -> None:
    """Raise ``SettlementError`` for a month run of rules that pay by the season
    (``PaymentRules.paid_per_season``): it would pay the whole season's capacity rate for
    one month, and the season payment on that month's events alone."""
    if period_kind != "month" or not rules.paid_per_season:
        return
    paid = (
        "capacity in $/kW-season"
        if rules.capacity_rate is not None and rules.capacity_unit == "kW-season"
        else "a season pay-for-performance rate"
    )
    raise SettlementError(
        f"{program} pays {paid} (payment rules {rules.version or 'unnamed'}): settle it "
        f"with one season run, {program.season_start} to {program.season_end}, not by the "
        "month."
    )
