"""REST endpoints of meter data, for meter data management systems and scripts.

``POST /api/meter-data-imports/`` (multipart: ``file`` plus the options) imports a file and
answers with the import record: 201 when stored (or accepted for background import, status
``pending``: poll the record), 200 for a file imported before (status ``duplicate``), 400
with the problems for a rejected file. Token or session authentication; uploading is for
program managers (``settlements.add_meterdataimport``), reading for staff with the view
permission.
"""

from __future__ import annotations

from rest_framework import mixins, permissions, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from settlements import selectors, services
from settlements.api.serializers import MeterDataImportSerializer, MeterDataUploadSerializer
from settlements.models import MeterDataImport


class MeterDataPermission(permissions.BasePermission):
    """Staff with the settlements view permission read; program managers also upload."""

    message = "Only program staff read meter data imports, and only program managers upload."

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        if request.method in permissions.SAFE_METHODS:
            return user.has_perm("settlements.view_meterdataimport")
        return user.has_perm("settlements.add_meterdataimport")


class MeterDataImportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Import history (newest first), one import, and the upload."""

    queryset = selectors.import_history()
    serializer_class = MeterDataImportSerializer
    permission_classes = [MeterDataPermission]
    parser_classes = [MultiPartParser, FormParser]

    def create(self, request: Request) -> Response:
        upload = MeterDataUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        record = services.meter_data_import_create(
            stream=data["file"],
            file_name=data["file"].name,
            by=request.user,
            format=data["format"],
            meter=data.get("meter"),
            correction=data["correction"],
            valid_rows_only=data["valid_rows_only"],
            time_zone=data.get("time_zone", ""),
        )
        record = services.meter_data_import_submit(data_import=record)
        answer = {
            MeterDataImport.Status.DUPLICATE: status.HTTP_200_OK,
            MeterDataImport.Status.REJECTED: status.HTTP_400_BAD_REQUEST,
            MeterDataImport.Status.FAILED: status.HTTP_500_INTERNAL_SERVER_ERROR,
        }.get(record.status, status.HTTP_201_CREATED)
        body = self.get_serializer(record).data
        return Response(body, status=answer)
