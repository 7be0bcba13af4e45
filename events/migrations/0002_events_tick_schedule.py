"""The 30-second beat schedule of ``events.tick`` (django-celery-beat reads it from here).

Every due time lives in the events tables; the tick only has to look often enough. Each
run expires after 25 s so a beat that queued ticks while no worker ran does not release a
burst of stale ones.
"""

from django.db import migrations

TASK_NAME = "events: tick (notices, reminders, start/end, escalation, sweeper)"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": "events.tick",
            "interval": interval,
            "queue": "default",
            "expire_seconds": 25,
            "enabled": True,
            "description": "Runs events.services.events_tick every 30 seconds.",
        },
    )


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
