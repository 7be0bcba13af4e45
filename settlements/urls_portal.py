"""Participant portal pages of meter data (mounted under /portal/, namespace "portal")."""

from django.urls import path

from settlements import views

urlpatterns = [
    path("meters/", views.portal_meter_list, name="meter_list"),
    path("meters/<int:meter_id>/quality/", views.portal_meter_quality, name="meter_quality"),
]
