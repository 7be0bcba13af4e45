from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from dr_platform import api, views
from enrollment.api import urls as enrollment_api
from events.api import urls as events_api
from settlements import urls_performance, urls_statements
from settlements.api import urls as settlements_api

router = DefaultRouter()
router.register("organizations", api.OrganizationViewSet, basename="organization")
enrollment_api.register(router)
events_api.register(router)
settlements_api.register(router)

portal_patterns = (
    [
        path("", views.portal_home, name="home"),
        path("o/<int:organization_id>/", views.organization_dashboard, name="organization"),
        path("", include("enrollment.urls_portal")),
        path("", include("events.urls_portal")),
        path("", include("settlements.urls_portal")),
        path("", include(urls_performance.portal_urlpatterns)),
        path("", include(urls_statements.portal_urlpatterns)),
    ],
    "portal",
)
console_patterns = (
    [
        path("", views.console_home, name="home"),
        path("", include("enrollment.urls_console")),
        path("", include("events.urls_console")),
        path("", include("settlements.urls_console")),
        path("", include(urls_performance.console_urlpatterns)),
        path("", include(urls_statements.console_urlpatterns)),
    ],
    "console",
)

admin.site.site_header = "Demand response administration"
admin.site.site_title = "DR admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("portal/", include(portal_patterns)),
    path("console/", include(console_patterns)),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("hooks/", include("events.urls_hooks")),
]
