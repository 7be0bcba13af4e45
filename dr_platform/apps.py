from django.apps import AppConfig


class DrPlatformConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dr_platform"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from dr_platform.roles import sync_role_permissions

        # Permissions exist only after post_migrate has created them for every app, so the
        # roles' permissions are (re)granted then; the groups themselves come from a migration.
        post_migrate.connect(sync_role_permissions, dispatch_uid="dr_platform.sync_roles")
