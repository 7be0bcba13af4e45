"""REST endpoints of settlement runs and billing exports, for billing systems.

``GET /api/settlement-runs/`` (filters: ``program`` id, ``status``, ``period_kind``,
``period`` = a day inside the period), ``GET /api/settlement-runs/<id>/`` (with totals
per line kind), ``GET /api/settlement-runs/<id>/exports/``, ``GET /api/billing-exports/``
and ``/<id>/``, and ``GET /api/billing-exports/<id>/csv/``: the file as handed over
(``text/csv``, attachment, its sha256 in ``X-Content-SHA256``). Read only: exports are
made by a clerk (``settlements.billing.billing_export_create``). Staff with the
settlements view permission only; anyone else gets 403. A discarded run is not served,
listed or found by id (404, as for a run discarded before discarded runs were kept): it
settles nothing, and billing never sees it.
"""

from __future__ import annotations

import datetime as dt

from django.http import HttpResponse
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from settlements.api.settlement_serializers import (
    BillingExportSerializer,
    SettlementRunDetailSerializer,
    SettlementRunSerializer,
)
from settlements.models import BillingExport, SettlementRun
from settlements.runs.selectors import run_exports, settlement_runs


class SettlementStaffPermission(permissions.BasePermission):
    """Staff holding ``settlements.view_settlementrun`` (Billing, Program managers)."""

    message = "Only billing and program staff read settlements."

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and user.has_perm("settlements.view_settlementrun")
        )


#: The ``status`` filter's values: every status but ``discarded``.
LISTED_STATUSES = [
    status for status in SettlementRun.Status.values if status != SettlementRun.Status.DISCARDED
]


class SettlementRunViewSet(viewsets.ReadOnlyModelViewSet):
    """Settlement runs, newest period first; one run with its totals; its exports."""

    permission_classes = [SettlementStaffPermission]

    def get_queryset(self):  # type: ignore[override]
        params = self.request.query_params
        try:
            program = int(params["program"]) if params.get("program") else None
            on = dt.date.fromisoformat(params["period"]) if params.get("period") else None
        except ValueError:
            raise ValidationError("program is an id and period a date (YYYY-MM-DD).") from None
        status = params.get("status") or None
        if status and status not in LISTED_STATUSES:
            raise ValidationError(f"status is one of {', '.join(LISTED_STATUSES)}.")
        runs = settlement_runs(
            program_id=program,
            status=status,
            period_kind=params.get("period_kind") or None,
            on=on,
        ).select_related("calculated_by", "approved_by")
        # Not served here: who a season run's lines bill is ~1,000 sites of JSON per run.
        return runs.defer("billed_parties", "restates__billed_parties")

    def get_serializer_class(self):  # type: ignore[override]
        return (
            SettlementRunDetailSerializer if self.action == "retrieve" else SettlementRunSerializer
        )

    @action(detail=True, methods=["get"])
    def exports(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        serializer = BillingExportSerializer(
            run_exports(run), many=True, context=self.get_serializer_context()
        )
        return Response(serializer.data)


class BillingExportViewSet(viewsets.ReadOnlyModelViewSet):
    """Billing exports, newest first, and each one's CSV file."""

    permission_classes = [SettlementStaffPermission]
    serializer_class = BillingExportSerializer
    queryset = BillingExport.objects.defer("content").select_related("exported_by").order_by("-pk")

    @action(detail=True, methods=["get"])
    def csv(self, request: Request, pk: str | None = None) -> HttpResponse:
        export = BillingExport.objects.filter(pk=self.get_object().pk).get()
        response = HttpResponse(bytes(export.content), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{export.file_name}"'
        response["X-Content-SHA256"] = export.sha256
        return response
