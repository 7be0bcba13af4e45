"""Create the staff groups. Their permissions are granted by roles.sync_role_permissions,
which runs after every migrate (permissions only exist once post_migrate has run)."""

from django.db import migrations

STAFF_GROUPS = ("Program managers", "Auditors", "Billing")


def create_groups(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    for name in STAFF_GROUPS:
        group_model.objects.get_or_create(name=name)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=STAFF_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dr_platform", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
