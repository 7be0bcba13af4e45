"""Admin for meter data: imports (read-only records of what happened) and revisions.

Readings themselves are not in the admin: there are millions, they change only through
imports (which keep revisions), and their composite primary key is not supported by the
admin. Imports are created by the console upload, the API or ``import_readings``.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from settlements.models import ImportProblem, MeterDataImport, ReadingRevision


class ImportProblemInline(admin.TabularInline):
    model = ImportProblem
    fields = ["line", "severity", "code", "message", "meter_ref", "interval_start"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).order_by("line", "pk")


@admin.register(MeterDataImport)
class MeterDataImportAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "file_name",
        "format",
        "status",
        "rows_accepted",
        "rows_replaced",
        "rows_rejected",
        "flagged_count",
        "gap_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "format", "correction", "valid_rows_only"]
    list_select_related = ["created_by", "meter"]
    search_fields = ["file_name", "sha256"]
    date_hierarchy = "created_at"
    inlines = [ImportProblemInline]

    def get_readonly_fields(self, request: HttpRequest, obj: MeterDataImport | None = None):
        return [field.name for field in MeterDataImport._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ReadingRevision)
class ReadingRevisionAdmin(admin.ModelAdmin):
    list_display = ["meter", "interval_start", "old_kwh", "new_kwh", "data_import", "revised_at"]
    list_select_related = ["meter", "data_import"]
    search_fields = ["meter__meter_id"]
    date_hierarchy = "revised_at"

    def get_readonly_fields(self, request: HttpRequest, obj: ReadingRevision | None = None):
        return [field.name for field in ReadingRevision._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
