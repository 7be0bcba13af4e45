"""Serializers of the events API: what an event and a participation look like, and the
input of calling, scheduling and cancelling an event."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from dr_platform.api import IdFilterField
from enrollment.models import Program, Site
from events.forms import program_local
from events.models import Event, Participation
from events.services.rules import time_range_error


class ParticipationSerializer(serializers.ModelSerializer):
    site = serializers.IntegerField(source="enrollment.site_id", read_only=True)
    site_name = serializers.CharField(source="enrollment.site.name", read_only=True)
    organization = serializers.IntegerField(
        source="enrollment.site.organization_id", read_only=True
    )
    organization_name = serializers.CharField(
        source="enrollment.site.organization.legal_name", read_only=True
    )

    class Meta:
        model = Participation
        fields = [
            "id",
            "event",
            "enrollment",
            "site",
            "site_name",
            "organization",
            "organization_name",
            "committed_kw",
            "status",
            "acknowledged_at",
            "acknowledged_via",
            "opted_out_at",
            "opted_out_via",
            "escalation_level",
            "modification_number",
        ]
        read_only_fields = fields


class ParticipantEventSerializer(serializers.ModelSerializer):
    """An event as a participant sees it: no targeting, only their own participations
    (the view prefetches ``participations`` scoped to the caller)."""

    program_name = serializers.CharField(source="program.name", read_only=True)
    time_zone = serializers.CharField(source="program.time_zone", read_only=True)
    participations = ParticipationSerializer(many=True, read_only=True)

    class Meta:
        model = Event
        fields = [
            "id",
            "program",
            "program_name",
            "time_zone",
            "kind",
            "status",
            "starts_at",
            "ends_at",
            "reason",
            "modification_number",
            "cancelled_at",
            "cancel_reason",
            "participations",
        ]
        read_only_fields = fields


class EventSerializer(ParticipantEventSerializer):
    """An event as staff see it: with its targeting and who called it."""

    target_sites = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.get_username", read_only=True)

    class Meta(ParticipantEventSerializer.Meta):
        fields = [
            *ParticipantEventSerializer.Meta.fields,
            "target_zones",
            "target_substations",
            "target_feeders",
            "target_sites",
            "created_by",
            "created_at",
            "scheduled_at",
            "notice_due_at",
            "notice_sent_at",
            "activated_at",
            "completed_at",
        ]
        read_only_fields = fields


class WallClockOrAwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time; one without an offset is left naive here and read as the
    program's local time by :class:`EventCreateSerializer`."""

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        return value


class EventCreateSerializer(serializers.Serializer):
    """Input of ``POST /api/events/``. Empty targeting reaches every active enrollment;
    otherwise the sites in any of the zones, substations or feeders, or among ``sites``.
    With ``draft`` true the event is saved unscheduled (``/schedule/`` sends it)."""

    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects.all())
    kind = serializers.ChoiceField(choices=Event.Kind.choices, default=Event.Kind.ECONOMIC)
    starts_at = WallClockOrAwareDateTimeField()
    ends_at = WallClockOrAwareDateTimeField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    zones = serializers.ListField(child=serializers.CharField(max_length=40), default=list)
    substations = serializers.ListField(child=serializers.CharField(max_length=60), default=list)
    feeders = serializers.ListField(child=serializers.CharField(max_length=60), default=list)
    sites = serializers.PrimaryKeyRelatedField(
        queryset=Site.objects.all(), many=True, required=False, default=list
    )
    draft = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        zone = attrs["program"].zone
        errors: dict[str, list[str]] = {}
        for name in ("starts_at", "ends_at"):
            value = attrs[name]
            if value.tzinfo is None:
                try:
                    attrs[name] = program_local(value, zone)
                except DjangoValidationError as error:
                    errors[name] = error.messages
            elif out_of_range := time_range_error(value):
                errors[name] = [out_of_range]
            else:
                attrs[name] = value.astimezone(dt.UTC)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class EventFilterSerializer(serializers.Serializer):
    """The event list's ``?program=`` (``?status=`` and ``?kind=`` are matched as given)."""

    program = IdFilterField(required=False)


class ParticipationFilterSerializer(serializers.Serializer):
    event = IdFilterField(required=False)
    status = serializers.ChoiceField(choices=Participation.Status.choices, required=False)
