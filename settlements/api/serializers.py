"""Serializers of the meter data API."""

from __future__ import annotations

from rest_framework import serializers

from enrollment.models import Meter
from settlements.meterdata import FORMATS
from settlements.models import ImportProblem, MeterDataImport

#: Problems included in an import's representation (all are in its error report).
PROBLEMS_SHOWN = 100


class ImportProblemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportProblem
        fields = ["severity", "line", "code", "message", "meter_ref", "interval_start"]


class MeterDataImportSerializer(serializers.ModelSerializer):
    """An import record: options, status, counts, gaps, flagged values, first problems."""

    meter = serializers.SlugRelatedField(slug_field="meter_id", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    problems = serializers.SerializerMethodField()
    error_report_url = serializers.SerializerMethodField()

    class Meta:
        model = MeterDataImport
        fields = [
            "id",
            "file_name",
            "file_size",
            "sha256",
            "requested_format",
            "format",
            "meter",
            "correction",
            "valid_rows_only",
            "time_zone",
            "status",
            "message",
            "duplicate_of",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "rows_processed",
            "bytes_processed",
            "rows_accepted",
            "rows_replaced",
            "rows_unchanged",
            "rows_rejected",
            "meters",
            "first_interval",
            "last_interval",
            "error_count",
            "warning_count",
            "gap_count",
            "gaps",
            "flagged_count",
            "flagged",
            "problems",
            "error_report_url",
        ]
        read_only_fields = fields

    def get_problems(self, record: MeterDataImport) -> list[dict]:
        problems = record.problems.order_by("line", "pk")[:PROBLEMS_SHOWN]
        return ImportProblemSerializer(problems, many=True).data

    def get_error_report_url(self, record: MeterDataImport) -> str | None:
        if not record.error_report:
            return None
        request = self.context.get("request")
        path = f"/console/meterdata/{record.pk}/errors.csv"
        return request.build_absolute_uri(path) if request else path


class MeterDataUploadSerializer(serializers.Serializer):
    """The multipart upload: a file and the import options."""

    file = serializers.FileField()
    format = serializers.ChoiceField(
        choices=[("", "detect"), *((f, f) for f in FORMATS)], default=""
    )
    meter = serializers.SlugRelatedField(
        slug_field="meter_id", queryset=Meter.objects.all(), required=False, allow_null=True
    )
    correction = serializers.BooleanField(default=False)
    valid_rows_only = serializers.BooleanField(default=False)
    time_zone = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
