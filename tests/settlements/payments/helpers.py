"""Small builders for hand-made payment rules, event outcomes and site periods."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from settlements.payments import EventOutcome, PaymentRules, SitePeriod

JUNE, JULY, AUGUST, SEPTEMBER = (dt.date(2026, month, 1) for month in (6, 7, 8, 9))


def rules(**changes: Any) -> PaymentRules:
    """Rules in effect from 2026-01-01 with only the given settings."""
    return PaymentRules(effective_from=dt.date(2026, 1, 1), **changes)


def event(
    key: str,
    average_kw: str,
    *,
    hours: str = "2",
    committed_kw: str = "100",
    day: dt.date = dt.date(2026, 7, 14),
    **changes: Any,
) -> EventOutcome:
    """An event given as totals: ``average_kw`` held for ``hours`` (kWh = kW x hours)."""
    return EventOutcome(
        event_key=key,
        event_date=day,
        committed_kw=Decimal(committed_kw),
        reduction_kwh=Decimal(average_kw) * Decimal(hours),
        average_reduction_kw=Decimal(average_kw),
        **changes,
    )


def site(
    *events: EventOutcome, committed_kw: str = "100", months: tuple[dt.date, ...] = (JULY,)
) -> SitePeriod:
    return SitePeriod(
        site_key="S1", committed_kw=Decimal(committed_kw), months=months, events=events
    )


def amounts(lines: list) -> dict[tuple, Decimal]:
    """(kind, event key) -> amount, for compact assertions."""
    return {(line.kind, line.event_key): line.amount for line in lines}
