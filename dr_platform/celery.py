"""The Celery application.

Defaults are chosen for a notification pipeline, where a lost or doubled message is a missed
or repeated page to a facility manager:

* ``task_acks_late`` and ``task_reject_on_worker_lost``: a message is acknowledged only after
  its task finished, so a worker killed mid-task leaves it on the broker for another worker.
  Tasks therefore must be idempotent; the notification task claims its row with a
  conditional update, so a redelivered message does nothing.
* ``worker_prefetch_multiplier = 1``: the I/O queues hold slow provider calls; a worker
  reserving many of them would starve its peers.
* One queue per channel kind, so a slow pager gateway never delays SMS.
* Hard and soft time limits on every task.
* Beat reads its schedule from the database (django-celery-beat); due times of events live
  in the database too, never in long broker countdowns.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dr_platform.settings")

#: One queue per notification channel kind, plus queues for bulk work.
CHANNEL_QUEUES = ("sms", "voice", "pager", "email", "webhook", "sandbox")
WORK_QUEUES = ("default", "meterdata", "settlements")
ALL_QUEUES = WORK_QUEUES + CHANNEL_QUEUES

app = Celery("dr_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue="default",
    task_queues=[Queue(name) for name in ALL_QUEUES],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=15 * 60,
    task_soft_time_limit=14 * 60,
    task_track_started=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    timezone="UTC",
    enable_utc=True,
)
# Celery's Django fixup closes every database connection before and after each task unless
# CELERY_DB_REUSE_MAX is set (its one upper-case key): a new PostgreSQL backend per task,
# most of a short task's cost. Tasks follow Django's request rule instead (below):
# a connection is dropped when it is broken or older than CONN_MAX_AGE.
app.conf.update(CELERY_DB_REUSE_MAX=1_000_000)
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task: object = None, **kwargs: object) -> None:
    # A task run eagerly (apply(), tests) is inside its caller's transaction: leave it.
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@app.task(name="dr_platform.ping", acks_late=True, time_limit=30, soft_time_limit=25)
def ping(payload: str = "pong") -> str:
    """Return ``payload`` unchanged: proves a message round-trips through broker and worker."""
    return payload
