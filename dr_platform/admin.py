"""Admin pieces the apps share (bulk-action reporting, read-only ledgers), memberships and
user accounts."""

from collections.abc import Callable, Iterable

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from dr_platform.models import Membership


def admin_report(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: Iterable,
    step: Callable[[object], object],
    done: str,
) -> None:
    """Run ``step`` on each object; say how many succeeded and why each other one did not."""
    succeeded = 0
    for obj in objects:
        try:
            step(obj)
        except (ValidationError, PermissionDenied) as error:
            reasons = error.messages if isinstance(error, ValidationError) else [str(error)]
            modeladmin.message_user(request, f"{obj}: {' '.join(reasons)}", messages.ERROR)
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(request, f"{succeeded} {done}.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A ledger: listed and shown to whoever may view it, never written here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """A history table: shown to whoever may view the parent, never edited here."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__legal_name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]


#: What makes an account staff, and what it may do: only a superuser sets them.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")

User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AccountAdmin(UserAdmin):
    """Program managers add and edit participants' accounts (``auth.change_user``); a staff
    or superuser account, and anyone's staff status, groups and permissions, only a
    superuser changes.

    Without this a manager could tick their own "superuser" box, or set a superuser's
    password and log in as them.
    """

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        if obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser:
            return False  # the change page and the password form answer read-only / 403
        return super().has_change_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        return (*readonly, *PRIVILEGE_FIELDS)
