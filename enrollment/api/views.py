"""REST endpoints of the enrollment app.

Participants read their own organizations' sites and enrollments (another organization's
object is a 404, like a missing one); staff holding a model's view permission read all of
them. Only program managers post review decisions.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from dr_platform.api import MemberScopedViewSet
from enrollment import services
from enrollment.api.serializers import (
    DecisionSerializer,
    EnrollmentFilterSerializer,
    EnrollmentSerializer,
    ProgramSerializer,
    SiteSerializer,
)
from enrollment.models import Enrollment, Program, Site


class IsProgramManager(permissions.BasePermission):
    """Staff who may change enrollments: the program managers."""

    message = "Only program managers decide applications."

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm("enrollment.change_enrollment")
        )


class StaffOrMemberScopedViewSet(MemberScopedViewSet):
    """All rows for staff holding the model's view permission; else the caller's own."""

    def get_queryset(self) -> QuerySet:  # type: ignore[override]
        user = self.request.user
        opts = self.queryset.model._meta
        if user.is_staff and user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            return super(MemberScopedViewSet, self).get_queryset()
        return super().get_queryset()


class ProgramViewSet(viewsets.ReadOnlyModelViewSet):
    """The programs and their public rules, for any signed-in caller."""

    queryset = Program.objects.prefetch_related("nomination_windows").order_by("name")
    serializer_class = ProgramSerializer


class SiteViewSet(StaffOrMemberScopedViewSet):
    queryset = (
        Site.objects.select_related("organization")
        .prefetch_related("meters")
        .order_by("organization__legal_name", "name", "pk")
    )
    serializer_class = SiteSerializer
    organization_path = "organization"


class EnrollmentViewSet(StaffOrMemberScopedViewSet):
    """Enrollments, filterable by ``status`` and ``program``; managers post decisions."""

    queryset = (
        Enrollment.objects.select_related("site", "program")
        .prefetch_related("transitions")
        .order_by("-applied_at", "-pk")
    )
    serializer_class = EnrollmentSerializer
    organization_path = "site__organization"

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action == "decision":
            return [IsProgramManager()]
        return super().get_permissions()

    def filter_queryset(self, queryset: QuerySet[Enrollment]) -> QuerySet[Enrollment]:
        queryset = super().filter_queryset(queryset)
        if self.action != "list":
            return queryset
        filters = EnrollmentFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "status" in filters.validated_data:
            queryset = queryset.filter(status=filters.validated_data["status"])
        if "program" in filters.validated_data:
            queryset = queryset.filter(program_id=filters.validated_data["program"])
        return queryset

    @action(detail=True, methods=["post"])
    def decision(self, request: Request, pk: str | None = None) -> Response:
        """Approve (and activate) or reject an application; 400 with the service's reasons."""
        enrollment = self.get_object()
        decision = DecisionSerializer(data=request.data)
        decision.is_valid(raise_exception=True)
        try:
            services.enrollment_decide(
                enrollment=enrollment,
                approve=decision.validated_data["approve"],
                by=request.user,
                reason=decision.validated_data["reason"],
            )
        except DjangoValidationError as error:
            body = (
                error.message_dict
                if hasattr(error, "error_dict")
                else {"non_field_errors": error.messages}
            )
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(self.get_object()).data)
