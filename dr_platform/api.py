"""REST API of the platform shell: the caller's own organizations."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from dr_platform.selectors import scope_to_member
from enrollment.models import Organization


class IdFilterField(serializers.IntegerField):
    """A primary key given as a list filter (``?program=3``): 1 to the largest id stored.

    Primary keys are signed 64-bit integers; a larger number could match nothing, and
    SQLite cannot even bind it, so it is a 400 like any other bad filter.
    """

    MAX_ID = 2**63 - 1

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", self.MAX_ID)
        super().__init__(**kwargs)


class MemberScopedViewSet(viewsets.ReadOnlyModelViewSet):
    """A read-only viewset whose queryset is always scoped to the caller's organizations.

    Subclasses set ``queryset`` and ``organization_path`` (ORM path to Organization). An
    object of another organization is a 404, the same answer as a missing one.
    """

    organization_path = "organization"

    def get_queryset(self):  # type: ignore[override]
        return scope_to_member(super().get_queryset(), self.request.user, self.organization_path)


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "legal_name", "tier", "billing_account_number"]


class OrganizationViewSet(MemberScopedViewSet):
    queryset = Organization.objects.order_by("legal_name")
    serializer_class = OrganizationSerializer
    organization_path = ""
