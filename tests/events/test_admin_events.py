"""The events admin: changelists in bounded queries, read-only ledgers, and schedule and
cancel actions that go through the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from events import inbound, services
from events.models import Event, InboundMessage, Notification
from tests.enrollment.factories import (
    ContactFactory,
    ContactMethodFactory,
    EnrollmentFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, manager_user):
    client.force_login(manager_user)
    return client


@pytest.fixture
def busy_event(call_event_soon, program, harbor, manager_user) -> Event:
    """An event with 20 sites, their notices sent, replies and declared unavailability."""
    contact = ContactFactory(organization=harbor, name="Ops desk")
    ContactMethodFactory(contact=contact, address="+12125550999", escalation_order=1)
    for number in range(17):
        site = SiteFactory(organization=harbor, name=f"Warehouse {number:02d}")
        EnrollmentFactory(program=program, site=site, committed_kw=Decimal("20"))
        services.unavailability_declare(
            site=site,
            starts_at=timezone.now() + dt.timedelta(days=2),
            ends_at=timezone.now() + dt.timedelta(days=3),
            reason="Inventory",
            by=manager_user,
        )
    event = call_event_soon()
    for notification_id in event.notifications.values_list("pk", flat=True):
        services.notification_send(notification_id)
    for number in range(5):
        inbound.sms_reply_receive(sender="+12125550999", body=str(number), raw={})
    return event


@pytest.mark.parametrize(
    "model", ["event", "notification", "inboundmessage", "unavailability", "escalationstep"]
)
def test_changelists_stay_within_bounded_queries(
    admin_client, busy_event, model, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14):
        response = admin_client.get(reverse(f"admin:events_{model}_changelist"))
    assert response.status_code == 200


def test_the_event_page_lists_participations_read_only_in_bounded_queries(
    admin_client, busy_event, django_assert_max_num_queries
):
    with django_assert_max_num_queries(20):
        response = admin_client.get(reverse("admin:events_event_change", args=[busy_event.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "Warehouse 16" in content
    assert 'name="participations-0-status"' not in content  # shown, never editable


def test_the_event_list_filters_by_program_status_and_kind(admin_client, busy_event, program):
    url = reverse("admin:events_event_changelist")
    assert admin_client.get(url, {"status__exact": "scheduled"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"kind__exact": "test"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"program__id__exact": program.pk}).context["cl"].result_count == 1


def test_notifications_and_replies_are_read_only(admin_client, busy_event):
    notification = busy_event.notifications.first()
    response = admin_client.get(reverse("admin:events_notification_change", args=[notification.pk]))
    assert response.status_code == 200
    assert b'name="status"' not in response.content
    assert admin_client.get(reverse("admin:events_notification_add")).status_code == 403
    reply = InboundMessage.objects.first()
    delete = reverse("admin:events_inboundmessage_delete", args=[reply.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Notification.objects.filter(pk=notification.pk).exists()


def test_the_schedule_action_calls_the_service(admin_client, call_event_soon):
    draft = call_event_soon(draft=True)
    response = admin_client.post(
        reverse("admin:events_event_changelist"),
        {"action": "schedule", ACTION_CHECKBOX_NAME: [draft.pk]},
        follow=True,
    )
    assert "1 event(s) scheduled." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == Event.Status.SCHEDULED
    assert draft.notifications.count() == 3  # the service notified, not a raw save


def test_the_schedule_action_reports_each_refusal(admin_client, call_event_soon):
    event = call_event_soon()
    response = admin_client.post(
        reverse("admin:events_event_changelist"),
        {"action": "schedule", ACTION_CHECKBOX_NAME: [event.pk]},
        follow=True,
    )
    assert "This event is no longer a draft." in response.content.decode()


def test_the_cancel_action_asks_for_a_reason_then_cancels(admin_client, call_event_soon):
    event = call_event_soon()
    for notification_id in event.notifications.values_list("pk", flat=True):
        services.notification_send(notification_id)  # only those told hear of the cancellation
    url = reverse("admin:events_event_changelist")
    ask = admin_client.post(url, {"action": "cancel", ACTION_CHECKBOX_NAME: [event.pk]})
    assert ask.status_code == 200
    assert "Cancel the events" in ask.content.decode()
    response = admin_client.post(
        url,
        {
            "action": "cancel",
            "apply": "1",
            "reason": "Grid recovered",
            ACTION_CHECKBOX_NAME: [event.pk],
        },
        follow=True,
    )
    assert "1 event(s) cancelled." in response.content.decode()
    event.refresh_from_db()
    assert (event.status, event.cancel_reason) == (Event.Status.CANCELLED, "Grid recovered")
    assert event.notifications.filter(kind=Notification.Kind.CANCEL).count() == 3


def test_billing_reads_events_in_the_admin_but_has_no_actions(client, billing_clerk, busy_event):
    client.force_login(billing_clerk)
    response = client.get(reverse("admin:events_event_changelist"))
    assert response.status_code == 200
    assert 'value="cancel"' not in response.content.decode()
    response = client.post(
        reverse("admin:events_event_changelist"),
        {"action": "cancel", "apply": "1", "reason": "x", ACTION_CHECKBOX_NAME: [busy_event.pk]},
    )
    busy_event.refresh_from_db()
    assert busy_event.status == Event.Status.SCHEDULED
