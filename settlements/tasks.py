"""Celery tasks of the settlements app: thin wrappers around services (ids in)."""

from __future__ import annotations

from celery import shared_task

from settlements import services
from settlements.runs.services import CALCULATION_TIME_LIMIT


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

    Idempotent: unchanged inputs write nothing (the fingerprint matches). Participants get
    their summary notice once each, whether or not this run wrote anything: a message
    redelivered after a worker died between the computation's commit and the summaries
    finds the performances written and still sends them. Returns counts.
    """
    from events.models import Event
    from settlements.performance import performance_compute_event, performance_notify

    event = Event.objects.select_related("program").get(pk=event_id)
    report = performance_compute_event(event=event)
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
    time_limit=CALCULATION_TIME_LIMIT,
    soft_time_limit=CALCULATION_TIME_LIMIT - 60,
)
def settlement_run_calculate_task(run_id: int, user_id: int) -> dict[str, str | int]:
    """Calculate a settlement run that the console set ``calculating``, for ``user_id``;
    return its outcome.

    Safe to deliver twice: a run no longer ``calculating`` (its calculation ended, or
    failed) is left alone, and two deliveries at once calculate one after the other (the
    second then finds the run calculated). A discarded run is skipped
    (``{"run", "skipped": "discarded"}``).
    """
    from django.contrib.auth import get_user_model

    from settlements.models import SettlementRun
    from settlements.runs import settlement_run_calculate_background

    run = SettlementRun.objects.filter(pk=run_id).first()
    # Discarded before this message came (a stale run, delivered again): kept on record,
    # or gone (discarded before discarded runs were kept).
    if run is None or run.status == SettlementRun.Status.DISCARDED:
        return {"run": run_id, "skipped": "discarded"}
    user = get_user_model().objects.get(pk=user_id)
    calculated = settlement_run_calculate_background(run=run, by=user)
    if calculated is None:
        status = SettlementRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        return {"run": run_id, "status": status or "discarded", "skipped": "not calculating"}
    if calculated.calculation_error:
        return {"run": run_id, "status": calculated.status, "error": calculated.calculation_error}
    return {
        "run": run_id,
        "status": calculated.status,
        "lines": calculated.line_count,
        "total": str(calculated.total),
    }
