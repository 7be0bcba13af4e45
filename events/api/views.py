"""REST endpoints of the events app.

Staff holding ``events.view_event`` read every event with all its current
participations; participants read only events in which their organizations take part,
with only their own participations (another organization's event is a 404, like a missing
one). Program managers (``events.add_event``/``events.change_event``) call, schedule and
cancel events through the same services as the console; a broken rule is a 400 listing
every rule's message.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from dr_platform.selectors import organizations_for_user
from events import selectors, services
from events.api.serializers import (
    CancelSerializer,
    EventCreateSerializer,
    EventFilterSerializer,
    EventSerializer,
    ParticipantEventSerializer,
    ParticipationFilterSerializer,
    ParticipationSerializer,
)
from events.models import Event, Participation

VIEW_PERMISSION = "events.view_event"
ADD_PERMISSION = "events.add_event"
CHANGE_PERMISSION = "events.change_event"


class HasStaffPermission(permissions.BasePermission):
    """Staff holding the model permission named by the view's ``required_permission``."""

    message = "Only program managers call, schedule and cancel events."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm(view.required_permission)
        )


def _is_event_staff(user: Any) -> bool:
    if not user.is_staff:
        return False
    if not user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied("Your staff role does not allow reading events.")
    return True


def _rule_errors(error: DjangoValidationError) -> Response:
    body = (
        error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
    )
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def _participations(queryset: QuerySet[Participation]) -> QuerySet[Participation]:
    return queryset.filter(removed_at__isnull=True).select_related(
        "enrollment", "enrollment__site", "enrollment__site__organization"
    )


class EventViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Events, newest start first; filter with ``?program=``, ``?status=``, ``?kind=``."""

    def get_queryset(self) -> QuerySet[Event]:  # type: ignore[override]
        user = self.request.user
        if _is_event_staff(user):
            queryset = Event.objects.all()
            mine = _participations(Participation.objects.all())
        else:
            queryset = selectors.events_for_organization(user)
            mine = _participations(
                Participation.objects.filter(
                    enrollment__site__organization__in=organizations_for_user(user)
                )
            )
        queryset = queryset.select_related("program", "created_by").prefetch_related(
            Prefetch(
                "participations",
                queryset=mine.order_by(
                    "enrollment__site__organization__legal_name", "enrollment__site__name"
                ),
            ),
            "target_sites",
        )
        params = self.request.query_params
        if self.action == "list":
            for name in ("status", "kind"):
                if params.get(name):
                    queryset = queryset.filter(**{name: params[name]})
            if params.get("program"):
                filters = EventFilterSerializer(data={"program": params["program"]})
                filters.is_valid(raise_exception=True)
                queryset = queryset.filter(program_id=filters.validated_data["program"])
        return queryset.order_by("-starts_at", "-pk")

    def get_serializer_class(self) -> type[BaseSerializer]:
        if self.action == "create":
            return EventCreateSerializer
        return EventSerializer if self.request.user.is_staff else ParticipantEventSerializer

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action == "create":
            self.required_permission = ADD_PERMISSION
            return [HasStaffPermission()]
        if self.action in ("schedule", "cancel"):
            self.required_permission = CHANGE_PERMISSION
            return [HasStaffPermission()]
        return super().get_permissions()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Call an event (scheduled at once unless ``draft``); 201 with the event and the
        targeted sites that declared themselves unavailable, 400 with every broken rule."""
        serializer = EventCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            plan = services.event_create(
                program=data["program"],
                kind=data["kind"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                reason=data["reason"],
                zones=data["zones"],
                substations=data["substations"],
                feeders=data["feeders"],
                sites=data["sites"],
                draft=data["draft"],
                by=request.user,
            )
        except DjangoValidationError as error:
            return _rule_errors(error)
        except DjangoPermissionDenied as error:
            raise PermissionDenied(str(error)) from error
        return Response(self._with_plan(plan), status=status.HTTP_201_CREATED)

    def _with_plan(self, plan: services.EventPlan) -> dict[str, Any]:
        event = self.get_queryset().get(pk=plan.event.pk)
        body = dict(EventSerializer(event, context=self.get_serializer_context()).data)
        body["unavailable_sites"] = [
            {"site": window.site_id, "starts_at": window.starts_at, "ends_at": window.ends_at}
            for window in plan.unavailable
        ]
        return body

    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str | None = None) -> Response:
        """Schedule a draft (participants are notified); 400 with every broken rule."""
        event = self.get_object()
        try:
            plan = services.event_schedule(event=event, by=request.user)
        except DjangoValidationError as error:
            return _rule_errors(error)
        return Response(self._with_plan(plan))

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel with a ``reason``; everyone already told is sent a cancel notice."""
        event = self.get_object()
        serializer = CancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.event_cancel(
                event=event, by=request.user, reason=serializer.validated_data["reason"]
            )
        except DjangoValidationError as error:
            return _rule_errors(error)
        return Response(EventSerializer(self.get_queryset().get(pk=event.pk)).data)


class ParticipationViewSet(viewsets.ReadOnlyModelViewSet):
    """Participations (not removed from their event); filter with ``?event=``, ``?status=``.

    Staff with the events view permission read all; participants their organizations' own.
    """

    serializer_class = ParticipationSerializer

    def get_queryset(self) -> QuerySet[Participation]:  # type: ignore[override]
        user = self.request.user
        if _is_event_staff(user):
            queryset = Participation.objects.all()
        else:
            queryset = Participation.objects.filter(
                enrollment__site__organization__in=organizations_for_user(user)
            )
        queryset = _participations(queryset).order_by("-event__starts_at", "event_id", "pk")
        if self.action == "list":
            filters = ParticipationFilterSerializer(data=self.request.query_params)
            filters.is_valid(raise_exception=True)
            for name, value in filters.validated_data.items():
                queryset = queryset.filter(**{name: value})
        return queryset
