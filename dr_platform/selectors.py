"""The access layer: every participant read goes through these helpers.

A participant sees exactly the organizations they hold a membership in. Asking for any
other organization's object answers 404, the same as for an object that does not exist,
so the platform never reveals that something belongs to someone else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from dr_platform.models import Membership
from dr_platform.roles import AUDITORS, BILLING, PROGRAM_MANAGERS
from enrollment.models import Organization

M = TypeVar("M", bound=Model)
User = AbstractBaseUser | AnonymousUser


def organizations_for_user(user: User) -> QuerySet[Organization]:
    """Return the organizations ``user`` is a member of (none for anonymous users)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user).distinct()


def scope_to_member(queryset: QuerySet[M], user: User, path: str = "organization") -> QuerySet[M]:
    """Restrict ``queryset`` to rows whose organization (reached by ``path``) ``user`` belongs to.

    ``path`` is the ORM path from the model to its Organization, e.g. ``"site__organization"``;
    use ``""`` for the Organization model itself.
    """
    if not user.is_authenticated:
        return queryset.none()
    membership_path = f"{path}__memberships__user" if path else "memberships__user"
    return queryset.filter(**{membership_path: user}).distinct()


def get_for_member(
    queryset: QuerySet[M], user: User, path: str = "organization", **lookup: object
) -> M:
    """Return the one object matching ``lookup`` that ``user`` may see.

    Raises Http404 both when it does not exist and when it belongs to another organization.
    """
    try:
        return scope_to_member(queryset, user, path).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError):
        raise Http404("No such object.") from None


def membership_role(user: User, organization: Organization) -> str | None:
    """Return the user's role in ``organization`` or None when not a member."""
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


def require_role(user: User, organization: Organization, roles: Iterable[str]) -> str:
    """Return the user's role if it is one of ``roles``.

    Raises Http404 when the user is not a member (the organization is invisible to them)
    and PermissionDenied when they are a member with a role that may not do this.
    """
    role = membership_role(user, organization)
    if role is None:
        raise Http404("No such object.")
    if role not in set(roles):
        raise PermissionDenied("Your role in this organization does not allow this action.")
    return role


def staff_roles(user: User) -> set[str]:
    """Return the staff group names ``user`` holds; a superuser holds all of them."""
    if not user.is_authenticated or not user.is_staff:
        return set()
    if user.is_superuser:
        return {PROGRAM_MANAGERS, AUDITORS, BILLING}
    return set(user.groups.values_list("name", flat=True))
