"""REST endpoints of meter data; registered on the project router in dr_platform.urls."""

from rest_framework.routers import BaseRouter

from settlements.api import settlement_views, views


def register(router: BaseRouter) -> None:
    """Register this app's viewsets on the project's API router."""
    router.register("meter-data-imports", views.MeterDataImportViewSet, basename="meterdataimport")
    router.register(
        "settlement-runs", settlement_views.SettlementRunViewSet, basename="settlementrun"
    )
    router.register(
        "billing-exports", settlement_views.BillingExportViewSet, basename="billingexport"
    )
