"""Serializers of the settlement API (runs and billing exports), read only."""

from __future__ import annotations

from rest_framework import serializers

from settlements.models import BillingExport, SettlementRun
from settlements.runs.selectors import run_totals_by_kind


class SettlementRunSerializer(serializers.ModelSerializer):
    """A run: program, period, version, status, total ($, string with two decimals)."""

    program_name = serializers.CharField(source="program.name", read_only=True)
    calculated_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SettlementRun
        fields = [
            "id", "program", "program_name", "period_kind", "period_start", "period_end",
            "version", "restates", "status", "total", "line_count", "calculated_by",
            "calculated_at", "approved_by", "approved_at", "exported_at",
        ]  # fmt: skip
        read_only_fields = fields


class SettlementRunDetailSerializer(SettlementRunSerializer):
    """A run with its totals per line kind and the notes of its calculation."""

    totals_by_kind = serializers.SerializerMethodField()

    class Meta(SettlementRunSerializer.Meta):
        fields = [*SettlementRunSerializer.Meta.fields, "totals_by_kind", "notes"]
        read_only_fields = fields

    def get_totals_by_kind(self, run: SettlementRun) -> list[dict]:
        return [
            {"kind": row["kind"], "lines": row["lines"], "amount": f"{row['amount']:.2f}"}
            for row in run_totals_by_kind(run)
        ]


class BillingExportSerializer(serializers.ModelSerializer):
    """An export's record (not its bytes: download them from ``csv_url``)."""

    exported_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    csv_url = serializers.HyperlinkedIdentityField(view_name="billingexport-csv", read_only=True)

    class Meta:
        model = BillingExport
        fields = [
            "id", "run", "file_name", "sha256", "row_count", "exported_by", "exported_at",
            "csv_url",
        ]  # fmt: skip
        read_only_fields = fields
