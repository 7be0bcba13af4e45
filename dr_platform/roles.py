"""Staff roles and the model permissions each one holds.

The three staff groups are created by a migration (``dr_platform/migrations/0002``). Their
permissions are declared here, per app or per model, and granted after every ``migrate``
(``sync_role_permissions`` runs on ``post_migrate``), so a model added by a later change
reaches the right roles without a hand-written data migration.
"""

from __future__ import annotations

from typing import Any

PROGRAM_MANAGERS = "Program managers"
AUDITORS = "Auditors"
BILLING = "Billing"
STAFF_GROUPS = (PROGRAM_MANAGERS, AUDITORS, BILLING)

ALL = ("view", "add", "change", "delete")
VIEW = ("view",)
EDIT = ("view", "add", "change")

#: group -> {"app_label" or "app_label.model": actions}. A model entry wins over its app's.
ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    PROGRAM_MANAGERS: {
        "enrollment": ALL,
        "events": ALL,
        "settlements": EDIT,
        "dr_platform.membership": ALL,
        "auth.user": EDIT,
    },
    AUDITORS: {
        "enrollment": VIEW,
        # Auditors record audits and findings; the audit models join this table when they
        # exist ("enrollment.audit": EDIT, ...).
        "enrollment.audit": EDIT,
        "enrollment.auditfinding": ALL,
        "enrollment.backupgenerator": ALL,
        "enrollment.enablementmeasure": ALL,
    },
    BILLING: {
        "enrollment": VIEW,
        "events": VIEW,
        "settlements": VIEW,
        "settlements.settlementrun": ("view", "change"),
        "settlements.billingexport": ("view", "add"),
    },
}


def permissions_for(group_name: str, apps: Any = None) -> list:
    """Return the Permission objects ``group_name`` should hold, per ROLE_PERMISSIONS.

    ``apps`` is the migration app registry when called from a migration, else the global one.
    Entries naming models that do not exist (yet) are ignored.
    """
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    permission_model = apps.get_model("auth", "Permission")
    rules = ROLE_PERMISSIONS[group_name]
    wanted: list = []
    for permission in permission_model.objects.select_related("content_type"):
        content_type = permission.content_type
        action = permission.codename.split("_", 1)[0]
        model_key = f"{content_type.app_label}.{content_type.model}"
        if permission.codename != f"{action}_{content_type.model}":
            continue  # custom permissions are granted by name, never by pattern
        actions = rules.get(model_key, rules.get(content_type.app_label))
        if actions and action in actions:
            wanted.append(permission)
    return wanted


def sync_role_permissions(sender: Any = None, apps: Any = None, **kwargs: Any) -> None:
    """Create the staff groups if missing and set each one's permissions to the declaration."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    try:
        group_model = apps.get_model("auth", "Group")
        apps.get_model("auth", "Permission")
    except LookupError:
        return
    for name in STAFF_GROUPS:
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(permissions_for(name, apps))
