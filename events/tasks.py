"""Celery tasks of the events app: thin, ids in, the services do the work.

One send task per channel queue, each with its own ``rate_limit`` from
``events.channels.RATE_LIMIT``. Celery applies ``rate_limit`` per worker process and per
task *type*; with a single generic send task, one limit would have to serve SMS (1/s at
Twilio) and email (10/s) alike. One task per queue gives each channel its own bucket, and
a worker started for ``-Q sms`` enforces the SMS rate. The account-wide rate is the limit
times the number of worker processes consuming that queue (see the channels docstring).

Every send task is safe to run twice for the same id: the service claims the row with a
conditional update (``queued -> sending``) and a redelivered message does nothing.

``events_tick`` runs every 30 seconds from django-celery-beat (the periodic task is
created by ``events/migrations/0002``); tests call ``services.events_tick(now=...)``.
"""

from __future__ import annotations

from typing import Final

from celery import Task, shared_task

from events import channels
from events.services import lifecycle, pipeline

_SEND_OPTIONS: Final = {
    "acks_late": True,
    "ignore_result": True,
    "time_limit": pipeline.SEND_TIME_LIMIT_SECONDS,
    "soft_time_limit": pipeline.SEND_TIME_LIMIT_SECONDS - 10,
}


@shared_task(name="events.send_sms", rate_limit=channels.RATE_LIMIT["sms"], **_SEND_OPTIONS)
def send_sms(notification_id: int) -> str:
    """Send one SMS notification; returns the outcome of ``notification_send``."""
    return pipeline.notification_send(notification_id)


@shared_task(name="events.send_voice", rate_limit=channels.RATE_LIMIT["voice"], **_SEND_OPTIONS)
def send_voice(notification_id: int) -> str:
    """Place one notice call; returns the outcome of ``notification_send``."""
    return pipeline.notification_send(notification_id)


@shared_task(
    name="events.send_pager", rate_limit=channels.RATE_LIMIT["pager_wctp"], **_SEND_OPTIONS
)
def send_pager(notification_id: int) -> str:
    """Send one page (WCTP or SNPP share a queue); returns the outcome."""
    return pipeline.notification_send(notification_id)


@shared_task(name="events.send_email", rate_limit=channels.RATE_LIMIT["email"], **_SEND_OPTIONS)
def send_email(notification_id: int) -> str:
    """Send one notice email; returns the outcome of ``notification_send``."""
    return pipeline.notification_send(notification_id)


@shared_task(name="events.send_webhook", rate_limit=channels.RATE_LIMIT["webhook"], **_SEND_OPTIONS)
def send_webhook(notification_id: int) -> str:
    """Post one notice to a participant's webhook; returns the outcome."""
    return pipeline.notification_send(notification_id)


@shared_task(name="events.send_sandbox", rate_limit=channels.RATE_LIMIT["sandbox"], **_SEND_OPTIONS)
def send_sandbox(notification_id: int) -> str:
    """Put one notice in the sandbox outbox; returns the outcome."""
    return pipeline.notification_send(notification_id)


#: Queue name -> its send task.
SEND_TASKS: Final[dict[str, Task]] = {
    "sms": send_sms,
    "voice": send_voice,
    "pager": send_pager,
    "email": send_email,
    "webhook": send_webhook,
    "sandbox": send_sandbox,
}


def send_task_for(channel: str) -> Task:
    """The send task for a notification channel (``sms``, ``pager_wctp``, ``sandbox`` ...).

    Raises ``KeyError`` for an unknown channel.
    """
    return SEND_TASKS[channels.QUEUE[channel]]


@shared_task(name="events.tick", acks_late=True, ignore_result=True, time_limit=120,
             soft_time_limit=110)  # fmt: skip
def events_tick() -> dict[str, int]:
    """Run ``services.events_tick`` now; returns its counts (for the worker log)."""
    report = lifecycle.events_tick()
    counts = {
        "notices": report.notices,
        "reminders": report.reminders,
        "activated": report.activated,
        "completed": report.completed,
        "escalations": report.escalations,
    }
    if report.sweep is not None:
        counts.update(
            requeued_queued=report.sweep.requeued_queued,
            requeued_sending=report.sweep.requeued_sending,
            sweep_failed=report.sweep.failed,
        )
    return counts
