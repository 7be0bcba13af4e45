"""Reads of settlement runs, for the statements pages, the API and the export."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum

from settlements.models import BillingExport, SettlementLine, SettlementRun


def settlement_runs(
    *,
    program_id: int | None = None,
    status: str | None = None,
    period_kind: str | None = None,
    on: dt.date | None = None,
) -> QuerySet[SettlementRun]:
    """Runs, newest period and version first, filtered as given; ``on``: runs whose period
    contains that day. Discarded runs are left out: they settle nothing (the console
    lists them, with who discarded them and why)."""
    queryset = (
        SettlementRun.objects.exclude(status=SettlementRun.Status.DISCARDED)
        .select_related("program", "restates")
        .order_by("-period_start", "program__name", "-version")
    )
    if program_id is not None:
        queryset = queryset.filter(program_id=program_id)
    if status:
        queryset = queryset.filter(status=status)
    if period_kind:
        queryset = queryset.filter(period_kind=period_kind)
    if on is not None:
        queryset = queryset.filter(period_start__lte=on, period_end__gte=on)
    return queryset


def run_lines(run: SettlementRun) -> QuerySet[SettlementLine]:
    """The run's lines in their order, with what the export and the pages show of each."""
    return (
        SettlementLine.objects.filter(run=run)
        .select_related("organization", "site", "event")
        .order_by("sequence")
    )


def run_totals_by_kind(run: SettlementRun) -> list[dict]:
    """[{"kind", "lines", "amount"}] per line kind present in the run, in kind order; $."""
    rows = {
        row["kind"]: row
        for row in SettlementLine.objects.filter(run=run)
        .values("kind")
        .annotate(lines=Count("pk"), amount=Sum("amount"))
    }
    return [
        {"kind": kind, "lines": rows[kind]["lines"], "amount": rows[kind]["amount"] or Decimal(0)}
        for kind in SettlementLine.Kind.values
        if kind in rows
    ]


def run_versions(run: SettlementRun) -> QuerySet[SettlementRun]:
    """Every version of the run's program and period, oldest first, discarded ones
    included (the history of the period's version numbers)."""
    return SettlementRun.objects.filter(
        program_id=run.program_id, period_start=run.period_start, period_end=run.period_end
    ).order_by("version")


def run_exports(run: SettlementRun) -> QuerySet[BillingExport]:
    """The run's billing exports, newest first, without their file content."""
    return (
        BillingExport.objects.filter(run=run)
        .defer("content")
        .select_related("exported_by")
        .order_by("-exported_at", "-pk")
    )
