"""Celery tasks of the events app: thin, ids in, the services do the work.

One send task per channel queue, each with its own ``rate_limit``. A send task message
carries a list of notification ids: up to ``channels.MAX_SEND_BATCH`` for a channel
without a rate limit, so a dispatch to 10,000 sites puts a few hundred messages on the
broker, not 20,000. For a limited channel ``channels.send_batching`` sizes the batch and
the task's rate so the channel's messages per second stay within its limit (SMS at 1/s:
one id per task, one task a second). Celery applies ``rate_limit`` per worker and per task
*type*; one task per queue gives each channel its own bucket, and a worker started for
``-Q sms`` enforces the SMS rate.

The rate is read from the settings when it is used (:class:`SendTask`), as the batch size
is when ids are enqueued, so the two always come from the same ``NOTIFICATION_RATE_LIMITS``.

Every send task is safe to run twice for the same ids: the service claims each row with
a conditional update (``queued -> sending``) and a redelivered message does nothing. A
message holding a single id (as enqueued before batching) is still accepted.

``events_tick`` runs every 30 seconds from django-celery-beat (the periodic task is
created by ``events/migrations/0002``); tests call ``services.events_tick(now=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class SendTask(Task):
    """A channel queue's send task, whose ``rate_limit`` is read from the settings each
    time it is asked for.

    A worker builds each task's token bucket from ``task.rate_limit`` when its consumer
    starts, and again on a reload or a ``celery control rate_limit`` command. A value passed
    to the task decorator would be fixed when this module is imported: before a test's
    ``override_settings``, and out of step with the batch size ``pipeline`` reads from the
    settings when it enqueues. A rate set by ``celery control rate_limit`` holds in that
    worker over the settings until it restarts (``0`` lifts the limit); setting ``None``
    goes back to the settings. A worker picks up a changed ``NOTIFICATION_RATE_LIMITS``
    when it restarts, as it does any other setting.
    """

    #: The channel queue whose limit applies (``channels.send_batching``); set per task.
    channel_queue: str = ""
    _rate_limit_override: str | None = None

    @property
    def rate_limit(self) -> str | None:
        """The Celery rate limit in effect (``"1/s"``), or ``None`` for no limit."""
        if self._rate_limit_override is not None:
            return self._rate_limit_override
        return channels.send_batching(self.channel_queue)[1]

    @rate_limit.setter
    def rate_limit(self, value: str | None) -> None:
        self._rate_limit_override = value


def _send(notification_ids: Sequence[int] | int) -> dict[str, int]:
    ids = [notification_ids] if isinstance(notification_ids, int) else notification_ids
    return dict(pipeline.notifications_send(ids))


@shared_task(name="events.send_sms", base=SendTask, channel_queue="sms", **_SEND_OPTIONS)
def send_sms(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Send SMS notifications; returns how many ended each way (``notifications_send``)."""
    return _send(notification_ids)


@shared_task(name="events.send_voice", base=SendTask, channel_queue="voice", **_SEND_OPTIONS)
def send_voice(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Place notice calls; returns how many ended each way."""
    return _send(notification_ids)


@shared_task(name="events.send_pager", base=SendTask, channel_queue="pager", **_SEND_OPTIONS)
def send_pager(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Send pages (WCTP and SNPP share a queue); returns how many ended each way."""
    return _send(notification_ids)


@shared_task(name="events.send_email", base=SendTask, channel_queue="email", **_SEND_OPTIONS)
def send_email(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Send notice emails; returns how many ended each way."""
    return _send(notification_ids)


@shared_task(name="events.send_webhook", base=SendTask, channel_queue="webhook", **_SEND_OPTIONS)
def send_webhook(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Post notices to participants' webhooks; returns how many ended each way."""
    return _send(notification_ids)


@shared_task(name="events.send_sandbox", base=SendTask, channel_queue="sandbox", **_SEND_OPTIONS)
def send_sandbox(notification_ids: Sequence[int] | int) -> dict[str, int]:
    """Put notices in the sandbox outbox; returns how many ended each way."""
    return _send(notification_ids)


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
