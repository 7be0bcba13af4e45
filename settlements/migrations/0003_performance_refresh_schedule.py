"""Beat schedule of ``settlements.performance_refresh``: every 5 minutes it finds completed
events without performance, or with meter data imported after their performance was
computed, and computes them (unchanged inputs write nothing new)."""

from django.db import migrations

TASK_NAME = "settlements: event performance refresh"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={
            "task": "settlements.performance_refresh",
            "interval": interval,
            "queue": "settlements",
            "expire_seconds": 240,
            "enabled": True,
            "description": "Computes event performance after events end and after late data.",
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("settlements", "0002_event_performance"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
