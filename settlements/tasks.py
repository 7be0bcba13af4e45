"""Celery tasks of the settlements app: thin wrappers around services (ids in)."""

from __future__ import annotations

from celery import shared_task

from settlements import services


@shared_task(name="settlements.meter_data_import", acks_late=True, queue="meterdata")
def meter_data_import_task(data_import_id: int) -> str | None:
    """Import one pending meter data file; return its final status (None if already taken).

    Safe to deliver twice: the service claims the record with a conditional update.
    """
    record = services.meter_data_import_run(data_import_id=data_import_id)
    return record.status if record is not None else None


@shared_task(
    name="settlements.performance_compute_event",
    acks_late=True,
    queue="settlements",
    time_limit=30 * 60,
    soft_time_limit=29 * 60,
)
def performance_compute_event_task(event_id: int) -> dict[str, int]:
    """Compute the performance of every participation of a completed event.

    Idempotent: unchanged inputs write nothing (the fingerprint matches). When new versions
    were written, participants get their summary notice (once each). Returns counts.
    """
    from events.models import Event
    from settlements.performance import performance_compute_event, performance_notify

    event = Event.objects.select_related("program").get(pk=event_id)
    report = performance_compute_event(event=event)
    if report.created:
        performance_notify(event)
    return {
        "created": len(report.created),
        "unchanged": len(report.unchanged),
        "insufficient": len(report.insufficient),
    }


@shared_task(name="settlements.performance_refresh", acks_late=True, queue="settlements")
def performance_refresh_task() -> list[int]:
    """Beat: enqueue the events that ended without performance or got newer meter data."""
    from settlements.performance import events_needing_performance

    event_ids = events_needing_performance()
    for event_id in event_ids:
        performance_compute_event_task.delay(event_id)
    return event_ids


@shared_task(
    name="settlements.settlement_run_calculate",
    acks_late=True,
    queue="settlements",
    time_limit=30 * 60,
    soft_time_limit=29 * 60,
)
def settlement_run_calculate_task(run_id: int, user_id: int) -> dict[str, str | int]:
    """Calculate a settlement run for ``user_id`` (large programs); return its outcome.

    Safe to deliver twice: recalculating a calculated run replaces its lines with the same
    ones, and an approved run is refused (the outcome then says so).
    """
    from django.contrib.auth import get_user_model

    from settlements.models import SettlementRun
    from settlements.runs import SettlementError, settlement_run_calculate

    run = SettlementRun.objects.get(pk=run_id)
    user = get_user_model().objects.get(pk=user_id)
    try:
        run = settlement_run_calculate(run=run, by=user)
    except SettlementError as error:
        return {"run": run_id, "status": run.status, "error": str(error)}
    return {"run": run.pk, "status": run.status, "lines": run.line_count, "total": str(run.total)}
