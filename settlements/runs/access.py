"""Who may work on settlement runs: the Billing and Program managers groups."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

from dr_platform.roles import BILLING, PROGRAM_MANAGERS

SETTLEMENT_GROUPS = (BILLING, PROGRAM_MANAGERS)


def is_settlement_staff(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Whether ``user`` is an active staff member of Billing or Program managers."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.groups.filter(name__in=SETTLEMENT_GROUPS).exists()  # type: ignore[union-attr]


def require_settlement_staff(user: AbstractBaseUser | AnonymousUser | None) -> None:
    """Raise ``PermissionDenied`` unless ``user`` is in Billing or Program managers."""
    if not is_settlement_staff(user):
        raise PermissionDenied(
            "Only members of Billing or Program managers work on settlement runs."
        )
