"""REST API of the platform shell: the caller's own organizations."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from dr_platform.selectors import scope_to_member
from enrollment.models import Organization


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
