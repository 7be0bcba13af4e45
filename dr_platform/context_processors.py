from __future__ import annotations

from django.http import HttpRequest

from dr_platform.selectors import organizations_for_user, staff_roles


def navigation(request: HttpRequest) -> dict:
    """Give the base template what its navigation needs: the user's roles and organizations."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_staff_roles": set(), "nav_organizations": []}
    return {
        "nav_staff_roles": staff_roles(user),
        "nav_organizations": list(organizations_for_user(user).only("id", "legal_name")[:20]),
    }
