"""Serializers of the enrollment API: what a program, a site and an enrollment look like."""

from __future__ import annotations

from rest_framework import serializers

from dr_platform.api import IdFilterField
from enrollment.models import (
    Enrollment,
    EnrollmentTransition,
    Meter,
    NominationWindow,
    Program,
    Site,
)


class NominationWindowSerializer(serializers.ModelSerializer):
    class Meta:
        model = NominationWindow
        fields = ["opens_at", "closes_at"]


class ProgramSerializer(serializers.ModelSerializer):
    """A program's public rules: season, event limits, measurement, payment and terms."""

    nomination_windows = NominationWindowSerializer(many=True, read_only=True)

    class Meta:
        model = Program
        fields = [
            "id",
            "name",
            "description",
            "time_zone",
            "is_open",
            "season_start",
            "season_end",
            "allowed_weekdays",
            "event_window_start",
            "event_window_end",
            "min_notice_minutes",
            "emergency_overrides_notice",
            "min_event_minutes",
            "max_event_minutes",
            "max_events_per_season",
            "max_hours_per_season",
            "max_events_per_month",
            "max_hours_per_month",
            "max_events_per_site_per_day",
            "opt_outs_per_season",
            "opt_out_cutoff_minutes",
            "ack_deadline_minutes",
            "baseline_preset",
            "baseline_overrides",
            "weekend_baseline_preset",
            "weekend_baseline_overrides",
            "capacity_rate_per_kw_month",
            "energy_rate_per_kwh",
            "enablement_cost_share",
            "enablement_cap",
            "enablement_stages",
            "audit_required",
            "min_committed_kw",
            "commitment_months",
            "exclusive",
            "terms_version",
            "terms_text",
            "nomination_windows",
        ]
        read_only_fields = fields


class MeterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Meter
        fields = ["meter_id", "interval_minutes", "unit", "records_net_energy"]


class SiteSerializer(serializers.ModelSerializer):
    organization_name = serializers.CharField(source="organization.legal_name", read_only=True)
    meters = MeterSerializer(many=True, read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "organization",
            "organization_name",
            "name",
            "street",
            "city",
            "state",
            "postal_code",
            "service_account_number",
            "zone",
            "substation",
            "feeder",
            "peak_demand_kw",
            "audited_curtailable_kw",
            "meters",
        ]
        read_only_fields = fields


class TransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = EnrollmentTransition
        # Who decided is staff-internal; the participant sees what changed, when and why.
        fields = ["from_status", "to_status", "at", "reason"]


class EnrollmentSerializer(serializers.ModelSerializer):
    organization = serializers.IntegerField(source="site.organization_id", read_only=True)
    site_name = serializers.CharField(source="site.name", read_only=True)
    program_name = serializers.CharField(source="program.name", read_only=True)
    transitions = TransitionSerializer(many=True, read_only=True)

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "organization",
            "site",
            "site_name",
            "program",
            "program_name",
            "status",
            "committed_kw",
            "applied_at",
            "active_from",
            "commitment_ends",
            "ended_at",
            "transitions",
        ]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    """Input of a review decision: approve or reject, with a reason (required to reject)."""

    approve = serializers.BooleanField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class EnrollmentFilterSerializer(serializers.Serializer):
    """The enrollment list's query parameters."""

    status = serializers.ChoiceField(choices=Enrollment.Status.choices, required=False)
    program = IdFilterField(required=False)
