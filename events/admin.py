"""Web admin of the events app.

Events are called in the console (``events.services.event_create``); here they are
read, and scheduled or cancelled with admin actions that call the services, never a raw
save. Notifications and inbound messages are the pipeline's ledger: read-only. Declared
unavailability is read here; participants declare it through ``unavailability_declare``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from dr_platform.admin import ReadOnlyAdmin, admin_report
from events import services
from events.models import (
    DutyAssignment,
    EscalationStep,
    Event,
    InboundMessage,
    Notification,
    Participation,
    Unavailability,
)


class ParticipationInline(admin.TabularInline):
    model = Participation
    extra = 0
    can_delete = False
    show_change_link = False
    fields = [
        "site",
        "organization",
        "committed_kw",
        "status",
        "acknowledged_at",
        "acknowledged_via",
        "opted_out_at",
        "opted_out_via",
        "escalation_level",
        "removed_at",
        "modification_number",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Participation]:
        return (
            super()
            .get_queryset(request)
            .select_related("enrollment__site__organization")
            .order_by("enrollment__site__organization__legal_name", "enrollment__site__name")
        )

    @admin.display(description="Site")
    def site(self, participation: Participation) -> str:
        return participation.enrollment.site.name

    @admin.display(description="Organization")
    def organization(self, participation: Participation) -> str:
        return participation.enrollment.site.organization.legal_name

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CancelForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Participants already told are sent a cancel notice.",
    )


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Read-mostly: the event and its participations; schedule and cancel are actions."""

    list_display = [
        "id",
        "program",
        "kind",
        "status",
        "starts_at",
        "ends_at",
        "modification_number",
        "created_by",
        "console_link",
    ]
    list_filter = ["program", "status", "kind"]
    list_select_related = ["program", "created_by"]
    date_hierarchy = "starts_at"
    search_fields = ["reason", "program__name"]
    fields = [
        "program",
        "kind",
        "status",
        "starts_at",
        "ends_at",
        "target_zones",
        "target_substations",
        "target_feeders",
        "target_sites",
        "reason",
        "modification_number",
        "created_by",
        "created_at",
        "scheduled_at",
        "notice_due_at",
        "notice_sent_at",
        "reminder_due_at",
        "reminder_sent_at",
        "activated_at",
        "completed_at",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
    ]
    readonly_fields = fields
    inlines = [ParticipationInline]
    actions = ["schedule", "cancel"]

    @admin.display(description="Live page")
    def console_link(self, event: Event) -> str:
        return format_html(
            '<a href="{}">open</a>', reverse("console:event_detail", kwargs={"event_id": event.pk})
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # events are called in the console, where every rule is shown

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # cancel instead: participants may already have been told

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The change page is view-only; "change" on the list unlocks the actions.
        return obj is None and super().has_change_permission(request)

    @admin.action(
        description="Schedule selected drafts (notify participants)", permissions=["change"]
    )
    def schedule(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        admin_report(
            self,
            request,
            queryset.select_related("program"),
            lambda event: services.event_schedule(event=event, by=request.user),
            "event(s) scheduled",
        )

    @admin.action(description="Cancel selected events…", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Event]) -> HttpResponse | None:
        """Ask for the reason on an intermediate page, then cancel with it."""
        form = CancelForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            admin_report(
                self,
                request,
                queryset.select_related("program"),
                lambda event: services.event_cancel(
                    event=event, by=request.user, reason=form.cleaned_data["reason"]
                ),
                "event(s) cancelled",
            )
            return None
        return TemplateResponse(
            request,
            "console/events/admin_cancel.html",
            {
                **self.admin_site.each_context(request),
                "title": "Cancel events",
                "opts": self.model._meta,
                "events": queryset.select_related("program"),
                "form": form,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = [
        "queued_at",
        "event_id",
        "site",
        "contact_method",
        "kind",
        "channel",
        "status",
        "attempts",
        "error_code",
    ]
    list_filter = ["status", "channel", "kind"]
    list_select_related = ["contact_method", "participation__enrollment__site"]
    search_fields = ["=uuid", "provider_reference", "contact_method__address"]
    date_hierarchy = "queued_at"
    readonly_fields = [
        "uuid",
        "event",
        "participation",
        "contact_method",
        "kind",
        "channel",
        "status",
        "attempts",
        "next_attempt_at",
        "provider_reference",
        "error",
        "error_code",
        "modification_number",
        "payload",
        "queued_at",
        "sending_at",
        "sent_at",
        "delivered_at",
        "failed_at",
        "cancelled_at",
    ]
    fields = readonly_fields

    @admin.display(description="Site", ordering="participation__enrollment__site__name")
    def site(self, notification: Notification) -> str:
        return notification.participation.enrollment.site.name


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "channel", "sender", "body", "action", "participation"]
    list_filter = ["channel", "action"]
    list_select_related = ["participation__enrollment__site"]
    search_fields = ["sender", "body"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "channel",
        "sender",
        "body",
        "action",
        "response",
        "contact_method",
        "notification",
        "participation",
        "raw",
        "received_at",
    ]
    fields = readonly_fields


@admin.register(Unavailability)
class UnavailabilityAdmin(ReadOnlyAdmin):
    """Read here; declared through ``unavailability_declare`` (portal), which also updates
    the participations of events it overlaps."""

    list_display = [
        "site",
        "organization",
        "starts_at",
        "ends_at",
        "reason",
        "declared_by",
        "withdrawn_at",
    ]
    list_filter = ["site__zone", "site__organization__tier"]
    list_select_related = ["site", "site__organization", "declared_by"]
    search_fields = ["site__name", "site__organization__legal_name", "reason"]
    date_hierarchy = "starts_at"
    readonly_fields = [
        "site",
        "starts_at",
        "ends_at",
        "reason",
        "declared_by",
        "declared_at",
        "withdrawn_at",
    ]
    fields = readonly_fields

    @admin.display(description="Organization", ordering="site__organization__legal_name")
    def organization(self, window: Unavailability) -> str:
        return window.site.organization.legal_name


@admin.register(EscalationStep)
class EscalationStepAdmin(ReadOnlyAdmin):
    list_display = ["at", "participation", "level", "target", "reason", "user"]
    list_filter = ["target", "reason"]
    list_select_related = ["participation__enrollment__site", "user"]
    readonly_fields = ["participation", "level", "target", "reason", "user", "detail", "at"]
    fields = readonly_fields


@admin.register(DutyAssignment)
class DutyAssignmentAdmin(admin.ModelAdmin):
    """Who is the manager on duty: plain records the escalation ladder reads."""

    list_display = ["user", "starts_at", "ends_at"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
